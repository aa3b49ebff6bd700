"""Data sets the reference workflows need, generated from seeds (nothing is downloaded).

``mmeperf.datasets.churn``: the synthetic telecom churn data and its 51 per-state models.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["churn"]


def __getattr__(name: str) -> ModuleType:
    # Lazy, so importing the package does not pull pandas in.
    if name == "churn":
        return importlib.import_module("mmeperf.datasets.churn")
    raise AttributeError(f"module 'mmeperf.datasets' has no attribute {name!r}")
