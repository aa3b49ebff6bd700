"""Triton's Prometheus text read as ServerMetrics under CloudWatch's names (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmeperf.endpoints.triton.prometheus import parse_triton_metrics
from mmeperf.errors import EndpointError
from mmeperf.metrics import LatencyStat

DATA = Path(__file__).parent / "data"


def test_metrics_parser_on_captured_triton_text() -> None:
    # Captured from pytriton's tritonserver 2.51 (CPU only, this machine) after 3 successful
    # requests to `affine` and one it refused with 400 (which Triton counts nowhere).
    text = (DATA / "metrics_cpu.txt").read_text()
    snap = parse_triton_metrics(text, loaded_model_count=1, vcpus=2, timestamp=1.0)
    assert snap.timestamp == 1.0
    assert snap.invocations == 3
    assert snap.invocation_4xx_errors == snap.invocation_5xx_errors == 0
    assert snap.model_latency == LatencyStat(count=3, sum_us=29880.0)  # request duration
    assert snap.overhead_latency == LatencyStat(count=3, sum_us=118.0)  # queue duration
    assert snap.loaded_model_count == 1
    assert snap.cpu_utilization == pytest.approx(0.4797979797979798 * 100 * 2)  # 100 per core
    assert snap.memory_utilization == pytest.approx(100 * 912310272 / 25276510208)
    assert snap.gpu_utilization is None and snap.gpu_memory_utilization is None
    assert parse_triton_metrics(text).cpu_utilization is None  # unknown core count: no guess


def test_metrics_parser_counts_failures_of_every_reason_as_5xx() -> None:
    text = (DATA / "metrics_cpu.txt").read_text().replace(
        'reason="BACKEND",version="1"} 0', 'reason="BACKEND",version="1"} 2'
    ).replace('reason="REJECTED",version="1"} 0', 'reason="REJECTED",version="1"} 1')
    snap = parse_triton_metrics(text)
    assert (snap.invocations, snap.invocation_5xx_errors) == (6, 3)


def test_metrics_parser_refuses_non_prometheus_text() -> None:
    with pytest.raises(EndpointError, match="Prometheus"):
        parse_triton_metrics("<html>not metrics</html>")


def test_metrics_parser_gpu_lines() -> None:
    # GPU families as Triton documents them (one sample per gpu_uuid); written by hand, since
    # this machine has no GPU: two GPUs at 50 % and 25 %, memory 1/4 and 1/2 used.
    text = "\n".join([
        "# HELP nv_gpu_utilization GPU utilization rate [0.0 - 1.0)",
        "# TYPE nv_gpu_utilization gauge",
        'nv_gpu_utilization{gpu_uuid="GPU-a"} 0.5',
        'nv_gpu_utilization{gpu_uuid="GPU-b"} 0.25',
        "# HELP nv_gpu_memory_total_bytes GPU total memory, in bytes",
        "# TYPE nv_gpu_memory_total_bytes gauge",
        'nv_gpu_memory_total_bytes{gpu_uuid="GPU-a"} 400',
        'nv_gpu_memory_total_bytes{gpu_uuid="GPU-b"} 200',
        "# HELP nv_gpu_memory_used_bytes GPU used memory, in bytes",
        "# TYPE nv_gpu_memory_used_bytes gauge",
        'nv_gpu_memory_used_bytes{gpu_uuid="GPU-a"} 100',
        'nv_gpu_memory_used_bytes{gpu_uuid="GPU-b"} 100',
        "",
    ])
    snap = parse_triton_metrics(text)
    assert snap.gpu_utilization == pytest.approx(75.0)
    assert snap.gpu_memory_utilization == pytest.approx(25.0 + 50.0)
    assert snap.invocations == 0
