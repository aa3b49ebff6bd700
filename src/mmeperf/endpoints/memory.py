"""``MemoryEndpoint``: the local MME in this process, without sockets (kind ``memory``).

The same :class:`~mmeperf.endpoints.local.service.MMEService` (cache, backends, batching,
metrics) runs on an event loop in a background thread; ``invoke`` hands it the request directly.
For testing load runners and reports without HTTP; the real server is ``LocalEndpoint``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from mmeperf.endpoints.base import Endpoint, EndpointInfo, InvokeResult
from mmeperf.endpoints.local.config import EMULATION_NOTE, ServerConfig
from mmeperf.endpoints.local.endpoint import result_from_response
from mmeperf.errors import EndpointError
from mmeperf.metrics import ServerMetrics
from mmeperf.units import parse_size

if TYPE_CHECKING:
    from typing import Self

    from mmeperf.endpoints.local.service import MMEService
    from mmeperf.repository import ModelRepository

__all__ = ["MemoryEndpoint"]

T = TypeVar("T")


class MemoryEndpoint(Endpoint):
    """An in-process local MME: same options as ``LocalEndpoint`` less the network ones."""

    kind: ClassVar[str] = "memory"

    def __init__(
        self,
        *,
        memory_budget: int | str | None = None,
        instance_profile: str | None = None,
        per_model_overhead: int | str | None = None,
        endpoint_name: str = "memory-mme",
        allow_pickle: bool = False,
        server_options: dict[str, Any] | None = None,
    ) -> None:
        self._options: dict[str, Any] = {
            "memory_budget_bytes": None if memory_budget is None else parse_size(memory_budget),
            "per_model_overhead_bytes": None if per_model_overhead is None else parse_size(per_model_overhead),
            "instance_profile": instance_profile,
            "endpoint_name": endpoint_name,
            "allow_pickle": allow_pickle,
            **(server_options or {}),
        }
        self._config = ServerConfig(repository=".", **self._options).check()
        self.endpoint_name = endpoint_name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._service: MMEService | None = None

    def deploy(self, repository: ModelRepository | str) -> Self:
        """Start the service on a background event loop, serving ``repository``."""
        from mmeperf.endpoints.local.service import MMEService

        if self._service is not None:
            raise EndpointError(f"MemoryEndpoint {self.endpoint_name!r} is already deployed")
        repo_obj = None if isinstance(repository, str) else repository
        url = repository if isinstance(repository, str) else repository.url
        self._config = ServerConfig(repository=url, **self._options).check()
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="memory-mme", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        service = MMEService(self._config, repository=repo_obj)
        try:
            self._run(service.start())
        except BaseException:
            self._stop_loop()
            raise
        self._service = service
        return self

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coro.close()
            raise EndpointError("MemoryEndpoint is not deployed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @property
    def service(self) -> MMEService:
        """The service itself (tests reach into its cache and stats)."""
        if self._service is None:
            raise EndpointError("MemoryEndpoint is not deployed")
        return self._service

    def invoke(
        self,
        target_model: str,
        body: bytes,
        *,
        content_type: str = "text/csv",
        accept: str | None = None,
    ) -> InvokeResult:
        t0 = time.perf_counter()
        reply = self._run(self.service.invoke(target_model, body, content_type=content_type, accept=accept))
        headers = {k.decode(): v.decode() for k, v in reply.headers}
        return result_from_response(reply.status, headers, reply.body, time.perf_counter() - t0)

    def metrics(self) -> ServerMetrics:
        service = self.service

        async def snap() -> ServerMetrics:
            return service.stats.snapshot()

        return self._run(snap())

    def loaded_models(self) -> list[str]:
        service = self.service

        async def names() -> list[str]:
            return [m.target for m in service.cache.loaded()]

        return self._run(names())

    def info(self) -> EndpointInfo:
        profile = self._config.profile()
        return EndpointInfo(
            kind=self.kind,
            name=self.endpoint_name,
            instance_type=profile.name if profile else None,
            emulated=profile is not None,
            emulation_note=EMULATION_NOTE if profile else "In-process local MME (no sockets).",
            memory_budget_bytes=self._config.effective_budget(),
        )

    def delete(self) -> None:
        service, self._service = self._service, None
        if service is not None and self._loop is not None:
            self._run(service.stop())
        self._stop_loop()

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None:
                thread.join(timeout=10)
            loop.close()

    def __enter__(self) -> Self:
        return self
