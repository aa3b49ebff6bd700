"""Che's approximation against counted LRU hit ratios."""

from __future__ import annotations

import pytest

from mmeperf.errors import ConfigurationError
from mmeperf.planner.cache import che_hit_ratio, hit_ratio_curve, lru_hit_ratio_simulated


def test_che_matches_a_counted_lru_under_zipf() -> None:
    weights = [1 / k for k in range(1, 201)]
    for size in (10, 50, 120):
        che = che_hit_ratio(weights, size)
        counted = lru_hit_ratio_simulated(weights, size, requests=100_000, seed=1)
        assert abs(counted - che) / che < 0.02, (size, counted, che)


def test_edges_and_curve() -> None:
    assert che_hit_ratio([1, 1, 1], 3) == 1.0
    assert che_hit_ratio([1, 1, 1], 0) == 0.0
    assert che_hit_ratio([1.0] * 10, 5) == pytest.approx(0.5, rel=1e-6)  # uniform: C/N
    curve = hit_ratio_curve([1 / k for k in range(1, 51)], [5, 10, 25], simulate=False)
    ratios = [row["che"] for row in curve]
    assert ratios == sorted(ratios)
    with pytest.raises(ConfigurationError):
        che_hit_ratio([], 1)
