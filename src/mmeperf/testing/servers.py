"""A tiny SageMaker-runtime-shaped HTTP server that sleeps a known delay and logs what it did.

It is the ground truth for the load generator's own checks (``tests/load``) and for
``benchmarks/load_generator.py``: each request's handling time is logged (``GET /log``), a global
stall can be scheduled, and named models can be made to fail with 404 ValidationError.
Run it with ``python -m mmeperf.testing.servers --port 8080 --delay-ms 50:150``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mmeperf.protocol import HEADER_CACHE, HEADER_ERROR_TYPE, HEADER_TARGET_MODEL, CacheState

__all__ = ["TestServerApp", "main"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class TestServerApp:
    """ASGI app: ``POST /endpoints/{name}/invocations``, ``GET /log``, ``GET /stats``, ``GET /ping``."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        *,
        delay_ms: tuple[float, float] = (0.0, 0.0),
        seed: int = 0,
        missing_models: set[str] | None = None,
        stall_at_s: float | None = None,
        stall_for_s: float = 0.0,
        cache_header: bool = True,
    ) -> None:
        self.delay_ms = delay_ms
        self.rng = random.Random(seed)
        self.missing = missing_models or set()
        self.stall_at_s = stall_at_s
        self.stall_for_s = stall_for_s
        self.cache_header = cache_header
        self.first_request: float | None = None
        self.seen_models: set[str] = set()
        self.log: list[tuple[str, int, float, float]] = []  # model, status, requested_s, handled_s
        self.auth_headers = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path: str = scope["path"]
        if scope["method"] == "GET":
            if path == "/log":
                lines = "".join(f"{m},{s},{r:.6f},{h:.6f}\n" for m, s, r, h in self.log)
                await self._reply(send, 200, lines.encode(), "text/csv")
            elif path == "/stats":
                ok = sum(1 for _, s, _, _ in self.log if s == 200)
                doc = {"requests": len(self.log), "ok": ok, "failed": len(self.log) - ok, "auth_headers": self.auth_headers}
                await self._reply(send, 200, json.dumps(doc).encode(), "application/json")
            else:
                await self._reply(send, 200, b"ok", "text/plain")
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        start = time.perf_counter()
        now = time.time()
        if self.first_request is None:
            self.first_request = now
        if "authorization" in headers:
            self.auth_headers += 1
        model = headers.get(HEADER_TARGET_MODEL.lower(), "")
        if model in self.missing or not path.endswith("/invocations"):
            self.log.append((model, 404, 0.0, time.perf_counter() - start))
            error = json.dumps({"ErrorCode": "ValidationError", "message": f"Model {model!r} not found"}).encode()
            await self._reply(send, 404, error, "application/json", [(HEADER_ERROR_TYPE.encode(), b"ValidationError")])
            return
        requested = self.rng.uniform(*self.delay_ms) / 1000.0
        if self.stall_at_s is not None:
            stall_start = self.first_request + self.stall_at_s
            stall_end = stall_start + self.stall_for_s
            if stall_start <= now < stall_end:
                requested += stall_end - now
        if requested > 0:
            await asyncio.sleep(requested)
        extra: list[tuple[bytes, bytes]] = []
        if self.cache_header:
            state = CacheState.HIT if model in self.seen_models else CacheState.MISS
            extra.append((HEADER_CACHE.encode(), state.value.encode()))
        self.seen_models.add(model)
        handled = time.perf_counter() - start
        self.log.append((model, 200, requested, handled))
        await self._reply(send, 200, b"0.5\n", "text/csv", extra)

    @staticmethod
    async def _reply(
        send: Send, status: int, body: bytes, ctype: str, extra: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        headers = [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode()), *(extra or [])]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", default="0", help="fixed 'N' or uniform 'LO:HI' milliseconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--missing-models", default="", help="comma-separated models answered 404")
    parser.add_argument("--stall-at", type=float, default=None, help="seconds after the first request")
    parser.add_argument("--stall-for", type=float, default=0.0)
    args = parser.parse_args(argv)
    lo, _, hi = args.delay_ms.partition(":")
    app = TestServerApp(
        delay_ms=(float(lo), float(hi or lo)),
        seed=args.seed,
        missing_models={m for m in args.missing_models.split(",") if m},
        stall_at_s=args.stall_at,
        stall_for_s=args.stall_for,
    )
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False,
                http="httptools", loop="auto", backlog=4096)


if __name__ == "__main__":
    main()
