"""Run the local MME: bind, serve with uvicorn (uvloop + httptools), shut down gracefully.

``run(config)`` is what ``mmeperf serve`` and the ``LocalEndpoint`` subprocess call. The socket
is bound before serving so port 0 works; once the server accepts requests, the actual address
is written to ``ready_file`` (JSON) for the parent process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmeperf.endpoints.local.app import MMEApp
from mmeperf.endpoints.local.config import ServerConfig
from mmeperf.endpoints.local.service import MMEService

__all__ = ["Timeouts", "bind", "coalescing_protocol", "event_loop_name", "run", "serve_on"]


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class _CoalescingTransport:
    """A transport whose writes made in one event-loop step leave in one send.

    uvicorn writes a response's status line and headers, then its body, as two writes: two
    send() system calls and two TCP segments per answer. Here a write is held until the next
    write (joined, sent at once) or the end of the loop step (sent alone); close, EOF and abort
    send what is held first. Everything else goes to the real transport.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        # Called for every request: bound once here rather than found through __getattr__.
        self.is_closing = transport.is_closing
        self.get_extra_info = transport.get_extra_info
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is None:
            self._held = bytes(data)
            self._loop.call_soon(self._flush)
        else:
            self._held = None
            self._transport.write(held + bytes(data))

    def _flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def __getattr__(self, name: str) -> Any:  # get_extra_info, pause_reading, is_closing, ...
        return getattr(self._transport, name)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Connection timeouts, seconds (see ServerConfig), and where to count them."""

    header_s: float = 30.0
    body_s: float = 30.0
    count: Callable[[str], None] = lambda kind: None


def coalescing_protocol(timeouts: Timeouts | None = None) -> type[asyncio.Protocol] | str:
    """uvicorn's httptools protocol, writing each answer in one send (see _CoalescingTransport),
    with timeouts for headers, the first body byte and the whole body, and for a connection
    idle before its first request (uvicorn only times out idle connections after a response).

    Timeouts cost the hot path a clock read per request: one sweep a second per server checks
    every connection, instead of a timer per request. A request whose headers are late gets
    uvicorn's 400 and is closed; one whose body is late gets a 400 ValidationError (408 on the
    container API) and is closed; the app's receive then reports a disconnect.

    Falls back to uvicorn's own choice ("auto") where httptools or that protocol class is
    missing: the optimisation leans on uvicorn internals and must never stop the server.
    """
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return "auto"
    limits = timeouts or Timeouts()
    live: set[CoalescingHttpToolsProtocol] = set()
    sweeper: list[asyncio.TimerHandle] = []
    interval = max(min(limits.header_s, limits.body_s) / 4, 0.05)
    interval = min(interval, 1.0)

    def sweep(loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for protocol in list(live):
            protocol._check_timeouts(now)
        sweeper[:] = [loop.call_later(interval, sweep, loop)] if live else []

    class CoalescingHttpToolsProtocol(HttpToolsProtocol):
        _began: float | None = None  # when the current request's first byte came
        _headers_at: float | None = None  # when its headers completed, while its body is awaited
        _body_seen = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(_CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
            # Idle before a first request: closed like a connection idle after a response.
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )
            live.add(self)
            if not sweeper:
                sweeper.append(self.loop.call_later(interval, sweep, self.loop))

        def connection_lost(self, exc: Exception | None) -> None:
            live.discard(self)
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            self._began = self.loop.time()
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._began = None
            self._headers_at = self.loop.time()
            self._body_seen = False
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            self._body_seen = True
            super().on_body(body)

        def on_message_complete(self) -> None:
            self._headers_at = None
            super().on_message_complete()

        def timeout_keep_alive_handler(self) -> None:
            if not self.transport.is_closing():
                limits.count("idle")
            super().timeout_keep_alive_handler()

        def _check_timeouts(self, now: float) -> None:
            if self.transport.is_closing():
                return
            if self._began is not None and now - self._began > limits.header_s:
                self._began = None
                limits.count("header")
                self.send_400_response(f"Request headers not received within {limits.header_s:g} s")
                return
            headers_at = self._headers_at
            if headers_at is None or now - headers_at <= limits.body_s:
                return
            cycle = self.cycle
            self._headers_at = None
            if cycle is None or cycle.response_complete:
                return  # answered already (body not needed): uvicorn's keep-alive timer applies
            limits.count("body" if self._body_seen else "first_byte")
            if not cycle.response_started:
                self.transport.write(_body_timeout_response(self.scope.get("path", ""), limits.body_s))
            cycle.disconnected = True  # the app's receive now reports a disconnect
            cycle.message_event.set()
            self.transport.close()

    return CoalescingHttpToolsProtocol


def _body_timeout_response(path: str, timeout_s: float) -> bytes:
    """The answer to a request whose body did not arrive in time: as the app answers a slow
    body (400 ValidationError on the runtime route, 408 on the container API), then closed."""
    runtime = path.startswith("/endpoints/")
    message = f"The request body was not received within {timeout_s:g} s"
    if runtime:
        body = json.dumps({"Message": message}).encode()
        head = b"HTTP/1.1 400 Bad Request\r\nx-amzn-errortype: ValidationError\r\n"
    else:
        body = json.dumps({"code": 408, "type": "BodyReadTimeoutError", "message": message}).encode()
        head = b"HTTP/1.1 408 Request Timeout\r\n"
    return (head + b"content-type: application/json\r\nconnection: close\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


def _graceful_server(base: type[Any]) -> type[Any]:
    """uvicorn's Server, exiting normally after a graceful SIGTERM/SIGINT.

    uvicorn re-raises the signal it caught once it has shut down, so the process died of it
    (exit -15) although everything finished; a graceful stop is a success (exit 0) here.
    """

    class GracefulServer(base):  # type: ignore[misc, valid-type]
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                try:
                    yield
                finally:
                    self._captured_signals.clear()

    return GracefulServer


def run(config: ServerConfig, *, ready_file: str | None = None, log_level: str = "warning") -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests get ``graceful_shutdown_s`` to finish."""
    # Before any framework loads OpenMP: idle OpenMP workers sleep instead of spinning. Models
    # predict single-threaded here; OpenMP teams only appear while loading (XGBoost parses in
    # parallel), and their default spin-wait (up to milliseconds after every load, per loader
    # thread) burns the cores that requests need. An explicit setting in the environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import uvicorn

    config.check()
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sock = bind(config.host, config.port)
    app = MMEApp(MMEService(config))
    app.freeze_startup_heap = True  # this process is the server's own
    loop_name = event_loop_name()
    counters = app.service.counters

    def count_timeout(kind: str) -> None:
        counters.connection_timeouts[kind] = counters.connection_timeouts.get(kind, 0) + 1

    protocol = coalescing_protocol(Timeouts(
        header_s=config.header_read_timeout_s, body_s=config.body_read_timeout_s, count=count_timeout,
    ))
    uv_config = uvicorn.Config(
        app,
        loop=loop_name,
        http=protocol,
        lifespan="on",
        access_log=False,
        log_level=log_level,
        server_header=False,
        proxy_headers=False,  # no proxy in front: the client address needs no rewriting
        date_header=True,
        timeout_keep_alive=config.keep_alive_timeout_s,  # type: ignore[arg-type]  # uvicorn takes a float
        timeout_graceful_shutdown=max(1, round(config.graceful_shutdown_s)),
        backlog=2048,
    )
    server = _graceful_server(uvicorn.Server)(uv_config)
    # The CPU allowance (emulated vCPUs) holds this process and the workers it starts; it is
    # removed when serving ends, also on SIGTERM (see cpu.py).
    from mmeperf.endpoints.local.cpu import cpu_allowance

    mechanism, cpus, scale = config.cpu_request()
    allowance = cpu_allowance(mechanism, cpus, scale=scale)

    with allowance:
        serve_on(server, sock, ready_file, loop_name)


def event_loop_name() -> str:
    """uvicorn's loop: uvloop where it is installed (not on Windows), else asyncio's."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def serve_on(server: Any, sock: socket.socket, ready_file: str | None, loop_name: str) -> None:
    """Run a ``uvicorn.Server`` on ``sock`` until it stops; once it listens, write ``ready_file``
    (host, port, pid) atomically; exit 3 if it never started."""

    async def main() -> None:
        serving = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started and not serving.done():
            await asyncio.sleep(0.01)
        if server.started and ready_file:
            host, port = sock.getsockname()[:2]
            tmp = Path(ready_file + ".tmp")
            tmp.write_text(json.dumps({"host": host, "port": port, "pid": os.getpid()}))
            tmp.replace(ready_file)  # atomic: the parent never reads half a file
        await serving
        if not server.started:
            raise SystemExit(3)

    if loop_name == "uvloop":
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())
