"""The stop policy: latency, error rate and throughput plateau, through the aggregator and on its own."""

from __future__ import annotations

import time
from pathlib import Path

from mmeperf.load import LoadProfile
from mmeperf.load.hist import Histogram
from mmeperf.load.recorder import Aggregator, Recorder
from mmeperf.load.stop import StopPolicy
from mmeperf.load.tally import Counts, Group, RunTally


def _record(r: Recorder, *, t: float, n: int, latency_us: int, model: str = "m", ok: bool = True, kind: str = "warm", stage: int = 0) -> None:
    for _ in range(n):
        r.record(stage=stage, model=model, latency_us=latency_us, ok=ok, kind=kind, sent_at=t, done_at=t + 0.001,
                 status=200 if ok else 404, error_code=None if ok else "ValidationError", message="nope")


def test_stop_conditions(tmp_path: Path) -> None:
    now = time.time()
    slow = LoadProfile.constant(users=1, duration="60s", stop={"latency": {"threshold_ms": 50, "window": 3, "min_requests": 5}})
    (tmp_path / "a").mkdir()
    agg = Aggregator(tmp_path / "a", profile=slow, t0=now - 10, lag_s=1)
    agg.load_start = now - 10
    r = Recorder()
    _record(r, t=now - 5, n=10, latency_us=5_000)
    agg.merge(r.drain())
    agg.flush(now)
    assert agg.check_stop(now) is None
    _record(r, t=now, n=10, latency_us=80_000)
    agg.merge(r.drain())
    agg.flush(now + 2)
    assert "p99 latency" in (agg.check_stop(now + 2) or "")

    (tmp_path / "b").mkdir()
    plateau = LoadProfile.steps(users=[1, 2], step_duration="5s", stop={"throughput_plateau": {"min_growth": 0.1}})
    agg = Aggregator(tmp_path / "b", profile=plateau, t0=now - 20, lag_s=1)
    agg.load_start = now - 20
    _record(r, t=now - 18, n=50, latency_us=1_000, stage=0)
    _record(r, t=now - 13, n=52, latency_us=1_000, stage=1)
    agg.merge(r.drain())
    assert "stopped growing" in (agg.check_stop(now) or "")


def _second(requests: int, failures: int, latency_us: int = 1_000) -> Group:
    group = Group(Counts(requests=requests, failures=failures))
    group.hist.add_sparse(Histogram.sparse_of([latency_us] * requests))
    return group


def test_error_rate_looks_only_at_complete_seconds_in_its_window() -> None:
    profile = LoadProfile.constant(
        users=1, duration="60s", stop={"error_rate": {"threshold": 0.1, "window": 2, "min_requests": 10}}
    )
    policy = StopPolicy(profile.stop, profile.stages(), lag_s=1)
    assert policy.window_s == 2 and policy.seconds_kept == 3
    tally = RunTally(seconds={100: _second(10, 9), 101: _second(10, 0), 102: _second(10, 1), 103: _second(10, 10)})

    def check(complete_before: int | None) -> str | None:
        return policy.check(200.0, tally, complete_before=complete_before, load_start=100.0, stage_rps=lambda i: None)

    assert check(None) is None  # no history row written yet
    assert check(103) is None  # seconds 101-102: 1 failure in 20
    assert "error rate 55.00% over the last 2 s exceeded 10.00%" in (check(104) or "")  # 102-103: 11 of 20
    assert "error rate 45.00%" in (check(102) or "")  # 100-101: 9 of 20


def test_a_plateau_is_judged_once_per_stage() -> None:
    profile = LoadProfile.steps(users=[1, 2], step_duration="5s", stop={"throughput_plateau": {"min_growth": 0.1}})
    policy = StopPolicy(profile.stop, profile.stages(), lag_s=1)
    rates = {0: 10.0, 1: 10.5}

    def check(now: float) -> str | None:
        return policy.check(now, RunTally(), complete_before=None, load_start=0.0, stage_rps=rates.get)

    assert check(10.5) is None  # stage 1 ends at 10 s, plus the lag
    assert "stage 1 (" in (check(11.0) or "")
    assert check(12.0) is None  # already judged
