"""Run the local MME: bind, serve with uvicorn (uvloop + httptools), shut down gracefully.

``run(config)`` is what ``mmeperf serve`` and the ``LocalEndpoint`` subprocess call. The socket
is bound before serving so port 0 works; once the server accepts requests, the actual address
is written to ``ready_file`` (JSON) for the parent process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

from mmeperf.endpoints.local.app import MMEApp
from mmeperf.endpoints.local.config import ServerConfig
from mmeperf.endpoints.local.service import MMEService

__all__ = ["bind", "coalescing_protocol", "run"]


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


def coalescing_protocol() -> type[asyncio.Protocol] | str:
    """uvicorn's httptools protocol, writing each answer in one send (see _CoalescingTransport).

    Falls back to uvicorn's own choice ("auto") where httptools or that protocol class is
    missing: the optimisation leans on uvicorn internals and must never stop the server.
    """
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return "auto"

    class CoalescingHttpToolsProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(_CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

    return CoalescingHttpToolsProtocol


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
    try:
        import uvloop

        loop_name = "uvloop"
    except ImportError:  # Windows
        loop_name = "asyncio"
    uv_config = uvicorn.Config(
        app,
        loop=loop_name,
        http=coalescing_protocol(),
        lifespan="on",
        access_log=False,
        log_level=log_level,
        server_header=False,
        proxy_headers=False,  # no proxy in front: the client address needs no rewriting
        date_header=True,
        timeout_keep_alive=75,  # longer than SDK idle pools, so clients rarely meet closed sockets
        timeout_graceful_shutdown=max(1, round(config.graceful_shutdown_s)),
        backlog=2048,
    )
    server = uvicorn.Server(uv_config)
    # The CPU allowance (emulated vCPUs) holds this process and the workers it starts; it is
    # removed when serving ends, also on SIGTERM (see cpu.py).
    from mmeperf.endpoints.local.cpu import cpu_allowance

    mechanism, cpus, scale = config.cpu_request()
    allowance = cpu_allowance(mechanism, cpus, scale=scale)

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

    with allowance:
        if loop_name == "uvloop":
            import uvloop

            uvloop.run(main())
        else:
            asyncio.run(main())
