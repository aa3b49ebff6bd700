"""Synthetic traces: seeded, the diurnal rate as asked, Zipf popularity that drifts (or not)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmeperf.errors import ConfigurationError
from mmeperf.load.profile import TraceShape
from mmeperf.load.tracegen import DEFAULT_START, diurnal_rate, synth_trace, write_trace


def test_seeded_and_sorted() -> None:
    a = synth_trace(duration=600, mean_rate=5, models=10, seed=7)
    b = synth_trace(duration=600, mean_rate=5, models=10, seed=7)
    c = synth_trace(duration=600, mean_rate=5, models=10, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    assert list(a.columns) == ["timestamp", "model"] and a["timestamp"].is_monotonic_increasing
    assert a["timestamp"].iloc[0] >= DEFAULT_START and a["timestamp"].iloc[-1] < DEFAULT_START + 600


def test_diurnal_rate_peaks_and_troughs_where_asked() -> None:
    # One cycle over 4 h, peak at 1 h, trough at 3 h: the peak hour carries far more than the trough hour.
    frame = synth_trace(duration=4 * 3600, mean_rate=2, models=3, amplitude=0.9, period=4 * 3600, peak_at=3600, seed=1)
    hours = ((frame["timestamp"] - DEFAULT_START) // 3600).astype(int).value_counts()
    assert hours[0] + hours[1] > 3 * (hours[2] + hours[3]) > 0
    mean = len(frame) / (4 * 3600)
    assert mean == pytest.approx(2.0, rel=0.05)  # a whole cycle averages out to the mean rate
    assert diurnal_rate(3600.0, mean_rate=2, amplitude=0.9, period=14400, peak_at=3600) == pytest.approx(3.8)


def test_popularity_is_zipf_and_drifts_only_when_asked() -> None:
    still = synth_trace(duration=3600, mean_rate=20, models=8, drift=0.0, seed=2)
    counts = still["model"].value_counts()
    assert counts.index[0] == "model-0" and counts["model-0"] > 1.5 * counts["model-1"] > 0

    def leaders(frame: pd.DataFrame) -> tuple[str, str]:
        t = frame["timestamp"] - DEFAULT_START
        first = frame[t < 600]["model"].value_counts().index[0]
        last = frame[t >= 3000]["model"].value_counts().index[0]
        return str(first), str(last)

    assert leaders(still) == ("model-0", "model-0")
    moving = synth_trace(duration=3600, mean_rate=20, models=8, drift=0.5, drift_every=30, seed=2)
    first, last = leaders(moving)
    assert first != last  # the hot model changed over the hour


@pytest.mark.parametrize("kwargs", [
    {"duration": 0, "mean_rate": 1}, {"duration": 10, "mean_rate": 1, "amplitude": 1.5},
    {"duration": 10, "mean_rate": 1, "drift": -0.1}, {"duration": 10, "mean_rate": 1, "models": []},
])
def test_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        synth_trace(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["t.csv", "t.parquet"])
def test_written_traces_replay_as_they_were_made(tmp_path: Path, name: str) -> None:
    if name.endswith(".parquet"):
        pytest.importorskip("pyarrow")
    frame = synth_trace(duration=120, mean_rate=3, models=["a", "b"], seed=4)
    trace = TraceShape(path=str(write_trace(frame, tmp_path / name))).load()
    assert len(trace) == len(frame)
    assert np.allclose(trace.offsets, frame["timestamp"] - frame["timestamp"].iloc[0], atol=1e-6)
    assert trace.model_counts() == frame["model"].value_counts().to_dict()
