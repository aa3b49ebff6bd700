"""Reports from run folders: server counters rebuilt from interval rows, the thrash caveat."""

from __future__ import annotations

import pytest

from mmeperf.results.compare import THRASH_MARK, compare
from mmeperf.results.folders import metrics_from_intervals

from .conftest import run_summary, server_frame


def test_interval_rows_add_back_up_to_cumulative_counters() -> None:
    frame = server_frame(10, loaded=12, unloads_per_s=2)
    total = metrics_from_intervals(frame)
    assert total.invocations == int(frame["Invocations"].sum())
    assert total.model_unloads == 20 and total.model_loads == 20
    assert total.loaded_model_count == 12
    assert total.cache_hit_ratio == pytest.approx(0.7, abs=0.01)
    # ModelLatency weighted by invocations: the mean of the run, not a mean of means.
    expected = (frame["ModelLatency"] * frame["Invocations"]).sum() / frame["Invocations"].sum()
    assert total.model_latency.mean_us == pytest.approx(expected)
    assert total.model_loading_time.count == 20
    first_three = metrics_from_intervals(frame, until_s=3.0)
    assert first_three.model_unloads == 6


def test_the_thrash_caveat_comes_with_every_verdict() -> None:
    runs = [run_summary("small", "ml.c5.xlarge", unloads=40, p99=8.0),
            run_summary("big", "ml.c5.2xlarge", unloads=0, p99=8.0)]
    comparison = compare(runs, n_models=51, p99_budget_ms=100)
    caveats = comparison.caveats()
    assert len(caveats) == 1 and caveats[0].startswith(f"small {THRASH_MARK}: 40 unloads after warm-up")
    assert "10% of its requests were cold" in caveats[0]
    verdict = comparison.verdict_lines()
    assert verdict[0] == comparison.recommendation.explanation and caveats[0] in verdict
