"""The local MME's HTTP surface: a bare ASGI app (no framework on the hot path).

Routes: the SageMaker runtime call ``POST /endpoints/{name}/invocations``; the container-side
MME contract as Multi Model Server routes it (``/ping``, ``/invocations``, ``GET/POST /models``,
``GET/PUT/DELETE /models/{name}``, ``/models/{name}/invoke``, ``/predictions/{name}``; see
:mod:`.container`); ``GET /metrics`` (Prometheus);
``GET /mmeperf/metrics`` (the typed ServerMetrics as JSON) and ``GET /mmeperf/status``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import parse_qs, unquote

from mmeperf.endpoints.local.asgi import LifespanApp, Receive, Scope, Send
from mmeperf.endpoints.local.container import ContainerAPI, RegisterRequest
from mmeperf.endpoints.local.replies import Reply, method_not_allowed, mms_error, not_found, ping
from mmeperf.endpoints.local.service import MMEService
from mmeperf.errors import BodyReadTimeoutError, ClientDisconnectedError, PayloadTooLargeError

__all__ = ["MMEApp"]

log = logging.getLogger("mmeperf.serve")


_TARGET = b"x-amzn-sagemaker-target-model"
_CONTENT_TYPE = b"content-type"
_ACCEPT = b"accept"
_CONTENT_LENGTH = b"content-length"
_TRANSFER_ENCODING = b"transfer-encoding"
#: Set in the scope once the app has read a request's whole body.
_BODY_READ = "mmeperf.body_read"
_CLOSE = (b"connection", b"close")
#: Default time a client gets to send the rest of a body (``ServerConfig.body_read_timeout_s``).
BODY_READ_TIMEOUT_S = 30.0


def _query(scope: Scope) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)


def _segment(raw: bytes) -> str:
    return unquote(raw.decode("latin-1"))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class MMEApp(LifespanApp):
    """ASGI application serving one :class:`MMEService`."""

    def __init__(self, service: MMEService) -> None:
        super().__init__()
        self.service = service
        self.container = ContainerAPI(service)
        self._runtime_prefix = b"/endpoints/"
        self._endpoint_path = service.endpoint_path.encode("latin-1", "replace")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            try:
                reply = await self._http(scope, receive)
            except ClientDisconnectedError:
                return
            headers = reply.headers
            if _BODY_READ not in scope and _declares_body(scope):
                # The body was refused or never needed: close rather than read what is left of
                # it (bounded memory, and a slow sender cannot hold the connection after this).
                headers = [h for h in headers if h[0] != b"connection"]
                headers.append(_CLOSE)
            headers.append((b"content-length", str(len(reply.body)).encode()))
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            await send({"type": "http.response.body", "body": reply.body})
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _start(self) -> None:
        await self.service.start()

    async def _stop(self) -> None:
        await self.service.stop()

    async def _http(self, scope: Scope, receive: Receive) -> Reply:
        method: str = scope["method"]
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.split(b"?", 1)[0]
        service = self.service
        if method == "POST" and path.startswith(self._runtime_prefix) and path.endswith(b"/invocations"):
            return await self._invoke(scope, receive, path, runtime=True)
        too_large = self._declared_too_large(scope)
        if too_large is not None:  # every route, body read or not (413 as Netty answers it)
            service.count_rejected(413)
            return Reply(413, [], b"")
        if path == b"/ping":  # any method, as MMS
            return ping(self._ready)
        if path == b"/invocations":
            model_name = _query(scope).get("model_name")
            return await self._invoke(scope, receive, path, runtime=False,
                                      name=model_name[0] if model_name else None)
        if method == "GET":
            if path == b"/metrics":
                return Reply(200, [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")],
                             service.counters.prometheus_text(self.loop_monitor))
            if path == b"/mmeperf/metrics":
                return Reply(200, [(b"content-type", b"application/json")],
                             service.counters.snapshot().model_dump_json().encode())
            if path == b"/mmeperf/models":  # the repository's targets (bench's default targets)
                entries = await asyncio.get_running_loop().run_in_executor(None, service.repository.list)
                return Reply(200, [(b"content-type", b"application/json")],
                             json.dumps({"models": [e.target for e in entries]}).encode())
            if path == b"/mmeperf/status":
                return Reply(200, [(b"content-type", b"application/json")],
                             json.dumps({**service.status(), "loop": self.loop_monitor.status()}).encode())
        return await self._container(scope, receive, method, path)

    async def _container(self, scope: Scope, receive: Receive, method: str, path: bytes) -> Reply:
        """The MMS routes, split on ``/`` as MMS splits them (a name holding ``/`` is sent
        percent-encoded)."""
        segments = path.split(b"/")
        if path in (b"", b"/"):
            return method_not_allowed()
        api = self.container
        if len(segments) == 4 and segments[3] == b"invoke" and segments[1] == b"models":
            return await self._invoke(scope, receive, path, runtime=False, name=_segment(segments[2]))
        if len(segments) == 3 and segments[1] == b"predictions" and segments[2]:
            return await self._invoke(scope, receive, path, runtime=False, name=_segment(segments[2]))
        if segments[1:2] != [b"models"] or len(segments) > 3:
            return not_found()
        if len(segments) == 2 or not segments[2]:  # /models (and /models/, as Java's split)
            if method == "GET":
                return api.list_models(_query(scope))
            if method == "POST":
                try:
                    body = await self._body(scope, receive)
                except (PayloadTooLargeError, BodyReadTimeoutError) as exc:
                    return Reply(exc.http_status, [], b"")  # MMS: Netty's bare 413
                content_type = _header(scope, _CONTENT_TYPE)
                try:
                    request = RegisterRequest.parse(content_type, body, _query(scope))
                except ValueError as exc:
                    return mms_error(400, "BadRequestException", f"Invalid JSON body: {exc}")
                return await api.register(request)
            return method_not_allowed()
        name = _segment(segments[2])
        if method == "GET":
            return api.describe(name)
        if method == "PUT":
            return api.scale(name, _query(scope))
        if method == "DELETE":
            return await api.unregister(name)
        return method_not_allowed()

    async def _invoke(
        self, scope: Scope, receive: Receive, path: bytes, *, runtime: bool, name: str | None = None
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
            # Read the body under the same limit as every route (a body over it gets 413 and
            # the connection closes), so the connection stays usable, then answer as SageMaker.
            try:
                await self._body(scope, receive)
            except (PayloadTooLargeError, BodyReadTimeoutError) as exc:
                service.count_rejected(exc.http_status)
                return service.error_reply(exc, runtime=True)
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
            return await service.invoke(name, body, content_type=content_type,
                                        accept=accept, runtime=False, load=False)
        if not runtime and target is None:
            return mms_error(400, "BadRequestException", "Parameter model_name is required.")
        if accept == "*/*":
            accept = None
        return await service.invoke(target, body, content_type=content_type, accept=accept, runtime=runtime)

    def _declared_too_large(self, scope: Scope) -> int | None:
        """The declared Content-Length when it is over ``max_payload_bytes``, else None."""
        for key, value in scope["headers"]:
            if key == _CONTENT_LENGTH and value.isdigit() and int(value) > self.service.config.max_payload_bytes:
                return int(value)
        return None

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        """The request body, refusing more than ``max_payload_bytes`` (413) and slow senders.

        The limit holds for every route that reads a body; routes that do not read it answer
        with ``Connection: close`` (see __call__), so no body is ever buffered past the limit.
        A first body byte that never comes is the server protocol's timeout (see server.py).
        """
        config = self.service.config
        max_bytes = config.max_payload_bytes
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
            if len(body) > max_bytes:
                raise PayloadTooLargeError(f"Request body is over the limit of {max_bytes} bytes")
            scope[_BODY_READ] = True
            return body
        chunks = [body]
        size = len(body)
        timeout_s = config.body_read_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                while message.get("more_body"):
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise ClientDisconnectedError
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > max_bytes:
                        raise PayloadTooLargeError(
                            f"Request body is over the limit of {max_bytes} bytes"
                        )
                    chunks.append(chunk)
        except TimeoutError:
            counts = self.service.counters.connection_timeouts
            counts["body"] = counts.get("body", 0) + 1
            raise BodyReadTimeoutError(f"The request body was not received within {timeout_s:g} s") from None
        scope[_BODY_READ] = True
        return b"".join(chunks)


def _declares_body(scope: Scope) -> bool:
    """Whether the request announced a body (a non-zero Content-Length, or chunked)."""
    for key, value in scope["headers"]:
        if key == _CONTENT_LENGTH:
            return value.strip() not in (b"0", b"")
        if key == _TRANSFER_ENCODING:
            return True
    return False
