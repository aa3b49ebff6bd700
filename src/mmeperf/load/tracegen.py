"""Synthetic invocation traces for users without production logs: a diurnal rate and drifting Zipf popularity.

Arrivals are a non-homogeneous Poisson process with rate
``mean_rate * (1 + amplitude * cos(2 pi (t - peak_at) / period))`` (drawn by thinning); each
request's model is drawn from Zipf(``zipf_s``) weights over popularity ranks, and the ranking
drifts: every ``drift_every`` seconds each pair of neighbouring ranks trades places with
probability ``drift``, so yesterday's hot models cool and others warm up, as an MME's cache
sees in production. Seeded: the same arguments give the same trace.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmeperf._types import PathLike
from mmeperf.errors import ConfigurationError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["diurnal_rate", "synth_trace", "write_trace"]

#: 2024-01-01T00:00:00Z: where synthetic timestamps start unless told otherwise.
DEFAULT_START = 1_704_067_200.0


def diurnal_rate(t: np.ndarray | float, *, mean_rate: float, amplitude: float, period: float, peak_at: float) -> np.ndarray:
    """Requests per second at ``t`` seconds from the trace's start."""
    return mean_rate * (1.0 + amplitude * np.cos(2.0 * math.pi * (np.asarray(t, dtype=np.float64) - peak_at) / period))  # type: ignore[no-any-return]


def synth_trace(
    *,
    duration: float,
    mean_rate: float,
    models: int | Sequence[str] = 20,
    model_template: str = "model-{}",
    zipf_s: float = 1.0,
    amplitude: float = 0.5,
    period: float = 86_400.0,
    peak_at: float = 50_400.0,
    drift: float = 0.05,
    drift_every: float = 60.0,
    start: float = DEFAULT_START,
    seed: int = 0,
) -> pd.DataFrame:
    """A trace as a DataFrame: ``timestamp`` (epoch seconds, sorted) and ``model``.

    ``models``: a count (named with ``model_template``, ``{}`` is 0, 1, ...) or the names,
    most popular first at the start. ``amplitude`` in [0, 1]: 0 is a flat rate, 1 swings from
    0 to twice the mean; ``period`` (24 h) and ``peak_at`` (14:00) place the swing.
    ``drift`` in [0, 1]: the chance that two neighbouring ranks trade places each ``drift_every``.
    """
    import pandas as pd

    if duration <= 0 or mean_rate <= 0:
        raise ConfigurationError(f"duration and mean_rate must be > 0, received {duration} and {mean_rate}")
    if not 0 <= amplitude <= 1:
        raise ConfigurationError(f"amplitude must be in [0, 1], received {amplitude}")
    if not 0 <= drift <= 1:
        raise ConfigurationError(f"drift must be in [0, 1], received {drift}")
    if period <= 0 or drift_every <= 0 or zipf_s <= 0:
        raise ConfigurationError("period, drift_every and zipf_s must be > 0")
    names = [model_template.format(i) for i in range(models)] if isinstance(models, int) else [str(m) for m in models]
    if not names:
        raise ConfigurationError("a trace needs at least one model")
    rng = np.random.default_rng(seed)
    # Thinning: a Poisson process at the peak rate, each arrival kept with rate(t) / peak.
    peak = mean_rate * (1.0 + amplitude)
    candidates = np.sort(rng.uniform(0.0, duration, size=int(rng.poisson(peak * duration))))
    keep = rng.uniform(0.0, 1.0, size=candidates.size) * peak < diurnal_rate(
        candidates, mean_rate=mean_rate, amplitude=amplitude, period=period, peak_at=peak_at
    )
    t = candidates[keep]
    n = len(names)
    weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** zipf_s
    ranks = rng.choice(n, size=t.size, p=weights / weights.sum())
    epochs = np.minimum((t // drift_every).astype(np.int64), int(duration // drift_every))
    rankings = _drifting_rankings(n, int(epochs.max()) + 1 if t.size else 1, drift, rng)
    model_ids = rankings[epochs, ranks]
    return pd.DataFrame({
        "timestamp": np.round(start + t, 6),
        "model": np.asarray(names, dtype=object)[model_ids],
    })


def _drifting_rankings(n: int, epochs: int, drift: float, rng: np.random.Generator) -> np.ndarray:
    """``rankings[e, r]``: the model at popularity rank ``r`` during epoch ``e``."""
    rankings = np.empty((epochs, n), dtype=np.int64)
    order = np.arange(n, dtype=np.int64)
    for e in range(epochs):
        rankings[e] = order
        for first in (0, 1):  # even pairs, then odd pairs: no rank moves twice in one pass
            left = np.arange(first, n - 1, 2)
            swap = left[rng.uniform(size=left.size) < drift]
            order[swap], order[swap + 1] = order[swap + 1], order[swap].copy()
    return rankings


def write_trace(frame: pd.DataFrame, path: PathLike) -> Path:
    """Write a trace as CSV, or Parquet for a ``.parquet`` path (needs pyarrow)."""
    out = Path(path)
    if out.suffix.lower() in (".parquet", ".pq"):
        try:
            frame.to_parquet(out, index=False)
        except ImportError as exc:
            raise ConfigurationError("Writing Parquet needs pyarrow. Install it with: pip install 'mmeperf[parquet]'") from exc
    else:
        frame.to_csv(out, index=False)
    return out
