"""``mmeperf bench`` as a user drives it: a subprocess against the real test server; exit codes, orphans."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from typer.testing import CliRunner

from mmeperf.cli import app
from tests.load.conftest import free_port, test_server  # noqa: F401  (fixture)

slow = pytest.mark.slow


def _csv(tmp_path: Path) -> Path:
    path = tmp_path / "test.csv"
    pd.DataFrame({"CustomerID": [1, 2, 3, 4], "State": ["CA", "NY", "TX", "WA"], "Churn?": ["True."] * 4,
                  "a": [1, 2, 3, 4]}).to_csv(path, index=False)
    return path


def _bench_args(url: str, tmp_path: Path, *extra: str, duration: str = "2s") -> list[str]:
    return [
        "bench", "--endpoint-url", url, "--data", str(_csv(tmp_path)), "--model-column", "State",
        "--model-template", "churn-xgb-{}.tar.gz", "--drop-columns", "CustomerID", "--label-column", "Churn?",
        "--users", "2", "--spawn-rate", "10", "--duration", duration, "--wait", "0:0.05",
        "--out", str(tmp_path / "run"), *extra,
    ]


def _mmeperf(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mmeperf", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "200"})


@slow
def test_one_line_bench(test_server, tmp_path: Path) -> None:  # noqa: F811
    server = test_server("--delay-ms", "1")
    result = CliRunner().invoke(app, _bench_args(server.url, tmp_path))
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(tmp_path / "run" / "summary_results.csv")
    assert int(summary["requests"].sum()) == server.stats()["requests"] > 0
    assert "mmeperf bench" in result.output
    assert "ok_rps" in result.output and "Result: PASSED" in result.output


@slow
def test_a_failing_threshold_exits_1_with_the_reason(test_server, tmp_path: Path) -> None:  # noqa: F811
    server = test_server("--delay-ms", "5")
    done = _mmeperf(*_bench_args(server.url, tmp_path, "--threshold", "p99<1ms", "--threshold", "failure_rate<1%",
                                 "--threshold", "ok_rps>0"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL  p99<1ms" in done.stdout and "pass  failure_rate<1%" in done.stdout
    assert "Result: FAILED: threshold p99<1ms failed" in done.stdout
    verdict = json.loads((tmp_path / "run" / "run.json").read_text())["verdict"]
    assert verdict["exit_code"] == 1 and not verdict["passed"]
    assert {t["threshold"]: t["passed"] for t in verdict["thresholds"]} == {
        "p99<1ms": False, "failure_rate<1%": True, "ok_rps>0": True}
    assert verdict["thresholds"][0]["actual"] >= 5.0


@slow
def test_every_request_failing_exits_1_and_names_the_failure(test_server, tmp_path: Path) -> None:  # noqa: F811
    models = ",".join(f"churn-xgb-{s}.tar.gz" for s in ("CA", "NY", "TX", "WA"))
    server = test_server("--delay-ms", "1", "--missing-models", models)
    done = _mmeperf(*_bench_args(server.url, tmp_path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "every request failed" in done.stdout
    assert "ValidationError (HTTP 404)" in done.stdout  # the top failure reason, by kind and count
    totals = json.loads((tmp_path / "run" / "run.json").read_text())["totals"]
    assert totals["ok_rps"] == 0 and totals["rps"] > 0  # rps counts the failures, ok_rps does not


@pytest.mark.parametrize(
    ("url", "says"),
    [("127.0.0.1:8080", "expected http://HOST"), ("ftp://127.0.0.1:21", "expected http://HOST"), (None, "did not answer")],
)
def test_unreachable_or_malformed_targets_exit_2_before_starting(tmp_path: Path, url: str | None, says: str) -> None:
    target = url or f"http://127.0.0.1:{free_port()}"  # nobody listens there: connection refused
    done = _mmeperf(*_bench_args(target, tmp_path), timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()  # nothing started


def test_bad_threshold_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, _bench_args("http://127.0.0.1:1", tmp_path, "--threshold", "p99 under 5"))
    assert result.exit_code == 2
    assert "Bad threshold" in result.output


@pytest.mark.parametrize(("suffix", "content", "says"), [
    (".yaml", "CA: [1\n", "is not valid YAML/JSON"),
    (".json", "[1, 2]", "Expected a mapping in --weights file"),
    (".csv", "CA,heavy\n", "expected lines 'model,weight'"),
])
def test_a_bad_weights_file_is_a_usage_error(tmp_path: Path, suffix: str, content: str, says: str) -> None:
    weights = tmp_path / f"weights{suffix}"
    weights.write_text(content)
    result = CliRunner().invoke(app, _bench_args("http://127.0.0.1:1", tmp_path, "--weights", str(weights)))
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert not (tmp_path / "run").exists()  # nothing started


def test_a_bench_spec_that_is_not_yaml_is_a_usage_error(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("profile: {users: [2}\n")
    result = CliRunner().invoke(app, ["bench", str(spec)])
    assert result.exit_code == 2, result.output
    assert "Bench spec" in result.output and "is not valid YAML/JSON" in result.output


def test_bench_without_data_is_an_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "--endpoint-url", "http://127.0.0.1:1", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--data" in result.output


@slow
def test_sigkill_of_bench_leaves_no_locust_process(test_server, tmp_path: Path) -> None:  # noqa: F811
    server = test_server("--delay-ms", "2")
    out = tmp_path / "run"
    bench = subprocess.Popen(
        [sys.executable, "-m", "mmeperf", *_bench_args(server.url, tmp_path, "--workers", "1", duration="60s")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    locust: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            history = out / "history.csv"
            if history.exists() and len(history.read_text().splitlines()) >= 2:
                break
            time.sleep(0.2)
        locust = [p for p in psutil.Process(bench.pid).children(recursive=True) if "locust" in " ".join(p.cmdline())]
        assert len(locust) == 2  # the master and its worker
        served_before = server.stats()["requests"]
        assert served_before > 0
        bench.send_signal(signal.SIGKILL)
        bench.wait(timeout=10)
        _gone, alive = psutil.wait_procs(locust, timeout=5)
        assert not alive, f"Locust processes outlived their owner: {[p.pid for p in alive]}"
        run = json.loads((out / "run.json").read_text())
        assert run["status"] == "aborted" and str(bench.pid) in run["stop_reason"]
        time.sleep(0.5)
        after = server.stats()["requests"]
        time.sleep(1.0)
        assert server.stats()["requests"] == after  # nobody loads the endpoint any more
    finally:
        for proc in locust:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        if bench.poll() is None:
            bench.kill()
            bench.wait()
