import re
from pathlib import Path

import pandas as pd
import pytest

from mmeperf.results.compare import compare
from mmeperf.results.report import CHART_IDS, latest_values, write_report

from .conftest import (
    chromium_dump_dom,
    distribution_frame,
    needs_chromium,
    run_summary,
    server_frame,
    stages_frame,
)


def _report(tmp_path: Path) -> Path:
    runs = [
        run_summary("ml.c5.xlarge", "ml.c5.xlarge", unloads=40, p99=250.0),
        run_summary("ml.c5.2xlarge", "ml.c5.2xlarge", unloads=0, p99=8.0),
    ]
    comparison = compare(runs, n_models=51, p99_budget_ms=100)
    return write_report(
        tmp_path,
        comparison,
        server_metrics={"ml.c5.xlarge": server_frame(30, loaded=31, unloads_per_s=2), "ml.c5.2xlarge": server_frame(30, loaded=51, unloads_per_s=0)},
        stages={"ml.c5.xlarge": stages_frame(), "ml.c5.2xlarge": stages_frame()},
        distributions={"ml.c5.xlarge": distribution_frame(), "ml.c5.2xlarge": distribution_frame()},
        title="test report",
        notes=["synthetic frames"],
    )


def test_report_is_self_contained_with_every_chart(tmp_path: Path) -> None:
    path = _report(tmp_path)
    page = path.read_text()
    for chart in CHART_IDS:
        assert f'data-chart="{chart}"' in page
        assert (tmp_path / "charts" / f"{chart}.png").stat().st_size > 1000
    assert "src=\"http" not in page and "<link" not in page  # nothing fetched from outside
    assert "ml.c5.2xlarge is the cheapest configuration" in page
    assert "ml.c5.xlarge was rejected because p99 250.0 ms" in page


def test_latest_values_average_the_last_window() -> None:
    frame = pd.DataFrame({"elapsed_s": [1.0, 50.0, 100.0, 110.0], "LoadedModelCount": [1, 2, 30, 32], "Invocations": [5, 5, 10, 20]})
    values = latest_values(frame, window_s=20)
    assert values["LoadedModelCount"] == 31 and values["Invocations"] == 15 and values["ModelLatency"] is None


def test_latest_latencies_are_weighted_by_their_sample_counts() -> None:
    frame = pd.DataFrame(
        {
            "elapsed_s": [1.0, 2.0],
            "Invocations": [1, 999],
            "ModelLatency": [1000.0, 10.0],
            "ModelCacheHit": [0.0, 0.9],  # 1 miss, then 99.9 misses
            "ModelLoadingWaitTime": [5000.0, 100.0],
            "ModelLoads": [0, 4],
            "ModelLoadingTime": [None, 300.0],
        }
    )
    values = latest_values(frame)
    assert values["ModelLatency"] == pytest.approx((1000 + 999 * 10) / 1000)
    assert values["ModelLoadingWaitTime"] == pytest.approx((5000 + 99.9 * 100) / 100.9)
    assert values["ModelLoadingTime"] == 300.0 and values["ModelUnloadingTime"] is None


@needs_chromium
def test_every_chart_renders_in_chromium(tmp_path: Path) -> None:
    dom = chromium_dump_dom(_report(tmp_path))
    match = re.search(r'data-chart-status="([^"]*)"', dom)
    assert match, "the page's load handler did not run"
    status = dict(item.split(":") for item in match.group(1).split(","))
    assert status == {chart: "ok" for chart in CHART_IDS}
