"""Hit ratio of an LRU cache under independent requests: Che's approximation, and a curve over sizes.

Che, Tung and Wang (2002): an LRU cache of C equal items under the independent reference model
keeps item i for a characteristic time T with sum_i (1 - exp(-p_i T)) = C; item i's hit ratio is
1 - exp(-p_i T), and the overall hit ratio is sum_i p_i (1 - exp(-p_i T)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from mmeperf.errors import ConfigurationError

__all__ = ["che_characteristic_time", "che_hit_ratio", "hit_ratio_curve", "lru_hit_ratio_simulated"]


def _shares(popularity: Sequence[float]) -> np.ndarray:
    p = np.asarray(popularity, dtype=np.float64)
    if p.ndim != 1 or p.size == 0 or np.any(p < 0) or p.sum() <= 0:
        raise ConfigurationError("popularity must be non-negative weights with a positive sum")
    return p / p.sum()  # type: ignore[no-any-return]


def che_characteristic_time(popularity: Sequence[float], cache_size: int) -> float:
    """T with sum_i (1 - exp(-p_i T)) = cache_size (requests as the time unit); inf if all fit."""
    p = _shares(popularity)
    p = p[p > 0]
    if cache_size >= p.size:
        return math.inf
    if cache_size <= 0:
        return 0.0

    def filled(t: float) -> float:
        return float(np.sum(-np.expm1(-p * t))) - cache_size

    lo, hi = 0.0, 1.0
    while filled(hi) < 0:
        hi *= 2.0
    for _ in range(200):  # bisection to machine precision
        mid = (lo + hi) / 2
        if filled(mid) < 0:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return (lo + hi) / 2


def che_hit_ratio(popularity: Sequence[float], cache_size: int) -> float:
    """Che's approximation of the LRU hit ratio for ``cache_size`` items of this popularity."""
    p = _shares(popularity)
    t = che_characteristic_time(p.tolist(), cache_size)
    if math.isinf(t):
        return 1.0
    return float(np.sum(p * -np.expm1(-p * t)))


def lru_hit_ratio_simulated(
    popularity: Sequence[float], cache_size: int, *, requests: int = 200_000, warmup: int = 20_000, seed: int = 0,
) -> float:
    """The LRU hit ratio of independent draws, counted (after ``warmup`` requests)."""
    from collections import OrderedDict

    p = _shares(popularity)
    rng = np.random.default_rng(seed)
    draws = np.searchsorted(np.cumsum(p), rng.random(requests + warmup) * p.sum(), side="right")
    draws = np.minimum(draws, p.size - 1).tolist()
    cache: OrderedDict[int, None] = OrderedDict()
    hits = 0
    for n, item in enumerate(draws):
        if item in cache:
            cache.move_to_end(item)
            if n >= warmup:
                hits += 1
            continue
        cache[item] = None
        if len(cache) > cache_size:
            cache.popitem(last=False)
    return hits / requests


def hit_ratio_curve(
    popularity: Sequence[float], sizes: Sequence[int], *, simulate: bool = True, seed: int = 0,
    requests: int = 100_000,
) -> list[dict[str, float | int | None]]:
    """Hit ratio against cache size (models that fit): Che's figure and, if asked, a counted one."""
    rows: list[dict[str, float | int | None]] = []
    for size in sizes:
        rows.append({
            "models_that_fit": int(size),
            "che": che_hit_ratio(popularity, int(size)),
            "simulated": lru_hit_ratio_simulated(popularity, int(size), requests=requests, seed=seed)
            if simulate else None,
        })
    return rows
