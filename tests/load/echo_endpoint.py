"""A minimal Endpoint plugin for the 'endpoint' user test: invoke answers in-process."""

from __future__ import annotations

import threading
import time
from typing import Any

from mmeperf.endpoints.base import Endpoint, EndpointInfo, InvokeResult
from mmeperf.metrics import ServerMetrics
from mmeperf.protocol import CacheState


class EchoEndpoint(Endpoint):
    """Answers every model but ``missing`` with the body; the first call per model is a miss."""

    kind = "echo"

    def __init__(self, *, missing: str = "") -> None:
        self.missing = missing
        self.seen: set[str] = set()
        self.metrics_calls = 0
        #: Set on every metrics() call, so a test can wait for a read (a gate, not a sleep).
        self.metrics_read = threading.Event()

    def deploy(self, repository: Any) -> EchoEndpoint:
        return self

    def invoke(self, target_model: str, body: bytes, *, content_type: str = "text/csv", accept: str | None = None) -> InvokeResult:
        start = time.perf_counter()
        if target_model == self.missing:
            return InvokeResult(404, b"", "application/json", time.perf_counter() - start, error_code="ValidationError")
        cache = CacheState.HIT if target_model in self.seen else CacheState.MISS
        self.seen.add(target_model)
        return InvokeResult(200, body, content_type, time.perf_counter() - start, cache=cache)

    def metrics(self) -> ServerMetrics:
        self.metrics_calls += 1
        self.metrics_read.set()
        return ServerMetrics(timestamp=time.time(), invocations=self.metrics_calls)

    def loaded_models(self) -> list[str]:
        return sorted(self.seen)

    def info(self) -> EndpointInfo:
        return EndpointInfo(kind="echo", name="echo")

    def delete(self) -> None:
        pass
