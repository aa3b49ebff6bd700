"""Every CLI mistake: one line saying what was expected and what was received, exit 2, no
traceback (``mmeperf --debug`` shows it). Driven as a user would, in subprocesses."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest


def _mmeperf(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mmeperf", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def _one_error(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, out.stderr
    return errors[0]


def test_serve_on_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = _mmeperf("serve", str(tmp_path), "--port", str(port))
    line = _one_error(out)
    assert f"127.0.0.1:{port}" in line and "free port" in line and "in use" in line
    # An empty folder is warned about (before the port error).
    assert "holds no models" in out.stderr


def test_serve_a_missing_path(tmp_path: Path) -> None:
    line = _one_error(_mmeperf("serve", str(tmp_path / "nope"), "--port", "0"))
    assert str(tmp_path / "nope") in line and "expected an existing folder" in line


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    out = _mmeperf("--debug", "serve", str(tmp_path / "nope"), "--port", "0")
    assert out.returncode != 0 and "Traceback" in out.stderr


@pytest.mark.parametrize(("flag", "value", "says"), [
    ("--duration", "5x", "Bad --duration: Expected a duration such as 90, 90s, 15m or 1h30m, received '5x'"),
    ("--wait", "a:b", "Bad --wait: expected 'MIN:MAX' seconds"),
    ("--wait", "3:1", "received '3:1'"),
])
def test_bench_bad_duration_and_wait(tmp_path: Path, flag: str, value: str, says: str) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("a,b\n1,2\n")
    line = _one_error(_mmeperf("bench", "--endpoint-url", "http://127.0.0.1:1", "--data", str(data),
                               "--models", "m", flag, value))
    assert says in line and "pydantic" not in line


def test_bench_missing_data_file(tmp_path: Path) -> None:
    line = _one_error(_mmeperf("bench", "--endpoint-url", "http://127.0.0.1:1", "--data", str(tmp_path / "x.csv"),
                               "--models", "m"))
    assert "expected a payload CSV" in line and "does not exist" in line


def test_a_headerless_payload_csv_is_warned_about(tmp_path: Path) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("1.5,2,3\n4,5,6\n")
    out = _mmeperf("bench", "--endpoint-url", "http://127.0.0.1:1", "--data", str(data), "--models", "m")
    assert "looks headerless" in out.stderr
    assert out.returncode == 2 and "did not answer" in out.stderr  # then the unreachable target


def test_version() -> None:
    out = subprocess.run([sys.executable, "-m", "mmeperf", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("mmeperf ")


def test_bench_schema_is_json_schema() -> None:
    import json

    out = subprocess.run([sys.executable, "-m", "mmeperf", "bench", "--schema"], capture_output=True, text=True, timeout=60)
    schema = json.loads(out.stdout)
    assert schema["required"] == ["profile"] and "thresholds" in schema["properties"]
    assert "shape" in schema["properties"]["profile"]["properties"]
