"""Hardening of the local MME server, one test per defect an independent soak/fault run found
(issue 16): every request's memory bounded before it is read, loads bounded by the budget, the
507 decided before anything is unloaded, connection timeouts, deep JSON, a cache folder removed
under load, hidden cache paths, graceful SIGTERM, protocol-0 pickles.

Each test runs the real server process (``python -m mmeperf.endpoints.local``, what ``mmeperf
serve`` and LocalEndpoint run) on 127.0.0.1 and measures its RSS with psutil by PID.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from mmeperf.backends.xgboost import EXTRA_TYPES_ENV
from mmeperf.endpoints.local.config import ServerConfig

from .conftest import Churn, csv_body

MiB = 2**20
#: Bounds asserted below (the numbers before the fix are in the issue: +600 MB for one 300 MB
#: body to a wrong endpoint, +519 MB for a 6 MiB CSV of 3.1M rows, +2.2 GB for a 1 GiB file
#: in a 1 MB archive against an 11 MiB budget).
RSS_BOUND_REFUSED = 32 * MiB
RSS_BOUND_DECODE = 128 * MiB
RSS_BOUND_BOMB = 64 * MiB


class Server:
    """One server process on a free loopback port."""

    def __init__(self, tmp: Path, **options: Any) -> None:
        config = ServerConfig(port=0, **options)
        ready = tmp / f"ready-{time.monotonic_ns()}.json"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mmeperf.endpoints.local", "--config", config.model_dump_json(),
             "--ready-file", str(ready)],
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while not ready.exists():
            if self.proc.poll() is not None:
                raise AssertionError(self.proc.stderr.read().decode() if self.proc.stderr else "")
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.05)
        address = json.loads(ready.read_text())
        self.port: int = address["port"]
        self.ps = psutil.Process(address["pid"])

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)

    def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
                timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def invoke(self, target: str, body: bytes, content_type: str = "text/csv") -> tuple[int, dict[str, Any]]:
        status, _, data = self.request("POST", "/endpoints/local-mme/invocations", body,
                                       {"Content-Type": content_type, "X-Amzn-SageMaker-Target-Model": target})
        try:
            return status, json.loads(data)
        except ValueError:
            return status, {"body": data}

    def metrics(self) -> dict[str, Any]:
        return json.loads(self.request("GET", "/mmeperf/metrics")[2])

    def prometheus(self) -> str:
        return self.request("GET", "/metrics")[2].decode()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    servers: list[Server] = []

    def start(**options: Any) -> Server:
        server = Server(tmp_path, **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(timeout=30)


def _read_response(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (bounded by the socket's timeout)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return data
        if not chunk:
            return data
        data += chunk


# --- 1. every request's memory bounded before it is read ---------------------------------------


def test_a_huge_body_to_a_wrong_endpoint_is_refused_without_buffering(churn: Churn, serve: Any) -> None:
    srv = serve(repository=churn.url)
    before = srv.rss()
    # Declared 300 MB: 413 from the header, the connection closed, nothing read.
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as sock:
        sock.sendall(b"POST /endpoints/other/invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
                     b"Content-Length: 300000000\r\n\r\n" + b"1," * 500_000)
        answer = _read_response(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # Chunked, no length: refused once the limit is crossed while streaming, then closed.
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as sock:
        sock.sendall(b"POST /endpoints/other/invocations HTTP/1.1\r\nHost: x\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n" % MiB + b"1" * MiB + b"\r\n"
        try:
            for _ in range(40):  # 40 MiB offered against the 6 MiB limit
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = _read_response(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # Other routes that never read a body close instead of draining it.
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as sock:
        sock.sendall(b"POST /no/such/route HTTP/1.1\r\nHost: x\r\nContent-Length: 300000000\r\n\r\n")
        answer = _read_response(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    growth = srv.rss() - before
    print(f"RSS growth after 300 MB declared + 40 MiB chunked to wrong routes: {growth / MiB:.1f} MiB")
    assert growth < RSS_BOUND_REFUSED
    assert srv.request("GET", "/ping")[0] == 200


def test_a_6mib_csv_of_3m_rows_is_decoded_off_the_loop_in_bounded_memory(churn: Churn, serve: Any) -> None:
    srv = serve(repository=churn.url)
    target = churn.target("CA")
    assert srv.invoke(target, csv_body(churn.rows("CA", 1)))[0] == 200
    body = (b"1\n" * (3 * MiB))[: 6 * MiB - 1]  # 3.1M one-value rows, just under the 6 MiB limit
    before = srv.rss()
    status, doc = srv.invoke(target, body)
    growth = srv.rss() - before
    rows = body.count(b"\n") + 1
    print(f"RSS growth for one 6 MiB CSV of {rows} rows: {growth / MiB:.1f} MiB")
    # The churn models take 17 columns and short rows are padded as missing (the container's
    # contract): 3.1M rows widened to 17 exceed the cell budget, a 400 after a full parse.
    assert status == 424 and doc["OriginalStatusCode"] == 400 and "expands to at most" in doc["Message"]
    assert growth < RSS_BOUND_DECODE
    libsvm = b"\n".join([b"0:1 3:2.5 16:1"] * 400_000)[: 6 * MiB - 1].rsplit(b"\n", 1)[0]
    status, _ = srv.invoke(target, libsvm, "text/libsvm")
    assert status == 200


def test_json_nested_1000_deep_is_a_4xx(churn: Churn, serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The container refuses JSON requests (415); the server reads them with the extra types on.
    monkeypatch.setenv(EXTRA_TYPES_ENV, "1")
    srv = serve(repository=churn.url)
    deep = b"[" * 1000 + b"]" * 1000
    status, doc = srv.invoke(churn.target("CA"), deep, "application/json")
    assert status == 424 and doc["OriginalStatusCode"] == 400 and "levels deep" in doc["Message"]
    status, _, body = srv.request("POST", "/models", b'{"url":' * 1000 + b"1" + b"}" * 1000,
                                  {"Content-Type": "application/json"})
    assert status == 400 and b"levels deep" in body
    assert srv.metrics()["invocation_5xx_errors"] == 0


# --- 2. loads bounded by the budget -------------------------------------------------------------


def _tar_gz(path: Path, files: dict[str, bytes | int]) -> None:
    """A tar.gz whose members are bytes, or ints: that many zero bytes (streamed, never held)."""

    class Zeros(io.RawIOBase):
        def __init__(self, n: int) -> None:
            self.left = n

        def readable(self) -> bool:
            return True

        def readinto(self, b: Any) -> int:
            n = min(len(b), self.left)
            b[:n] = bytes(n)
            self.left -= n
            return n

    with tarfile.open(path, "w:gz", compresslevel=9) as tf:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            if isinstance(content, int):
                info.size = content
                tf.addfile(info, io.BufferedReader(Zeros(content)))
            else:
                info.size = len(content)
                tf.addfile(info, io.BytesIO(content))


def test_a_gzip_bomb_is_refused_before_it_inflates(tmp_path: Path, serve: Any) -> None:
    repo = tmp_path / "hostile"
    repo.mkdir()
    _tar_gz(repo / "bomb.tar.gz", {"xgboost-model": 2**30})  # 1 GiB of zeros in ~1 MB
    assert (repo / "bomb.tar.gz").stat().st_size < 2 * MiB
    cache = tmp_path / "cache"
    cache.mkdir()
    srv = serve(repository=str(repo), memory_budget_bytes=11 * MiB, cache_dir=str(cache))
    before = srv.rss()
    status, doc = srv.invoke("bomb.tar.gz", b"1,2")
    growth = srv.rss() - before
    print(f"RSS growth for a 1 GiB file in a 1 MB archive, 11 MiB budget: {growth / MiB:.1f} MiB")
    assert status == 424 and doc["OriginalStatusCode"] == 507, doc
    assert "could ever hold" in doc["Message"] and str(cache) not in doc["Message"]
    assert growth < RSS_BOUND_BOMB
    on_disk = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
    assert on_disk <= 11 * MiB  # stopped at the budget (and removed again), not at 32 GiB


# --- 3. the 507 decided before anything is unloaded ---------------------------------------------


def _big_model(path: Path) -> int:
    """A tar.gz of an XGBoost model with many trees; its raw size (what the booster holds)."""
    import xgboost

    rng = np.random.default_rng(0)
    data = xgboost.DMatrix(rng.random((2000, 17)), label=rng.random(2000))
    booster = xgboost.train({"max_depth": 8, "nthread": 1}, data, num_boost_round=150)
    raw = bytes(booster.save_raw("json"))
    _tar_gz(path, {"xgboost-model": raw})
    return len(raw)


def test_the_507_is_decided_before_any_model_is_unloaded(churn: Churn, tmp_path: Path, serve: Any) -> None:
    repo = tmp_path / "mixed"
    repo.mkdir()
    states = churn.states[:6]
    for state in states:
        shutil.copy(Path(churn.url) / churn.target(state), repo / churn.target(state))
    raw = _big_model(repo / "big.tar.gz")
    stored = (repo / "big.tar.gz").stat().st_size
    budget = raw // 2  # the big model can never fit; its stored (compressed) size can
    assert stored < budget
    srv = serve(repository=str(repo), memory_budget_bytes=budget)
    for state in states:
        assert srv.invoke(churn.target(state), csv_body(churn.rows(state, 1)))[0] == 200
    before = srv.metrics()
    assert before["loaded_model_count"] >= 2
    status, doc = srv.invoke("big.tar.gz", csv_body(churn.rows(states[0], 1)))
    assert status == 424 and doc["OriginalStatusCode"] == 507, doc
    after = srv.metrics()
    assert after["model_unloads"] == before["model_unloads"]
    assert after["loaded_model_count"] == before["loaded_model_count"]
    # The message names the whole need (the files here, bounded by the budget), never a difference.
    message = doc["Message"]
    assert "needs" in message or "could ever hold" in message


# --- 4. timeouts ----------------------------------------------------------------------------


def test_slow_and_idle_connections_are_closed_at_their_timeout(churn: Churn, serve: Any) -> None:
    srv = serve(repository=churn.url, header_read_timeout_s=1, body_read_timeout_s=1, keep_alive_timeout_s=1)
    opened = time.monotonic()
    socks = {kind: socket.create_connection(("127.0.0.1", srv.port), timeout=20)
             for kind in ("idle", "header", "first_byte", "body")}
    socks["header"].sendall(b"POST /endpoints/local-mme/invocations HTTP/1.1\r\nHost: x\r\n")
    head = (b"POST /endpoints/local-mme/invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
            b"X-Amzn-SageMaker-Target-Model: " + churn.target("CA").encode() + b"\r\nContent-Length: 100\r\n\r\n")
    socks["first_byte"].sendall(head)
    socks["body"].sendall(head + b"1,2,3")
    answers = {kind: _read_response(sock) for kind, sock in socks.items()}
    elapsed = time.monotonic() - opened
    for sock in socks.values():
        sock.close()
    print(f"4 slow/idle connections closed after {elapsed:.2f} s (timeouts 1 s)")
    assert answers["idle"] == b""
    assert answers["header"].startswith(b"HTTP/1.1 400")
    assert answers["first_byte"].startswith(b"HTTP/1.1 400") and b"ValidationError" in answers["first_byte"]
    assert answers["body"].startswith(b"HTTP/1.1 400")
    text = srv.prometheus()
    for kind in ("header", "first_byte", "body", "idle"):
        line = next(x for x in text.splitlines() if x.startswith(f'connection_timeouts_total{{kind="{kind}"}}'))
        assert float(line.split()[-1]) >= 1, line
    # A keep-alive connection that went idle after an answer is closed too.
    with socket.create_connection(("127.0.0.1", srv.port), timeout=20) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(sock).startswith(b"HTTP/1.1 200")


# --- 5. a cache folder removed under load ---------------------------------------------------


def test_a_cache_folder_removed_under_load_is_fetched_again(churn: Churn, tmp_path: Path, serve: Any) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    # A budget for one model at a time: every other request unloads and reloads from disk.
    srv = serve(repository=churn.url, cache_dir=str(cache), per_model_overhead_bytes=4 * MiB,
                memory_budget_bytes=5 * MiB)
    states = churn.states[:3]
    stop = threading.Event()
    removals = [0]

    def remove() -> None:
        while not stop.is_set():
            for folder in cache.glob("mmeperf-mme-*/models"):
                shutil.rmtree(folder, ignore_errors=True)
                removals[0] += 1
            stop.wait(0.01)

    remover = threading.Thread(target=remove)
    remover.start()
    statuses: list[int] = []
    try:
        for i in range(60):
            state = states[i % len(states)]
            status, doc = srv.invoke(churn.target(state), csv_body(churn.rows(state, 1)))
            assert status == 200, doc
            statuses.append(status)
    finally:
        stop.set()
        remover.join(timeout=10)
    assert removals[0] > 0 and statuses.count(200) == 60
    assert srv.metrics()["invocation_5xx_errors"] == 0


# --- 6. smaller: paths, SIGTERM, protocol-0 pickles -------------------------------------------


def test_errors_do_not_show_cache_paths_and_sigterm_exits_0(tmp_path: Path, serve: Any) -> None:
    repo = tmp_path / "broken"
    repo.mkdir()
    _tar_gz(repo / "bad.tar.gz", {"xgboost-model": b"not a model"})
    cache = tmp_path / "cache"
    cache.mkdir()
    srv = serve(repository=str(repo), cache_dir=str(cache))
    status, doc = srv.invoke("bad.tar.gz", b"1,2")
    assert status == 424 and doc["OriginalStatusCode"] == 500
    assert str(cache) not in json.dumps(doc) and "/tmp" not in doc["Message"], doc["Message"]
    assert "<model>" in doc["Message"]
    assert srv.stop() == 0


def test_protocol_0_pickles_are_pickles(tmp_path: Path) -> None:
    import xgboost

    from mmeperf.backends.xgboost import XGBoostBackend
    from mmeperf.errors import ModelLoadError

    rng = np.random.default_rng(1)
    booster = xgboost.train({"nthread": 1}, xgboost.DMatrix(rng.random((50, 3)), label=rng.random(50)), 3)
    for protocol in (0, 1, 2):
        folder = tmp_path / f"p{protocol}"
        folder.mkdir()
        (folder / "xgboost-model").write_bytes(pickle.dumps(booster, protocol))
        with pytest.raises(ModelLoadError, match="is a pickle"):
            XGBoostBackend().load(folder)
        runner = XGBoostBackend().load(folder, allow_pickle=True)
        rows = rng.random((4, 3)).astype(np.float32)
        np.testing.assert_array_equal(runner.predict(rows), booster.inplace_predict(rows))


def test_rss_of_the_server_is_measured_by_pid(serve: Any, churn: Churn) -> None:
    """The measurement the bounds above rest on: the server's own process, not this one."""
    srv = serve(repository=churn.url)
    assert srv.ps.pid != os.getpid() and srv.rss() > 10 * MiB
