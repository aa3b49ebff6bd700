"""Target tracking on the multi-instance local MME: the decisions (pure, datapoint by datapoint)
and a real fleet that scales out under load and back in after it, with the timeline to show."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from mmeperf.cloud.autoscaling import AutoscalingPolicy
from mmeperf.endpoints.local import LocalEndpoint
from mmeperf.endpoints.local.autoscaling import LocalAutoscaling, TargetTracker, Timeline, verdict
from mmeperf.endpoints.local.fleet import FleetMetrics

from .conftest import Churn, csv_body


def _tracker(**policy: Any) -> TargetTracker:
    settings: dict[str, Any] = {"scale_out_datapoints": 3, "scale_in_datapoints": 5}
    for key in list(policy):
        if key in LocalAutoscaling.model_fields:
            settings[key] = policy.pop(key)
    base = {"min_capacity": 1, "max_capacity": 4, "target_invocations_per_instance": 100.0,
            "scale_out_cooldown_s": 60, "scale_in_cooldown_s": 60}
    return TargetTracker(LocalAutoscaling(policy=AutoscalingPolicy(**{**base, **policy}), **settings))


def test_scale_out_needs_consecutive_datapoints_above_the_target() -> None:
    t = _tracker()
    assert t.observe(250, in_service=1, desired=1, now=0, busy=False) is None
    assert t.observe(50, in_service=1, desired=1, now=1, busy=False) is None  # the streak breaks
    assert t.observe(250, in_service=1, desired=1, now=2, busy=False) is None
    assert t.observe(250, in_service=1, desired=1, now=3, busy=False) is None
    decision = t.observe(250, in_service=1, desired=1, now=4, busy=False)
    assert decision is not None and decision.event == "scale_out"
    assert decision.desired == 3  # ceil(1 x 250 / 100)
    assert "250.0/min > target 100" in decision.cause and "3 consecutive" in decision.cause


def test_capacity_stays_within_min_and_max() -> None:
    t = _tracker(max_capacity=2)
    for now in range(2):
        t.observe(1000, in_service=1, desired=1, now=now, busy=False)
    decision = t.observe(1000, in_service=1, desired=1, now=2, busy=False)
    assert decision is not None and decision.desired == 2
    assert t.observe(1000, in_service=2, desired=2, now=3, busy=False) is None  # already at max
    bounded = _tracker(min_capacity=2).bounds(1)
    assert bounded is not None and bounded.event == "scale_out" and bounded.desired == 2
    assert "MinCapacity" in bounded.cause


def test_scale_in_below_ninety_percent_then_the_cooldown_holds_the_next() -> None:
    t = _tracker(scale_in_cooldown_s=100)
    for now in range(4):
        assert t.observe(89, in_service=3, desired=3, now=now, busy=False) is None
    # Below 90% for 5 datapoints, but 3 x 89 / 100 = 2.67 still needs 3 instances.
    assert t.observe(89, in_service=3, desired=3, now=4, busy=False) is None
    # At 30/min the fleet needs 1.
    t2 = _tracker(scale_in_cooldown_s=100)
    for now in range(4):
        t2.observe(30, in_service=3, desired=3, now=now, busy=False)
    decision = t2.observe(30, in_service=3, desired=3, now=4, busy=False)
    assert decision is not None and decision.event == "scale_in" and decision.desired == 1
    held = t2.observe(10, in_service=2, desired=2, now=50, busy=False)
    assert held is not None and held.event == "cooldown" and "scale-in cooldown" in held.cause
    assert t2.observe(10, in_service=2, desired=2, now=60, busy=False) is None  # reported once
    after = t2.observe(10, in_service=2, desired=2, now=105, busy=False)
    assert after is not None and after.event == "scale_in" and after.desired == 1


def test_no_decision_while_an_instance_starts_or_drains_and_none_with_scale_in_disabled() -> None:
    t = _tracker(scale_out_datapoints=1)
    assert t.observe(500, in_service=1, desired=2, now=0, busy=True) is None
    d = _tracker(scale_in_datapoints=1, disable_scale_in=True)
    assert d.observe(0, in_service=3, desired=3, now=0, busy=False) is None


def test_a_scale_out_in_the_scale_in_cooldown_proceeds() -> None:
    t = _tracker(scale_out_datapoints=1, scale_in_datapoints=1, scale_in_cooldown_s=1000)
    down = t.observe(0, in_service=3, desired=3, now=0, busy=False)
    assert down is not None and down.event == "scale_in"
    up = t.observe(300, in_service=1, desired=1, now=1, busy=False)
    assert up is not None and up.event == "scale_out" and up.desired == 3


def test_verdict_reads_the_timeline(tmp_path: Path) -> None:
    timeline = Timeline(tmp_path / "scaling.jsonl")
    timeline.add("datapoint", invocations_per_instance=10)
    assert not verdict(timeline.events(), "scale-out").triggered
    timeline.add("scale_out", "InvocationsPerInstance 300/min > target 100", desired_before=1, desired_after=2)
    timeline.add("instance_in_service", "started cold in 1.0 s", instance="127.0.0.1:1")
    out = verdict(Timeline.read(tmp_path / "scaling.jsonl"), "scale-out")
    assert out.triggered and "1 -> 2" in out.summary
    assert not verdict(timeline.events(), "both").triggered


# --- a real fleet under load ----------------------------------------------------------------


def _wait_for(ep: LocalEndpoint, event: str, *, timeout: float, since: int = 0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = ep.scaling_events()
        if any(e["event"] == event for e in events[since:]):
            return events
        time.sleep(0.1)
    raise AssertionError(f"no {event!r} within {timeout} s: {ep.scaling_events()}")


def test_load_scales_out_a_cold_instance_and_idleness_scales_it_back_in(churn: Churn, tmp_path: Path) -> None:
    """Target 60 invocations per instance per minute (one a second), half-second datapoints, two
    for either alarm, one-second cooldowns: a client sending requests back to back is far above
    the target, so a second instance starts (cold); once the load stops, it is drained.

    One client keeps one model's requests on the instance holding it (affinity: a model in
    flight once is not hot), so the new instance's first traffic is a model not seen before."""
    settings = LocalAutoscaling(
        policy=AutoscalingPolicy(min_capacity=1, max_capacity=2, target_invocations_per_instance=60,
                                 scale_out_cooldown_s=1, scale_in_cooldown_s=1),
        period_s=0.5, scale_out_datapoints=2, scale_in_datapoints=2,
    )
    log = tmp_path / "run" / "scaling.jsonl"
    bodies = {s: csv_body(churn.rows(s, 1)) for s in ("CA", "NY")}
    with LocalEndpoint(autoscaling=settings, startup_timeout_s=180,
                       fleet_options={"scaling_log": str(log)}).deploy(churn.url) as ep:
        assert ep.info().instance_count == 1
        stop = threading.Event()
        states = ["CA"]
        served: list[tuple[str, str | None, str]] = []
        statuses: list[int] = []

        def load() -> None:
            while not stop.is_set():
                state = states[len(statuses) % len(states)]
                result = ep.invoke(churn.target(state), bodies[state])
                served.append((state, result.instance, result.cache.value))
                statuses.append(result.status)

        thread = threading.Thread(target=load)
        thread.start()
        try:
            events = _wait_for(ep, "scale_out", timeout=120)
            since = next(n for n, e in enumerate(events) if e["event"] == "scale_out")
            _wait_for(ep, "instance_in_service", timeout=120, since=since)
            first = served[0][1]
            states.append("NY")
            deadline = time.monotonic() + 30
            while not any(s == "NY" for s, _, _ in served) and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            thread.join(timeout=60)
        ny = [(instance, cache) for s, instance, cache in served if s == "NY"]
        assert ny and ny[0][0] != first and ny[0][1] == "miss"  # a new model: the new, cold instance
        assert {i for s, i, _ in served if s == "CA"} == {first}  # CA stays where it is loaded
        events = _wait_for(ep, "instance_stopped", timeout=60)
        metrics = FleetMetrics.model_validate(ep._get_json("/mmeperf/metrics"))
    kinds = [e["event"] for e in events if e["event"] != "datapoint"]
    assert kinds.index("scale_out") < kinds.index("scale_in") < kinds.index("instance_stopped")
    scale_out = next(e for e in events if e["event"] == "scale_out")
    assert scale_out["desired_before"] == 1 and scale_out["desired_after"] == 2
    assert "> target 60" in scale_out["cause"]
    scale_in = next(e for e in events if e["event"] == "scale_in")
    assert scale_in["desired_after"] == 1 and "< 0.9 x target 60" in scale_in["cause"]
    assert verdict(Timeline.read(log), "both").triggered  # the run folder's file has both
    # Nothing lost: the removed instance's counts stay in the aggregate.
    assert all(s == 200 for s in statuses)
    assert metrics.invocations == len(statuses) and len(metrics.retired) == 1
    assert metrics.instance_count == 1
