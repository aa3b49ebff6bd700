"""Are the client's percentiles true? The real Benchmark against a reference server that logs its own truth.

The reference server (this file, ``--serve``; a thread per connection on 127.0.0.1, its own
process) holds each request for a drawn delay and logs, per request, the time from the kernel's
receive stamp of the request's last byte to its response handed to the kernel: that is the
truth, the server's own scheduling delays included. Two servers:

* ``bimodal``: 95% of requests ~5 ms (uniform 4-6 ms), 5% ~200 ms (uniform 190-210 ms);
* ``constant``: every request 20 ms.

Each is driven by :class:`mmeperf.load.Benchmark` (closed loop, no think time) in one Locust
process and with two workers, timed as mmeperf times by default (to the kernel's receive stamp
of the response, :mod:`mmeperf.load.rxstamp`) and, for comparison in the same run, in user space
(``MMEPERF_RX_STAMPS=0``: the timer stops when the load process reads the response). The client
sees the server's time plus a constant overhead (the two loopback send paths), estimated as the
median difference (client p50 - server p50). For
p50/p90/p95/p99/max the table prints the client's value, the server's value plus that overhead,
the difference, and whether it is within max(1%, 0.2 ms). One run; ratios, not a timed assertion.

Usage: python benchmarks/measurement_truth.py [--duration 20] [--users 16]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

from mmeperf.load import rxstamp

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 100.0)


# --- the reference server -------------------------------------------------------------------


class _Truth:
    """A minimal HTTP/1.1 keep-alive server, a thread per connection: POST answers after a drawn delay.

    The truth of a request is the time from the kernel's receive stamp of its last byte
    (``SO_TIMESTAMPNS``, :mod:`mmeperf.load.rxstamp`) to the moment its response is handed to the
    kernel: what the request spent in this server, its own scheduling delays included. The
    client is timed the same way (its send handed to the kernel, the response's kernel stamp),
    so the two differ only by the two kernel send paths on loopback.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.rng = random.Random(7)
        self.lock = threading.Lock()
        self.log: list[int] = []
        self.turnaround: list[tuple[int, int]] = []  # (µs from our last response to the next request, ms into the second)

    def _delay(self) -> float:
        if self.mode == "constant":
            return 0.020
        with self.lock:
            if self.rng.random() < 0.05:
                return self.rng.uniform(0.190, 0.210)
            return self.rng.uniform(0.004, 0.006)

    def _read(self, conn: socket.socket, buf: bytes) -> tuple[str, bytes, float | None] | None:
        """One whole request (head, the bytes after it, its last byte's kernel stamp); None at EOF."""
        stamp: float | None = None
        while True:
            head_end = buf.find(b"\r\n\r\n")
            if head_end >= 0:
                head = buf[:head_end].decode("latin-1")
                length = 0
                for line in head.split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                end = head_end + 4 + length
                if len(buf) >= end:
                    return head, buf[end:], stamp
            data, got = rxstamp.recv_stamped(conn, 65536)
            if not data:
                return None
            buf += data
            stamp = got if got is not None else time.time()

    def connection(self, conn: socket.socket) -> None:
        rxstamp.enable(conn)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf, last_write = b"", None
        with conn:
            while (got := self._read(conn, buf)) is not None:
                head, buf, arrived = got
                arrived = arrived if arrived is not None else time.time()
                method, path = head.split(" ", 2)[:2]
                post = method == "POST"
                if post and last_write is not None:
                    with self.lock:
                        self.turnaround.append((round((arrived - last_write) * 1e6), int(arrived % 1.0 * 1000)))
                if path == "/log":
                    with self.lock:
                        body = "\n".join(map(str, self.log)).encode()
                elif path == "/turnaround":
                    with self.lock:
                        body = "\n".join(f"{g},{f}" for g, f in self.turnaround).encode()
                elif not post:
                    body = b"ok"
                else:
                    time.sleep(self._delay())
                    body = b"0.5\n"
                response = (
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nx-mmeperf-cache: hit\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
                sent = time.time()
                if post:
                    with self.lock:
                        self.log.append(round((sent - arrived) * 1e6))
                conn.sendall(response)
                last_write = sent


def serve(port: int, mode: str) -> None:
    truth = _Truth(mode)
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(1024)
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=truth.connection, args=(conn,), daemon=True).start()


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


def _one(mode: str, workers: int, users: int, duration: float, out: Path, stamps: str) -> list[tuple[str, float, float, float, bool]]:
    from mmeperf.load import Benchmark, LoadProfile, Traffic
    from mmeperf.load.hist import Histogram

    proc, url = _start_server(mode)
    try:
        traffic = Traffic(models=[f"m{i}" for i in range(8)], payloads=["1,2,3"])
        profile = LoadProfile.constant(
            users=users, spawn_rate=1000, duration=duration, traffic=traffic, wait={"min": 0, "max": 0}, seed=1
        )
        os.environ["MMEPERF_RX_STAMPS"] = "1" if stamps == "kernel" else "0"
        folder = out / f"{mode}-{workers}-{stamps}"
        result = Benchmark(url, profile, workers=workers, sample_metrics=False).run(folder)
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
    lag = json.loads((folder / "run.json").read_text()).get("client_lag")
    lag_text = (f"; client lag (response here, not yet read; taken out) p50/p99/max "
                f"{lag['p50_ms']:.3f}/{lag['p99_ms']:.3f}/{lag['max_ms']:.3f} ms") if lag else ""
    print(f"  {mode:8s} workers={workers} timed {stamps:6s}: {client.total} requests, {result.rps or 0:.0f} req/s, "
          f"client overhead (median difference) {overhead:.3f} ms{lag_text}")
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
    parser.add_argument("--stamps", default="kernel,user", help="timing: kernel (mmeperf's default), user, or both")
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.mode)
        return
    out = Path(tempfile.mkdtemp(prefix="mmeperf-truth-"))
    table: list[tuple[str, int, str, str, float, float, float, bool]] = []
    try:
        for stamps in args.stamps.split(","):
            for mode in args.modes.split(","):
                for workers in (int(w) for w in args.workers.split(",")):
                    for name, measured, expected, overhead, ok in _one(mode, workers, args.users, args.duration, out, stamps):
                        table.append((stamps, mode, workers, name, measured, expected, overhead, ok))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    for stamps in args.stamps.split(","):
        rows = [row for row in table if row[0] == stamps]
        print(f"\ntimed to {'the kernel receive stamp (mmeperf default)' if stamps == 'kernel' else 'the read in user space'}:")
        print(f"{'server':9s} {'workers':>7s} {'pct':>5s} {'client ms':>10s} {'truth+ovh ms':>13s} {'diff ms':>8s} "
              f"{'diff %':>7s}  within max(1%, 0.2 ms)")
        for _stamps, mode, workers, name, measured, expected, _overhead, ok in rows:
            diff = measured - expected
            print(f"{mode:9s} {workers:7d} {name:>5s} {measured:10.3f} {expected:13.3f} {diff:8.3f} "
                  f"{100 * diff / expected if expected else 0:7.2f}  {'yes' if ok else 'NO'}")
        within = sum(1 for row in rows if row[-1] and row[3] != "max")
        total = sum(1 for row in rows if row[3] != "max")
        print(f"p50-p99 within tolerance: {within}/{total}; max (one sample): "
              f"{sum(1 for row in rows if row[-1] and row[3] == 'max')}/{total // 4}")

if __name__ == "__main__":
    main()
