"""Are the client's percentiles true? The real Benchmark against a reference server that logs its own truth.

The reference server (this file, ``--serve``; asyncio on 127.0.0.1, its own process) holds each
request for a drawn delay and logs, per request, the time from the request fully read to the
response written: that is the truth. Two servers:

* ``bimodal``: 95% of requests ~5 ms (uniform 4-6 ms), 5% ~200 ms (uniform 190-210 ms);
* ``constant``: every request 20 ms.

Each is driven by :class:`mmeperf.load.Benchmark` (closed loop, no think time) in one Locust
process and with two workers. The client sees the server's time plus a constant overhead
(loopback, HTTP parsing), estimated as the median difference (client p50 - server p50). For
p50/p90/p95/p99/max the table prints the client's value, the server's value plus that overhead,
the difference, and whether it is within max(1%, 0.2 ms). One run; ratios, not a timed assertion.

Usage: python benchmarks/measurement_truth.py [--duration 20] [--users 16]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 100.0)


# --- the reference server -------------------------------------------------------------------


class _Truth(asyncio.Protocol):
    """A minimal HTTP/1.1 keep-alive server: POST answers after a drawn delay, GET /log the truth."""

    def __init__(self, mode: str, rng: random.Random, log: list[int], turnaround: list[tuple[int, int]]) -> None:
        self.mode = mode
        self.rng = rng
        self.log = log
        self.turnaround = turnaround  # (µs from our last response to this request, ms into the second)
        self.last_write: float | None = None
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.task = asyncio.get_running_loop().create_task(self._serve())

    def connection_lost(self, exc: Exception | None) -> None:
        if self.task is not None:
            self.task.cancel()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buf[:head_end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            end = head_end + 4 + length
            if len(self.buf) < end:
                return
            self.buf = self.buf[end:]
            self.queue.put_nowait(head.split(" ", 2)[0].encode() + b" " + head.split(" ", 2)[1].encode())

    def _delay(self) -> float:
        if self.mode == "constant":
            return 0.020
        if self.rng.random() < 0.05:
            return self.rng.uniform(0.190, 0.210)
        return self.rng.uniform(0.004, 0.006)

    async def _serve(self) -> None:
        assert self.transport is not None
        while True:
            request = await self.queue.get()
            start = time.perf_counter()
            if not request.startswith(b"GET") and self.last_write is not None:
                self.turnaround.append((round((start - self.last_write) * 1e6), int(time.time() % 1.0 * 1000)))
            if request.startswith(b"GET /log"):
                body = "\n".join(map(str, self.log)).encode()
            elif request.startswith(b"GET /turnaround"):
                body = "\n".join(f"{g},{f}" for g, f in self.turnaround).encode()
            elif request.startswith(b"GET"):
                body = b"ok"
            else:
                await asyncio.sleep(self._delay())
                body = b"0.5\n"
            head = (
                b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nx-mmeperf-cache: hit\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
            )
            if not request.startswith(b"GET"):
                self.log.append(round((time.perf_counter() - start) * 1e6))
            self.transport.write(head + body)
            self.last_write = time.perf_counter()


def serve(port: int, mode: str) -> None:
    async def main() -> None:
        log: list[int] = []
        turnaround: list[tuple[int, int]] = []
        rng = random.Random(7)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: _Truth(mode, rng, log, turnaround), "127.0.0.1", port, backlog=1024
        )
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# --- the comparison -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return bytes(resp.read())


def _start_server(mode: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--mode", mode])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            _get(url + "/ping")
            return proc, url
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("reference server did not start") from None
            time.sleep(0.1)


def _one(mode: str, workers: int, users: int, duration: float, out: Path) -> list[tuple[str, float, float, float, bool]]:
    from mmeperf.load import Benchmark, LoadProfile, Traffic
    from mmeperf.load.hist import Histogram

    proc, url = _start_server(mode)
    try:
        traffic = Traffic(models=[f"m{i}" for i in range(8)], payloads=["1,2,3"])
        profile = LoadProfile.constant(
            users=users, spawn_rate=1000, duration=duration, traffic=traffic, wait={"min": 0, "max": 0}, seed=1
        )
        result = Benchmark(url, profile, workers=workers, sample_metrics=False).run(out / f"{mode}-{workers}")
        truth = np.array([int(x) for x in _get(url + "/log").split()], dtype=np.int64)
        turn = np.array([[int(v) for v in line.split(b",")] for line in _get(url + "/turnaround").split()])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    hists = result.histograms()["stages"]
    client = Histogram()
    for hist in hists.values():
        client.merge(hist)
    server = Histogram()
    server.record(truth)
    got = client.percentiles_ms(PERCENTILES)
    want = server.percentiles_ms(PERCENTILES)
    if client.total != server.total:
        print(f"  note: client counted {client.total} requests, server logged {server.total}")
    overhead = float(got[50.0] or 0) - float(want[50.0] or 0)
    rows = []
    for p in PERCENTILES:
        measured = float(got[p] or 0.0)
        expected = float(want[p] or 0.0) + overhead
        ok = abs(measured - expected) <= max(0.01 * expected, 0.2)
        rows.append(("max" if p == 100 else f"p{p:g}", measured, expected, overhead, ok))
    print(f"  {mode:8s} workers={workers}: {client.total} requests, {result.rps or 0:.0f} req/s, "
          f"client overhead (median difference) {overhead:.3f} ms")
    # The client's turnaround (server's view: from a response written to the next request on
    # that connection), in the first 30 ms of each wall-clock second vs the rest: a
    # once-a-second pause in the load process shows as a longer turnaround at the second's start.
    if len(turn):
        head, rest = turn[turn[:, 1] < 30, 0] / 1000.0, turn[turn[:, 1] >= 30, 0] / 1000.0
        if len(head) and len(rest):
            print(f"    client turnaround p50/p99 (ms): first 30 ms of each second "
                  f"{np.percentile(head, 50):.3f}/{np.percentile(head, 99):.3f}, rest "
                  f"{np.percentile(rest, 50):.3f}/{np.percentile(rest, 99):.3f}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="bimodal", help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--modes", default="bimodal,constant")
    parser.add_argument("--workers", default="0,2", help="comma-separated worker counts (0: one process)")
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.mode)
        return
    out = Path(tempfile.mkdtemp(prefix="mmeperf-truth-"))
    table: list[tuple[str, int, str, float, float, float, bool]] = []
    try:
        for mode in args.modes.split(","):
            for workers in (int(w) for w in args.workers.split(",")):
                for name, measured, expected, overhead, ok in _one(mode, workers, args.users, args.duration, out):
                    table.append((mode, workers, name, measured, expected, overhead, ok))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print()
    print(f"{'server':9s} {'workers':>7s} {'pct':>5s} {'client ms':>10s} {'truth+ovh ms':>13s} {'diff ms':>8s} "
          f"{'diff %':>7s}  within max(1%, 0.2 ms)")
    for mode, workers, name, measured, expected, _overhead, ok in table:
        diff = measured - expected
        print(f"{mode:9s} {workers:7d} {name:>5s} {measured:10.3f} {expected:13.3f} {diff:8.3f} "
              f"{100 * diff / expected if expected else 0:7.2f}  {'yes' if ok else 'NO'}")
    within = sum(1 for row in table if row[-1] and row[2] != "max")
    total = sum(1 for row in table if row[2] != "max")
    print(f"\np50-p99 within tolerance: {within}/{total}; max (one sample, shown for the pause it reveals): "
          f"{sum(1 for row in table if row[-1] and row[2] == 'max')}/{total // 4}")


if __name__ == "__main__":
    main()
