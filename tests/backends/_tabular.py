"""Tabular rows shaped like the churn features, for the XGBoost backend tests."""

from __future__ import annotations

from typing import Any

import numpy as np

N_FEATURES = 17


def churn_like(n_rows: int, *, seed: int = 0) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Rows shaped like the churn features, with a label the features decide."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_rows, N_FEATURES)).astype(np.float32)
    y = ((x[:, 0] + 0.5 * x[:, 3] - x[:, 7] * x[:, 2]) > 0).astype(np.int32)
    return x, y
