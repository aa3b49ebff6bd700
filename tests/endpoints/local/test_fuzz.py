"""Seeded fuzz of ``mmeperf serve`` over real HTTP (issue 16): >= 10,000 requests of random
methods, paths, headers, content types and bodies (malformed CSV, libsvm, JSON, NPY, huge
declared lengths) from a keep-alive pool of a few threads, while a probe process times ``/ping``.

Passes when no answer is a 5xx, no request hangs over 5 s, and the event loop was never blocked
by the server's own process for more than 100 ms: the server's loop-stall monitor
(``/mmeperf/status`` ``loop``, see :mod:`mmeperf.endpoints.local.loopstall`) splits how late its
loop woke into the loop thread's run-queue wait (schedstat: the host not running the server, on
this 2-core box the test's own client threads and probe) and the rest (work on the loop, or
another thread of the server holding the GIL); the strict bound is on that rest. A ``/ping``
round trip counts both, so the probe's p50 and max are printed and only its p99 is bounded,
loosely, as a sanity check.
"""

from __future__ import annotations

import http.client
import io
import json
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .conftest import Churn, csv_body

SEED = 16
REQUESTS = 10_000
THREADS = 4
HANG_S = 5.0
BLOCKED_S = 0.100
PING_P99_S = 0.100

pytestmark = pytest.mark.slow


def _npy(array: Any) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def _bodies(rng: random.Random, churn: Churn) -> list[tuple[str, bytes]]:
    good = churn.rows("CA", 3)
    return [
        ("text/csv", csv_body(good)),
        ("text/csv", b"1,2,3\n4,5"),
        ("text/csv", b",,,\n\n\n" * 50),
        ("text/csv", b"nan,inf,-inf," * 6),
        ("text/csv", b"1_0,2"),
        ("text/csv", bytes(rng.getrandbits(8) for _ in range(300))),
        ("text/csv", b"1\n" * 40_000),
        ("text/libsvm", b"1 0:1 3:2 16:5\n" * 200),
        ("text/libsvm", b"0:1 0:2"),
        ("text/libsvm", b"0:1 99999999999999999999:1"),
        ("text/libsvm", b"a:b c d:" * 10),
        ("text/libsvm", b"0:1\n" * 30_000),
        ("application/json", json.dumps(good.tolist()).encode()),
        ("application/json", b"[" * 1000 + b"]" * 1000),
        ("application/json", b'{"instances": [{"features": {"keys": [0, 5], "values": [1, 2], "shape": [17]}}]}'),
        ("application/json", b'{"features": {"keys": [0], "values": [1], "shape": [9999999999]}}'),
        ("application/json", b"[[true, false]]"),
        ("application/json", b'{"a": '),
        ("application/x-npy", _npy(good)),
        ("application/x-npy", _npy([["a", "b"]])),
        ("application/x-npy", b"\x93NUMPY\x01\x00" + bytes(20)),
        ("application/x-npy", _npy(np.zeros((2, 3, 4)))),
        ("image/png", b"\x89PNG"),
        ("", b""),
        ("text/csv; charset=utf-8", csv_body(good[:1])),
    ]


def _request(rng: random.Random, churn: Churn, bodies: list[tuple[str, bytes]]) -> tuple[str, str, bytes, dict[str, str]]:
    targets = [churn.target("CA"), churn.target("NY"), "m00", "../etc/passwd", "a" * 2000, "%00", "",
               "churn-xgb-CA.tar.gz/../x", "\u00e9.tar.gz"]
    paths = ["/endpoints/local-mme/invocations", "/endpoints/other/invocations", "/invocations",
             "/ping", "/models", "/models/x", "/models/x/invoke", "/predictions/x", "/metrics",
             "/mmeperf/status", "/mmeperf/metrics", "/", "//", "/models/%2e%2e", "/nope?x=1&&=",
             "/invocations?model_name=" + churn.target("CA")]
    method = rng.choice(["GET", "POST", "POST", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
    path = rng.choice(paths)
    content_type, body = rng.choice(bodies)
    headers: dict[str, str] = {}
    if content_type or rng.random() < 0.5:
        headers["Content-Type"] = content_type or rng.choice(["", "*/*", "text/csv;;;", "x" * 300])
    if rng.random() < 0.8:
        headers["X-Amzn-SageMaker-Target-Model"] = rng.choice(targets).encode("utf-8").decode("latin-1")
    if rng.random() < 0.2:
        headers["Accept"] = rng.choice(["*/*", "application/json", "text/csv", "image/png", ""])
    if path == "/models" and method == "POST" and rng.random() < 0.5:
        headers["Content-Type"] = "application/json"
        body = rng.choice([b'{"url": "churn-xgb-CA.tar.gz", "model_name": "x"}', b"[1]", b"{", b"{}"])
    return method, path, body, headers


_PROBE = """
import http.client, os, sys, time
port, out, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3]
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
times = []
while not os.path.exists(stop):
    t0 = time.perf_counter()
    conn.request("GET", "/ping")
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 200
    times.append(time.perf_counter() - t0)
    time.sleep(0.02)
open(out, "w").write("\\n".join(map(str, times)))
"""


class _Client:
    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def send(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> int:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HANG_S)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                resp.read()
                if resp.getheader("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return resp.status
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine) as exc:
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise AssertionError(f"{method} {path}: {exc!r}") from exc
        raise AssertionError("unreachable")


def _huge_declared(port: int, rng: random.Random) -> int:
    """A request declaring gigabytes and sending a few bytes: 413 at once, connection closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=HANG_S) as sock:
        path = rng.choice([b"/endpoints/local-mme/invocations", b"/x", b"/models", b"/ping"])
        sock.sendall(b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\nabc" % rng.randrange(2**31, 2**40))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


def test_fuzz_10000_requests_no_5xx_no_hang_loop_never_blocked(churn: Churn, tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from mmeperf.cli import main; main()", "serve", churn.url,
         "--port", "0", "--memory-budget", "4MiB", "--per-model-overhead", "1MiB",
         "--ready-file", str(ready)],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
        port = json.loads(ready.read_text())["port"]
        rng = random.Random(SEED)
        bodies = _bodies(rng, churn)
        plan = [_request(rng, churn, bodies) for _ in range(REQUESTS)]
        statuses: dict[int, int] = {}
        slowest = [0.0]
        errors: list[str] = []
        lock = threading.Lock()

        def work(index: int) -> None:
            client = _Client(port)
            local_rng = random.Random(SEED * 1000 + index)
            try:
                for i in range(index, REQUESTS, THREADS):
                    t0 = time.perf_counter()
                    if i % 500 == 0:
                        status = _huge_declared(port, local_rng)
                    else:
                        status = client.send(*plan[i])
                    took = time.perf_counter() - t0
                    with lock:
                        statuses[status] = statuses.get(status, 0) + 1
                        slowest[0] = max(slowest[0], took)
            except Exception as exc:  # a hang (socket timeout) or a broken connection
                errors.append(repr(exc))

        # The probe is its own process: this one's client threads must not delay its timing.
        ping_log = tmp_path / "pings.txt"
        prober = subprocess.Popen([sys.executable, "-c", _PROBE, str(port), str(ping_log), str(tmp_path / "stop")])
        started = time.perf_counter()
        workers = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=300)
        elapsed = time.perf_counter() - started
        (tmp_path / "stop").touch()
        assert prober.wait(timeout=30) == 0
        pings = sorted(float(x) for x in ping_log.read_text().split())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/mmeperf/status", timeout=HANG_S) as answer:
            loop = json.loads(answer.read())["loop"]
        worst = loop["worst"] or {}
        print(f"fuzz: {sum(statuses.values())} requests in {elapsed:.1f} s, statuses {sorted(statuses.items())}, "
              f"slowest {slowest[0] * 1000:.0f} ms; /ping x{len(pings)}: p50 {pings[len(pings) // 2] * 1000:.1f} ms, "
              f"max {pings[-1] * 1000:.1f} ms; loop x{loop['wakes']} wakes (schedstat {loop['schedstat']}): "
              f"max blocked {loop['max_blocked_ms']:.1f} ms, max run-queue wait {loop['max_runqueue_ms']:.1f} ms, "
              f"max late {loop['max_late_ms']:.1f} ms; worst {worst}; gc frozen {loop['gc_frozen_objects']}, "
              f"collections {loop['gc_collections']}")
        assert not errors, errors[:5]
        assert sum(statuses.values()) == REQUESTS
        assert not [s for s in statuses if s >= 500], statuses
        assert slowest[0] < HANG_S
        # The bound, on what the server is responsible for: its loop never blocked by
        # its own process for more than 100 ms (the host's run-queue wait is reported apart).
        assert loop["wakes"] > 0 and loop["max_blocked_ms"] < BLOCKED_S * 1000, loop
        assert loop["gc_frozen_objects"] > 0  # the startup heap is out of the collector's walks
        # A /ping also waits for the host (the test's own threads share the 2 cores): sanity only.
        assert pings and pings[int(len(pings) * 0.99)] < PING_P99_S, pings[-5:]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert proc.stderr is not None and b"Traceback" not in proc.stderr.read()
