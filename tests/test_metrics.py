"""Server metrics: cumulative snapshots become per-interval rows with CloudWatch's names."""

from __future__ import annotations

import pytest

from mmeperf.metrics import (
    LATENCY_METRICS,
    SERVER_METRIC_COLUMNS,
    LatencyStat,
    ServerMetrics,
    interval_row,
    interval_rows,
)

START = 1_700_000_000.0


def snap(t: float, **fields: object) -> ServerMetrics:
    return ServerMetrics(timestamp=START + t, **fields)  # type: ignore[arg-type]


def test_row_has_exactly_the_csv_columns() -> None:
    row = interval_row(None, snap(60), start=START)
    assert list(row) != [] and set(row) == set(SERVER_METRIC_COLUMNS)
    assert len(SERVER_METRIC_COLUMNS) == len(set(SERVER_METRIC_COLUMNS))
    assert set(LATENCY_METRICS) <= set(SERVER_METRIC_COLUMNS)


def test_first_interval_counts_since_start() -> None:
    cur = snap(
        60, invocations=100, invocation_4xx_errors=3, invocation_5xx_errors=1,
        model_cache_hits=90, model_cache_lookups=96, loaded_model_count=7, model_loads=7,
        model_latency=LatencyStat(count=96, sum_us=96 * 1500.0, max_us=9000.0),
    )
    row = interval_row(None, cur, start=START)
    assert row["timestamp"] == START + 60 and row["elapsed_s"] == 60
    assert (row["Invocations"], row["Invocation4XXErrors"], row["Invocation5XXErrors"]) == (100, 3, 1)
    assert row["ModelCacheHit"] == pytest.approx(90 / 96)
    assert (row["LoadedModelCount"], row["ModelLoads"], row["ModelUnloads"]) == (7, 7, 0)
    assert row["ModelLatency"] == pytest.approx(1500.0)


def test_averages_are_over_the_interval_not_running_means() -> None:
    # 100 fast calls (1 ms) in the first minute, 10 slow ones (100 ms) in the second: the second
    # row must say 100 ms, not the running mean of ~10 ms the references reported.
    first = snap(60, invocations=100, model_latency=LatencyStat(count=100, sum_us=100 * 1000.0))
    second = snap(120, invocations=110, model_latency=LatencyStat(count=110, sum_us=100 * 1000.0 + 10 * 100_000.0))
    rows = interval_rows([first, second], start=START)
    assert rows[0]["ModelLatency"] == pytest.approx(1000.0)
    assert rows[1]["ModelLatency"] == pytest.approx(100_000.0)
    assert rows[1]["Invocations"] == 10
    assert rows[1]["elapsed_s"] == 120


def test_intervals_without_samples_say_none_not_zero() -> None:
    a = snap(60, invocations=5, model_cache_lookups=5, model_cache_hits=5,
             model_loading_time=LatencyStat(count=2, sum_us=2e6))
    b = snap(120, invocations=5, model_cache_lookups=5, model_cache_hits=5,
             model_loading_time=LatencyStat(count=2, sum_us=2e6))
    row = interval_row(a, b, start=START)
    assert row["Invocations"] == 0
    assert row["ModelCacheHit"] is None  # no lookups: unknown, not 0% hits
    assert all(row[name] is None for name in LATENCY_METRICS)
    assert row["CPUUtilization"] is None


def test_gauges_and_utilizations_are_taken_from_the_current_snapshot() -> None:
    a = snap(60, loaded_model_count=30, cpu_utilization=150.0, memory_utilization=40.0)
    b = snap(120, loaded_model_count=31, cpu_utilization=380.0, memory_utilization=70.5,
             disk_utilization=12.0, gpu_utilization=55.0, gpu_memory_utilization=80.0)
    row = interval_row(a, b, start=START)
    assert row["LoadedModelCount"] == 31
    assert (row["CPUUtilization"], row["MemoryUtilization"], row["DiskUtilization"]) == (380.0, 70.5, 12.0)
    assert (row["GPUUtilization"], row["GPUMemoryUtilization"]) == (55.0, 80.0)


def test_loads_and_unloads_per_interval() -> None:
    a = snap(60, model_loads=40, model_unloads=9, model_unloading_time=LatencyStat(count=9, sum_us=9 * 18_000.0))
    b = snap(120, model_loads=45, model_unloads=14, model_unloading_time=LatencyStat(count=14, sum_us=9 * 18_000.0 + 5 * 20_000.0))
    row = interval_row(a, b, start=START)
    assert (row["ModelLoads"], row["ModelUnloads"]) == (5, 5)
    assert row["ModelUnloadingTime"] == pytest.approx(20_000.0)


def test_interval_rows_of_nothing_is_nothing() -> None:
    assert interval_rows([], start=START) == []


def test_snapshot_helpers() -> None:
    assert LatencyStat().mean_us is None
    assert LatencyStat(count=4, sum_us=10.0).mean_us == 2.5
    assert ServerMetrics(timestamp=0).cache_hit_ratio is None
    assert ServerMetrics(timestamp=0, model_cache_hits=3, model_cache_lookups=4).cache_hit_ratio == 0.75
