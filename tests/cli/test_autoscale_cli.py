"""The multi-instance commands: ``mmeperf autoscale-check`` (yes or no, with the timeline) and
``mmeperf serve --instance-count N`` (a front and N instance processes, all stopped on SIGTERM)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mmeperf.endpoints.local.autoscaling import Timeline

from .test_serve_cli import _tiny_repository


def _mmeperf(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mmeperf", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def test_usage_errors_exit_2_before_anything_starts(tmp_path: Path) -> None:
    out = _mmeperf("autoscale-check", str(tmp_path), "--out", str(tmp_path / "run"), cwd=tmp_path, timeout=60)
    assert out.returncode == 2 and "--models" in out.stderr
    out = _mmeperf("autoscale-check", str(tmp_path), "--out", str(tmp_path / "run"), "--models", "a.tar.gz",
                   "--min-capacity", "3", "--max-capacity", "2", cwd=tmp_path, timeout=60)
    assert out.returncode == 2 and "max_capacity" in out.stderr


@pytest.mark.slow
def test_a_low_target_triggers_both_ways_and_the_timeline_is_in_the_run_folder(tmp_path: Path) -> None:
    repo, data = _tiny_repository(tmp_path, ["alpha", "beta"])
    out = _mmeperf(
        "autoscale-check", str(repo), "--out", str(tmp_path / "run"), "--data", str(data),
        "--models", "alpha.tar.gz,beta.tar.gz", "--users", "2", "--duration", "6s", "--wait", "0:0.01",
        "--min-capacity", "1", "--max-capacity", "2", "--target", "60", "--period", "0.5",
        "--scale-out-datapoints", "2", "--scale-in-datapoints", "2",
        "--scale-out-cooldown", "1", "--scale-in-cooldown", "1", "--expect", "both", "--settle", "60s",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "YES (both): scaled out 1 -> 2" in " ".join(out.stdout.split())
    events = Timeline.read(tmp_path / "run" / "scaling.jsonl")
    kinds = [e.event for e in events]
    assert "scale_out" in kinds and "scale_in" in kinds and "instance_in_service" in kinds
    assert (tmp_path / "run" / "summary_results.csv").exists()


def test_a_policy_that_never_triggers_says_no(tmp_path: Path) -> None:
    repo, data = _tiny_repository(tmp_path, ["alpha"])
    out = _mmeperf(
        "autoscale-check", str(repo), "--out", str(tmp_path / "run"), "--data", str(data),
        "--models", "alpha.tar.gz", "--users", "1", "--duration", "2s", "--wait", "0.2:0.2",
        "--min-capacity", "1", "--max-capacity", "2", "--target", "1000000", "--period", "0.5",
        cwd=tmp_path,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "NO (scale-out): no scaling activity" in " ".join(out.stdout.split())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


def test_serve_instance_count_runs_a_front_and_stops_every_instance(tmp_path: Path) -> None:
    repo, _ = _tiny_repository(tmp_path, ["alpha"])
    ready = tmp_path / "ready.json"
    server = subprocess.Popen(
        [sys.executable, "-m", "mmeperf", "serve", str(repo), "--port", "0", "--instance-count", "2",
         "--ready-file", str(ready)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 180
        while not (ready.exists() and ready.stat().st_size):
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
            assert time.monotonic() < deadline, "mmeperf serve --instance-count 2 did not become ready"
            time.sleep(0.05)
        port = json.loads(ready.read_text())["port"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/mmeperf/status", timeout=30) as answer:
            status = json.loads(answer.read())
        pids = [i["pid"] for i in status["instances"]]
        assert status["instance_count"] == 2 and all(_alive(p) for p in pids)
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)
    assert pids and not any(_alive(p) for p in pids)
