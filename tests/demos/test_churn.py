"""The churn workflow end to end at a small scale: real data, real cache, real load, real report."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

from mmeperf.demos.churn import ChurnDemoOptions, ChurnDemoResult, run_churn_demo
from mmeperf.errors import ConfigurationError
from mmeperf.instances import DEFAULT_CATALOG
from mmeperf.results.report import CHART_IDS

from ..results.conftest import chromium_dump_dom, needs_chromium

CONTRACT = [
    "instance_type",
    "requests",
    "failures",
    "rps",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "loaded_model_count_max",
    "model_loads",
    "model_unloads",
    "cache_hit_ratio",
    "cost_per_hour_usd",
    "cost_per_million_usd",
]


#: The short faithful configuration: process workers and CPU allowances as the default run, but
#: 8 states' models (each a real worker start of 1-3 s here) and a short window.
N_MODELS = 8


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> ChurnDemoResult:
    out = tmp_path_factory.mktemp("churn")
    messages: list[str] = []
    result = run_churn_demo(
        ChurnDemoOptions(out=out, users=8, spawn_rate=10, duration=8, wait_max_s=1.0, max_models=N_MODELS),
        progress=messages.append,
    )
    assert any("51 per-state models" in m for m in messages)
    return result


@pytest.mark.slow
def test_results_contract_and_emulation_labels(demo: ChurnDemoResult) -> None:
    frame = pd.read_csv(demo.summary_csv)
    assert set(CONTRACT) <= set(frame.columns)
    assert (frame["worker_mode"] == "process").all()
    # The CPU mechanism and the scale of each run are in the csv, as the server applied them.
    assert set(frame["cpu_mechanism"]) <= {"quota", "affinity", "none"}
    assert frame["cpu_scale"].nunique() == 1 and 0 < frame["cpu_scale"].iloc[0] <= 1
    assert (frame["invocations_per_min_descaled"] == (frame["invocations_per_min"] / frame["cpu_scale"]).round(1)).all()
    assert (frame["client_cpu_percent"] >= 0).all()
    assert (frame["failures"] == 0).all() and (frame["requests"] > 10).all()
    rows = frame.set_index("instance_type")
    for itype in ("ml.c5.xlarge", "ml.c5.2xlarge"):
        assert rows.loc[itype, "loaded_model_count_max"] <= N_MODELS
    html = demo.report.read_text()
    assert "Against the reference (AIM408, 300 users)" in html and "Every number the emulation used" in html
    assert "CPU is not emulated" not in html


@pytest.mark.slow
def test_figures_come_from_the_runs(demo: ChurnDemoResult) -> None:
    frame = pd.read_csv(demo.summary_csv).set_index("instance_type")
    for itype in ("ml.c5.xlarge", "ml.c5.2xlarge"):
        run = pd.read_csv(demo.out / "runs" / itype / "server_metrics.csv")
        # Nothing lost: the server's own per-second counters add up to exactly what the client
        # sent (sampling starts before the first request and ends after the last).
        assert run["Invocations"].sum() == frame.loc[itype, "requests"]
        # Cost recomputed from the catalog and the run's own totals (run.json), not from the row.
        totals = json.loads((demo.out / "runs" / itype / "run.json").read_text())["totals"]
        ok_rps = (totals["requests"] - totals["failures"]) / totals["duration_s"]
        price = DEFAULT_CATALOG.get(itype).price_per_hour_usd
        assert frame.loc[itype, "cost_per_million_usd"] == pytest.approx(price / (ok_rps * 3600) * 1e6, rel=1e-6)
    ref = demo.reference
    assert set(ref["instance"]) == {"ml.c5.xlarge", "ml.c5.2xlarge"}
    assert {"ModelLoadingTime (ms)", "LoadedModelCount", "Invocations per minute (instance)"} <= set(ref["metric"])


@pytest.mark.slow
def test_verdict_follows_the_measurements(demo: ChurnDemoResult) -> None:
    frame = pd.read_csv(demo.summary_csv).set_index("instance_type")
    for itype in ("ml.c5.xlarge", "ml.c5.2xlarge"):
        if frame.loc[itype, "model_unloads_after_warmup"] > 0:
            assert f"{itype} thrashes its model cache" in demo.verdict
        else:
            assert f"{itype} holds {frame.loc[itype, 'loaded_model_count_max']} of {N_MODELS} models" in demo.verdict
    assert re.search(r"(is the cheapest configuration|No configuration met)", demo.verdict)
    assert "Load generator CPU" in demo.verdict


@needs_chromium
@pytest.mark.slow
def test_report_renders_every_chart(demo: ChurnDemoResult) -> None:
    dom = chromium_dump_dom(demo.report)
    match = re.search(r'data-chart-status="([^"]*)"', dom)
    assert match
    assert dict(item.split(":") for item in match.group(1).split(",")) == {
        c: "ok" for c in CHART_IDS
    }
    assert "locust" not in sys.modules and "gevent" not in sys.modules


def test_unknown_instance_type_fails_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"ml\.c5\.xlarge"):
        run_churn_demo(ChurnDemoOptions(out=tmp_path, instance_types=["ml.c5.huge"]))
    assert not (tmp_path / "repository").exists()
