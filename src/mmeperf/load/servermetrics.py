"""An endpoint's own metrics and model listing read over HTTP, for a benchmark given only a URL.

``mmeperf bench --endpoint-url`` has no :class:`~mmeperf.endpoints.base.Endpoint` object, yet the
local MME (and any server speaking its routes) exposes what a report needs: ``GET
/mmeperf/metrics`` (the typed :class:`~mmeperf.metrics.ServerMetrics` as JSON) or Prometheus
``GET /metrics`` with the same names, ``GET /mmeperf/status`` (emulation, peaks) and the models
it can serve (``GET /mmeperf/models``, else the container listing ``GET /models``).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any, Literal

from mmeperf.errors import EndpointError
from mmeperf.metrics import LATENCY_FIELDS, LatencyStat, ServerMetrics

__all__ = ["UrlMetrics", "discover_metrics", "endpoint_models", "endpoint_status"]


def _get(url: str, *, timeout: float) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), b""
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise EndpointError(f"GET {url} failed: {exc}") from exc


def _json(base: str, path: str, *, timeout: float) -> Any | None:
    try:
        status, body = _get(base.rstrip("/") + path, timeout=timeout)
    except EndpointError:
        return None
    if status != 200:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def parse_prometheus(text: str, *, timestamp: float) -> ServerMetrics | None:
    """The local MME's Prometheus names (ServerMetrics fields, latencies ``*_microseconds``)."""
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if not sample.labels:
                    values[sample.name] = float(sample.value)
    except ValueError:
        return None
    if "invocations_total" not in values and "invocations" not in values:
        return None

    def count(name: str) -> int:
        return int(values.get(f"{name}_total", values.get(name, 0.0)))

    fields: dict[str, Any] = {
        "timestamp": timestamp,
        "invocations": count("invocations"),
        "invocation_4xx_errors": count("invocation_4xx_errors"),
        "invocation_5xx_errors": count("invocation_5xx_errors"),
        "model_cache_hits": count("model_cache_hit"),
        "model_cache_lookups": count("model_cache_lookups"),
        "model_loads": count("model_loads"),
        "model_unloads": count("model_unloads"),
        "loaded_model_count": int(values.get("loaded_model_count", 0.0)),
        "cpu_utilization": values.get("cpu_utilization_percent"),
        "memory_utilization": values.get("memory_utilization_percent"),
        "disk_utilization": values.get("disk_utilization_percent"),
    }
    for field in LATENCY_FIELDS.values():
        n = values.get(f"{field}_microseconds_count")
        if n is not None:
            fields[field] = LatencyStat(count=int(n), sum_us=values.get(f"{field}_microseconds_sum", 0.0))
    return ServerMetrics.model_validate(fields)


class UrlMetrics:
    """``metrics()`` of a server that exposes its own, for :class:`~mmeperf.load.benchmark.MetricsSampler`."""

    #: Read once a second, as a local server.
    metrics_interval_s = 1.0

    def __init__(self, base_url: str, kind: Literal["json", "prometheus"], *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.kind = kind
        self.timeout = timeout

    @property
    def path(self) -> str:
        return "/mmeperf/metrics" if self.kind == "json" else "/metrics"

    def metrics(self) -> ServerMetrics:
        status, body = _get(self.base_url + self.path, timeout=self.timeout)
        if status != 200:
            raise EndpointError(f"GET {self.base_url}{self.path} answered {status}")
        if self.kind == "json":
            return ServerMetrics.model_validate_json(body)
        parsed = parse_prometheus(body.decode("utf-8", "replace"), timestamp=time.time())
        if parsed is None:
            raise EndpointError(f"GET {self.base_url}{self.path} holds no MME metrics")
        return parsed


def discover_metrics(base_url: str, *, timeout: float = 5.0) -> UrlMetrics | None:
    """The server's own metrics source, JSON first, then Prometheus; None if it exposes neither."""
    for kind in ("json", "prometheus"):
        source = UrlMetrics(base_url, kind, timeout=timeout)  # type: ignore[arg-type]
        try:
            source.metrics()
        except Exception:  # not this route: try the next
            continue
        return source
    return None


def endpoint_status(base_url: str, *, timeout: float = 5.0) -> dict[str, Any] | None:
    """``GET /mmeperf/status`` (the local MME's own view), or None."""
    doc = _json(base_url, "/mmeperf/status", timeout=timeout)
    return doc if isinstance(doc, dict) else None


def endpoint_models(base_url: str, *, timeout: float = 10.0) -> list[str] | None:
    """Target names the endpoint can serve: its repository (``GET /mmeperf/models``), else the
    container listing (``GET /models``, registered models, every page); None if neither answers
    with a list."""
    doc = _json(base_url, "/mmeperf/models", timeout=timeout)
    if isinstance(doc, dict) and isinstance(doc.get("models"), list):
        return [str(m) for m in doc["models"]]
    names: list[str] = []
    token: str | None = None
    for _ in range(1000):
        doc = _json(base_url, "/models" + (f"?next_page_token={token}" if token else ""), timeout=timeout)
        if not isinstance(doc, dict) or not isinstance(doc.get("models"), list):
            return None if not names else names
        names.extend(str(m.get("modelName")) for m in doc["models"] if isinstance(m, dict) and m.get("modelName"))
        token = doc.get("nextPageToken")
        if not token:
            break
    return names
