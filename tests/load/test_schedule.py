"""Open-loop schedules: evenly spaced across processes, Poisson at the asked mean rate."""

from __future__ import annotations

import numpy as np

from mmeperf.load import LoadProfile
from mmeperf.load.schedule import OpenLoopSchedule


def _all(schedule: OpenLoopSchedule) -> list[float]:
    out = []
    while (t := schedule.next()) is not None:
        out.append(t)
    return out


def test_constant_rate_split_across_processes_is_evenly_spaced() -> None:
    plans = LoadProfile.open_loop(rate=100, duration="2s").stages()
    merged = sorted(t for i in range(3) for t in _all(OpenLoopSchedule(plans, load_start=10.0, index=i, processes=3)))
    assert len(merged) == 200
    assert np.allclose(np.diff(merged), 0.01)
    assert merged[0] == 10.0 and merged[-1] < 12.0


def test_poisson_mean_rate_and_stages() -> None:
    plans = LoadProfile.from_dict(
        {"shape": {"kind": "open", "arrivals": "poisson", "stages": [{"rate": 500, "duration": 10}, {"rate": 50, "duration": 10}]}}
    ).stages()
    times = np.array(_all(OpenLoopSchedule(plans, load_start=0.0, arrivals="poisson", seed=1)))
    first, second = (times < 10).sum(), (times >= 10).sum()
    assert abs(first - 5000) < 5 * np.sqrt(5000) and abs(second - 500) < 5 * np.sqrt(500)
