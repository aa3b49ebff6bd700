"""BenchmarkResult: one run's folder read back as pandas DataFrames, plus convenience totals.

Works on a finished run and on one killed midway (every file is complete up to its last write).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mmeperf._types import PathLike
from mmeperf.errors import ConfigurationError
from mmeperf.load import runfolder as F
from mmeperf.load.thresholds import RunVerdict
from mmeperf.metrics import SERVER_METRIC_COLUMNS

__all__ = ["BenchmarkResult"]


def _read_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=list(columns))
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=list(columns))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass
class BenchmarkResult:
    """The files of one run as DataFrames.

    ``summary`` (per stage, exact HDR percentiles), ``history`` (per second), ``per_model``,
    ``server_metrics`` (per second, CloudWatch names), ``failures`` (with reasons),
    ``latency_distribution`` (warm/cold/all percentile curves) and ``info`` (run.json,
    environment.json and profile.json).
    """

    out_dir: Path
    summary: pd.DataFrame
    history: pd.DataFrame
    per_model: pd.DataFrame
    server_metrics: pd.DataFrame
    failures: pd.DataFrame
    latency_distribution: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, out_dir: PathLike) -> BenchmarkResult:
        out = Path(out_dir)
        if not out.is_dir():
            raise ConfigurationError(f"No benchmark result folder at {str(out)!r}")
        info = {
            "run": _read_json(out / F.RUN_JSON),
            "environment": _read_json(out / F.ENVIRONMENT_JSON),
            "profile": _read_json(out / F.PROFILE_JSON),
        }
        return cls(
            out_dir=out,
            summary=_read_csv(out / F.SUMMARY_CSV, F.SUMMARY_COLUMNS),
            history=_read_csv(out / F.HISTORY_CSV, F.HISTORY_COLUMNS),
            per_model=_read_csv(out / F.PER_MODEL_CSV, F.PER_MODEL_COLUMNS),
            server_metrics=_read_csv(out / F.SERVER_METRICS_CSV, SERVER_METRIC_COLUMNS),
            failures=_read_csv(out / F.FAILURES_CSV, F.FAILURES_COLUMNS),
            latency_distribution=_read_csv(out / F.LATENCY_DISTRIBUTION_CSV, F.LATENCY_DISTRIBUTION_COLUMNS),
            info=info,
        )

    # --- totals ---------------------------------------------------------------------------

    @property
    def totals(self) -> dict[str, Any]:
        totals = self.info.get("run", {}).get("totals")
        return totals if isinstance(totals, dict) else {}

    def _total(self, key: str) -> Any:
        if key in self.totals:
            return self.totals[key]
        if key in ("requests", "failures") and key in self.summary:
            return int(self.summary[key].sum())
        return None

    @property
    def status(self) -> str | None:
        """completed, stopped (on request or by a stop condition), aborted (its owner died), or running if killed."""
        value = self.info.get("run", {}).get("status")
        return None if value is None else str(value)

    @property
    def stop_reason(self) -> str | None:
        value = self.info.get("run", {}).get("stop_reason")
        return None if value is None else str(value)

    @property
    def verdict(self) -> RunVerdict | None:
        """Thresholds and failure checks as judged when the run ended (None for older folders)."""
        data = self.info.get("run", {}).get("verdict")
        return RunVerdict.model_validate(data) if isinstance(data, dict) else None

    @property
    def warmup(self) -> dict[str, Any] | None:
        """The warm-up's own counts and percentiles (excluded from every other figure), if any."""
        data = self.info.get("run", {}).get("warmup")
        return data if isinstance(data, dict) else None

    @property
    def max_users_without_failures(self) -> int | None:
        """Users of the last stage before the first one with a failure (closed-loop profiles)."""
        column = "max_users_without_failures"
        if column not in self.summary or self.summary.empty:
            return None
        value = self.summary[column].dropna()
        return None if value.empty else int(value.iloc[0])

    def _float(self, key: str) -> float | None:
        value = self._total(key)
        return None if value is None else float(value)

    @property
    def total_requests(self) -> int:
        """Every request sent, successful or failed."""
        return int(self._total("requests") or 0)

    @property
    def requests(self) -> int:
        """Same as :attr:`total_requests`."""
        return self.total_requests

    @property
    def total_failures(self) -> int:
        """Failed requests (``failures`` is the DataFrame of reasons)."""
        return int(self._total("failures") or 0)

    @property
    def rps(self) -> float | None:
        """Requests per second over the load's duration (all stages), failed ones included."""
        value = self._total("rps")
        return None if value is None else float(value)

    @property
    def ok_rps(self) -> float | None:
        """Successful requests per second over the load's duration (what a comparison ranks by)."""
        value = self._total("ok_rps")
        if value is None:
            # A folder written before ok_rps existed: the same figure from its totals.
            duration = self.duration_s
            if not duration or duration <= 0 or self._total("requests") is None:
                return None
            return (self.total_requests - self.total_failures) / duration
        return float(value)

    @property
    def p50_ms(self) -> float | None:
        return self._float("p50_ms")

    @property
    def p95_ms(self) -> float | None:
        return self._float("p95_ms")

    @property
    def p99_ms(self) -> float | None:
        return self._float("p99_ms")

    @property
    def duration_s(self) -> float | None:
        return self._float("duration_s")

    def locust_csv(self, kind: str = "stats") -> pd.DataFrame:
        """Locust's own CSV (stats, stats_history, failures, exceptions) of this run."""
        suffix = f"_{kind}.csv"
        matches = [
            m for m in sorted(self.out_dir.glob(f"*{suffix}"))
            if m.name[: -len(suffix)].count("*") == 2 and "_" not in m.name[: -len(suffix)]
        ]
        if not matches:
            return pd.DataFrame()
        return pd.read_csv(matches[0])

    def histograms(self) -> dict[str, Any]:
        """The encoded HDR histograms (``stages['<stage>/<kind>']``, ``models[name]``), decoded."""
        from mmeperf.load.hist import Histogram

        data = _read_json(self.out_dir / F.HISTOGRAMS_JSON)
        return {
            section: {key: Histogram.decode(value) for key, value in data.get(section, {}).items()}
            for section in ("stages", "models")
        }
