"""The local MME's own counters (:class:`MmeCounters`) under CloudWatch's MME names, and their
two views: the sampled :class:`~mmeperf.metrics.ServerMetrics` snapshot and Prometheus text.

Requests update plain integers on the event loop (no locks, no Prometheus objects on the hot
path); ``snapshot()`` builds the typed :class:`ServerMetrics` and ``prometheus_text()`` the
``/metrics`` exposition, both on demand.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psutil
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from mmeperf.metrics import LATENCY_FIELDS, LatencyStat, ServerMetrics

__all__ = ["CONNECTION_TIMEOUT_KINDS", "LatencyCounter", "MmeCounters"]

#: The kinds of connection timeouts counted in ``/metrics`` (``connection_timeouts_total``).
CONNECTION_TIMEOUT_KINDS = ("header", "first_byte", "body", "idle")


@dataclass(slots=True)
class LatencyCounter:
    """Count, sum and max of one latency metric, microseconds."""

    count: int = 0
    sum_us: float = 0.0
    max_us: float = 0.0

    def add(self, us: float) -> None:
        self.count += 1
        self.sum_us += us
        if us > self.max_us:
            self.max_us = us

    def stat(self) -> LatencyStat:
        return LatencyStat(count=self.count, sum_us=self.sum_us, max_us=self.max_us)


class MmeCounters:
    """Everything the local MME counts (raw counters, not a sample: :meth:`snapshot` reads them
    into a :class:`ServerMetrics`). Mutated only on the event loop thread (or under ``lock``
    from loader threads)."""

    def __init__(self, *, memory_total_bytes: int | None, disk_path: str) -> None:
        self.lock = threading.Lock()
        self.invocations = 0
        self.invocation_4xx_errors = 0
        self.invocation_5xx_errors = 0
        self.model_cache_hits = 0
        self.model_cache_lookups = 0
        self.model_loads = 0
        self.model_unloads = 0
        self.model_load_failures = 0
        self.worker_deaths = 0  # process workers that died with their model loaded
        self.batches = 0
        self.batched_rows = 0
        #: Connections closed by a timeout, by kind: "header", "first_byte", "body", "idle".
        self.connection_timeouts: dict[str, int] = dict.fromkeys(CONNECTION_TIMEOUT_KINDS, 0)
        self.loaded_model_count = 0
        self.peak_loaded_model_count = 0
        self.memory_used_bytes = 0
        self.peak_memory_used_bytes = 0
        self.memory_budget_bytes: int | None = None
        self.latency: dict[str, LatencyCounter] = {name: LatencyCounter() for name in LATENCY_FIELDS}
        self._memory_total = memory_total_bytes or psutil.virtual_memory().total
        self._disk_path = disk_path
        self._process = psutil.Process(os.getpid())
        self._cpu_last = (time.monotonic(), self._cpu_seconds())

    # --- hot path ---------------------------------------------------------------------------

    def count_response(self, status: int) -> None:
        """One invocation answered (every invocation passes here exactly once)."""
        self.invocations += 1
        if 400 <= status < 500:
            self.invocation_4xx_errors += 1
        elif status >= 500:
            self.invocation_5xx_errors += 1

    def set_loaded(self, count: int, used_bytes: int) -> None:
        self.loaded_model_count = count
        self.memory_used_bytes = used_bytes
        self.peak_loaded_model_count = max(self.peak_loaded_model_count, count)
        self.peak_memory_used_bytes = max(self.peak_memory_used_bytes, used_bytes)

    # --- system metrics -------------------------------------------------------------------

    def _cpu_seconds(self) -> float:
        times = self._process.cpu_times()
        return float(times.user + times.system)

    def cpu_utilization(self) -> float | None:
        """Percent, 100 per core, of this process since the previous read."""
        now, cpu = time.monotonic(), self._cpu_seconds()
        last_t, last_cpu = self._cpu_last
        self._cpu_last = (now, cpu)
        elapsed = now - last_t
        return 100.0 * (cpu - last_cpu) / elapsed if elapsed > 0 else None

    def memory_utilization(self) -> float:
        """Resident memory of this process as a percent of the (emulated) instance memory."""
        return 100.0 * self._process.memory_info().rss / self._memory_total

    def disk_utilization(self) -> float | None:
        try:
            return float(psutil.disk_usage(self._disk_path).percent)
        except OSError:
            return None

    # --- views ------------------------------------------------------------------------------

    def snapshot(self) -> ServerMetrics:
        """The cumulative, typed snapshot (``GET /mmeperf/metrics``)."""
        lat = {name: counter.stat() for name, counter in self.latency.items()}
        return ServerMetrics(
            timestamp=time.time(),
            invocations=self.invocations,
            invocation_4xx_errors=self.invocation_4xx_errors,
            invocation_5xx_errors=self.invocation_5xx_errors,
            model_cache_hits=self.model_cache_hits,
            model_cache_lookups=self.model_cache_lookups,
            loaded_model_count=self.loaded_model_count,
            model_loads=self.model_loads,
            model_unloads=self.model_unloads,
            model_latency=lat["ModelLatency"],
            overhead_latency=lat["OverheadLatency"],
            model_loading_wait_time=lat["ModelLoadingWaitTime"],
            model_downloading_time=lat["ModelDownloadingTime"],
            model_loading_time=lat["ModelLoadingTime"],
            model_unloading_time=lat["ModelUnloadingTime"],
            cpu_utilization=self.cpu_utilization(),
            memory_utilization=self.memory_utilization(),
            disk_utilization=self.disk_utilization(),
            memory_budget_bytes=self.memory_budget_bytes,
            memory_used_bytes=self.memory_used_bytes,
        )

    def prometheus_text(self, *extra: Collector) -> bytes:
        """``GET /metrics``: Prometheus text format, names after CloudWatch's (and ``extra``'s)."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self))
        for collector in extra:
            registry.register(collector)
        return generate_latest(registry)


class _Collector(Collector):
    def __init__(self, counters: MmeCounters) -> None:
        self._counters = counters

    def collect(self) -> Iterator[Metric]:
        s = self._counters
        counters = (
            ("invocations", "Invocations answered (CloudWatch Invocations)", s.invocations),
            ("invocation_4xx_errors", "Invocations answered 4xx (Invocation4XXErrors)", s.invocation_4xx_errors),
            ("invocation_5xx_errors", "Invocations answered 5xx (Invocation5XXErrors)", s.invocation_5xx_errors),
            ("model_cache_hit", "Invocations whose model was loaded (ModelCacheHit, Sum)", s.model_cache_hits),
            ("model_cache_lookups", "Invocations that reached the model cache", s.model_cache_lookups),
            ("model_loads", "Models loaded since start", s.model_loads),
            ("model_unloads", "Models unloaded since start", s.model_unloads),
            ("model_load_failures", "Model loads that failed", s.model_load_failures),
            ("worker_deaths", "Model worker processes that died (their model was unloaded)", s.worker_deaths),
            ("batches", "Predict calls made", s.batches),
            ("batched_rows", "Rows predicted", s.batched_rows),
        )
        for name, doc, value in counters:
            yield CounterMetricFamily(name, doc, value=value)
        timeouts = CounterMetricFamily(
            "connection_timeouts", "Connections closed by a timeout (headers, first body byte, "
            "whole body, idle keep-alive)", labels=["kind"],
        )
        for kind, value in s.connection_timeouts.items():
            timeouts.add_metric([kind], value)
        yield timeouts
        # Prometheus names are the ServerMetrics field names, plus the unit.
        for cw_name, base in LATENCY_FIELDS.items():
            c = s.latency[cw_name]
            yield SummaryMetricFamily(
                f"{base}_microseconds", f"{cw_name}, microseconds", count_value=c.count, sum_value=c.sum_us
            )
        gauges: list[tuple[str, str, float | None]] = [
            ("loaded_model_count", "Models in memory (LoadedModelCount)", s.loaded_model_count),
            ("memory_used_bytes", "Bytes charged to loaded models", s.memory_used_bytes),
            ("memory_budget_bytes", "Model cache budget", s.memory_budget_bytes),
            ("cpu_utilization_percent", "CPUUtilization, 100 per core", s.cpu_utilization()),
            ("memory_utilization_percent", "MemoryUtilization", s.memory_utilization()),
            ("disk_utilization_percent", "DiskUtilization of the cache volume", s.disk_utilization()),
        ]
        for name, doc, gauge in gauges:
            if gauge is not None:
                yield GaugeMetricFamily(name, doc, value=gauge)
