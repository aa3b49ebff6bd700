"""The run folder's writers: a run's tally turned into its rows and files as the run goes.

``history.csv`` grows by whole seconds; the summary, per-model, failure, distribution and
histogram files and ``run.json``/``progress.json`` are rewritten whole (see :mod:`.runfolder`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from mmeperf.load import runfolder as F
from mmeperf.load.hist import HIGHEST_US, LOWEST_US, SIGNIFICANT_DIGITS, Histogram
from mmeperf.load.profile import StagePlan
from mmeperf.load.tally import KINDS, WARMUP_STAGE, Counts, Group, RunTally

__all__ = [
    "DISTRIBUTION_PERCENTILES",
    "SUMMARY_PERCENTILES",
    "RunFolderWriter",
    "StageWindows",
    "distribution_rows",
    "failure_rows",
    "histograms_doc",
    "history_row",
    "max_users_without_failures",
    "per_model_row",
    "run_totals",
    "summary_rows",
    "warmup_doc",
]

SUMMARY_PERCENTILES: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0)
DISTRIBUTION_PERCENTILES: tuple[float, ...] = (
    0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 90.0, 95.0, 97.5, 99.0, 99.5,
    99.75, 99.9, 99.95, 99.975, 99.99, 99.999, 100.0,
)

#: Stage index -> wall-clock (start, end) as it ran, or None if the run never reached it.
StageWindows = Mapping[int, tuple[float, float] | None]


def history_row(second: int, group: Group | None, *, t0: float, stage: int, users: int | None) -> dict[str, Any]:
    """history.csv's row of the requests completed during ``second`` (unix seconds)."""
    counts = group.counts if group else Counts()
    pct = group.hist.percentiles_ms(SUMMARY_PERCENTILES) if group else {}
    return {
        "timestamp": second + 1,
        "elapsed_s": round(second + 1 - t0, 3),
        "stage": stage,
        "users": users,
        "requests": counts.requests,
        "failures": counts.failures,
        "rps": counts.requests,
        "ok_rps": counts.requests - counts.failures,
        "failures_per_s": counts.failures,
        "p50_ms": pct.get(50.0),
        "p90_ms": pct.get(90.0),
        "p95_ms": pct.get(95.0),
        "p99_ms": pct.get(99.0),
        "max_ms": counts.max_us / 1000.0 if counts.requests else None,
        "cold_requests": counts.cold,
        "late_sends": counts.late,
    }


def summary_rows(
    plans: list[StagePlan], tally: RunTally, windows: StageWindows, labels: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """summary_results.csv: one row per stage reached, exact HDR percentiles."""
    rows: list[dict[str, Any]] = []
    for plan in plans:
        window = windows.get(plan.index)
        counts = tally.stage_counts.get(plan.index)
        if window is None and counts is None:
            continue
        counts = counts or Counts()
        duration = (window[1] - window[0]) if window else 0.0
        all_pct = tally.stage_hist(plan.index).percentiles_ms(SUMMARY_PERCENTILES)
        warm = tally.stage_hist(plan.index, ("warm",)).percentiles_ms((50.0, 99.0))
        cold = tally.stage_hist(plan.index, ("cold",)).percentiles_ms((50.0, 99.0))
        users = plan.phase.users_at(plan.duration_s) if plan.phase is not None else plan.users
        rows.append(
            {
                "stage": plan.index,
                "name": plan.name,
                "instance_type": labels.get("instance_type"),
                "platform": labels.get("platform"),
                "max_models_loaded": labels.get("max_models_loaded"),
                "target_models": labels.get("target_models"),
                "users": users,
                "target_rate": plan.rate,
                "start_s": plan.start_s,
                "duration_s": round(duration, 3),
                "requests": counts.requests,
                "failures": counts.failures,
                "failure_pct": 100.0 * counts.failures / counts.requests if counts.requests else 0.0,
                "rps": counts.requests / duration if duration > 0 else None,
                "ok_rps": (counts.requests - counts.failures) / duration if duration > 0 else None,
                "send_rate": counts.send_rate,
                "p50_ms": all_pct[50.0],
                "p90_ms": all_pct[90.0],
                "p95_ms": all_pct[95.0],
                "p99_ms": all_pct[99.0],
                "max_ms": counts.max_us / 1000.0 if counts.requests else None,
                "mean_ms": counts.mean_ms,
                "cold_requests": counts.cold,
                "cold_share": counts.cold / counts.requests if counts.requests else None,
                "warm_p50_ms": warm[50.0],
                "warm_p99_ms": warm[99.0],
                "cold_p50_ms": cold[50.0],
                "cold_p99_ms": cold[99.0],
                "late_sends": counts.late,
            }
        )
    best = max_users_without_failures(plans, rows)
    for row in rows:
        row["max_users_without_failures"] = best
    return rows


def max_users_without_failures(plans: list[StagePlan], rows: list[dict[str, Any]]) -> int | None:
    """Users of the last stage before the first one with a failure (or with no request).

    Closed-loop profiles only (an open-loop stage is a rate, not users); None when the first
    stage already failed. Stages the run never reached do not count.
    """
    if not rows or any(p.rate is not None for p in plans):
        return None
    best: int | None = None
    for row in rows:
        if not row["requests"] or row["failures"]:
            break
        best = int(row["users"])
    return best


def per_model_row(model: str, group: Group) -> dict[str, Any]:
    """per_model_stats.csv's row of one model."""
    c = group.counts
    pct = group.hist.percentiles_ms(SUMMARY_PERCENTILES)
    return {
        "model": model,
        "requests": c.requests,
        "failures": c.failures,
        "failure_pct": 100.0 * c.failures / c.requests if c.requests else 0.0,
        "cold_requests": c.cold,
        "cold_share": c.cold / c.requests if c.requests else None,
        "p50_ms": pct[50.0],
        "p90_ms": pct[90.0],
        "p95_ms": pct[95.0],
        "p99_ms": pct[99.0],
        "max_ms": c.max_us / 1000.0 if c.requests else None,
        "mean_ms": c.mean_ms,
    }


def failure_rows(tally: RunTally) -> list[dict[str, Any]]:
    """failures.csv: one row per stage, model, status and error code."""
    return [
        {"stage": k[0], "model": k[1], "status": k[2], "error_code": k[3], "count": v[0], "message": v[1]}
        for k, v in sorted(tally.failures.items())
        if k[0] >= 0  # the warm-up's failures are in run.json's warmup section
    ]


def _distribution(stage: str, kind: str, hist: Histogram) -> list[dict[str, Any]]:
    total = hist.total
    if total == 0:
        return []
    values = hist.percentiles_ms(DISTRIBUTION_PERCENTILES)
    return [
        {"stage": stage, "kind": kind, "percentile": p, "latency_ms": values[p], "count": total}
        for p in DISTRIBUTION_PERCENTILES
    ]


def distribution_rows(tally: RunTally) -> list[dict[str, Any]]:
    """latency_distribution.csv: percentile curves of the whole run, then of each stage, per kind."""
    rows: list[dict[str, Any]] = []
    stages = tally.stages()
    for kind in (*KINDS, "all"):
        kinds = KINDS if kind == "all" else (kind,)
        run_hist = Histogram()
        for stage in stages:
            run_hist.merge(tally.stage_hist(stage, kinds))
        rows.extend(_distribution("all", kind, run_hist))
    for stage in stages:
        for kind in (*KINDS, "all"):
            kinds = KINDS if kind == "all" else (kind,)
            rows.extend(_distribution(str(stage), kind, tally.stage_hist(stage, kinds)))
    return rows


def histograms_doc(tally: RunTally) -> dict[str, Any]:
    """histograms.json: every stage/kind and model histogram in HDR's standard encoding."""
    return {
        "unit": "microseconds",
        "lowest": LOWEST_US,
        "highest": HIGHEST_US,
        "significant_digits": SIGNIFICANT_DIGITS,
        "stages": {
            f"{stage}/{kind}": g.hist.encode() for (stage, kind), g in sorted(tally.stage_kind.items()) if stage >= 0
        },
        "models": {model: g.hist.encode() for model, g in sorted(tally.models.items())},
    }


def run_totals(tally: RunTally, windows: StageWindows) -> dict[str, Any]:
    """run.json's totals: the whole run's counts, rates over the stages' durations, percentiles."""
    total = tally.total()
    run_hist = Histogram()
    for stage in tally.stages():
        run_hist.merge(tally.stage_hist(stage))
    pct = run_hist.percentiles_ms(SUMMARY_PERCENTILES)
    duration = 0.0
    for window in windows.values():
        if window:
            duration += window[1] - window[0]
    return {**_figures(total, duration, pct), "late_sends": total.late}


def _figures(counts: Counts, duration: float, pct: dict[float, float | None]) -> dict[str, Any]:
    """Counts, rates and percentiles of one window (the run's totals or the warm-up)."""
    return {
        "requests": counts.requests,
        "failures": counts.failures,
        "cold_requests": counts.cold,
        "duration_s": round(duration, 3),
        "rps": counts.requests / duration if duration > 0 else None,
        "ok_rps": (counts.requests - counts.failures) / duration if duration > 0 else None,
        "p50_ms": pct[50.0],
        "p90_ms": pct[90.0],
        "p95_ms": pct[95.0],
        "p99_ms": pct[99.0],
        "max_ms": counts.max_us / 1000.0 if counts.requests else None,
    }


def warmup_doc(tally: RunTally, window: tuple[float, float] | None) -> dict[str, Any]:
    """run.json's ``warmup``: the warm-up's own counts, rates and percentiles (excluded elsewhere)."""
    counts = tally.stage_counts.get(WARMUP_STAGE) or Counts()
    pct = tally.stage_hist(WARMUP_STAGE).percentiles_ms(SUMMARY_PERCENTILES)
    duration = (window[1] - window[0]) if window else 0.0
    failures: dict[tuple[int, str], list[Any]] = {}
    for (stage, _model, status, code), (count, message) in tally.failures.items():
        if stage == WARMUP_STAGE:
            entry = failures.setdefault((status, code), [0, message])
            entry[0] += count
    return {
        **_figures(counts, duration, pct),
        "failure_reasons": [
            {"status": s, "error_code": c, "count": v[0], "message": v[1]}
            for (s, c), v in sorted(failures.items(), key=lambda kv: -kv[1][0])
        ],
    }


class RunFolderWriter:
    """Writes one run's folder; every file is complete at any instant (see :mod:`.runfolder`)."""

    #: The standard encoding costs ~0.5 ms per histogram: every 30 s and at the end is enough.
    HISTOGRAMS_EVERY_S = 30.0

    def __init__(self, out_dir: Path, *, plans: list[StagePlan], t0: float, labels: Mapping[str, Any]) -> None:
        self.out_dir = out_dir
        self.plans = plans
        self.t0 = t0
        self.labels = labels
        self._history = F.AppendingCsv(out_dir / F.HISTORY_CSV, F.HISTORY_COLUMNS)
        self._last_histograms_write = 0.0

    def append_history(
        self,
        seconds: Iterable[int],
        tally: RunTally,
        *,
        stage_at: Callable[[float], int],
        users_at: Mapping[int, int],
    ) -> None:
        """Append the rows of these (complete) seconds to history.csv."""
        rows = [
            history_row(
                s, tally.seconds.get(s), t0=self.t0, stage=stage_at(s + 0.5), users=users_at.get(s + 1, users_at.get(s))
            )
            for s in seconds
        ]
        if rows:
            self._history.append(rows)

    def write_tables(
        self,
        tally: RunTally,
        windows: StageWindows,
        *,
        now: float,
        final: bool = False,
        pause: Callable[[], None] = lambda: None,
    ) -> None:
        """Rewrite the summary, per-model, failure and distribution files (and now and then the histograms).

        ``pause`` is called between steps, so a load process's event loop is never held long.
        """
        F.atomic_write_csv(
            self.out_dir / F.SUMMARY_CSV, F.SUMMARY_COLUMNS, summary_rows(self.plans, tally, windows, self.labels)
        )
        pause()
        rows = []
        for n, model in enumerate(sorted(tally.models)):
            if n % 16 == 15:
                pause()
            rows.append(per_model_row(model, tally.models[model]))
        F.atomic_write_csv(self.out_dir / F.PER_MODEL_CSV, F.PER_MODEL_COLUMNS, rows)
        pause()
        F.atomic_write_csv(self.out_dir / F.FAILURES_CSV, F.FAILURES_COLUMNS, failure_rows(tally))
        F.atomic_write_csv(
            self.out_dir / F.LATENCY_DISTRIBUTION_CSV, F.LATENCY_DISTRIBUTION_COLUMNS, distribution_rows(tally)
        )
        pause()
        if final or now - self._last_histograms_write >= self.HISTOGRAMS_EVERY_S:
            F.atomic_write_json(self.out_dir / F.HISTOGRAMS_JSON, histograms_doc(tally))
            self._last_histograms_write = now

    def write_status(self, run_info: Mapping[str, Any], progress: Mapping[str, Any]) -> None:
        """Rewrite run.json and progress.json."""
        F.atomic_write_json(self.out_dir / F.RUN_JSON, run_info)
        F.atomic_write_json(self.out_dir / F.PROGRESS_JSON, progress)

    def close(self) -> None:
        self._history.close()
