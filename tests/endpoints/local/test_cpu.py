"""Emulated vCPUs: the allowance is what the kernel reports back (cgroup files, /proc/<pid>/status),
it holds the server's workers too, it is removed on exit and on SIGTERM, and a host that
cannot apply it says so and goes on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from mmeperf.endpoints.local import LocalEndpoint
from mmeperf.endpoints.local.cpu import apply, host_cpus, parse_cpu_list, read_back

from .conftest import Churn, csv_body, wait_until

# Runs the allowance in a child process, so this test process is never moved or pinned.
CHILD = """
import json, os, sys, time
from mmeperf.endpoints.local.cpu import cpu_allowance, read_back
mechanism, cpus, cgroup_fs = sys.argv[1], float(sys.argv[2]), sys.argv[3]
with cpu_allowance(mechanism, cpus, scale=0.5, cgroup_fs=cgroup_fs) as allowance:
    print(json.dumps({"allowance": allowance.as_dict(), "back": read_back(os.getpid())}), flush=True)
    sys.stdin.readline()  # hold until the test says go (or SIGTERM)
"""


def _child(mechanism: str, cpus: float, cgroup_fs: str = "/sys/fs/cgroup") -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, mechanism, str(cpus), cgroup_fs],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, "the child printed nothing"
    return proc, json.loads(line)


def test_quota_or_affinity_is_read_back_from_the_kernel_and_removed_on_exit() -> None:
    proc, seen = _child("auto", 1.0)
    allowance, back = seen["allowance"], seen["back"]
    try:
        if allowance["mechanism"] == "quota":
            group = Path(allowance["cgroup_dir"])
            assert back["cgroup"] == str(group) and back["quota_cpus"] == pytest.approx(1.0)
            assert read_back(proc.pid)["quota_cpus"] == pytest.approx(1.0)  # as the kernel enforces it
        else:  # this host refused a quota: the run says why and uses affinity
            assert allowance["mechanism"] == "affinity" and any("quota" in why for why in allowance["not_applied"])
            assert parse_cpu_list(back["cpus_allowed_list"]) == allowance["cores"]
        assert allowance["label"].startswith("CPU allowance 1 CPUs by ")
    finally:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.close()
        assert proc.wait(30) == 0
    if allowance["mechanism"] == "quota":
        assert not Path(allowance["cgroup_dir"]).exists(), "the cgroup outlived its process"


def test_sigterm_removes_the_cgroup() -> None:
    proc, seen = _child("quota", 1.0)
    allowance = seen["allowance"]
    if allowance["mechanism"] != "quota":
        proc.kill()
        proc.wait()
        pytest.skip(f"no CPU quota on this host: {allowance['not_applied']}")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == -signal.SIGTERM
    assert not Path(allowance["cgroup_dir"]).exists()


def test_affinity_pins_whole_cores() -> None:
    proc, seen = _child("affinity", 1.0)
    try:
        allowance = seen["allowance"]
        assert allowance["mechanism"] == "affinity" and allowance["cpus"] == 1.0
        assert len(parse_cpu_list(seen["back"]["cpus_allowed_list"])) == 1
    finally:
        proc.kill()
        proc.wait()


def test_a_host_without_cgroups_says_so_and_goes_on(tmp_path: Path) -> None:
    proc, seen = _child("quota", 1.0, str(tmp_path / "no-cgroups-here"))
    try:
        allowance = seen["allowance"]
        assert allowance["mechanism"] in ("affinity", "none")
        assert any(why.startswith("quota: no cgroup") for why in allowance["not_applied"])
        assert "not applied: quota: no cgroup" in allowance["label"]
    finally:
        proc.kill()
        proc.wait()


def test_none_applies_nothing() -> None:
    allowance = apply("none", None)
    assert allowance.mechanism == "none" and allowance.cpus == host_cpus() and not allowance.not_applied


def test_server_and_workers_run_inside_the_allowance(churn: Churn) -> None:
    """A served instance profile: the front end and its worker share one allowance, gone after."""
    ep = LocalEndpoint(instance_profile="ml.c5.xlarge", server_options={"cpu_scale": 0.25}).deploy(churn.url)
    try:
        assert ep.invoke(churn.target("CA"), csv_body(churn.rows("CA", 1))).ok
        status = ep.status()
        emulation = status["cpu_emulation"]
        assert emulation["requested_cpus"] == pytest.approx(1.0) and emulation["scale"] == 0.25
        assert ep.pid is not None
        (worker,) = psutil.Process(ep.pid).children()
        server_back, worker_back = read_back(ep.pid), read_back(worker.pid)
        if emulation["mechanism"] == "quota":
            assert server_back["cgroup"] == worker_back["cgroup"] == emulation["cgroup_dir"]
            assert server_back["quota_cpus"] == pytest.approx(1.0)
        else:
            assert emulation["not_applied"], "a fallback must say why"
            assert server_back["cpus_allowed_list"] == worker_back["cpus_allowed_list"]
            assert len(parse_cpu_list(worker_back["cpus_allowed_list"])) == 1
    finally:
        ep.delete()
    if emulation["mechanism"] == "quota":
        wait_until(lambda: not os.path.exists(emulation["cgroup_dir"]), "the cgroup was removed", timeout=10)
