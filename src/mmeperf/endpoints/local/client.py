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

from mmeperf.endpoints._http import NO_ANSWER, HttpResponse, no_answer
from mmeperf.endpoints.base import Endpoint
from mmeperf.endpoints.local.config import ServerConfig
from mmeperf.errors import EndpointError
from mmeperf.metrics import ServerMetrics
from mmeperf.protocol import InvokeResult, invocation_path, parse_answer, request_headers

__all__ = ["LocalMMEClient"]

# No answer, or not deployed: a result with status 0 (errors are results, not exceptions).
_UNANSWERED: tuple[type[BaseException], ...] = (*NO_ANSWER, EndpointError)


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
        headers = request_headers(target_model, content_type=content_type, accept=accept)
        t0 = time.perf_counter()
        try:
            status, resp_headers, data = self._request("POST", invocation_path(self.endpoint_name), body, headers)
        except _UNANSWERED as exc:
            return no_answer(exc, t0, error_code=type(exc).__name__)
        return parse_answer(status, resp_headers, data, time.perf_counter() - t0)

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
