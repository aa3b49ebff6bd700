"""The local MME's HTTP API seen from a client, over any transport: the SageMaker runtime call,
the model listing and the metrics, read the same way from a socket (``LocalEndpoint``) or from
the ASGI app in this process (``MemoryEndpoint``).
"""

from __future__ import annotations

import json
import time
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from mmeperf.endpoints._http import NO_ANSWER, HttpResponse, no_answer
from mmeperf.endpoints.base import (
    HEADER_CACHE,
    HEADER_MODEL_LATENCY_US,
    HEADER_WAIT_US,
    Endpoint,
    InvokeResult,
)
from mmeperf.endpoints.local.config import ServerConfig
from mmeperf.errors import EndpointError
from mmeperf.metrics import ServerMetrics

__all__ = ["LocalMMEClient", "result_from_response"]

# No answer, or not deployed: a result with status 0 (errors are results, not exceptions).
_UNANSWERED: tuple[type[BaseException], ...] = (*NO_ANSWER, EndpointError)


def result_from_response(
    status: int, headers: Mapping[str, str], body: bytes, latency_s: float
) -> InvokeResult:
    """An InvokeResult from a local MME answer (headers with lower-case names)."""
    error_code = error_message = None
    if not 200 <= status < 300:
        error_code = headers.get("x-amzn-errortype", "").split(":", 1)[0] or f"HTTP{status}"
        try:
            doc = json.loads(body)
            error_message = doc.get("Message") or doc.get("message") if isinstance(doc, dict) else None
        except ValueError:
            error_message = body[:500].decode("utf-8", "replace")
    cache = headers.get(HEADER_CACHE)
    wait = headers.get(HEADER_WAIT_US)
    model = headers.get(HEADER_MODEL_LATENCY_US)
    return InvokeResult(
        status=status,
        body=body,
        content_type=headers.get("content-type", ""),
        latency_s=latency_s,
        error_code=error_code,
        error_message=error_message,
        cache_hit=None if cache is None else cache == "hit",
        model_loading_wait_s=None if wait is None else int(wait) / 1e6,
        model_latency_s=None if model is None else int(model) / 1e6,
        headers=dict(headers),
    )


class LocalMMEClient(Endpoint):
    """What both local endpoints do through the server's HTTP API; a subclass supplies the
    transport (:meth:`_request`) and the life cycle (``deploy``, ``delete``, ``info``)."""

    endpoint_name: str
    _config: ServerConfig

    @abstractmethod
    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
    ) -> HttpResponse:
        """One HTTP exchange with the server; raises EndpointError when it is not deployed."""

    def invoke(
        self,
        target_model: str,
        body: bytes,
        *,
        content_type: str = "text/csv",
        accept: str | None = None,
    ) -> InvokeResult:
        headers = {"Content-Type": content_type, "X-Amzn-SageMaker-Target-Model": target_model}
        if accept:
            headers["Accept"] = accept
        path = f"/endpoints/{quote(self.endpoint_name, safe='')}/invocations"
        t0 = time.perf_counter()
        try:
            status, resp_headers, data = self._request("POST", path, body, headers)
        except _UNANSWERED as exc:
            return no_answer(exc, t0, error_code=type(exc).__name__)
        return result_from_response(status, resp_headers, data, time.perf_counter() - t0)

    def _get_json(self, path: str) -> Any:
        status, _, data = self._request("GET", path, timeout=30)
        if status != 200:
            raise EndpointError(f"GET {path} answered {status}: {data[:300]!r}")
        return json.loads(data)

    def metrics(self) -> ServerMetrics:
        return ServerMetrics.model_validate(self._get_json("/mmeperf/metrics"))

    def status(self) -> dict[str, Any]:
        """The server's own view: cache, peaks, emulation (``GET /mmeperf/status``)."""
        result: dict[str, Any] = self._get_json("/mmeperf/status")
        return result

    def loaded_models(self) -> list[str]:
        models: list[str] = []
        token: str | None = None
        while True:
            doc = self._get_json("/models" + (f"?next_page_token={token}" if token else ""))
            models.extend(m["modelName"] for m in doc["models"])
            token = doc.get("nextPageToken")
            if not token:
                return models
