"""LocalEndpoint's life cycle: a subprocess that starts, answers and always stops."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mmeperf.endpoints import get_endpoint_class
from mmeperf.endpoints.local import LocalEndpoint
from mmeperf.errors import ConfigurationError, EndpointNotReadyError

from .conftest import Churn, csv_body


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes; Popen.wait reaps it.
    return Path(f"/proc/{pid}/status").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def test_plugin_name_resolves() -> None:
    assert get_endpoint_class("local") is LocalEndpoint


def test_deploy_invoke_delete(churn: Churn) -> None:
    ep = LocalEndpoint(instance_profile="ml.c5.xlarge").deploy(churn.url)
    pid = ep.pid
    assert pid is not None and _alive(pid)
    info = ep.info()
    assert info.kind == "local" and info.emulated and info.instance_type == "ml.c5.xlarge"
    assert info.runtime_url == ep.url and info.emulation_note
    # The note says what applied to this server: its worker mode and its CPU allowance's own label.
    status = ep.status()
    assert status["cpu_emulation"]["label"] in info.emulation_note == status["emulation_note"]
    assert "worker processes" in info.emulation_note
    assert info.memory_budget_bytes == ep.status()["memory_budget_bytes"] > 0
    assert ep.invoke(churn.target("CA"), csv_body(churn.rows("CA", 1))).ok
    ep.delete()
    ep.delete()  # idempotent
    assert not _alive(pid)
    after = ep.invoke(churn.target("CA"), b"1")
    assert after.status == 0 and not after.ok and after.error_code


def test_context_manager_stops_the_server_on_errors(churn: Churn) -> None:
    with pytest.raises(RuntimeError, match="boom"), LocalEndpoint().deploy(churn.url) as ep:
        pid = ep.pid
        raise RuntimeError("boom")
    assert pid is not None and not _alive(pid)


def test_startup_failure_says_why(tmp_path: Path) -> None:
    with pytest.raises(EndpointNotReadyError, match="No model repository"):
        LocalEndpoint(startup_timeout_s=60).deploy(str(tmp_path / "missing"))


def test_bad_options_fail_before_any_process_starts() -> None:
    with pytest.raises(ConfigurationError, match="workers"):
        LocalEndpoint(workers=2)
    with pytest.raises(ConfigurationError, match=r"ml\.nope"):
        LocalEndpoint(instance_profile="ml.nope")
    with pytest.raises(ConfigurationError):
        LocalEndpoint(memory_budget="lots")
