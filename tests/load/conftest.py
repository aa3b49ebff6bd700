"""Fixtures of the load tests: the ground-truth test server in its own process."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TestServer:
    """A running ``mmeperf.testing.servers`` and its log of what it handled."""

    __test__ = False

    url: str
    proc: subprocess.Popen[bytes]

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=10) as resp:
            return bytes(resp.read())

    def stats(self) -> dict[str, int]:
        return dict(json.loads(self.get("/stats")))

    def log(self) -> list[tuple[str, int, float, float]]:
        rows = []
        for line in self.get("/log").decode().splitlines():
            model, status, requested, handled = line.rsplit(",", 3)
            rows.append((model, int(status), float(requested), float(handled)))
        return rows


@pytest.fixture
def test_server() -> Iterator[Callable[..., TestServer]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> TestServer:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "mmeperf.testing.servers", "--port", str(port), *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        started.append(proc)
        server = TestServer(f"http://127.0.0.1:{port}", proc)
        deadline = time.monotonic() + 20
        while True:
            try:
                server.get("/ping")
                return server
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("test server did not start") from None
                time.sleep(0.1)

    yield start
    for proc in started:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
