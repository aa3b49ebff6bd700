"""Fixtures for the backend tests: tiny models trained in milliseconds, nothing downloaded."""

from __future__ import annotations

from typing import Any

import pytest

from tests.backends._tabular import churn_like


@pytest.fixture(scope="session")
def tiny_booster() -> Any:
    """A 5-tree binary:logistic XGBoost booster on 17 churn-like features."""
    xgboost = pytest.importorskip("xgboost")
    x, y = churn_like(300)
    return xgboost.train(
        {"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
        xgboost.DMatrix(x, label=y),
        num_boost_round=5,
    )
