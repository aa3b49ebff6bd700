"""The local MME a LocalEndpoint started ends with its owner, however the owner dies."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from mmeperf.endpoints.local.owner import watch_owner

_OWNER = """
import json, sys, time
from mmeperf.endpoints.local import LocalEndpoint
endpoint = LocalEndpoint(endpoint_name="orphan-check").deploy(sys.argv[1])
server = endpoint._proc.pid
open(sys.argv[2], "w").write(json.dumps({"server": server}))
time.sleep(120)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_the_server_stops_when_its_owner_is_killed(tmp_path: Path, sig: signal.Signals) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    ready = tmp_path / "server.json"
    owner = subprocess.Popen([sys.executable, "-c", _OWNER, str(repo), str(ready)])
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() or not ready.read_text():
            assert owner.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        server = psutil.Process(int(json.loads(ready.read_text())["server"]))
        family = [server, *server.children(recursive=True)]
        owner.send_signal(sig)  # no exit code of the owner runs (no handler for either)
        owner.wait(timeout=10)
        # Re-parented, it sees its owner gone within a poll and shuts down in order, its own
        # processes (workers, the fast path's) with it.
        _gone, alive = psutil.wait_procs(family, timeout=15)
        assert not alive, alive
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()


def test_no_owner_no_watch() -> None:
    assert watch_owner(None) is None


def test_an_owner_already_gone_stops_the_process_at_once() -> None:
    # A child told its owner is some pid that is not its parent stops itself with SIGTERM.
    code = "import sys, time\nfrom mmeperf.endpoints.local.owner import watch_owner\nwatch_owner(1)\ntime.sleep(30)\n"
    proc = subprocess.Popen([sys.executable, "-c", code])
    assert proc.wait(timeout=15) == -signal.SIGTERM
