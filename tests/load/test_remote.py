"""Workers on other hosts: a worker that joins from 127.0.0.2 (a second host's stand-in) over Locust's protocol."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from mmeperf.errors import ConfigurationError
from mmeperf.load import AwsAuth, Benchmark, LoadProfile, Traffic
from mmeperf.load.remote import install_bundle, parse_master, spec_bundle
from mmeperf.load.spec import RunSpec
from tests.load.conftest import free_port

slow = pytest.mark.slow
SECOND_HOST = "127.0.0.2"


def _second_host_usable() -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind((SECOND_HOST, 0))
        except OSError:
            return False
    return True


needs_second_host = pytest.mark.skipif(not _second_host_usable(), reason="127.0.0.2 is not a usable loopback address here")


def _traffic() -> Traffic:
    return Traffic(payloads=["1,2,3"], models=[f"m{i}.tar.gz" for i in range(6)])


@contextlib.contextmanager
def _remote_worker(port: int, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``mmeperf worker`` from another working folder, connecting from 127.0.0.2; stopped by PID."""
    cwd = tmp_path / "other-host"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMEPERF_")}
    log = (tmp_path / "remote-worker.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmeperf", "worker", "--master", f"127.0.0.1:{port}", "--bind", SECOND_HOST],
        cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        for child in _children(proc.pid):
            with contextlib.suppress(psutil.Error):
                child.kill()
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        log.close()


def _children(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        return list(psutil.Process(pid).children(recursive=True))
    return []


def _connection_to_master(pid: int, port: int, deadline_s: float = 30.0) -> tuple[psutil.Process, str]:
    """The worker's Locust process and the local address its connection to the master leaves from."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        for child in _children(pid):
            with contextlib.suppress(psutil.Error):
                for conn in child.net_connections(kind="tcp"):
                    if conn.raddr and conn.raddr.port == port and conn.status == psutil.CONN_ESTABLISHED:
                        return child, conn.laddr.ip
        time.sleep(0.1)
    raise AssertionError("the remote worker never connected to the master")


def _run_info(out: Path) -> dict:
    with contextlib.suppress(OSError, ValueError):
        return dict(json.loads((out / "run.json").read_text()))
    return {}


def test_parse_master_and_bad_addresses() -> None:
    assert parse_master("10.0.0.5:5557") == ("10.0.0.5", 5557)
    assert parse_master("[::1]:5557") == ("::1", 5557)
    for bad in ("10.0.0.5", ":5557", "host:port", "host:0", "host:70000"):
        with pytest.raises(ConfigurationError):
            parse_master(bad)


def test_bundle_carries_the_run_but_no_credentials_or_master_paths(tmp_path: Path) -> None:
    requests = tmp_path / "requests.bin"
    requests.write_bytes(b"table")
    spec = RunSpec(
        profile=LoadProfile.constant(users=1, duration="1s", traffic=_traffic()),
        auth=AwsAuth(region="eu-west-1", access_key="AKIA", secret_key="SECRET", session_token="TOKEN"),
        requests_path=str(requests), out_dir=str(tmp_path), t0=1.0, csv_prefix="x", owner_pid=123,
    )
    bundle = spec_bundle(spec)
    assert b"SECRET" not in json.dumps(bundle["spec"]).encode() and "AKIA" not in bundle["spec"]
    path = install_bundle(bundle, tmp_path / "worker", owner_pid=456)
    got = RunSpec.read(path)
    assert got.auth is not None and got.auth.region == "eu-west-1" and got.auth.secret_key is None
    assert got.owner_pid == 456 and Path(got.requests_path).read_bytes() == b"table"
    assert Path(got.requests_path).parent == tmp_path / "worker"
    with pytest.raises(ConfigurationError, match="same version"):
        install_bundle({**bundle, "mmeperf": "0.0.0-other"}, tmp_path / "w2", owner_pid=None)


def test_master_options_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="expect_workers"):
        Benchmark("http://127.0.0.1:9", LoadProfile.constant(users=1, duration="1s", traffic=_traffic()),
                  workers=2, expect_workers=1)
    bench = Benchmark("http://127.0.0.1:9", LoadProfile.constant(users=1, duration="1s", traffic=_traffic()),
                      workers=1, expect_workers=3)
    assert bench.master_port == 5557 and bench.master_bind == "127.0.0.1"  # Locust's port; loopback unless told


@slow
@needs_second_host
def test_worker_from_another_address_is_counted_once(test_server, tmp_path: Path) -> None:
    server = test_server("--delay-ms", "2:6")
    profile = LoadProfile.constant(users=6, spawn_rate=100, duration="5s", traffic=_traffic(),
                                   wait={"min": 0.0, "max": 0.02})
    port = free_port()
    out = tmp_path / "dist"
    bench = Benchmark(server.url, profile, workers=1, expect_workers=2, master_port=port,
                      expect_workers_max_wait=60)
    with bench.start(out) as handle, _remote_worker(port, tmp_path) as remote:
        worker, address = _connection_to_master(remote.pid, port)
        assert address == SECOND_HOST
        result = handle.wait(timeout=120)
        assert remote.wait(timeout=30) == 0  # the master's end ends the remote worker too
    stats = server.stats()
    assert result.total_requests == stats["requests"] > 50
    run = result.info["run"]
    workers = run["workers"]
    assert workers["joined"] == 2 and workers["lost"] == 0, workers
    (far,) = [w for w in workers["nodes"] if w["remote"]]
    assert far["address"] == SECOND_HOST and far["pid"] == worker.pid and far["finished"]
    reports = run["worker_reports"]
    assert all(r["received"] == r["sent"] for r in reports.values()), reports
    assert reports[far["node"]]["requests"] > 0
    assert sum(r["requests"] for r in reports.values()) == stats["requests"]
    assert not list((tmp_path / "other-host").iterdir())  # the worker wrote nothing where it ran


@slow
@needs_second_host
def test_killed_worker_is_reported_and_the_run_completes(test_server, tmp_path: Path) -> None:
    server = test_server("--delay-ms", "2:6")
    profile = LoadProfile.constant(users=4, spawn_rate=100, duration="12s", traffic=_traffic(),
                                   wait={"min": 0.05, "max": 0.1})
    port = free_port()
    out = tmp_path / "lost"
    bench = Benchmark(server.url, profile, workers=1, expect_workers=2, master_port=port,
                      expect_workers_max_wait=60)
    with bench.start(out) as handle, _remote_worker(port, tmp_path) as remote:
        worker, _ = _connection_to_master(remote.pid, port)
        deadline = time.monotonic() + 60
        node = None
        while node is None and time.monotonic() < deadline:  # until the remote worker's reports count
            nodes = _run_info(out).get("workers", {}).get("nodes", [])
            reports = _run_info(out).get("worker_reports", {})
            node = next((w["node"] for w in nodes if w.get("remote") and reports.get(w["node"], {}).get("requests")), None)
            time.sleep(0.2)
        assert node is not None, "the remote worker never reported"
        killed_at = time.time()
        os.kill(worker.pid, signal.SIGKILL)
        result = handle.wait(timeout=120)
        remote.wait(timeout=30)
    run = result.info["run"]
    assert run["status"] == "completed"
    workers = run["workers"]
    assert workers["joined"] == 2 and workers["lost"] == 1, workers
    (lost,) = [w for w in workers["nodes"] if w["lost_at"] is not None]
    assert lost["node"] == node and not lost["finished"] and lost["lost_at"] >= killed_at
    assert any(e["event"].startswith("lost") for e in lost["events"])
    reports = run["worker_reports"]
    kept = reports[node]["requests"]
    assert kept > 0 and reports[node]["sent"] is None  # its final report never came; what it reported stays
    # Every request counted is one the server handled; the only ones missing are those the killed
    # worker sent after its last report (at most its last second: 2 users at <= 20 req/s each).
    stats = server.stats()
    assert result.total_requests == sum(r["requests"] for r in reports.values())
    assert 0 <= stats["requests"] - result.total_requests <= 40, (stats, result.total_requests)
