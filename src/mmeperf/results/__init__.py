"""Results: comparisons, cost, charts and the HTML report, read from runs' folders.

A run's folder and :class:`BenchmarkResult` belong to the load side (:mod:`mmeperf.load.result`);
the name is re-exported here, imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmeperf.load.result import BenchmarkResult
    from mmeperf.results.folders import FolderReport, report_from_folders

__all__ = ["BenchmarkResult", "FolderReport", "report_from_folders"]

_LAZY = {
    "BenchmarkResult": "mmeperf.load.result",
    "FolderReport": "mmeperf.results.folders",
    "report_from_folders": "mmeperf.results.folders",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mmeperf.results' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
