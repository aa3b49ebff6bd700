"""CloudWatch metrics of a SageMaker multi-model endpoint, in mmeperf's server-metrics schema.

:func:`server_metrics_frame` reads one run's window with ``get_metric_data`` into the interval
frame the local MME writes (columns ``SERVER_METRIC_COLUMNS``), so one report renders both;
:func:`cumulative_metrics` sums a window into a :class:`~mmeperf.metrics.ServerMetrics` snapshot.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mmeperf.cloud.aws import translate_errors
from mmeperf.errors import ConfigurationError
from mmeperf.metrics import LATENCY_METRICS, SERVER_METRIC_COLUMNS, LatencyStat, ServerMetrics

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ENDPOINT_METRICS",
    "INSTANCE_NAMESPACE",
    "INVOCATION_NAMESPACE",
    "MetricQuery",
    "cumulative_metrics",
    "metric_queries",
    "server_metrics_frame",
]

#: Invocation and MME metrics (dimensions EndpointName, VariantName).
INVOCATION_NAMESPACE = "AWS/SageMaker"
#: Instance metrics of the endpoint's hosts (same dimensions).
INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"

ENDPOINT_METRICS: dict[str, tuple[str, ...]] = {
    INVOCATION_NAMESPACE: (
        "Invocations",
        "InvocationsPerInstance",
        "Invocation4XXErrors",
        "Invocation5XXErrors",
        "ModelLatency",
        "OverheadLatency",
        "ModelLoadingWaitTime",
        "ModelLoadingTime",
        "ModelUnloadingTime",
        "ModelDownloadingTime",
        "ModelCacheHit",
        "LoadedModelCount",
    ),
    INSTANCE_NAMESPACE: (
        "CPUUtilization",
        "MemoryUtilization",
        "DiskUtilization",
        "GPUUtilization",
        "GPUMemoryUtilization",
    ),
}


@dataclass(frozen=True)
class MetricQuery:
    """One ``get_metric_data`` query: ``column`` of the frame <- ``stat`` of ``namespace/metric``."""

    column: str
    namespace: str
    metric: str
    stat: str


# server_metrics.csv column <- (namespace, CloudWatch metric, statistic). Latencies are the
# period's Average in microseconds, as CloudWatch reports them; loads and unloads are how many
# ModelLoadingTime / ModelUnloadingTime samples the period has; ModelCacheHit's Average is the
# share of invocations that found their model loaded.
_FRAME_QUERIES: tuple[MetricQuery, ...] = (
    MetricQuery("Invocations", INVOCATION_NAMESPACE, "Invocations", "Sum"),
    MetricQuery("Invocation4XXErrors", INVOCATION_NAMESPACE, "Invocation4XXErrors", "Sum"),
    MetricQuery("Invocation5XXErrors", INVOCATION_NAMESPACE, "Invocation5XXErrors", "Sum"),
    MetricQuery("ModelCacheHit", INVOCATION_NAMESPACE, "ModelCacheHit", "Average"),
    MetricQuery("LoadedModelCount", INVOCATION_NAMESPACE, "LoadedModelCount", "Average"),
    MetricQuery("ModelLoads", INVOCATION_NAMESPACE, "ModelLoadingTime", "SampleCount"),
    MetricQuery("ModelUnloads", INVOCATION_NAMESPACE, "ModelUnloadingTime", "SampleCount"),
    MetricQuery("ModelLatency", INVOCATION_NAMESPACE, "ModelLatency", "Average"),
    MetricQuery("OverheadLatency", INVOCATION_NAMESPACE, "OverheadLatency", "Average"),
    MetricQuery("ModelLoadingWaitTime", INVOCATION_NAMESPACE, "ModelLoadingWaitTime", "Average"),
    MetricQuery("ModelDownloadingTime", INVOCATION_NAMESPACE, "ModelDownloadingTime", "Average"),
    MetricQuery("ModelLoadingTime", INVOCATION_NAMESPACE, "ModelLoadingTime", "Average"),
    MetricQuery("ModelUnloadingTime", INVOCATION_NAMESPACE, "ModelUnloadingTime", "Average"),
    MetricQuery("CPUUtilization", INSTANCE_NAMESPACE, "CPUUtilization", "Average"),
    MetricQuery("MemoryUtilization", INSTANCE_NAMESPACE, "MemoryUtilization", "Average"),
    MetricQuery("DiskUtilization", INSTANCE_NAMESPACE, "DiskUtilization", "Average"),
    MetricQuery("GPUUtilization", INSTANCE_NAMESPACE, "GPUUtilization", "Average"),
    MetricQuery("GPUMemoryUtilization", INSTANCE_NAMESPACE, "GPUMemoryUtilization", "Average"),
)
# Counts are 0 in a period that has other data but none of these (CloudWatch omits zeros).
_COUNT_COLUMNS = ("Invocations", "Invocation4XXErrors", "Invocation5XXErrors", "ModelLoads", "ModelUnloads")


def metric_queries() -> tuple[MetricQuery, ...]:
    """The queries behind :func:`server_metrics_frame`, one per frame column."""
    return _FRAME_QUERIES


def _as_datetime(value: datetime | float) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(float(value), tz=UTC)


def _run_queries(
    cloudwatch: Any,
    queries: list[tuple[str, MetricQuery]],
    *,
    endpoint_name: str,
    variant_name: str,
    start: datetime,
    end: datetime,
    period_s: int,
) -> dict[str, dict[float, float]]:
    """{query id: {period start (unix s): value}}, following NextToken pages."""
    dimensions = [
        {"Name": "EndpointName", "Value": endpoint_name},
        {"Name": "VariantName", "Value": variant_name},
    ]
    request = [
        {
            "Id": qid,
            "MetricStat": {
                "Metric": {"Namespace": q.namespace, "MetricName": q.metric, "Dimensions": dimensions},
                "Period": period_s,
                "Stat": q.stat,
            },
            "ReturnData": True,
        }
        for qid, q in queries
    ]
    values: dict[str, dict[float, float]] = defaultdict(dict)
    token: str | None = None
    with translate_errors(f"Reading CloudWatch metrics of endpoint {endpoint_name!r}"):
        while True:
            kwargs: dict[str, Any] = {
                "MetricDataQueries": request,
                "StartTime": start,
                "EndTime": end,
                "ScanBy": "TimestampAscending",
            }
            if token:
                kwargs["NextToken"] = token
            page = cloudwatch.get_metric_data(**kwargs)
            for result in page.get("MetricDataResults", []):
                series = values[result["Id"]]
                for ts, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=False):
                    series[_as_datetime(ts).timestamp()] = float(value)
            token = page.get("NextToken")
            if not token:
                break
    return values


def _check_window(start: datetime, end: datetime, period_s: int) -> None:
    if end <= start:
        raise ConfigurationError(f"The metrics window must end after it starts; received {start} .. {end}")
    if period_s < 1 or (period_s >= 60 and period_s % 60) or (period_s < 60 and 60 % period_s):
        raise ConfigurationError(
            f"CloudWatch periods are 1, 5, 10, 30 or a multiple of 60 seconds; received {period_s}"
        )


def server_metrics_frame(
    cloudwatch: Any,
    *,
    endpoint_name: str,
    variant_name: str = "AllTraffic",
    start: datetime | float,
    end: datetime | float,
    period_s: int = 60,
    run_start: datetime | float | None = None,
) -> pd.DataFrame:
    """CloudWatch's MME metrics for [start, end) as server_metrics.csv rows, one per period.

    ``timestamp`` is the *end* of each period (unix seconds; CloudWatch stamps the start) and
    ``elapsed_s`` counts from ``run_start`` (default ``start``). Periods without any data are
    left out; within a period, counts CloudWatch did not report are 0 and other metrics NaN.
    """
    import pandas as pd

    start_dt, end_dt = _as_datetime(start), _as_datetime(end)
    _check_window(start_dt, end_dt, period_s)
    origin = _as_datetime(run_start).timestamp() if run_start is not None else start_dt.timestamp()
    queries = [(f"m{i}", q) for i, q in enumerate(_FRAME_QUERIES)]
    values = _run_queries(
        cloudwatch, queries, endpoint_name=endpoint_name, variant_name=variant_name,
        start=start_dt, end=end_dt, period_s=period_s,
    )
    period_starts = sorted({ts for series in values.values() for ts in series})
    rows: list[dict[str, Any]] = []
    for period_start in period_starts:
        stamp = period_start + period_s
        row: dict[str, Any] = {"timestamp": stamp, "elapsed_s": stamp - origin}
        for qid, q in queries:
            value = values.get(qid, {}).get(period_start)
            if value is None and q.column in _COUNT_COLUMNS:
                value = 0.0
            row[q.column] = value if value is not None else math.nan
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(SERVER_METRIC_COLUMNS))
    return frame.astype("float64")


def cumulative_metrics(
    cloudwatch: Any,
    *,
    endpoint_name: str,
    variant_name: str = "AllTraffic",
    start: datetime | float,
    end: datetime | float,
    period_s: int = 60,
) -> ServerMetrics:
    """A cumulative :class:`ServerMetrics` snapshot: CloudWatch's sums over [start, end).

    Counts and latency sums add up every period; LoadedModelCount and utilizations are the
    latest period's averages. CloudWatch publishes a minute late, so the last minute may be short.
    """
    start_dt, end_dt = _as_datetime(start), _as_datetime(end)
    _check_window(start_dt, end_dt, period_s)
    wanted: list[MetricQuery] = [
        MetricQuery("invocations", INVOCATION_NAMESPACE, "Invocations", "Sum"),
        MetricQuery("e4", INVOCATION_NAMESPACE, "Invocation4XXErrors", "Sum"),
        MetricQuery("e5", INVOCATION_NAMESPACE, "Invocation5XXErrors", "Sum"),
        MetricQuery("hits", INVOCATION_NAMESPACE, "ModelCacheHit", "Sum"),
        MetricQuery("lookups", INVOCATION_NAMESPACE, "ModelCacheHit", "SampleCount"),
        MetricQuery("loaded", INVOCATION_NAMESPACE, "LoadedModelCount", "Average"),
    ]
    for name in LATENCY_METRICS:
        for statistic in ("Sum", "SampleCount", "Maximum"):
            wanted.append(MetricQuery(f"{name}:{statistic}", INVOCATION_NAMESPACE, name, statistic))
    for name in ENDPOINT_METRICS[INSTANCE_NAMESPACE]:
        wanted.append(MetricQuery(name, INSTANCE_NAMESPACE, name, "Average"))
    queries = [(f"q{i}", q) for i, q in enumerate(wanted)]
    values = _run_queries(
        cloudwatch, queries, endpoint_name=endpoint_name, variant_name=variant_name,
        start=start_dt, end=end_dt, period_s=period_s,
    )
    by_column = {q.column: values.get(qid, {}) for qid, q in queries}

    def total(column: str) -> float:
        return sum(by_column[column].values())

    def latest(column: str) -> float | None:
        series = by_column[column]
        return series[max(series)] if series else None

    def stat(name: str) -> LatencyStat:
        maxima = by_column[f"{name}:Maximum"].values()
        return LatencyStat(
            count=int(total(f"{name}:SampleCount")),
            sum_us=total(f"{name}:Sum"),
            max_us=max(maxima, default=0.0),
        )

    loaded = latest("loaded")
    return ServerMetrics(
        timestamp=end_dt.timestamp(),
        invocations=int(total("invocations")),
        invocation_4xx_errors=int(total("e4")),
        invocation_5xx_errors=int(total("e5")),
        model_cache_hits=round(total("hits")),
        model_cache_lookups=int(total("lookups")),
        loaded_model_count=round(loaded) if loaded is not None else 0,
        model_loads=stat("ModelLoadingTime").count,
        model_unloads=stat("ModelUnloadingTime").count,
        model_latency=stat("ModelLatency"),
        overhead_latency=stat("OverheadLatency"),
        model_loading_wait_time=stat("ModelLoadingWaitTime"),
        model_downloading_time=stat("ModelDownloadingTime"),
        model_loading_time=stat("ModelLoadingTime"),
        model_unloading_time=stat("ModelUnloadingTime"),
        cpu_utilization=latest("CPUUtilization"),
        memory_utilization=latest("MemoryUtilization"),
        disk_utilization=latest("DiskUtilization"),
        gpu_utilization=latest("GPUUtilization"),
        gpu_memory_utilization=latest("GPUMemoryUtilization"),
    )
