"""A real tritonserver (pytriton's build) on 127.0.0.1 for the triton endpoint's tests.

Found through MMEPERF_TRITONSERVER (+ MMEPERF_TRITON_LD_LIBRARY_PATH), which
``scripts/triton-venv.sh`` prints; without them the real-server tests skip and say so.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SKIP_REASON = "set MMEPERF_TRITONSERVER: eval \"$(scripts/triton-venv.sh .venv-triton)\""


@dataclass(frozen=True)
class TritonServer:
    """A running tritonserver and the folder it serves (its --model-repository)."""

    url: str
    metrics_url: str
    repository: Path
    log: Path


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _venv_of(binary: Path) -> Path | None:
    # pytriton's binary lives in <venv>/lib/pythonX.Y/site-packages/pytriton/tritonserver/bin.
    for parent in binary.parents:
        if (parent / "pyvenv.cfg").is_file():
            return parent
    return None


def _tail(log: Path, n: int = 3000) -> str:
    return log.read_bytes()[-n:].decode("utf-8", "replace") if log.exists() else "(no log)"


@pytest.fixture(scope="module")
def triton_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """tritonserver in explicit model-control mode; stopped when the module's tests end."""
    raw = os.environ.get("MMEPERF_TRITONSERVER")
    if not raw:
        pytest.skip(SKIP_REASON)
    binary = Path(raw)
    if not os.access(binary, os.X_OK):
        pytest.skip(f"MMEPERF_TRITONSERVER={raw} is not an executable; {SKIP_REASON}")
    work = tmp_path_factory.mktemp("tritonserver")
    repository = work / "served"
    repository.mkdir()
    log = work / "server.log"
    http_port, grpc_port, metrics_port = _free_ports(3)
    env = dict(os.environ)
    libs = os.environ.get("MMEPERF_TRITON_LD_LIBRARY_PATH")
    if libs:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libs, env.get("LD_LIBRARY_PATH")) if p)
    venv = _venv_of(binary)
    if venv is not None:
        # The python backend's stub embeds Python: the venv's bin first makes it use that
        # venv's site-packages (numpy<2), not the base interpreter's.
        env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    cmd = [
        str(binary),
        f"--model-repository={repository}",
        "--model-control-mode=explicit",
        f"--backend-directory={binary.parent.parent / 'backends'}",
        "--http-address=127.0.0.1", f"--http-port={http_port}",
        "--grpc-address=127.0.0.1", f"--grpc-port={grpc_port}",
        "--metrics-address=127.0.0.1", f"--metrics-port={metrics_port}",
        # Python-backend shared memory regions are per server: never collide with another run.
        f"--backend-config=python,shm-region-prefix-name=mmeperf{os.getpid()}_",
        "--exit-timeout-secs=5",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"tritonserver exited with {proc.returncode} before it was ready:\n{_tail(log)}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/health/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"tritonserver was not ready within 30 s:\n{_tail(log)}")
            time.sleep(0.1)
        yield TritonServer(
            url=f"127.0.0.1:{http_port}",
            metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
            repository=repository,
            log=log,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
