"""Server metrics with CloudWatch's multi-model endpoint names and units.

Two shapes:

* :class:`ServerMetrics` is a *cumulative* snapshot (counters and latency sums since the server
  started), which is what the local MME's ``metrics()`` returns and what a sampler reads.
* The *interval* frame (one row per sampling period, columns :data:`SERVER_METRIC_COLUMNS`) is
  what CloudWatch gives per period and what ``server_metrics.csv`` and the report use. Local
  snapshots become interval rows with :func:`interval_row`; the SageMaker target maps
  ``get_metric_data`` into the same columns, so one report renders both.

Units follow CloudWatch: latencies in microseconds (averages over the period), utilizations in
percent (CPU up to 100 x vCPUs, as SageMaker reports it), counts as counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = [
    "LATENCY_FIELDS",
    "LATENCY_METRICS",
    "SERVER_METRIC_COLUMNS",
    "LatencyStat",
    "ServerMetrics",
    "interval_row",
    "interval_rows",
]

#: The one CloudWatch name map of latency metrics: CloudWatch name -> :class:`ServerMetrics`
#: field (also the local MME's Prometheus base name, with a ``_microseconds`` suffix).
LATENCY_FIELDS: dict[str, str] = {
    "ModelLatency": "model_latency",
    "OverheadLatency": "overhead_latency",
    "ModelLoadingWaitTime": "model_loading_wait_time",
    "ModelDownloadingTime": "model_downloading_time",
    "ModelLoadingTime": "model_loading_time",
    "ModelUnloadingTime": "model_unloading_time",
}

#: Latency metrics of an MME, CloudWatch names, microseconds.
LATENCY_METRICS: tuple[str, ...] = tuple(LATENCY_FIELDS)

#: Columns of server_metrics.csv (one row per sampling interval).
SERVER_METRIC_COLUMNS: tuple[str, ...] = (
    "timestamp",  # end of the interval, unix seconds
    "elapsed_s",  # seconds since the run started
    "Invocations",
    "Invocation4XXErrors",
    "Invocation5XXErrors",
    "ModelCacheHit",  # share of invocations whose model was already loaded (CloudWatch Average)
    "LoadedModelCount",
    "ModelLoads",  # SampleCount of ModelLoadingTime in the interval
    "ModelUnloads",  # SampleCount of ModelUnloadingTime in the interval
    *LATENCY_METRICS,
    "CPUUtilization",
    "MemoryUtilization",
    "DiskUtilization",
    "GPUUtilization",
    "GPUMemoryUtilization",
)


class LatencyStat(BaseModel):
    """Cumulative count, sum and max of one latency metric, in microseconds."""

    model_config = ConfigDict(frozen=True)

    count: int = 0
    sum_us: float = 0.0
    max_us: float = 0.0

    @property
    def mean_us(self) -> float | None:
        return self.sum_us / self.count if self.count else None


class ServerMetrics(BaseModel):
    """A cumulative snapshot of an MME's metrics at ``timestamp`` (unix seconds)."""

    model_config = ConfigDict(frozen=True)

    timestamp: float
    """When the snapshot was read (unix seconds)."""
    invocations: int = 0
    """Invocations answered, successes and failures (CloudWatch Invocations)."""
    invocation_4xx_errors: int = 0
    """Invocations answered with a 4xx status."""
    invocation_5xx_errors: int = 0
    """Invocations answered with a 5xx status."""
    model_cache_hits: int = 0
    """Invocations whose target model was already loaded (CloudWatch ModelCacheHit, Sum)."""
    model_cache_lookups: int = 0
    """Invocations that reached the cache (denominator of the ModelCacheHit average)."""
    loaded_model_count: int = 0
    """Models in memory now (a gauge)."""
    model_loads: int = 0
    """Models loaded since start."""
    model_unloads: int = 0
    """Models unloaded since start."""
    model_latency: LatencyStat = LatencyStat()
    overhead_latency: LatencyStat = LatencyStat()
    model_loading_wait_time: LatencyStat = LatencyStat()
    model_downloading_time: LatencyStat = LatencyStat()
    model_loading_time: LatencyStat = LatencyStat()
    model_unloading_time: LatencyStat = LatencyStat()
    cpu_utilization: float | None = None
    """Percent, 100 per core (SageMaker's convention), averaged since the previous read."""
    memory_utilization: float | None = None
    """Percent of the memory the endpoint has (emulated instance memory when emulating)."""
    disk_utilization: float | None = None
    """Percent of the disk cache's volume in use."""
    gpu_utilization: float | None = None
    gpu_memory_utilization: float | None = None
    memory_budget_bytes: int | None = None
    """Model-cache budget, when the endpoint has one."""
    memory_used_bytes: int | None = None
    """Bytes charged to loaded models (their size plus per-model overhead)."""

    @property
    def cache_hit_ratio(self) -> float | None:
        return self.model_cache_hits / self.model_cache_lookups if self.model_cache_lookups else None


def interval_row(prev: ServerMetrics | None, cur: ServerMetrics, *, start: float) -> dict[str, Any]:
    """One server_metrics.csv row for the interval (prev, cur]; ``prev=None`` means since start.

    Averages are over the interval only (CloudWatch's per-period Average), never running means.
    """
    base = prev or ServerMetrics(timestamp=start)
    lookups = cur.model_cache_lookups - base.model_cache_lookups
    row: dict[str, Any] = {
        "timestamp": cur.timestamp,
        "elapsed_s": cur.timestamp - start,
        "Invocations": cur.invocations - base.invocations,
        "Invocation4XXErrors": cur.invocation_4xx_errors - base.invocation_4xx_errors,
        "Invocation5XXErrors": cur.invocation_5xx_errors - base.invocation_5xx_errors,
        "ModelCacheHit": (cur.model_cache_hits - base.model_cache_hits) / lookups if lookups else None,
        "LoadedModelCount": cur.loaded_model_count,
        "ModelLoads": cur.model_loads - base.model_loads,
        "ModelUnloads": cur.model_unloads - base.model_unloads,
        "CPUUtilization": cur.cpu_utilization,
        "MemoryUtilization": cur.memory_utilization,
        "DiskUtilization": cur.disk_utilization,
        "GPUUtilization": cur.gpu_utilization,
        "GPUMemoryUtilization": cur.gpu_memory_utilization,
    }
    for column, field in LATENCY_FIELDS.items():
        a: LatencyStat = getattr(base, field)
        b: LatencyStat = getattr(cur, field)
        n = b.count - a.count
        row[column] = (b.sum_us - a.sum_us) / n if n > 0 else None
    return row


def interval_rows(snapshots: Sequence[ServerMetrics], *, start: float) -> list[dict[str, Any]]:
    """Interval rows for consecutive snapshots."""
    rows: list[dict[str, Any]] = []
    prev: ServerMetrics | None = None
    for snap in snapshots:
        rows.append(interval_row(prev, snap, start=start))
        prev = snap
    return rows
