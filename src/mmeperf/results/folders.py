"""Reports from finished run folders: the demo's HTML report, charts and verdict, with no live
endpoint (``mmeperf report RUN``, ``mmeperf compare RUN RUN ...``, :func:`report_from_folders`).

Each folder is what ``mmeperf bench`` or :class:`~mmeperf.load.benchmark.Benchmark` wrote: the
CSVs, the server's own metrics per interval (server_metrics.csv, when the endpoint exposed them)
and run.json's ``report`` facts (cold share, method, emulation, peak loaded models).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmeperf._types import PathLike
from mmeperf.errors import ConfigurationError
from mmeperf.instances import DEFAULT_CATALOG, InstanceCatalog
from mmeperf.metrics import LATENCY_FIELDS, LatencyStat, ServerMetrics
from mmeperf.results.cost import DEFAULT_P99_BUDGET_MS

if TYPE_CHECKING:
    from mmeperf.load.result import BenchmarkResult
    from mmeperf.load.thresholds import RunVerdict, Threshold
    from mmeperf.results.compare import Comparison, RunSummary

__all__ = [
    "FolderReport",
    "metrics_from_intervals",
    "overall_distribution",
    "report_from_folders",
    "run_summary",
    "users_view",
]

#: The latency metric's sample count in each interval row (CloudWatch's SampleCount).
_WEIGHTS = {
    "ModelLatency": "Invocations",
    "OverheadLatency": "Invocations",
    "ModelLoadingWaitTime": "_misses",
    "ModelDownloadingTime": "ModelLoads",
    "ModelLoadingTime": "ModelLoads",
    "ModelUnloadingTime": "ModelUnloads",
}


def users_view(history: pd.DataFrame) -> pd.DataFrame:
    """Client history per user count: requests and failures summed, per-second values averaged."""
    if history.empty:
        return pd.DataFrame(columns=["users", "rps", "p50_ms", "p99_ms", "requests", "failures"])
    frame = history.copy()
    for column in ("users", "rps", "p50_ms", "p99_ms", "requests", "failures"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame = frame[frame["users"] > 0]
    bins = min(12, max(frame["users"].nunique(), 1))
    frame["bucket"] = pd.cut(frame["users"], bins=bins) if bins > 1 else 0
    grouped = frame.groupby("bucket", observed=True).agg(
        users=("users", "max"), rps=("rps", "mean"), p50_ms=("p50_ms", "median"),
        p99_ms=("p99_ms", "median"), requests=("requests", "sum"), failures=("failures", "sum"),
    )
    return grouped.reset_index(drop=True)


def overall_distribution(result: BenchmarkResult) -> pd.DataFrame:
    """The run's warm/cold/all latency curves over all stages (or per stage when that is all)."""
    dist = result.latency_distribution
    if dist.empty or "stage" not in dist:
        return dist
    stages = dist["stage"].astype(str)
    overall = dist[stages.isin(["all", "total", "overall"])]
    return overall if not overall.empty else dist


def metrics_from_intervals(frame: pd.DataFrame, *, until_s: float | None = None) -> ServerMetrics:
    """Cumulative server counters rebuilt from server_metrics.csv's interval rows (up to
    ``until_s`` seconds of the run): sums of counts, latency sums as mean x sample count."""
    if frame.empty or "elapsed_s" not in frame:
        return ServerMetrics(timestamp=0.0)
    rows = frame.copy()
    for column in rows.columns:
        rows[column] = pd.to_numeric(rows[column], errors="coerce")
    if until_s is not None:
        rows = rows[rows["elapsed_s"] <= until_s + 1e-6]
    if rows.empty:
        return ServerMetrics(timestamp=0.0)

    def col(name: str) -> pd.Series:
        if name == "_misses":
            return col("Invocations") * (1 - col("ModelCacheHit").fillna(1.0))
        return rows[name].fillna(0.0) if name in rows else pd.Series(0.0, index=rows.index)

    invocations = col("Invocations")
    hits = invocations * col("ModelCacheHit").where(rows.get("ModelCacheHit", pd.Series(np.nan, index=rows.index)).notna(), 1.0)
    latencies: dict[str, Any] = {}
    for metric, fieldname in LATENCY_FIELDS.items():
        weight = col(_WEIGHTS[metric])
        mean = rows[metric] if metric in rows else pd.Series(np.nan, index=rows.index)
        ok = mean.notna() & (weight > 0)
        latencies[fieldname] = LatencyStat(count=round(float(weight[ok].sum())),
                                           sum_us=float((mean[ok] * weight[ok]).sum()),
                                           max_us=float(mean[ok].max()) if ok.any() else 0.0)
    loaded = rows["LoadedModelCount"].dropna() if "LoadedModelCount" in rows else pd.Series(dtype=float)
    return ServerMetrics(
        timestamp=float(rows["timestamp"].max()) if "timestamp" in rows else 0.0,
        invocations=int(invocations.sum()),
        invocation_4xx_errors=int(col("Invocation4XXErrors").sum()),
        invocation_5xx_errors=int(col("Invocation5XXErrors").sum()),
        model_cache_hits=round(float(hits.sum())),
        model_cache_lookups=int(invocations.sum()),
        loaded_model_count=int(loaded.iloc[-1]) if len(loaded) else 0,
        model_loads=int(col("ModelLoads").sum()),
        model_unloads=int(col("ModelUnloads").sum()),
        **latencies,
    )


def _report_facts(result: BenchmarkResult) -> dict[str, Any]:
    facts = result.info.get("run", {}).get("report")
    return facts if isinstance(facts, dict) else {}


def _instance_type(result: BenchmarkResult, facts: dict[str, Any], catalog: InstanceCatalog) -> str:
    for candidate in (facts.get("instance_profile"), facts.get("instance_type"),
                      result.summary["instance_type"].dropna().iloc[0] if "instance_type" in result.summary
                      and result.summary["instance_type"].notna().any() else None):
        if candidate and str(candidate) in catalog:
            return str(candidate)
    raise ConfigurationError(
        f"Run {str(result.out_dir)!r} names no priced instance type (received "
        f"{facts.get('instance_type')!r}); expected one of the catalog's, e.g. ml.c5.xlarge: give "
        "--instance-type (or --instance-profile) to bench, or label=instance type here"
    )


def run_summary(
    result: BenchmarkResult,
    *,
    label: str | None = None,
    instance_type: str | None = None,
    start: ServerMetrics | None = None,
    end: ServerMetrics | None = None,
    catalog: InstanceCatalog = DEFAULT_CATALOG,
) -> RunSummary:
    """A :class:`RunSummary` from a run's folder. Server counters: ``start``/``end`` when read
    live (the demo), else rebuilt from server_metrics.csv, counted from the end of the warm-up."""
    from mmeperf.results.compare import RunSummary

    facts = _report_facts(result)
    itype = instance_type or _instance_type(result, facts, catalog)
    metrics = result.server_metrics
    warm = result.warmup or {}
    warm_s = warm.get("duration_s")
    if end is None:
        end = metrics_from_intervals(metrics)
        if start is None and warm_s is not None:
            start = metrics_from_intervals(metrics, until_s=float(warm_s))
    loaded = pd.to_numeric(metrics["LoadedModelCount"], errors="coerce") if "LoadedModelCount" in metrics \
        else pd.Series(dtype=float)
    peaks = [int(loaded.max())] if loaded.notna().any() else []
    peaks += [m.loaded_model_count for m in (start, end) if m is not None]
    if facts.get("peak_loaded_model_count") is not None:
        peaks.append(int(facts["peak_loaded_model_count"]))
    summary = result.summary
    cold = pd.to_numeric(summary.get("cold_requests", pd.Series(dtype=float)), errors="coerce").sum()
    requests = result.total_requests
    return RunSummary(
        label=label or itype,
        instance_type=itype,
        emulated=bool(facts.get("emulated", False)),
        requests=requests,
        failures=result.total_failures,
        duration_s=float(result.duration_s or 0.0),
        p50_ms=result.p50_ms,
        p95_ms=result.p95_ms,
        p99_ms=result.p99_ms,
        cold_share=float(cold) / requests if requests else None,
        server_start=start,
        server_end=end,
        loaded_model_count_max=max(peaks) if peaks else 0,
    )


def _method_notes(results: dict[str, BenchmarkResult], catalog: InstanceCatalog, region: str | None,
                  types: Sequence[str]) -> list[str]:
    notes = [
        "Latency is measured client-side per request in HDR histograms (exact to 3 significant "
        "digits), from send to the last byte of the response body.",
    ]
    sampled = [label for label, r in results.items() if not r.server_metrics.empty]
    if sampled:
        sources = {str((_report_facts(r).get("method") or {}).get("server_metrics") or "the endpoint")
                   for r in results.values()}
        notes.append(
            "Server metrics carry CloudWatch's MME names; they were read from the endpoint's own metrics "
            f"({', '.join(sorted(sources))}) during each run and are averaged per interval, not since the start."
        )
    missing = [label for label in results if label not in sampled]
    if missing:
        notes.append(f"No server metrics for {', '.join(missing)}: the endpoint exposed none, so its dashboard "
                     "panels are empty and its cache figures unknown.")
    for label, r in results.items():
        warm = r.warmup
        method = _report_facts(r).get("method") or {}
        user = method.get("user")
        workers = method.get("workers")
        how = f"{label}: {r.total_requests} requests"
        if user:
            how += f" by Locust's {user!r} user" + (f" with {workers} workers" if workers else " in one process")
        if warm is not None:
            how += (f"; warm-up of {warm.get('requests')} requests ({warm.get('cold_requests')} cold) excluded "
                    "from every figure")
        else:
            how += "; no warm-up: first loads are part of the figures"
        notes.append(how + ".")
    notes.append(
        "Cost per million inferences uses the measured successful throughput, which the users' think time "
        "bounds: it is the cost at this offered load, not at the instance's capacity."
    )
    as_of = sorted({catalog.get(t).price_as_of for t in types})
    where = region or "us-east-1"
    prices = f"Prices are on-demand, as of {', '.join(as_of)}"
    prices += " (the built-in catalog lists us-east-1)" if catalog is DEFAULT_CATALOG else " (custom catalog)"
    if region and region != "us-east-1" and catalog is DEFAULT_CATALOG:
        prices += f"; --region {where} has no built-in prices: give --catalog FILE with {where}'s"
    notes.append(prices + ".")
    emulation = {str(_report_facts(r).get("emulation_note")) for r in results.values()
                 if _report_facts(r).get("emulation_note")}
    notes.extend(sorted(emulation))
    return notes


@dataclass
class FolderReport:
    """What :func:`report_from_folders` wrote and concluded."""

    report: Path
    summary_csv: Path
    comparison: Comparison
    verdict: list[str]
    """The recommendation, then each run's cache line (thrash caveats included)."""
    caveats: list[str]
    """The thrash caveats alone."""
    thresholds: dict[str, RunVerdict] = field(default_factory=dict)
    """Each run's thresholds judged on its totals (empty without thresholds)."""
    reasons: list[str] = field(default_factory=list)
    """Why the comparison fails (a threshold, or no run meeting the p99 budget)."""

    @property
    def passed(self) -> bool:
        return not self.reasons

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1


def report_from_folders(
    runs: Sequence[PathLike],
    out: PathLike | None = None,
    *,
    labels: Sequence[str] | None = None,
    instance_types: Sequence[str | None] | None = None,
    p99_budget_ms: float = DEFAULT_P99_BUDGET_MS,
    thresholds: Sequence[Threshold | str] = (),
    catalog: InstanceCatalog = DEFAULT_CATALOG,
    region: str | None = None,
    n_models: int | None = None,
    title: str | None = None,
) -> FolderReport:
    """The demo's HTML report, charts, summary_results.csv and verdict from finished run folders.

    ``out`` defaults to the run's own folder for one run, else ``comparison/`` beside the first.
    Labels default to each run's instance type (deduplicated with the folder name). A run whose
    totals fail one of ``thresholds``, or no run within ``p99_budget_ms``, fails the report
    (:attr:`FolderReport.exit_code` 1).
    """
    from mmeperf.load.result import BenchmarkResult
    from mmeperf.load.thresholds import Threshold, judge, top_failure_reasons
    from mmeperf.results.compare import compare
    from mmeperf.results.report import write_report

    if not runs:
        raise ConfigurationError("Expected at least one run folder, received none")
    folders = [Path(r) for r in runs]
    for folder in folders:
        if not (folder / "summary_results.csv").exists():
            raise ConfigurationError(
                f"Expected a finished run folder (with summary_results.csv), received {str(folder)!r}"
            )
    loaded = [BenchmarkResult.load(f) for f in folders]
    types = list(instance_types or [None] * len(loaded))
    if len(types) != len(loaded) or (labels is not None and len(labels) != len(loaded)):
        raise ConfigurationError(f"Expected one label / instance type per run ({len(loaded)}), received "
                                 f"{len(labels or [])} labels and {len(types)} instance types")
    results: dict[str, BenchmarkResult] = {}
    summaries = []
    for i, result in enumerate(loaded):
        itype = types[i] or _instance_type(result, _report_facts(result), catalog)
        label = labels[i] if labels is not None else itype
        if label in results:
            label = f"{label} ({folders[i].name})"
        results[label] = result
        summaries.append(run_summary(result, label=label, instance_type=itype, catalog=catalog))
    if n_models is None:
        targets = [_report_facts(r).get("target_models") for r in loaded]
        known = [int(t) for t in targets if t is not None]
        if not known:
            known = [int(r.per_model["model"].nunique()) for r in loaded if "model" in r.per_model]
        n_models = max(known) if known else 1
    comparison = compare(summaries, n_models=n_models, p99_budget_ms=p99_budget_ms, catalog=catalog)
    out_dir = Path(out) if out is not None else (folders[0] if len(folders) == 1 else folders[0].parent / "comparison")
    out_dir.mkdir(parents=True, exist_ok=True)
    summary_name = "comparison_results.csv" if out_dir in folders else "summary_results.csv"
    summary_csv = comparison.write_csv(out_dir / summary_name)
    verdict = comparison.verdict_lines()
    checks = [t if isinstance(t, Threshold) else Threshold.parse(t) for t in thresholds]
    judged: dict[str, RunVerdict] = {}
    reasons: list[str] = []
    if checks:
        for label, result in results.items():
            v = judge(result.totals, top_failure_reasons([{str(k): v for k, v in row.items()} for row in result.failures.to_dict("records")], n=1000), checks)
            judged[label] = v
            reasons += [f"{label}: {reason}" for reason in v.reasons]
    if comparison.recommendation.chosen is None:
        reasons.append(f"no run meets the p99 budget of {p99_budget_ms:g} ms with zero failures")
    report = write_report(
        out_dir, comparison,
        server_metrics={label: r.server_metrics for label, r in results.items()},
        stages={label: users_view(r.history) for label, r in results.items()},
        distributions={label: overall_distribution(r) for label, r in results.items()},
        title=title or (f"mmeperf report: {next(iter(results))}" if len(results) == 1
                        else f"mmeperf comparison: {' vs '.join(results)}"),
        notes=_method_notes(results, catalog, region, [s.instance_type for s in summaries]),
        extra_verdict=[*comparison.cache_lines(), *(f"Threshold failed: {r}" for r in reasons)],
    )
    return FolderReport(report=report, summary_csv=summary_csv, comparison=comparison, verdict=verdict,
                        caveats=comparison.caveats(), thresholds=judged, reasons=reasons)
