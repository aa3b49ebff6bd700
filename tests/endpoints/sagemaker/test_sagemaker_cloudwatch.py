"""CloudWatch MME metrics (put into moto's server) come back in the server_metrics.csv schema."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mmeperf.cloud.cloudwatch import cumulative_metrics, server_metrics_frame
from mmeperf.endpoints.sagemaker import SageMakerEndpoint
from mmeperf.errors import ConfigurationError
from mmeperf.metrics import SERVER_METRIC_COLUMNS

NAME = "churn-c5-xl"


def _dims(name: str = NAME) -> list[dict[str, str]]:
    return [{"Name": "EndpointName", "Value": name}, {"Name": "VariantName", "Value": "AllTraffic"}]


def _put(cw: Any, namespace: str, at: datetime, metric: str, values: list[float], name: str = NAME) -> None:
    cw.put_metric_data(
        Namespace=namespace,
        MetricData=[
            {"MetricName": metric, "Dimensions": _dims(name), "Timestamp": at + timedelta(seconds=i + 1), "Value": v}
            for i, v in enumerate(values)
        ],
    )


@pytest.fixture
def window(boto: Any) -> datetime:
    """Three minutes of MME metrics, starting 30 minutes ago on a minute boundary."""
    cw = boto("cloudwatch")
    t0 = (datetime.now(UTC) - timedelta(minutes=30)).replace(second=0, microsecond=0)
    m1, m2 = t0 + timedelta(minutes=1), t0 + timedelta(minutes=2)
    sm, inst = "AWS/SageMaker", "/aws/sagemaker/Endpoints"
    _put(cw, sm, t0, "Invocations", [60, 40])
    _put(cw, sm, t0, "ModelLatency", [1000, 3000])
    _put(cw, sm, t0, "OverheadLatency", [1900, 2000])
    _put(cw, sm, t0, "ModelLoadingWaitTime", [3_500_000])
    _put(cw, sm, t0, "ModelLoadingTime", [780_000, 800_000])
    _put(cw, sm, t0, "ModelUnloadingTime", [18_000])
    _put(cw, sm, t0, "ModelCacheHit", [1, 1, 0, 1])
    _put(cw, sm, t0, "LoadedModelCount", [31, 33])
    _put(cw, inst, t0, "CPUUtilization", [120, 140])
    _put(cw, inst, t0, "MemoryUtilization", [80])
    _put(cw, sm, m1, "Invocations", [50])
    _put(cw, sm, m1, "Invocation4XXErrors", [3])
    _put(cw, sm, m1, "ModelLatency", [1500])
    _put(cw, inst, m2, "CPUUtilization", [10])
    _put(cw, sm, t0, "ModelLatency", [999_999], name="another-endpoint")  # must not leak in
    return t0


def test_frame_has_the_schema_and_the_values(aws: str, boto: Any, window: datetime) -> None:
    frame = server_metrics_frame(
        boto("cloudwatch"), endpoint_name=NAME, start=window, end=window + timedelta(minutes=3)
    )
    assert tuple(frame.columns) == SERVER_METRIC_COLUMNS
    assert len(frame) == 3
    first, second, third = (frame.iloc[i] for i in range(3))
    assert first["timestamp"] == (window + timedelta(minutes=1)).timestamp()  # end of the period
    assert first["elapsed_s"] == 60.0
    assert first["Invocations"] == 100
    assert first["ModelLatency"] == 2000.0
    assert first["OverheadLatency"] == 1950.0
    assert first["ModelLoads"] == 2 and first["ModelUnloads"] == 1
    assert first["ModelLoadingTime"] == 790_000.0
    assert first["ModelCacheHit"] == 0.75
    assert first["LoadedModelCount"] == 32.0
    assert first["CPUUtilization"] == 130.0 and first["MemoryUtilization"] == 80.0
    assert math.isnan(first["GPUUtilization"])
    assert (second["Invocations"], second["Invocation4XXErrors"], second["Invocation5XXErrors"]) == (50, 3, 0)
    assert math.isnan(second["ModelCacheHit"])
    assert third["Invocations"] == 0 and third["CPUUtilization"] == 10.0


def test_endpoint_reads_its_window_and_totals(aws: str, boto: Any, window: datetime) -> None:
    ep = SageMakerEndpoint(name=NAME)
    frame = ep.server_metrics(start=window, end=window + timedelta(minutes=3), run_start=window - timedelta(seconds=30))
    assert list(frame["elapsed_s"]) == [90.0, 150.0, 210.0]
    total = cumulative_metrics(boto("cloudwatch"), endpoint_name=NAME, start=window, end=window + timedelta(minutes=3))
    assert (total.invocations, total.invocation_4xx_errors) == (150, 3)
    assert (total.model_cache_hits, total.model_cache_lookups) == (3, 4)
    assert total.model_latency.count == 3 and total.model_latency.sum_us == 5500.0
    assert total.model_latency.max_us == 3000.0
    assert total.model_loads == 2 and total.model_unloads == 1
    assert total.cpu_utilization == 10.0  # the latest period's
    assert total.loaded_model_count == 32


def test_frame_renders_in_the_report(aws: str, boto: Any, window: datetime, tmp_path: Path) -> None:
    charts = pytest.importorskip("mmeperf.results.charts")
    pd = pytest.importorskip("pandas")
    frame = server_metrics_frame(boto("cloudwatch"), endpoint_name=NAME, start=window, end=window + timedelta(minutes=3))
    frame.to_csv(tmp_path / "server_metrics.csv", index=False)
    again = pd.read_csv(tmp_path / "server_metrics.csv")
    assert tuple(again.columns) == SERVER_METRIC_COLUMNS
    for panel in charts.DASHBOARD_PANELS:
        png = charts.dashboard_panel(panel, {"sagemaker": again}, tmp_path / f"{panel}.png")
        assert Path(png).stat().st_size > 0


def test_bad_windows_are_refused(aws: str, boto: Any) -> None:
    now = datetime.now(UTC)
    with pytest.raises(ConfigurationError, match="end after"):
        server_metrics_frame(boto("cloudwatch"), endpoint_name=NAME, start=now, end=now)
    with pytest.raises(ConfigurationError, match="multiple of 60"):
        server_metrics_frame(boto("cloudwatch"), endpoint_name=NAME, start=now - timedelta(hours=1), end=now, period_s=90)
