"""A minimal Endpoint plugin for the 'endpoint' user test: invoke answers in-process."""

from __future__ import annotations

import time
from typing import Any

from mmeperf.endpoints.base import Endpoint, EndpointInfo, InvokeResult
from mmeperf.metrics import ServerMetrics


class EchoEndpoint(Endpoint):
    """Answers every model but ``missing`` with the body; the first call per model is a miss."""

    kind = "echo"

    def __init__(self, *, missing: str = "") -> None:
        self.missing = missing
        self.seen: set[str] = set()

    def deploy(self, repository: Any) -> EchoEndpoint:
        return self

    def invoke(self, target_model: str, body: bytes, *, content_type: str = "text/csv", accept: str | None = None) -> InvokeResult:
        start = time.perf_counter()
        if target_model == self.missing:
            return InvokeResult(404, b"", "application/json", time.perf_counter() - start, error_code="ValidationError")
        hit = target_model in self.seen
        self.seen.add(target_model)
        return InvokeResult(200, body, content_type, time.perf_counter() - start, cache_hit=hit)

    def metrics(self) -> ServerMetrics:
        return ServerMetrics(timestamp=time.time())

    def loaded_models(self) -> list[str]:
        return sorted(self.seen)

    def info(self) -> EndpointInfo:
        return EndpointInfo(kind="echo", name="echo")

    def delete(self) -> None:
        pass
