"""Triton's Prometheus metrics (``:8002/metrics``) read as a :class:`ServerMetrics` snapshot
under CloudWatch's MME names, so Triton runs and SageMaker runs share one report.
"""

from __future__ import annotations

import time

from mmeperf.errors import EndpointError
from mmeperf.metrics import LatencyStat, ServerMetrics

__all__ = ["parse_triton_metrics"]


def _sums(text: str) -> dict[str, float]:
    """Each metric family's samples summed over labels (models, versions, reasons, GPUs)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                # Counters' samples carry a ``_total`` suffix the family name does not.
                if sample.name in (family.name, family.name + "_total"):
                    out[family.name] = out.get(family.name, 0.0) + float(sample.value)
    except ValueError as exc:
        raise EndpointError(f"Triton's /metrics is not Prometheus text: {exc}") from exc
    return out


def _per_gpu(text: str, name: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == name:
            for sample in family.samples:
                values[sample.labels.get("gpu_uuid", "")] = float(sample.value)
    return values


def parse_triton_metrics(
    text: str,
    *,
    loaded_model_count: int = 0,
    vcpus: int | None = None,
    timestamp: float | None = None,
) -> ServerMetrics:
    """Triton's Prometheus text as a cumulative :class:`ServerMetrics` (CloudWatch names).

    Invocations are ``nv_inference_request_success + nv_inference_request_failure``; failures
    count as 5xx (Triton counts only requests that reached a model's scheduler: requests it
    refused with 400/404 are in no counter). ModelLatency is ``nv_inference_request_duration_us``
    (the whole request inside Triton, as SageMaker's ModelLatency is the whole container call) and
    OverheadLatency is ``nv_inference_queue_duration_us``, both per successful request; Triton
    keeps no maxima, so ``max_us`` stays 0. CPU utilization is converted to SageMaker's 100 per
    core when ``vcpus`` is known (else None); GPU figures are summed over GPUs (100 per GPU).
    """
    sums = _sums(text)
    success = int(sums.get("nv_inference_request_success", 0))
    failure = int(sums.get("nv_inference_request_failure", 0))
    cpu: float | None = None
    if "nv_cpu_utilization" in sums and vcpus:
        cpu = sums["nv_cpu_utilization"] * 100.0 * vcpus
    memory: float | None = None
    total_memory = sums.get("nv_cpu_memory_total_bytes", 0.0)
    if total_memory > 0:
        memory = 100.0 * sums.get("nv_cpu_memory_used_bytes", 0.0) / total_memory
    gpu: float | None = None
    if "nv_gpu_utilization" in sums:
        gpu = 100.0 * sums["nv_gpu_utilization"]
    gpu_memory: float | None = None
    totals = _per_gpu(text, "nv_gpu_memory_total_bytes") if "nv_gpu_memory_total_bytes" in sums else {}
    if totals:
        used = _per_gpu(text, "nv_gpu_memory_used_bytes")
        gpu_memory = sum(100.0 * used.get(uuid, 0.0) / total for uuid, total in totals.items() if total > 0)
    return ServerMetrics(
        timestamp=time.time() if timestamp is None else timestamp,
        invocations=success + failure,
        invocation_5xx_errors=failure,
        loaded_model_count=loaded_model_count,
        model_latency=LatencyStat(count=success, sum_us=sums.get("nv_inference_request_duration_us", 0.0)),
        overhead_latency=LatencyStat(count=success, sum_us=sums.get("nv_inference_queue_duration_us", 0.0)),
        cpu_utilization=cpu,
        memory_utilization=memory,
        gpu_utilization=gpu,
        gpu_memory_utilization=gpu_memory,
    )
