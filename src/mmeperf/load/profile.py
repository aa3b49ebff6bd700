"""LoadProfile: the traffic a benchmark drives (shape, waits, stop conditions, which model, payloads).

Loadable from YAML/JSON (``LoadProfile.from_file``) and handed to the Locust processes as JSON;
:meth:`LoadProfile.stages` turns any shape into the plan of stages the runner follows.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from mmeperf._files import read_mapping
from mmeperf._types import PathLike
from mmeperf.errors import ConfigurationError
from mmeperf.load.traffic import Traffic
from mmeperf.units import parse_duration

__all__ = [
    "ConstantShape",
    "Duration",
    "ErrorRateStop",
    "LatencyStop",
    "LoadProfile",
    "OpenLoopShape",
    "Phase",
    "PhasesShape",
    "PlateauStop",
    "RateStage",
    "StagePlan",
    "StepsShape",
    "StopConditions",
    "TraceShape",
    "WaitTime",
    "Warmup",
]


def _duration(value: Any) -> float:
    return parse_duration(value)


#: Seconds; accepts "15m", "90s", "250ms", "1h30m" or a number of seconds.
Duration = Annotated[float, BeforeValidator(_duration), Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ConstantShape(_Model):
    """A fixed number of users, spawned at a rate, for a duration (the churn reference)."""

    kind: Literal["constant"] = "constant"
    users: int = Field(default=300, ge=1)
    """Concurrent users once spawned (reference: 300)."""
    spawn_rate: float = Field(default=5.0, gt=0)
    """Users started per second while ramping up (reference: 5)."""
    duration: Duration = 900.0
    """How long the load runs, ramp-up included (reference: 15m)."""


class StepsShape(_Model):
    """Users stepped up stage by stage (the GPU reference: 30 s steps at 10, 20, 40 ... 200)."""

    kind: Literal["steps"] = "steps"
    users: list[Annotated[int, Field(ge=1)]] = Field(min_length=1)
    """Users of each step, in order."""
    step_duration: Duration = 30.0
    """How long each step lasts."""
    last_step_duration: Duration | None = None
    """Duration of the last step when it differs (the GPU reference's last step is 40 s)."""
    spawn_rate: float | None = Field(default=None, gt=0)
    """Users started per second between steps; None starts each step's users at once."""


class Phase(_Model):
    """One SageMaker Inference Recommender phase: start with some users, add users per minute."""

    initial_users: int = Field(default=1, ge=1, validation_alias=AliasChoices("initial_users", "InitialNumberOfUsers"))
    """Users when the phase starts (Inference Recommender's InitialNumberOfUsers)."""
    spawn_rate: float = Field(default=1.0, ge=0, validation_alias=AliasChoices("spawn_rate", "SpawnRate"))
    """New users per MINUTE during the phase (Inference Recommender's SpawnRate, same unit)."""
    duration: Duration = Field(default=120.0, validation_alias=AliasChoices("duration", "DurationInSeconds"))
    """Length of the phase (Inference Recommender's DurationInSeconds)."""

    def users_at(self, t: float) -> int:
        """Users ``t`` seconds into the phase."""
        return self.initial_users + math.floor(self.spawn_rate * t / 60.0 + 1e-9)


class PhasesShape(_Model):
    """Phases as SageMaker Inference Recommender takes them (``TrafficPattern.Phases``)."""

    kind: Literal["phases"] = "phases"
    phases: list[Phase] = Field(min_length=1)


class RateStage(_Model):
    """One open-loop stage: a target arrival rate for a duration."""

    rate: float = Field(gt=0)
    """Requests per second to send, whatever the server does."""
    duration: Duration = Field(gt=0)


class OpenLoopShape(_Model):
    """Requests sent at a target rate regardless of responses (wrk2-style, coordinated-omission free).

    Latency is timed from each request's *scheduled* send time, so a server stall delays every
    request that should have been sent during it and shows in the percentiles; sends that leave
    later than ``late_after`` past their schedule are counted as late.
    """

    kind: Literal["open"] = "open"
    rate: float | None = Field(default=None, gt=0)
    """Requests per second (one stage); or give ``stages``."""
    duration: Duration | None = None
    """Length of the single stage when ``rate`` is given."""
    stages: list[RateStage] = Field(default_factory=list)
    """Several rates in a row (instead of ``rate``/``duration``)."""
    arrivals: Literal["constant", "poisson"] = "constant"
    """Evenly spaced sends, or a Poisson process with the same mean rate."""
    concurrency: int = Field(default=256, ge=1)
    """Most requests in flight at once (per run); sends wait for a free slot and are then late."""
    late_after: Duration = 0.01
    """A send that leaves more than this after its scheduled time is counted as late."""

    @model_validator(mode="after")
    def _one_form(self) -> OpenLoopShape:
        if self.rate is not None and self.stages:
            raise ValueError("give either rate (+ duration) or stages, not both")
        if self.rate is None and not self.stages:
            raise ValueError("an open-loop shape needs rate and duration, or stages")
        if self.rate is not None and not self.duration:
            raise ValueError("rate needs a duration > 0")
        return self

    def rate_stages(self) -> list[RateStage]:
        if self.stages:
            return list(self.stages)
        assert self.rate is not None and self.duration is not None
        return [RateStage(rate=self.rate, duration=self.duration)]


class TraceShape(_Model):
    """Replay an invocation log open-loop: each row is sent at its timestamp, whatever the server does.

    The log (CSV or Parquet) has a timestamp and a target model per row, and optionally the
    payload each row sends (a row number of the traffic's payloads, or a payload file's name);
    without one, each send draws a payload at random. Timing is the open-loop shape's: latency
    from the scheduled send, late sends counted.
    """

    kind: Literal["trace"] = "trace"
    path: str
    """The invocation log: ``.csv``, or ``.parquet`` (needs pyarrow)."""
    format: Literal["auto", "csv", "parquet"] = "auto"
    """How to read ``path``; auto picks by extension."""
    timestamp_column: str = "timestamp"
    """When each invocation happened: numbers (in ``timestamp_unit``) or datetimes / ISO strings."""
    timestamp_unit: Literal["s", "ms", "us", "ns"] = "s"
    """Unit of numeric timestamps."""
    model_column: str = "model"
    """The target model of each invocation."""
    payload_column: str | None = None
    """Optional: which payload each row sends (a row number, or a payload file's name)."""
    speed: float = Field(default=1.0, gt=0)
    """Time scaling: 2 replays twice as fast (half the gaps), 0.5 at half speed."""
    start: float | str | None = None
    """Window start: seconds or a duration from the first timestamp (``10m``), or a datetime."""
    end: float | str | None = None
    """Window end (exclusive), the same forms; None: the last row."""
    rename: dict[str, str] = Field(default_factory=dict)
    """Model renaming, trace name -> endpoint name (names not listed are kept)."""
    model_template: str = "{}"
    """Applied after ``rename``: ``churn-xgb-{}.tar.gz`` turns ``CA`` into ``churn-xgb-CA.tar.gz``."""
    concurrency: int = Field(default=256, ge=1)
    """Most requests in flight at once (per run); sends wait for a free slot and are then late."""
    late_after: Duration = 0.01
    """A send that leaves more than this after its scheduled time is counted as late."""
    drain: Duration = 1.0
    """How long the run goes on after the window's end, so that late sends still leave."""
    span_s: float | None = Field(default=None, ge=0)
    """Filled in when the trace is read: the replay's length in seconds (window / speed)."""
    rows: int | None = Field(default=None, ge=0)
    """Filled in when the trace is read: the sends in the window."""

    _traces: dict[Any, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> TraceShape:
        if "{}" not in self.model_template and "{value}" not in self.model_template:
            raise ValueError(f"model_template must contain {{}}, received {self.model_template!r}")
        return self

    def load(self, *, keys: list[str] | None = None, n_payloads: int | None = None, payloads: bool = True) -> Any:
        """Read the log and build its replay (a :class:`mmeperf.load.trace.Trace`), once per arguments.

        ``payloads=False`` leaves the payload column out (timing and models only).
        """
        cache_key = (payloads, None if keys is None else tuple(keys), n_payloads)
        if cache_key not in self._traces:
            from mmeperf.load.trace import build_trace

            fields = self.model_dump(exclude={"kind", "concurrency", "late_after", "drain", "span_s", "rows"})
            if not payloads:
                fields["payload_column"] = None
            self._traces[cache_key] = build_trace(**fields, keys=keys, n_payloads=n_payloads)
        return self._traces[cache_key]

    def describe(self, trace: Any) -> dict[str, Any]:
        """run.json's ``trace`` section: what is replayed."""
        return {
            "path": self.path,
            "rows": len(trace),
            "models": len(trace.models),
            "span_s": trace.span_s,
            "speed": self.speed,
            "window": {"start": self.start, "end": self.end},
            "mean_rate": len(trace) / trace.span_s if trace.span_s > 0 else None,
        }

    def resolved(self, trace: Any) -> TraceShape:
        """This shape with ``span_s`` and ``rows`` filled in from its trace."""
        return self.model_copy(update={"span_s": float(trace.span_s), "rows": len(trace)})

    def replay_s(self) -> float:
        """The length of the replay (the log is read here if it was not before)."""
        span = self.span_s if self.span_s is not None else float(self.load(payloads=False).span_s)
        return span + self.drain


Shape = Annotated[
    ConstantShape | StepsShape | PhasesShape | OpenLoopShape | TraceShape, Field(discriminator="kind")
]


class WaitTime(_Model):
    """Pause each closed-loop user takes between its requests, uniform in [min, max]."""

    min: Duration = 0.0
    """Shortest wait (reference churn: 0 s; GPU: 0.05 s)."""
    max: Duration = 2.0
    """Longest wait (reference churn: 2 s; GPU: 0.5 s)."""

    @model_validator(mode="after")
    def _ordered(self) -> WaitTime:
        if self.max < self.min:
            raise ValueError(f"wait max ({self.max}) is below min ({self.min})")
        return self


class LatencyStop(_Model):
    """Stop when a latency percentile over the last ``window`` seconds exceeds ``threshold_ms``."""

    percentile: float = Field(default=99.0, gt=0, le=100)
    threshold_ms: float = Field(gt=0)
    window: Duration = 10.0
    min_requests: int = Field(default=20, ge=1)
    """Fewer requests than this in the window never trigger the stop."""


class ErrorRateStop(_Model):
    """Stop when failures / requests over the last ``window`` seconds exceed ``threshold``."""

    threshold: float = Field(gt=0, le=1)
    """A fraction: 0.01 is 1%."""
    window: Duration = 10.0
    min_requests: int = Field(default=20, ge=1)


class PlateauStop(_Model):
    """Stop a stepped run when a stage's throughput grew less than ``min_growth`` over the last."""

    min_growth: float = Field(default=0.05, ge=0)
    """0.05: stop when a stage's req/s is under 1.05x the previous stage's."""


class Warmup(_Model):
    """Traffic before the measured stages, to load the models: reported on its own, never measured.

    ``requests_per_model: 1`` sends every model that many requests first (a few at a time), then
    starts the measured load; ``duration: 10s`` runs the first stage's load that long first.
    Its requests are in run.json's ``warmup`` section only: not in the summary, history,
    per-model, failure or distribution files, not in the totals, and no stop condition sees them.
    """

    requests_per_model: int | None = Field(default=None, ge=1)
    """Requests each model gets before the measured load starts."""
    duration: Duration | None = Field(default=None, gt=0)
    """Or: how long the first stage's load runs before it is measured."""
    concurrency: int = Field(default=8, ge=1)
    """Warm-up requests in flight at once (requests_per_model)."""

    @model_validator(mode="after")
    def _one_form(self) -> Warmup:
        if (self.requests_per_model is None) == (self.duration is None):
            raise ValueError("a warm-up is either requests_per_model: N or duration: D (one of them)")
        return self


class StopConditions(_Model):
    """Conditions that end a run early; the reason is recorded in ``run.json``."""

    latency: LatencyStop | None = None
    error_rate: ErrorRateStop | None = None
    throughput_plateau: PlateauStop | None = None


class StagePlan(_Model):
    """One stage of a run as the runner follows it (derived from any shape)."""

    index: int
    name: str
    start_s: float
    """Seconds from the load's start."""
    duration_s: float
    users: int
    """Users at the start of the stage (closed loop) or the in-flight limit (open loop)."""
    spawn_rate: float
    rate: float | None = None
    """Target requests per second (open loop only)."""
    phase: Phase | None = None
    """The Inference Recommender phase, whose users grow during the stage."""

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    def users_at(self, t_in_stage: float) -> int:
        return self.phase.users_at(t_in_stage) if self.phase is not None else self.users


class LoadProfile(_Model):
    """Everything about the traffic of one benchmark: shape, waits, stops and the requests."""

    name: str | None = None
    """A label for reports."""
    shape: Shape = Field(default_factory=lambda: ConstantShape())
    """Constant users, steps, Inference Recommender phases, or an open-loop rate."""
    wait: WaitTime = Field(default_factory=WaitTime)
    """Closed-loop users' pause between requests (ignored by open loop)."""
    traffic: Traffic = Field(default_factory=lambda: Traffic())
    """Which model each request targets and what it sends."""
    stop: StopConditions = Field(default_factory=StopConditions)
    """Conditions that end the run early."""
    warmup: Warmup | None = None
    """Traffic before the measured stages (every model N times, or a duration), reported apart."""
    request_timeout: Duration = 60.0
    """Client timeout of one request (connect and read); a timeout is a failure."""
    stop_timeout: Duration = 30.0
    """At the end, how long requests in flight may take to finish before they are cancelled."""
    seed: int | None = None
    """Seed of the request sampler (each Locust process adds its index)."""

    @model_validator(mode="after")
    def _trace_warmup(self) -> LoadProfile:
        if isinstance(self.shape, TraceShape) and self.warmup is not None and self.warmup.duration is not None:
            raise ValueError(
                "a trace replay has no first-stage load to warm up with: use warmup: {requests_per_model: N}"
            )
        return self

    # --- constructors ---------------------------------------------------------------------

    @classmethod
    def constant(
        cls,
        *,
        users: int = 300,
        spawn_rate: float = 5.0,
        duration: float | str = "15m",
        traffic: Traffic | None = None,
        **kwargs: Any,
    ) -> LoadProfile:
        """The churn reference's shape: ``users`` spawned at ``spawn_rate`` for ``duration``."""
        shape = ConstantShape(users=users, spawn_rate=spawn_rate, duration=duration)  # type: ignore[arg-type]
        return cls._make(shape, traffic, kwargs)

    @classmethod
    def steps(
        cls,
        *,
        users: list[int],
        step_duration: float | str = 30.0,
        last_step_duration: float | str | None = None,
        spawn_rate: float | None = None,
        traffic: Traffic | None = None,
        **kwargs: Any,
    ) -> LoadProfile:
        """Users stepped up (the GPU reference: ``users=[10, 20, 40, ..., 200]``, 30 s steps)."""
        shape = StepsShape(
            users=users,
            step_duration=step_duration,  # type: ignore[arg-type]
            last_step_duration=last_step_duration,  # type: ignore[arg-type]
            spawn_rate=spawn_rate,
        )
        return cls._make(shape, traffic, kwargs)

    @classmethod
    def phases(
        cls, phases: list[Phase | dict[str, Any]], *, traffic: Traffic | None = None, **kwargs: Any
    ) -> LoadProfile:
        """Inference Recommender phases; dicts may use its keys (InitialNumberOfUsers, ...)."""
        shape = PhasesShape(phases=[p if isinstance(p, Phase) else Phase.model_validate(p) for p in phases])
        return cls._make(shape, traffic, kwargs)

    @classmethod
    def open_loop(
        cls,
        *,
        rate: float,
        duration: float | str,
        arrivals: Literal["constant", "poisson"] = "constant",
        concurrency: int = 256,
        traffic: Traffic | None = None,
        **kwargs: Any,
    ) -> LoadProfile:
        """``rate`` requests per second for ``duration``, timed from their scheduled send."""
        shape = OpenLoopShape(
            rate=rate, duration=duration, arrivals=arrivals, concurrency=concurrency  # type: ignore[arg-type]
        )
        return cls._make(shape, traffic, kwargs)

    @classmethod
    def _make(cls, shape: Any, traffic: Traffic | None, kwargs: dict[str, Any]) -> LoadProfile:
        try:
            return cls(shape=shape, traffic=traffic or Traffic(), **kwargs)
        except ValidationError as exc:
            raise ConfigurationError(f"Invalid load profile: {exc}") from exc

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadProfile:
        """Validate a dict (YAML/JSON already parsed); errors become ConfigurationError."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigurationError(f"Invalid load profile: {exc}") from exc

    @classmethod
    def from_file(cls, path: PathLike) -> LoadProfile:
        """Read a profile from YAML (.yaml/.yml) or JSON; a ``profile:`` key may wrap it."""
        data = read_mapping(path, "load profile")
        if isinstance(data.get("profile"), dict):
            data = data["profile"]
        profile = cls.from_dict(data)
        profile.traffic.resolve_paths(Path(path).parent)
        return profile

    # --- derived --------------------------------------------------------------------------

    @property
    def open_loop_shape(self) -> OpenLoopShape | None:
        return self.shape if isinstance(self.shape, OpenLoopShape) else None

    @property
    def scheduled_shape(self) -> OpenLoopShape | TraceShape | None:
        """The shape when sends follow a schedule (open loop or trace replay), else None."""
        return self.shape if isinstance(self.shape, OpenLoopShape | TraceShape) else None

    @property
    def trace_shape(self) -> TraceShape | None:
        return self.shape if isinstance(self.shape, TraceShape) else None

    def stages(self) -> list[StagePlan]:
        """The stages the runner follows, with start times from the load's start."""
        shape = self.shape
        plans: list[StagePlan] = []
        t = 0.0
        if isinstance(shape, ConstantShape):
            plans.append(
                StagePlan(index=0, name=f"{shape.users} users", start_s=0.0, duration_s=shape.duration,
                          users=shape.users, spawn_rate=shape.spawn_rate)
            )
        elif isinstance(shape, StepsShape):
            for i, users in enumerate(shape.users):
                last = i == len(shape.users) - 1
                d = shape.last_step_duration if last and shape.last_step_duration else shape.step_duration
                plans.append(
                    StagePlan(index=i, name=f"{users} users", start_s=t, duration_s=d, users=users,
                              spawn_rate=shape.spawn_rate or float(max(shape.users)))
                )
                t += d
        elif isinstance(shape, PhasesShape):
            for i, phase in enumerate(shape.phases):
                plans.append(
                    StagePlan(index=i, name=f"phase {i + 1}", start_s=t, duration_s=phase.duration,
                              users=phase.initial_users, spawn_rate=float(max(phase.initial_users, 1)),
                              phase=phase)
                )
                t += phase.duration
        elif isinstance(shape, TraceShape):
            length = shape.replay_s()
            rows = shape.rows if shape.rows is not None else len(shape.load(payloads=False))
            plans.append(
                StagePlan(index=0, name="trace", start_s=0.0, duration_s=length, users=shape.concurrency,
                          spawn_rate=float(shape.concurrency), rate=rows / length if length > 0 else float(rows))
            )
        else:
            for i, stage in enumerate(shape.rate_stages()):
                plans.append(
                    StagePlan(index=i, name=f"{stage.rate:g} req/s", start_s=t, duration_s=stage.duration,
                              users=shape.concurrency, spawn_rate=float(shape.concurrency), rate=stage.rate)
                )
                t += stage.duration
        return plans

    @property
    def duration_s(self) -> float:
        """Planned length of the load (without stop conditions)."""
        plans = self.stages()
        return plans[-1].end_s if plans else 0.0
