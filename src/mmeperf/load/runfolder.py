"""The run folder: names and columns of the files a benchmark writes, and crash-safe CSV writing.

Appended files (history, server metrics) are flushed every second; rewritten files go through a
temporary file and ``os.replace``, so a run killed at any instant leaves complete, readable CSVs.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = [
    "ENVIRONMENT_JSON",
    "FAILURES_COLUMNS",
    "FAILURES_CSV",
    "HISTOGRAMS_JSON",
    "HISTORY_COLUMNS",
    "HISTORY_CSV",
    "LATENCY_DISTRIBUTION_COLUMNS",
    "LATENCY_DISTRIBUTION_CSV",
    "PER_MODEL_COLUMNS",
    "PER_MODEL_CSV",
    "PROFILE_JSON",
    "PROGRESS_JSON",
    "RUN_JSON",
    "SERVER_METRICS_CSV",
    "SUMMARY_COLUMNS",
    "SUMMARY_CSV",
    "AppendingCsv",
    "atomic_write_csv",
    "atomic_write_json",
    "locust_csv_prefix",
]

SUMMARY_CSV = "summary_results.csv"
HISTORY_CSV = "history.csv"
PER_MODEL_CSV = "per_model_stats.csv"
LATENCY_DISTRIBUTION_CSV = "latency_distribution.csv"
HISTOGRAMS_JSON = "histograms.json"
FAILURES_CSV = "failures.csv"
SERVER_METRICS_CSV = "server_metrics.csv"
PROFILE_JSON = "profile.json"
ENVIRONMENT_JSON = "environment.json"
RUN_JSON = "run.json"
PROGRESS_JSON = "progress.json"

#: summary_results.csv: one row per stage, exact percentiles from HDR histograms (ms).
SUMMARY_COLUMNS: tuple[str, ...] = (
    "stage",
    "name",
    "instance_type",
    "platform",
    "max_models_loaded",  # the server's peak LoadedModelCount where it reports one, else empty
    "target_models",  # models the traffic targets
    "users",
    "target_rate",
    "start_s",
    "duration_s",
    "requests",
    "failures",
    "failure_pct",
    "rps",  # every request, successful or failed, per second of the stage
    "ok_rps",  # successful (2xx) requests per second: the throughput a comparison or cost uses
    "send_rate",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "mean_ms",
    "cold_requests",
    "cold_share",
    "warm_p50_ms",
    "warm_p99_ms",
    "cold_p50_ms",
    "cold_p99_ms",
    "late_sends",
    # users of the last stage before the first stage with a failure (closed loop; same on every row)
    "max_users_without_failures",
)

#: history.csv: one row per wall-clock second (requests counted by completion time).
HISTORY_COLUMNS: tuple[str, ...] = (
    "timestamp",  # end of the second, unix seconds
    "elapsed_s",  # timestamp - the run's t0 (same origin as server_metrics.csv)
    "stage",
    "users",
    "requests",
    "failures",
    "rps",  # requests completed in that second, successful or failed
    "ok_rps",  # successful requests completed in that second
    "failures_per_s",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "cold_requests",
    "late_sends",
)

PER_MODEL_COLUMNS: tuple[str, ...] = (
    "model",
    "requests",
    "failures",
    "failure_pct",
    "cold_requests",
    "cold_share",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "mean_ms",
)

LATENCY_DISTRIBUTION_COLUMNS: tuple[str, ...] = ("stage", "kind", "percentile", "latency_ms", "count")

FAILURES_COLUMNS: tuple[str, ...] = ("stage", "model", "status", "error_code", "count", "message")


def locust_csv_prefix(instance_type: str, platform: str, models: int) -> str:
    """``<instance>*<platform>*<n_models>``: the GPU reference splits file names on ``*``."""
    # The reference parses name.split("_")[0].split("*"): neither may appear inside a part.
    def clean(part: str) -> str:
        return part.replace("*", "-").replace("_", "-").replace("/", "-")

    return f"{clean(instance_type)}*{clean(platform)}*{int(models)}"


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return ""
    return value


def _csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
    os.replace(tmp, path)


def atomic_write_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Replace ``path`` with a complete CSV in one step (readers never see half a file)."""
    _atomic_write_text(path, _csv_text(columns, rows))


def atomic_write_json(path: Path, data: Any) -> None:
    _atomic_write_text(path, json.dumps(data, indent=1, default=str))


class AppendingCsv:
    """A CSV that grows by whole rows; each :meth:`append` is flushed to the OS at once."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path = path
        self.columns = tuple(columns)
        new = not path.exists() or path.stat().st_size == 0
        self._fh: IO[str] = path.open("a", encoding="utf-8", newline="")
        self._writer = csv.writer(self._fh, lineterminator="\n")
        if new:
            self._writer.writerow(self.columns)
            self._fh.flush()

    def append(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            self._writer.writerow([_cell(row.get(c)) for c in self.columns])
        # One flush per batch: a SIGKILL loses at most the batch being written, never a header.
        self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()
