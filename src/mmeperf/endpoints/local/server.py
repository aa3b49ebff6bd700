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

from mmeperf.endpoints.local.app import MMEApp
from mmeperf.endpoints.local.config import ServerConfig
from mmeperf.endpoints.local.service import MMEService

__all__ = ["bind", "run"]


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run(config: ServerConfig, *, ready_file: str | None = None, log_level: str = "warning") -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests get ``graceful_shutdown_s`` to finish."""
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
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level=log_level,
        server_header=False,
        date_header=True,
        timeout_keep_alive=75,  # longer than SDK idle pools, so clients rarely meet closed sockets
        timeout_graceful_shutdown=max(1, round(config.graceful_shutdown_s)),
        backlog=2048,
    )
    server = uvicorn.Server(uv_config)

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
