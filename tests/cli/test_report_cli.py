"""The workflow as a user drives it: ``mmeperf serve``, ``mmeperf bench`` with every option at
its default, then ``mmeperf report`` / ``mmeperf compare`` on the finished folders."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from mmeperf.results.report import CHART_IDS
from tests.load.conftest import free_port
from tests.results.conftest import CHROMIUM, chromium_dump_dom

from .test_serve_cli import _tiny_repository


def _mmeperf(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mmeperf", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


@pytest.mark.slow
def test_serve_bench_defaults_then_report_and_compare(tmp_path: Path) -> None:
    repo, data = _tiny_repository(tmp_path, ["alpha", "beta"])
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mmeperf", "serve", str(repo), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        deadline = time.monotonic() + 60
        banner = ""
        while "Serving on" not in banner:
            assert server.poll() is None and time.monotonic() < deadline, banner
            banner += server.stderr.readline()
        assert f"Serving on http://127.0.0.1:{port}" in banner
        url = f"http://127.0.0.1:{port}"

        # Every other option at its default: 10 users, 30 s, targets from the endpoint's listing.
        first = _mmeperf("bench", "--endpoint-url", url, "--data", str(data), cwd=tmp_path)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "the endpoint's 2 models" in first.stderr
        (run1,) = (tmp_path / "mmeperf-out").glob("bench-*")
        summary = pd.read_csv(run1 / "summary_results.csv")
        assert int(summary["requests"].sum()) > 0 and int(summary["failures"].sum()) == 0
        assert int(summary["target_models"].iloc[0]) == 2
        metrics = pd.read_csv(run1 / "server_metrics.csv")
        assert len(metrics) >= 10 and metrics["Invocations"].sum() > 0
        assert int(summary["max_models_loaded"].iloc[0]) == int(metrics["LoadedModelCount"].max()) == 2
        report_facts = json.loads((run1 / "run.json").read_text())["report"]
        assert report_facts["method"]["server_metrics"] == "/mmeperf/metrics"
        assert 0 < report_facts["cold_share"] < 1 and report_facts["target_models"] == 2

        second = _mmeperf("bench", "--endpoint-url", url, "--data", str(data), "--duration", "4s", "--users", "2",
                          "--instance-profile", "ml.c5.xlarge", "--warmup", "1/model", "--zipf", "1.2",
                          "--out", "run2", cwd=tmp_path)
        assert second.returncode == 0, second.stdout + second.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)

    one = _mmeperf("report", "run2", cwd=tmp_path)
    assert one.returncode == 0, one.stdout + one.stderr
    assert (tmp_path / "run2" / "report.html").exists()

    # run1 was labelled "local" (no price): compare takes the instance types in order.
    cmp = _mmeperf("compare", str(run1), "run2", "--instance-type", "ml.c5.large", "--instance-type",
                   "ml.c5.xlarge", "--p99", "10s", "--out", "cmp", cwd=tmp_path)
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr
    assert "models with no unloads after warm-up" in cmp.stdout  # each run's cache line
    page = (tmp_path / "cmp" / "report.html").read_text()
    for chart in CHART_IDS:
        assert f'data-chart="{chart}"' in page
    assert "own metrics (/mmeperf/metrics) during each run" in page

    failing = _mmeperf("compare", str(run1), "run2", "--instance-type", "ml.c5.large", "--instance-type",
                       "ml.c5.xlarge", "--threshold", "p99<0.001ms", "--out", "cmp2", cwd=tmp_path)
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "Result: FAILED: ml.c5.large: threshold p99<0.001ms failed" in failing.stdout

    if CHROMIUM is not None:
        dom = chromium_dump_dom(tmp_path / "cmp" / "report.html")
        match = re.search(r'data-chart-status="([^"]*)"', dom)
        assert match, "the page's load handler did not run"
        status = dict(item.split(":") for item in match.group(1).split(","))
        assert status == {chart: "ok" for chart in CHART_IDS}
