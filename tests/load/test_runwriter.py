"""The run folder's writers: rows from a tally, and which files are rewritten when."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from mmeperf.load import LoadProfile
from mmeperf.load.hist import Histogram
from mmeperf.load.runwriter import RunFolderWriter, history_row, run_totals, summary_rows
from mmeperf.load.tally import Counts, Group, RunTally


def _group(latencies_us: list[int], *, failures: int = 0, cold: int = 0) -> Group:
    group = Group(Counts(requests=len(latencies_us), failures=failures, cold=cold, max_us=max(latencies_us)))
    group.hist.add_sparse(Histogram.sparse_of(latencies_us))
    return group


def _tally() -> RunTally:
    tally = RunTally()
    tally.stage_kind[(0, "warm")] = _group([10_000] * 9)
    tally.stage_kind[(0, "cold")] = _group([100_000])
    tally.stage_counts[0] = Counts(requests=10, failures=1, cold=1, max_us=100_000)
    tally.models["m"] = _group([10_000] * 9 + [100_000], failures=1, cold=1)
    tally.seconds[101] = _group([10_000] * 9 + [100_000], failures=1, cold=1)
    tally.failures[(0, "m", 500, "ModelError")] = [1, "boom"]
    return tally


def test_history_row_of_an_empty_second_counts_zero() -> None:
    row = history_row(104, None, t0=100.0, stage=1, users=3)
    assert (row["timestamp"], row["elapsed_s"], row["requests"], row["p99_ms"], row["max_ms"]) == (105, 5.0, 0, None, None)
    full = history_row(101, _tally().seconds[101], t0=100.0, stage=0, users=2)
    assert (full["requests"], full["ok_rps"], full["failures_per_s"], full["cold_requests"], full["max_ms"]) == (10, 9, 1, 1, 100.0)


def test_summary_skips_stages_never_reached_and_rates_over_the_stage_as_it_ran() -> None:
    profile = LoadProfile.steps(users=[1, 2], step_duration="10s")
    windows = {0: (100.0, 105.0), 1: None}  # stopped halfway through stage 0
    rows = summary_rows(profile.stages(), _tally(), windows, {"platform": "cpu"})
    assert len(rows) == 1
    row = rows[0]
    assert (row["duration_s"], row["rps"], row["ok_rps"], row["platform"]) == (5.0, 2.0, 1.8, "cpu")
    assert abs(row["warm_p99_ms"] - 10.0) < 0.011 and abs(row["cold_p50_ms"] - 100.0) < 0.1
    totals = run_totals(_tally(), windows)
    assert (totals["requests"], totals["failures"], totals["duration_s"], totals["rps"]) == (10, 1, 5.0, 2.0)


def test_writer_rewrites_tables_and_encodes_histograms_only_now_and_then(tmp_path: Path) -> None:
    profile = LoadProfile.constant(users=1, duration="10s")
    writer = RunFolderWriter(tmp_path, plans=profile.stages(), t0=100.0, labels={})
    tally = _tally()
    writer.append_history(range(100, 102), tally, stage_at=lambda wall: 0, users_at={101: 1})
    paused: list[int] = []
    writer.write_tables(tally, {0: (100.0, 110.0)}, now=1000.0, pause=lambda: paused.append(1))
    writer.write_status({"status": "running"}, {"requests": 10})
    assert paused  # the event loop got its turns
    written = {p.name for p in tmp_path.iterdir()}
    assert written == {
        "history.csv", "summary_results.csv", "per_model_stats.csv", "failures.csv", "latency_distribution.csv",
        "histograms.json", "run.json", "progress.json",
    }
    history = pd.read_csv(tmp_path / "history.csv")
    assert history["requests"].tolist() == [0, 10] and history["users"].tolist() == [1, 1]
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "running"
    (tmp_path / "histograms.json").unlink()
    writer.write_tables(tally, {0: (100.0, 110.0)}, now=1010.0)  # 10 s later: not yet
    assert not (tmp_path / "histograms.json").exists()
    writer.write_tables(tally, {0: (100.0, 110.0)}, now=1011.0, final=True)  # the end: always
    assert json.loads((tmp_path / "histograms.json").read_text())["models"].keys() == {"m"}
    writer.close()
    distribution = pd.read_csv(tmp_path / "latency_distribution.csv")
    assert set(distribution["stage"].astype(str)) == {"all", "0"}
    assert set(distribution["kind"]) == {"warm", "cold", "all"}
