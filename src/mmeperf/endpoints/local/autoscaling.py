"""Autoscaling of the multi-instance local MME: the target-tracking policy the SageMaker target
writes (:class:`mmeperf.cloud.autoscaling.AutoscalingPolicy`), evaluated the way Application Auto
Scaling evaluates it, against the local fleet while a load runs.

**The metric.** ``SageMakerVariantInvocationsPerInstance`` as SageMaker defines it (API reference,
``ScalingPolicyMetric``): every request adds ``1/numberOfInstances``, the number of instances in
service when it arrives; the datapoint is the Sum over one period. CloudWatch's period is one
minute and the policy's target is per minute. ``period_s`` may be shorter for tests and quick
checks; the datapoint is then rescaled to per minute (x 60 / ``period_s``), so a target means
the same request rate whatever the period.

**The alarms.** Application Auto Scaling creates two CloudWatch alarms per target-tracking policy
(visible in the CloudWatch console; the datapoint counts are not an API contract): scale out when
the metric is above the target for 3 consecutive datapoints, scale in when it is below 90% of
the target for 15 consecutive datapoints. Both counts and the ratio are options here.

**The adjustment.** The new capacity is ``ceil(in-service instances x metric / target)`` (target
tracking's proportional rule for a metric that halves when capacity doubles), kept within
[MinCapacity, MaxCapacity]; one scaling activity at a time (no decision while an instance is
still starting or draining). Cooldowns as the AWS API reference documents them
(``TargetTrackingScalingPolicyConfiguration``): during the scale-out cooldown only a larger scale
out than the one that started it proceeds; during the scale-in cooldown scale in is blocked,
while a scale out proceeds at once. ``DisableScaleIn`` keeps every instance. A capacity outside
[min, max] at start is brought inside first (as registering the scalable target does).

Every decision and every instance's life (pending, in service, draining, stopped) is a
:class:`ScalingEvent` on the fleet's timeline (``GET /mmeperf/scaling`` on the front, and a JSON
lines file when one is configured).
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from mmeperf.cloud.autoscaling import AutoscalingPolicy

__all__ = [
    "Autoscaler",
    "CapacityController",
    "Decision",
    "LocalAutoscaling",
    "ScalingEvent",
    "TargetTracker",
    "Timeline",
    "Verdict",
    "verdict",
]

EventKind = Literal[
    "datapoint", "scale_out", "scale_in", "cooldown",
    "instance_pending", "instance_in_service", "instance_draining", "instance_stopped", "instance_failed",
]


class LocalAutoscaling(BaseModel):
    """A target-tracking policy and how the local fleet evaluates it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    policy: AutoscalingPolicy = AutoscalingPolicy()
    """The policy the SageMaker target writes (min, max, target per minute, cooldowns)."""
    period_s: float = Field(default=60.0, gt=0)
    """Length of one datapoint (CloudWatch: 60 s). Shorter for tests; the datapoint is rescaled
    to invocations per instance per minute."""
    scale_out_datapoints: int = Field(default=3, ge=1)
    """Consecutive datapoints above the target that scale out (AWS's alarm: 3)."""
    scale_in_datapoints: int = Field(default=15, ge=1)
    """Consecutive datapoints below ``scale_in_ratio`` x target that scale in (AWS's alarm: 15)."""
    scale_in_ratio: float = Field(default=0.9, gt=0, le=1)
    """Fraction of the target under which a datapoint counts toward scale in (AWS's alarm: 0.9)."""


class ScalingEvent(BaseModel):
    """One line of the scaling timeline."""

    model_config = ConfigDict(frozen=True)

    timestamp: float
    """Unix seconds."""
    elapsed_s: float
    """Seconds since the fleet started."""
    event: EventKind
    cause: str = ""
    """Why, in words (the metric, the threshold and the datapoints for a decision)."""
    instance: str | None = None
    """The instance an instance event is about (``<host>:<pid>``, the response header's value)."""
    in_service: int | None = None
    """Instances in service when the event happened."""
    desired_before: int | None = None
    desired_after: int | None = None
    invocations_per_instance: float | None = None
    """The datapoint (per instance per minute) behind a decision, or the datapoint itself."""


class Timeline:
    """The fleet's scaling events, in memory and (optionally) appended to a JSON lines file as
    they happen, so an interrupted run keeps them. Thread-safe."""

    def __init__(self, path: str | Path | None = None, *, start: float | None = None) -> None:
        self.start = time.time() if start is None else start
        self._events: list[ScalingEvent] = []
        self._lock = threading.Lock()
        self._path = None if path is None else Path(path)
        if self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._path.write_text("")

    def add(self, event: EventKind, cause: str = "", **fields: object) -> ScalingEvent:
        now = time.time()
        record = ScalingEvent(timestamp=now, elapsed_s=now - self.start, event=event, cause=cause,
                              **fields)  # type: ignore[arg-type]
        with self._lock:
            self._events.append(record)
            if self._path is not None:
                with self._path.open("a", encoding="utf-8") as fh:
                    fh.write(record.model_dump_json() + "\n")
        return record

    def events(self, *, since: int = 0) -> list[ScalingEvent]:
        with self._lock:
            return self._events[since:]

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)

    @staticmethod
    def read(path: str | Path) -> list[ScalingEvent]:
        """The events of a JSON lines timeline file."""
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        return [ScalingEvent.model_validate(json.loads(line)) for line in lines if line.strip()]


@dataclass(frozen=True, slots=True)
class Decision:
    """What the tracker asks for after a datapoint."""

    event: Literal["scale_out", "scale_in", "cooldown"]
    desired: int
    cause: str


class TargetTracker:
    """Target tracking's decisions, fed one datapoint per period (pure: no clock of its own)."""

    def __init__(self, settings: LocalAutoscaling) -> None:
        self.settings = settings
        self.policy = settings.policy
        self._high = 0
        self._low = 0
        self._last_out: tuple[float, int] | None = None  # (when, capacity it set)
        self._last_in: float | None = None
        self._cooldown_reported = False

    def bounds(self, desired: int) -> Decision | None:
        """Bring a capacity outside [min, max] inside (as registering the target does)."""
        p = self.policy
        if desired < p.min_capacity:
            return Decision("scale_out", p.min_capacity,
                            f"capacity {desired} is below MinCapacity {p.min_capacity}")
        if desired > p.max_capacity:
            return Decision("scale_in", p.max_capacity,
                            f"capacity {desired} is above MaxCapacity {p.max_capacity}")
        return None

    def observe(self, value: float, *, in_service: int, desired: int, now: float, busy: bool) -> Decision | None:
        """One datapoint (invocations per instance per minute). ``busy``: an instance is still
        starting or draining (one scaling activity at a time)."""
        s, p = self.settings, self.policy
        target = p.target_invocations_per_instance
        self._high = self._high + 1 if value > target else 0
        self._low = self._low + 1 if value < target * s.scale_in_ratio else 0
        if busy or in_service == 0:
            return None
        period = f"datapoints of {s.period_s:g} s"
        wanted = math.ceil(in_service * value / target - 1e-9)
        if self._high >= s.scale_out_datapoints:
            new = min(p.max_capacity, max(wanted, p.min_capacity))
            if new <= desired:
                return None
            cause = (f"InvocationsPerInstance {value:.1f}/min > target {target:g} for "
                     f"{self._high} consecutive {period} (alarm: {s.scale_out_datapoints})")
            if self._last_out is not None and now < self._last_out[0] + p.scale_out_cooldown_s \
                    and new <= self._last_out[1]:
                return self._cooldown(desired, f"scale out to {new} held by the scale-out cooldown "
                                               f"({p.scale_out_cooldown_s} s); {cause}")
            self._last_out = (now, new)
            self._cooldown_reported = False
            return Decision("scale_out", new, cause)
        if self._low >= s.scale_in_datapoints and not p.disable_scale_in:
            new = max(p.min_capacity, min(wanted, desired))
            if new >= desired:
                return None
            cause = (f"InvocationsPerInstance {value:.1f}/min < {s.scale_in_ratio:g} x target "
                     f"{target:g} for {self._low} consecutive {period} (alarm: {s.scale_in_datapoints})")
            if self._last_in is not None and now < self._last_in + p.scale_in_cooldown_s:
                return self._cooldown(desired, f"scale in to {new} held by the scale-in cooldown "
                                               f"({p.scale_in_cooldown_s} s); {cause}")
            self._last_in = now
            self._cooldown_reported = False
            return Decision("scale_in", new, cause)
        return None

    def _cooldown(self, desired: int, cause: str) -> Decision | None:
        if self._cooldown_reported:  # once per cooldown, not once per datapoint
            return None
        self._cooldown_reported = True
        return Decision("cooldown", desired, cause)


class CapacityController(Protocol):
    """What the autoscaler needs of a fleet (:class:`mmeperf.endpoints.local.fleet.Fleet`)."""

    timeline: Timeline

    @property
    def in_service(self) -> int: ...

    @property
    def desired(self) -> int: ...

    @property
    def busy(self) -> bool: ...

    def take_invocations_per_instance(self) -> float:
        """The Sum of 1/instances over the requests since the previous call (then reset)."""

    async def scale_to(self, desired: int, cause: str) -> None: ...


class Autoscaler:
    """Runs a :class:`TargetTracker` against a fleet: one datapoint per ``period_s``."""

    def __init__(self, fleet: CapacityController, settings: LocalAutoscaling) -> None:
        self.fleet = fleet
        self.settings = settings
        self.tracker = TargetTracker(settings)
        self._task: asyncio.Task[None] | None = None
        self._actions: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="mmeperf-autoscaler")

    async def stop(self) -> None:
        for task in (self._task, *self._actions):
            if task is not None:
                task.cancel()
        for task in (self._task, *self._actions):
            if task is not None:
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass

    def _act(self, decision: Decision) -> None:
        fleet = self.fleet
        before = fleet.desired
        fleet.timeline.add(decision.event, decision.cause, in_service=fleet.in_service,
                           desired_before=before, desired_after=decision.desired)
        if decision.event != "cooldown" and decision.desired != before:
            task = asyncio.get_running_loop().create_task(fleet.scale_to(decision.desired, decision.cause))
            self._actions.add(task)
            task.add_done_callback(self._actions.discard)

    async def _run(self) -> None:
        settings = self.settings
        fleet = self.fleet
        bounded = self.tracker.bounds(fleet.desired)
        if bounded is not None:
            self._act(bounded)
        fleet.take_invocations_per_instance()
        loop = asyncio.get_running_loop()
        next_at = loop.time() + settings.period_s
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at += settings.period_s
            value = fleet.take_invocations_per_instance() * 60.0 / settings.period_s
            in_service = fleet.in_service
            fleet.timeline.add("datapoint", in_service=in_service, desired_before=fleet.desired,
                               invocations_per_instance=value)
            decision = self.tracker.observe(value, in_service=in_service, desired=fleet.desired,
                                            now=time.monotonic(), busy=fleet.busy)
            if decision is not None:
                self._act(decision)


Expectation = Literal["scale-out", "scale-in", "both"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a policy triggered under a load: the answer, in one line, and the decisions."""

    triggered: bool
    summary: str
    decisions: tuple[ScalingEvent, ...]


def verdict(events: Iterable[ScalingEvent | Mapping[str, Any]], expect: Expectation = "scale-out") -> Verdict:
    """Read a timeline: did the policy scale out (``scale-out``), in (``scale-in``) or both?"""
    timeline = [e if isinstance(e, ScalingEvent) else ScalingEvent.model_validate(e) for e in events]
    decisions = tuple(e for e in timeline if e.event in ("scale_out", "scale_in"))
    outs = [e for e in decisions if e.event == "scale_out"]
    ins = [e for e in decisions if e.event == "scale_in"]
    wanted = {"scale-out": bool(outs), "scale-in": bool(ins), "both": bool(outs) and bool(ins)}[expect]
    parts = [f"scaled {'out' if e.event == 'scale_out' else 'in'} {e.desired_before} -> {e.desired_after} "
             f"at {e.elapsed_s:.1f} s ({e.cause})" for e in decisions]
    if not parts:
        points = [e.invocations_per_instance for e in timeline
                  if e.event == "datapoint" and e.invocations_per_instance is not None]
        peak = f"; the highest datapoint was {max(points):.1f} invocations per instance per minute" if points else ""
        parts.append(f"no scaling activity in {len(points)} datapoints{peak}")
    if not wanted and expect != "scale-out" and outs and not ins:
        parts.append("no scale in (yet): scale in needs its datapoints below the threshold and its cooldown over")
    return Verdict(triggered=wanted, summary="; ".join(parts), decisions=decisions)
