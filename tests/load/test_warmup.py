"""Warm-up: requests before the measured stages, reported on their own and in no measured figure."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mmeperf.load import Benchmark, LoadProfile, Traffic

STATES = ("CA", "NY", "TX", "WA")


def _traffic() -> Traffic:
    frame = pd.DataFrame({"State": [STATES[i % 4] for i in range(40)], "a": range(40)})
    return Traffic.from_frame(frame, model_column="State")


@pytest.mark.slow
def test_every_model_once_then_measured_without_cold_starts(test_server, tmp_path: Path) -> None:
    # Two workers' worth of topology: the master sends the warm-up, the worker the load.
    server = test_server("--delay-ms", "2")
    profile = LoadProfile.constant(
        users=2, spawn_rate=100, duration="2s", traffic=_traffic(), wait={"min": 0, "max": 0.02},
        warmup={"requests_per_model": 1},
    )
    result = Benchmark(server.url, profile, workers=1).run(tmp_path / "warm")
    warm = result.warmup
    assert warm is not None
    # The test server answers "miss" on a model's first request: the warm-up took all four.
    assert warm["requests"] == 4 and warm["cold_requests"] == 4 and warm["failures"] == 0
    assert warm["config"] == {"requests_per_model": 1, "duration": None, "concurrency": 8}
    assert int(result.summary["cold_requests"].sum()) == 0
    assert result.total_requests + warm["requests"] == server.stats()["requests"]
    for name, view in (("summary", result.summary), ("per_model", result.per_model), ("history", result.history)):
        assert int(view["requests"].sum()) == result.total_requests, name
    assert "-1" not in {key.split("/")[0] for key in result.histograms()["stages"]}


@pytest.mark.slow
def test_a_duration_warmup_runs_the_first_stage_before_measuring(test_server, tmp_path: Path) -> None:
    server = test_server("--delay-ms", "2")
    profile = LoadProfile.constant(
        users=2, spawn_rate=100, duration="2s", traffic=_traffic(), wait={"min": 0, "max": 0.02},
        warmup={"duration": "1s"},
    )
    result = Benchmark(server.url, profile).run(tmp_path / "warm")
    warm = result.warmup
    assert warm is not None and warm["requests"] > 10
    # Two users may both take a model's first request: at least one miss per model, then none.
    assert warm["cold_requests"] >= 4 and int(result.summary["cold_requests"].sum()) == 0
    assert 0.9 <= warm["duration_s"] <= 1.5
    assert result.total_requests + warm["requests"] == server.stats()["requests"]
    assert int(result.history["requests"].sum()) == result.total_requests
    assert 1.9 <= float(result.summary["duration_s"].iloc[0]) <= 2.5
