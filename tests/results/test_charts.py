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
