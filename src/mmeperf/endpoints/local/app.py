"""The local MME's HTTP surface: a bare ASGI app (no framework on the hot path).

Routes: the SageMaker runtime call ``POST /endpoints/{name}/invocations``; the container-side
MME contract (``GET /ping``, ``POST /invocations``, ``GET/POST /models``,
``GET/DELETE /models/{name}``, ``POST /models/{name}/invoke``); ``GET /metrics`` (Prometheus);
``GET /mmeperf/metrics`` (the typed ServerMetrics as JSON) and ``GET /mmeperf/status``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs, unquote

from mmeperf.endpoints.local.service import MMEService, Reply
from mmeperf.errors import BodyReadTimeoutError, ClientDisconnectedError, PayloadTooLargeError

__all__ = ["MMEApp"]

log = logging.getLogger("mmeperf.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_TARGET = b"x-amzn-sagemaker-target-model"
_CONTENT_TYPE = b"content-type"
_ACCEPT = b"accept"
_CONTENT_LENGTH = b"content-length"
#: How long a client may take to send the rest of a body (slow senders must not hold a slot).
BODY_READ_TIMEOUT_S = 30.0


def _text(status: int, text: str, content_type: bytes = b"text/plain; charset=utf-8") -> Reply:
    return Reply(status, [(b"content-type", content_type)], text.encode())


class MMEApp:
    """ASGI application serving one :class:`MMEService`."""

    def __init__(self, service: MMEService) -> None:
        self.service = service
        self._runtime_prefix = b"/endpoints/"
        self._endpoint_path = service.endpoint_path.encode("latin-1", "replace")
        self._ready = False
        #: Why the lifespan startup failed (an in-process driver re-raises it as it was).
        self.startup_error: Exception | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            try:
                reply = await self._http(scope, receive)
            except ClientDisconnectedError:
                return
            headers = reply.headers
            headers.append((b"content-length", str(len(reply.body)).encode()))
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            await send({"type": "http.response.body", "body": reply.body})
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.service.start()
                except Exception as exc:  # the parent reads this from stderr
                    self.startup_error = exc
                    log.error("Startup failed: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                self._ready = True
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self._ready = False
                await self.service.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive) -> Reply:
        method: str = scope["method"]
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.split(b"?", 1)[0]
        service = self.service
        if method == "POST" and path.startswith(self._runtime_prefix) and path.endswith(b"/invocations"):
            return await self._invoke(scope, receive, path, runtime=True)
        if path == b"/ping":
            return _text(200 if self._ready else 503, "Healthy\n" if self._ready else "Starting\n")
        if path == b"/invocations" and method == "POST":
            return await self._invoke(scope, receive, path, runtime=False)
        if path == b"/models":
            if method == "GET":
                query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
                return service.list_models(
                    next_page_token=query.get("next_page_token", [None])[0],
                    max_results=query.get("max_results", [None])[0],
                )
            if method == "POST":
                body = await self._body(scope, receive)
                try:
                    doc = json.loads(body or b"{}")
                    name = doc["model_name"]
                    url = doc.get("url")
                    if not isinstance(name, str) or not (url is None or isinstance(url, str)):
                        raise TypeError
                except (ValueError, KeyError, TypeError, AttributeError):
                    return _text(400, 'Expected a JSON body {"model_name": "...", "url": "..."}\n')
                return await service.load_model(name, url)
            return _text(405, "Method not allowed\n")
        if path.startswith(b"/models/"):
            rest = path[len(b"/models/"):]
            if rest.endswith(b"/invoke"):
                if method != "POST":
                    return _text(405, "Method not allowed\n")
                return await self._invoke(scope, receive, path, runtime=False, name=rest[: -len(b"/invoke")])
            name = unquote(rest.decode("latin-1"))
            if method == "GET":
                return service.get_model(name)
            if method == "DELETE":
                return await service.unload_model(name)
            return _text(405, "Method not allowed\n")
        if method == "GET":
            if path == b"/metrics":
                return Reply(200, [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")],
                             service.counters.prometheus_text())
            if path == b"/mmeperf/metrics":
                return Reply(200, [(b"content-type", b"application/json")],
                             service.counters.snapshot().model_dump_json().encode())
            if path == b"/mmeperf/status":
                return Reply(200, [(b"content-type", b"application/json")],
                             json.dumps(service.status()).encode())
        return _text(404, f"No route for {method} {path.decode('latin-1')}\n")

    async def _invoke(
        self, scope: Scope, receive: Receive, path: bytes, *, runtime: bool, name: bytes | None = None
    ) -> Reply:
        service = self.service
        target: str | None = None
        content_type: str | None = None
        accept: str | None = None
        for key, value in scope["headers"]:
            if key == _TARGET:
                target = value.decode("latin-1")
            elif key == _CONTENT_TYPE:
                content_type = value.decode("latin-1")
            elif key == _ACCEPT:
                accept = value.decode("latin-1")
        if runtime and path != self._endpoint_path:
            # Drain the body so the connection stays usable, then answer as SageMaker does.
            await self._body(scope, receive, limit=None)
            service.count_rejected(400)
            endpoint = unquote(path[len(b"/endpoints/"): -len(b"/invocations")].decode("latin-1"))
            return Reply(400, [(b"content-type", b"application/json"),
                               (b"x-amzn-errortype", b"ValidationError")],
                         json.dumps({"Message": f"Endpoint {endpoint} of account local not found."}).encode())
        try:
            body = await self._body(scope, receive)
        except (PayloadTooLargeError, BodyReadTimeoutError) as exc:
            service.count_rejected(exc.http_status)
            return service.error_reply(exc, runtime=runtime)
        if name is not None:
            return await service.invoke(unquote(name.decode("latin-1")), body, content_type=content_type,
                                        accept=accept, runtime=False, load=False)
        if accept == "*/*":
            accept = None
        return await service.invoke(target, body, content_type=content_type, accept=accept, runtime=runtime)

    async def _body(self, scope: Scope, receive: Receive, *, limit: int | None = -1) -> bytes:
        """The request body, refusing more than ``max_payload_bytes`` (413) and slow senders."""
        max_bytes = self.service.config.max_payload_bytes if limit == -1 else limit
        if max_bytes is not None:
            for key, value in scope["headers"]:
                if key == _CONTENT_LENGTH and value.isdigit() and int(value) > max_bytes:
                    raise PayloadTooLargeError(
                        f"Request body of {int(value)} bytes is over the limit of {max_bytes} bytes"
                    )
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnectedError
        body: bytes = message.get("body", b"")
        if not message.get("more_body"):
            return body
        chunks = [body]
        size = len(body)
        try:
            async with asyncio.timeout(BODY_READ_TIMEOUT_S):
                while message.get("more_body"):
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise ClientDisconnectedError
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise PayloadTooLargeError(
                            f"Request body is over the limit of {max_bytes} bytes"
                        )
                    chunks.append(chunk)
        except TimeoutError:
            raise BodyReadTimeoutError(f"The request body was not received within {BODY_READ_TIMEOUT_S:g} s") from None
        return b"".join(chunks)
