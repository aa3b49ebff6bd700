"""BenchmarkResult reads a result folder, finished, partial or empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmeperf.errors import ConfigurationError
from mmeperf.load import LoadProfile
from mmeperf.load.recorder import Aggregator, Recorder
from mmeperf.load.result import BenchmarkResult
from mmeperf.metrics import SERVER_METRIC_COLUMNS


def test_load_a_written_folder(tmp_path: Path) -> None:
    agg = Aggregator(tmp_path, profile=LoadProfile.constant(users=2, duration="10s"), t0=99.0, lag_s=1)
    agg.load_start = 100.0
    agg.status = "completed"
    r = Recorder()
    for i in range(20):
        r.record(stage=0, model=f"m{i % 2}", latency_us=1000 * (i + 1), ok=i != 0, kind="cold" if i < 2 else "warm",
                 sent_at=101.0, done_at=101.5, status=500 if i == 0 else 200, error_code="ModelError")
    agg.merge(r.drain())
    agg.flush(111.0, final=True)
    agg.close()
    result = BenchmarkResult.load(tmp_path)
    assert (result.total_requests, result.total_failures, result.status) == (20, 1, "completed")
    assert result.rps == 2.0  # every request per second
    assert result.ok_rps == 1.9  # successful requests per second (one failed)
    assert list(result.summary[["rps", "ok_rps"]].iloc[0]) == [2.0, 1.9]
    # A folder from before ok_rps was written: the same figure from its totals.
    del result.info["run"]["totals"]["ok_rps"]
    assert result.ok_rps == 1.9
    # HDR percentiles are the top of a bucket: exact to 3 significant digits.
    assert abs(result.p50_ms - 10.0) < 0.011 and result.p99_ms == 20.0
    assert list(result.per_model["model"]) == ["m0", "m1"]
    assert set(result.latency_distribution["kind"]) == {"warm", "cold", "all"}
    assert list(result.server_metrics.columns) == list(SERVER_METRIC_COLUMNS)  # empty, with columns
    assert result.histograms()["models"]["m1"].total == 10


def test_missing_folder_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        BenchmarkResult.load(tmp_path / "nope")
    empty = BenchmarkResult.load(tmp_path)
    assert empty.total_requests == 0 and empty.summary.empty and empty.p99_ms is None
    assert empty.ok_rps is None
