"""Several runs side by side: one summary row per endpoint, costs, and the recommendation.

The row holds the results contract of ``summary_results.csv`` at the top of a comparison folder:
``instance_type, requests, failures, rps, p50_ms, p95_ms, p99_ms, loaded_model_count_max,
model_loads, model_unloads, cache_hit_ratio, cost_per_hour_usd, cost_per_million_usd`` and a few
more (label, emulated, unloads after warm-up, price date).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from mmeperf.instances import DEFAULT_CATALOG, InstanceCatalog
from mmeperf.metrics import ServerMetrics
from mmeperf.results.cost import (
    DEFAULT_P99_BUDGET_MS,
    Candidate,
    HostingComparison,
    Recommendation,
    endpoint_cost,
    mme_vs_single_endpoints,
    recommend,
)

__all__ = ["SUMMARY_COLUMNS", "THRASH_MARK", "Comparison", "RunSummary", "cache_lines", "compare"]

SUMMARY_COLUMNS: tuple[str, ...] = (
    "label",
    "instance_type",
    "instance_count",
    "emulated",
    "requests",
    "failures",
    "rps",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "cold_share",
    "loaded_model_count_max",
    "model_loads",
    "model_unloads",
    "model_unloads_after_warmup",
    "cache_hit_ratio",
    "cost_per_hour_usd",
    "cost_per_million_usd",
    "price_as_of",
)


class RunSummary(BaseModel):
    """What one endpoint did under load: client totals plus the server's own counters."""

    label: str
    instance_type: str
    instance_count: int = 1
    emulated: bool = False
    requests: int
    failures: int
    duration_s: float
    """Seconds of load the totals cover."""
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    cold_share: float | None = None
    """Share of requests that waited for a model load (from the MME's headers)."""
    server_start: ServerMetrics | None = None
    """Server counters when the load started (after warm-up)."""
    server_end: ServerMetrics
    """Server counters when the load ended."""
    loaded_model_count_max: int
    """Most models in memory at once, over the server metric samples."""

    @property
    def rps(self) -> float:
        """Successful requests per second."""
        return (self.requests - self.failures) / self.duration_s if self.duration_s > 0 else 0.0

    def row(self, catalog: InstanceCatalog = DEFAULT_CATALOG) -> dict[str, Any]:
        cost = endpoint_cost(self.instance_type, self.rps, instance_count=self.instance_count, catalog=catalog)
        end, start = self.server_end, self.server_start
        lookups = end.model_cache_lookups - (start.model_cache_lookups if start else 0)
        hits = end.model_cache_hits - (start.model_cache_hits if start else 0)
        return {
            "label": self.label,
            "instance_type": self.instance_type,
            "instance_count": self.instance_count,
            "emulated": self.emulated,
            "requests": self.requests,
            "failures": self.failures,
            "rps": round(self.rps, 3),
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "cold_share": self.cold_share,
            "loaded_model_count_max": self.loaded_model_count_max,
            "model_loads": end.model_loads,
            "model_unloads": end.model_unloads,
            "model_unloads_after_warmup": end.model_unloads - (start.model_unloads if start else 0),
            "cache_hit_ratio": hits / lookups if lookups else None,
            "cost_per_hour_usd": cost.cost_per_hour_usd,
            "cost_per_million_usd": cost.cost_per_million_usd,
            "price_as_of": cost.price_as_of,
        }


class Comparison(BaseModel):
    """The runs, their summary table, the recommendation and the MME-vs-single-endpoints cost."""

    runs: list[RunSummary]
    recommendation: Recommendation
    hosting: list[HostingComparison]
    n_models: int

    def frame(self, catalog: InstanceCatalog = DEFAULT_CATALOG) -> pd.DataFrame:
        return pd.DataFrame([r.row(catalog) for r in self.runs], columns=list(SUMMARY_COLUMNS))

    def write_csv(self, path: Path) -> Path:
        self.frame().to_csv(path, index=False)
        return path

    def cache_lines(self, *, worker_mode: str = "thread") -> list[str]:
        """What each endpoint's cache did under load, from the server's own counters; a run that
        unloaded models after warm-up gets the thrash caveat (cold share, waits, load time).
        ``worker_mode="process"``: the server started a worker process per load, as SageMaker's
        CPU containers do, so its load times need no lower-bound warning."""
        return cache_lines(self, worker_mode=worker_mode)

    def caveats(self) -> list[str]:
        """The thrash caveats only: one line per run that unloaded models after warm-up."""
        return [line for line in cache_lines(self) if THRASH_MARK in line]

    def verdict_lines(self) -> list[str]:
        """The recommendation and every cache line: what any verdict prints."""
        return [self.recommendation.explanation, *self.cache_lines()]


#: Words every thrash caveat holds (tests and callers find the caveat by them).
THRASH_MARK = "thrashes its model cache"


def _mean_us(start: ServerMetrics, end: ServerMetrics, field: str) -> float | None:
    a, b = getattr(start, field), getattr(end, field)
    n = b.count - a.count
    return (b.sum_us - a.sum_us) / n if n > 0 else None


def cache_lines(comparison: Comparison, *, worker_mode: str = "thread") -> list[str]:
    """See :meth:`Comparison.cache_lines`."""
    lines = []
    n_models = comparison.n_models
    rows = {row["label"]: row for row in comparison.frame().to_dict("records")}
    for run in comparison.runs:
        row = rows[run.label]
        unloads = int(row["model_unloads_after_warmup"])
        hit = row["cache_hit_ratio"]
        hit_text = "n/a" if hit is None or pd.isna(hit) else f"{hit:.1%}"
        if unloads <= 0:
            lines.append(
                f"{run.label} holds {row['loaded_model_count_max']} of {n_models} models with no unloads "
                f"after warm-up (cache-hit ratio {hit_text})."
            )
            continue
        line = (
            f"{run.label} {THRASH_MARK}: {unloads} unloads after warm-up, cache-hit ratio "
            f"{hit_text}, at most {row['loaded_model_count_max']} of {n_models} models loaded at once."
        )
        start = run.server_start or ServerMetrics(timestamp=0.0)
        load_us = _mean_us(start, run.server_end, "model_loading_time")
        wait_us = _mean_us(start, run.server_end, "model_loading_wait_time")
        if run.cold_share is not None:
            line += f" {run.cold_share:.0%} of its requests were cold"
            line += f" and waited {(wait_us or 0) / 1000:.1f} ms on average for a model" if wait_us is not None else ""
            line += "."
        if load_us is not None and worker_mode == "process":
            line += f" A load (a worker process start) took {load_us / 1000:.1f} ms."
        elif load_us is not None:
            line += (
                f" A load took {load_us / 1000:.1f} ms here. SageMaker's CPU containers start a worker "
                "process per loaded model, so loads there are much slower (the reference measured "
                "ModelLoadingTime of about 780 ms): read this endpoint's latency as a lower bound and "
                "confirm on SageMaker before choosing it."
            )
        lines.append(line)
    return lines


def compare(
    runs: Sequence[RunSummary],
    *,
    n_models: int,
    p99_budget_ms: float = DEFAULT_P99_BUDGET_MS,
    catalog: InstanceCatalog = DEFAULT_CATALOG,
) -> Comparison:
    """Summarize runs, cost them, and recommend the cheapest that meets the budget."""
    candidates = [
        Candidate(
            label=r.label,
            instance_type=r.instance_type,
            instance_count=r.instance_count,
            requests=r.requests,
            failures=r.failures,
            rps=r.rps,
            p99_ms=r.p99_ms,
        )
        for r in runs
    ]
    rec = recommend(candidates, p99_budget_ms=p99_budget_ms, catalog=catalog)
    hosting = [
        mme_vs_single_endpoints(n_models, r.instance_type, mme_instance_count=r.instance_count, catalog=catalog)
        for r in runs
    ]
    return Comparison(runs=list(runs), recommendation=rec, hosting=hosting, n_models=n_models)
