"""The host speed probe and the idle-slowdown measurement, run for real on this host."""

from __future__ import annotations

import time

import pytest

from mmeperf.planner.hostspeed import HostSpeed, HostSpeedProbe, measure_idle_slowdown, probe_work


def test_the_probe_measures_hot_speed_and_a_slowdown_per_gap() -> None:
    gaps = (0.001, 0.01)
    probe = HostSpeedProbe(0.002, gaps_s=gaps, work_iterations=2000)
    with pytest.raises(RuntimeError, match="no samples"):
        probe.speed()
    start = time.time()
    with probe:
        time.sleep(0.4)
        mark = probe.mark()
        time.sleep(0.3)
    speed = probe.speed()
    later = probe.speed(mark)
    assert speed.hot_s > 0 and speed.samples > 20
    assert 0 < later.samples < speed.samples
    assert [g for g, _ in speed.idle_points] == list(gaps)
    assert all(f >= 1.0 for _, f in speed.idle_points)
    assert speed.idle_factor == speed.idle_points[-1][1]
    curve = speed.idle_slowdown("a test")
    assert curve.points[0] == (0.0, 1.0) and len(curve.points) == 3
    assert speed.measured("a test").value == speed.hot_s
    trace = probe.speed_trace(start, speed.hot_s, bin_s=0.1)
    assert 4 <= len(trace) <= 8 and [t for t, _ in trace] == sorted(t for t, _ in trace)
    assert all(t >= 0 and r > 0 for t, r in trace)
    assert probe.speed_trace(time.time() + 60, speed.hot_s) == ()  # nothing after that start
    with pytest.raises(ValueError, match="reference_hot_s"):
        probe.speed_trace(start, 0.0)


def test_measure_idle_slowdown_returns_a_curve_from_no_sleep() -> None:
    curve = measure_idle_slowdown(0.3, gaps_s=(0.0005, 0.002))
    assert [g for g, _ in curve.points] == [0.0, 0.0005, 0.002]
    assert curve.points[0] == (0.0, 1.0) and all(f >= 1.0 for _, f in curve.points)
    assert curve.samples and curve.samples > 10
    with pytest.raises(ValueError, match="seconds > 0"):
        measure_idle_slowdown(0)


def test_bad_probe_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="gaps > 0"):
        HostSpeedProbe(gaps_s=(0.0,))
    with pytest.raises(ValueError, match="pause_s >= 0"):
        HostSpeedProbe(-1.0)
    assert probe_work(100) == probe_work(100)
    assert HostSpeed(hot_s=0.001, idle_points=(), samples=1).idle_factor == 1.0
