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


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> ChurnDemoResult:
    out = tmp_path_factory.mktemp("churn")
    messages: list[str] = []
    result = run_churn_demo(
        ChurnDemoOptions(out=out, users=20, spawn_rate=10, duration=12, wait_max_s=1.0),
        progress=messages.append,
    )
    assert any("51 per-state models" in m for m in messages)
    return result


@pytest.mark.slow
def test_results_contract_and_cache_behaviour(demo: ChurnDemoResult) -> None:
    frame = pd.read_csv(demo.summary_csv)
    assert set(CONTRACT) <= set(frame.columns)
    rows = frame.set_index("instance_type")
    xl, xxl = rows.loc["ml.c5.xlarge"], rows.loc["ml.c5.2xlarge"]
    # The smaller instance thrashes its cache; the larger holds all 51 after warm-up (as the reference found).
    assert xl["model_unloads"] > 0 and xl["cache_hit_ratio"] < 1
    assert xl["loaded_model_count_max"] <= DEFAULT_CATALOG.get("ml.c5.xlarge").models_that_fit(
        64 * 1024
    )
    assert xxl["loaded_model_count_max"] == 51 and xxl["model_unloads_after_warmup"] == 0
    assert xxl["cache_hit_ratio"] == 1.0
    assert (frame["failures"] == 0).all() and (frame["requests"] > 50).all()


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


@pytest.mark.slow
def test_verdict_explains_itself(demo: ChurnDemoResult) -> None:
    assert "ml.c5.xlarge thrashes its model cache" in demo.verdict
    assert "ml.c5.2xlarge holds 51 of 51 models" in demo.verdict
    assert re.search(r"(is the cheapest configuration|No configuration met)", demo.verdict)


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
