"""``MemoryEndpoint``: the local MME in this process, without sockets (kind ``memory``).

The server's own ASGI app (:class:`~mmeperf.endpoints.local.app.MMEApp`) runs on an event loop
in a background thread; each request is handed to it as httpx's ``ASGITransport`` does (an ASGI
scope, the body as one ``http.request`` message, the ``http.response.*`` messages collected).
So the socket-free path runs the same routing, body limits, error shapes and headers as
``LocalEndpoint``, less the HTTP parser and the socket.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, Unpack
from urllib.parse import unquote

from mmeperf.endpoints._http import HttpResponse
from mmeperf.endpoints.base import EndpointInfo
from mmeperf.endpoints.local.client import LocalMMEClient
from mmeperf.endpoints.local.config import EMULATION_NOTE, ServerConfig, ServerOptions
from mmeperf.errors import EndpointError, EndpointNotReadyError

if TYPE_CHECKING:
    from typing import Self

    from mmeperf.endpoints.local.app import MMEApp
    from mmeperf.endpoints.local.asgi import Message
    from mmeperf.endpoints.local.service import MMEService
    from mmeperf.repository import ModelRepository

__all__ = ["MemoryEndpoint", "asgi_request"]

T = TypeVar("T")
_ASGI = {"version": "3.0", "spec_version": "2.3"}


async def asgi_request(
    app: MMEApp, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
) -> HttpResponse:
    """One HTTP exchange with an ASGI ``app`` in this process (``path`` may carry a query).

    Raises ConnectionError when the app returns without answering, as a closed socket would.
    """
    raw_path, _, query = path.partition("?")
    header_list = [(k.lower().encode("latin-1"), v.encode("utf-8")) for k, v in (headers or {}).items()]
    header_list.append((b"content-length", str(len(body)).encode()))
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": _ASGI,
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode("latin-1"),
        "query_string": query.encode("latin-1"),
        "root_path": "",
        "headers": header_list,
        "client": ("127.0.0.1", 0),
        "server": None,
    }
    body_sent = False
    answered = asyncio.Event()
    status: int | None = None
    response_headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await answered.wait()  # then the client goes away, as after any answered request
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
            for key, value in message.get("headers", []):
                response_headers[bytes(key).decode("latin-1").lower()] = bytes(value).decode("latin-1")
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))
            if not message.get("more_body"):
                answered.set()

    try:
        await app(scope, receive, send)
    finally:
        answered.set()
    if status is None:
        raise ConnectionError(f"The app closed {method} {path} without an answer")
    return HttpResponse(status, response_headers, b"".join(chunks))


class _Lifespan:
    """The ASGI lifespan protocol driven from outside, as a server drives it."""

    def __init__(self, app: MMEApp) -> None:
        self._app = app
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def _exchange(self, message: str) -> Message:
        await self._inbox.put({"type": message})
        return await self._outbox.get()

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": _ASGI, "state": {}}
        self._task = asyncio.get_running_loop().create_task(
            self._app(scope, self._inbox.get, self._outbox.put)
        )
        answer = await self._exchange("lifespan.startup")
        if answer["type"] != "lifespan.startup.complete":
            await self._task
            if self._app.startup_error is not None:
                raise self._app.startup_error  # the service's own error, as it was raised
            raise EndpointNotReadyError(f"The in-process MME did not start: {answer.get('message')}")

    async def shutdown(self) -> None:
        if self._task is None or self._task.done():
            return
        await self._exchange("lifespan.shutdown")
        await self._task


class MemoryEndpoint(LocalMMEClient):
    """An in-process local MME: ``LocalEndpoint``'s server options (:class:`ServerOptions`) less
    the network and process ones; requests go through the real ASGI app, without sockets."""

    kind: ClassVar[str] = "memory"

    def __init__(self, **options: Unpack[ServerOptions]) -> None:
        self._config = ServerConfig.from_options(**options)
        self.endpoint_name = self._config.endpoint_name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._app: MMEApp | None = None
        self._lifespan: _Lifespan | None = None

    def deploy(self, repository: ModelRepository | str) -> Self:
        """Start the app on a background event loop (its lifespan startup), serving ``repository``."""
        from mmeperf.endpoints.local.app import MMEApp
        from mmeperf.endpoints.local.service import MMEService

        if self._app is not None:
            raise EndpointError(f"MemoryEndpoint {self.endpoint_name!r} is already deployed")
        repo_obj = None if isinstance(repository, str) else repository
        url = repository if isinstance(repository, str) else repository.url
        self._config = self._config.with_repository(url)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="memory-mme", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        app = MMEApp(MMEService(self._config, repository=repo_obj))
        lifespan = _Lifespan(app)
        try:
            self._run(lifespan.startup())
        except BaseException:
            self._stop_loop()
            raise
        self._app, self._lifespan = app, lifespan
        return self

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if self._loop is None:
            coro.close()
            raise EndpointError("MemoryEndpoint is not deployed")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    @property
    def app(self) -> MMEApp:
        """The ASGI app requests go through."""
        if self._app is None:
            raise EndpointError("MemoryEndpoint is not deployed")
        return self._app

    @property
    def service(self) -> MMEService:
        """The service behind the app (tests reach into its cache and counters)."""
        return self.app.service

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
    ) -> HttpResponse:
        return self._run(asgi_request(self.app, method, path, body or b"", headers), timeout)

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
        lifespan, self._lifespan = self._lifespan, None
        self._app = None
        if lifespan is not None and self._loop is not None:
            self._run(lifespan.shutdown())
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
