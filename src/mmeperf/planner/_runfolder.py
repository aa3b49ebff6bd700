"""The planner's one door to the run-folder schema: reading a run, writing a predicted one.

Every import of the result schema (``BenchmarkResult``, file names, columns) lives here, so a
move of those modules changes this file only.
"""

from __future__ import annotations

from mmeperf.load import runfolder as F
from mmeperf.load.result import BenchmarkResult

__all__ = [
    "ENVIRONMENT_JSON",
    "FAILURES_COLUMNS",
    "FAILURES_CSV",
    "HISTOGRAMS_JSON",
    "HISTORY_COLUMNS",
    "HISTORY_CSV",
    "PER_MODEL_COLUMNS",
    "PER_MODEL_CSV",
    "PROFILE_JSON",
    "RUN_JSON",
    "SERVER_METRICS_CSV",
    "SUMMARY_COLUMNS",
    "SUMMARY_CSV",
    "BenchmarkResult",
    "atomic_write_csv",
    "atomic_write_json",
]

ENVIRONMENT_JSON = F.ENVIRONMENT_JSON
FAILURES_COLUMNS = F.FAILURES_COLUMNS
FAILURES_CSV = F.FAILURES_CSV
HISTOGRAMS_JSON = F.HISTOGRAMS_JSON
HISTORY_COLUMNS = F.HISTORY_COLUMNS
HISTORY_CSV = F.HISTORY_CSV
PER_MODEL_COLUMNS = F.PER_MODEL_COLUMNS
PER_MODEL_CSV = F.PER_MODEL_CSV
PROFILE_JSON = F.PROFILE_JSON
RUN_JSON = F.RUN_JSON
SERVER_METRICS_CSV = F.SERVER_METRICS_CSV
SUMMARY_COLUMNS = F.SUMMARY_COLUMNS
SUMMARY_CSV = F.SUMMARY_CSV
atomic_write_csv = F.atomic_write_csv
atomic_write_json = F.atomic_write_json
