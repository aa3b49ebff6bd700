"""Charts that take plain frames: the formats comparison and its bar heights."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mmeperf.results.charts import bar_heights, formats_comparison


def test_latency_bars_are_relative_to_the_lowest_latency() -> None:
    # Lower is better: the fastest format is 1 and a twice-as-slow one 2 (not 0.5 of the max).
    assert bar_heights([4.0, 2.0, 8.0], higher_is_better=False) == [2.0, 1.0, 4.0]
    assert bar_heights([4.0, 0.0], higher_is_better=False) == [1.0, 0.0]
    assert bar_heights([50.0, 100.0], higher_is_better=True) == [0.5, 1.0]
    assert bar_heights([0.0, 0.0], higher_is_better=True) == [0.0, 0.0]


def test_formats_comparison_draws_one_png_missing_figures_as_zero(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    frame = pd.DataFrame(
        [
            {"format": "pytorch", "models_loaded": 3, "lowest_p50_ms": 4.0, "max_rps": 50.0, "max_users_without_failures": 8},
            {"format": "onnx", "models_loaded": None, "lowest_p50_ms": 2.0, "max_rps": 100.0, "max_users_without_failures": 16},
        ]
    )
    path = formats_comparison(frame, tmp_path / "formats.png", model_name="tiny")
    assert path == tmp_path / "formats.png" and path.stat().st_size > 1000
    empty = formats_comparison(pd.DataFrame(), tmp_path / "none.png", model_name="tiny")
    assert empty.stat().st_size > 1000


def test_hit_ratio_and_what_if_charts_take_plain_data(tmp_path: Path) -> None:
    from mmeperf.results.charts import hit_ratio_vs_cache_size, what_if

    curve = [{"models_that_fit": k, "che": k / 10, "simulated": k / 10 + 0.01} for k in (1, 5, 10)]
    png = hit_ratio_vs_cache_size(curve, tmp_path / "hit.png", simulated=[(5.0, 0.52, "ml.c5.large")],
                                  measured=[(5.0, 0.5, "ml.c5.large")])
    assert png.read_bytes()[:4] == b"\x89PNG"
    rows = [{"instance_type": "ml.c5.large", "instance_count": n, "ok_rps": 100.0 * n, "p99_ms": 50.0 / n,
             "cost_per_hour_usd": 0.102 * n} for n in (1, 2, 3)]
    rows[0].update(measured_ok_rps=90.0, measured_p99_ms=60.0, predicted_here_ok_rps=95.0)
    assert what_if(rows, tmp_path / "what_if.png").read_bytes()[:4] == b"\x89PNG"
