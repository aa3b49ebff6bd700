"""Recorder -> Aggregator: exact counts, stage/second/model views, worker reports (no Locust)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from mmeperf.load import LoadProfile
from mmeperf.load.recorder import Aggregator, Recorder, WorkerReporter
from mmeperf.load.tally import WARMUP_STAGE


def _record(r: Recorder, *, t: float, n: int, latency_us: int, model: str = "m", ok: bool = True, kind: str = "warm", stage: int = 0) -> None:
    for _ in range(n):
        r.record(stage=stage, model=model, latency_us=latency_us, ok=ok, kind=kind, sent_at=t, done_at=t + 0.001,
                 status=200 if ok else 404, error_code=None if ok else "ValidationError", message="nope")


def test_two_processes_merge_exactly(tmp_path: Path) -> None:
    profile = LoadProfile.steps(users=[1, 2], step_duration="10s")
    start = 1_000_000.0
    agg = Aggregator(tmp_path, profile=profile, t0=start - 1, lag_s=1)
    agg.load_start = start
    a, b = Recorder(), Recorder()
    _record(a, t=start + 1, n=90, latency_us=10_000)
    _record(b, t=start + 1, n=10, latency_us=100_000, kind="cold")
    _record(b, t=start + 12, n=5, latency_us=1_000, model="gone", ok=False, kind="unknown", stage=1)
    agg.merge(a.drain())
    agg.merge(b.drain())
    assert a.drain()["requests"] == 0  # drained once
    agg.flush(start + 20, final=True)
    agg.close()
    summary = pd.read_csv(tmp_path / "summary_results.csv")
    assert summary["requests"].tolist() == [100, 5]
    assert summary["failures"].tolist() == [0, 5]
    # rps counts every request, ok_rps only the successful ones (10 s stages).
    assert summary["rps"].tolist() == [10.0, 0.5] and summary["ok_rps"].tolist() == [10.0, 0.0]
    first = summary.iloc[0]
    # HDR percentiles are the top of their bucket: exact to 3 significant digits.
    assert abs(first["p50_ms"] - 10.0) < 0.011 and abs(first["p95_ms"] - 100.0) < 0.1
    assert first["cold_share"] == 0.1 and first["max_ms"] == 100.0
    assert abs(first["cold_p50_ms"] - 100.0) < 0.1 and abs(first["warm_p99_ms"] - 10.0) < 0.011
    history = pd.read_csv(tmp_path / "history.csv")
    assert int(history["requests"].sum()) == 105
    assert int(history["ok_rps"].sum()) == 100 and int(history["rps"].sum()) == 105
    assert history["elapsed_s"].iloc[0] == 2.0  # the end of the load's first second, from t0
    failures = pd.read_csv(tmp_path / "failures.csv")
    assert failures.to_dict("records")[0] | {"message": "nope"} == {
        "stage": 1, "model": "gone", "status": 404, "error_code": "ValidationError", "count": 5, "message": "nope"}
    per_model = pd.read_csv(tmp_path / "per_model_stats.csv").set_index("model")
    assert per_model.loc["m", "requests"] == 100 and per_model.loc["gone", "failures"] == 5


def test_master_waits_for_a_report_the_final_one_overtook(tmp_path: Path) -> None:
    start = 1_000_000.0
    agg = Aggregator(tmp_path, profile=LoadProfile.constant(users=1, duration="10s"), t0=start - 1, lag_s=1)
    agg.load_start = start
    recorder = Recorder()
    arrived: list[dict[str, object]] = []  # in the order the master receives them
    reporter = WorkerReporter(recorder, arrived.append)
    for i in range(40):
        _record(recorder, t=start + 1, n=1, latency_us=1_000, model=f"m{i}")

    def in_a_thread(encode: Callable[[], dict[str, object]]) -> dict[str, object]:
        # While the regular report is encoded in the native thread, another greenlet runs: the
        # finish handler records its last requests and sends the final report first.
        if not reporter.finished:
            _record(recorder, t=start + 2, n=3, latency_us=2_000, model="last")
            reporter.final()
        return encode()

    reporter.report(in_a_thread)
    assert [m["final"] for m in arrived] == [True, False]  # the final report overtook
    agg.receive("worker-1", arrived[0])
    assert agg.workers_done() == 0  # its count says one report is still on the way
    agg.receive("worker-1", arrived[1])
    assert agg.workers_done() == 1
    reporter.report()  # nothing is sent after the final report
    assert len(arrived) == 2
    agg.flush(start + 11, final=True)
    agg.close()
    summary = pd.read_csv(tmp_path / "summary_results.csv")
    assert int(summary["requests"].sum()) == 43
    assert agg.run_info(start + 11)["worker_reports"] == {"worker-1": {"received": 2, "sent": 2, "requests": 43}}


def test_lateness_of_scheduled_sends_is_merged_into_run_json(tmp_path: Path) -> None:
    profile = LoadProfile.from_dict({"shape": {"kind": "open", "rate": 10, "duration": "2s", "late_after": "5ms"}})
    agg = Aggregator(tmp_path, profile=profile, t0=100.0)
    recorders = [Recorder(), Recorder()]
    for n, rec in enumerate(recorders):
        for us in (100, 2_000, 9_000 + n):
            rec.record(stage=0, model="m", latency_us=1_000, ok=True, kind="warm", sent_at=101.0, done_at=101.1,
                       late=us > 5_000, lateness_us=us)
        rec.record(stage=WARMUP_STAGE, model="m", latency_us=1, ok=True, kind="warm", sent_at=100.5,
                   done_at=100.6, lateness_us=10**6)  # warm-up: in no measured figure
        agg.merge(rec.drain())
    doc = agg.run_info(103.0)["lateness"]
    assert doc["sends"] == 6 and doc["late"] == 2 and doc["late_after_ms"] == 5.0
    assert doc["max_ms"] == 9.001 and doc["p50_ms"] == pytest.approx(2.0, rel=1e-3)
