"""The churn workflow end to end on the local MME: 51 per-state XGBoost models, two emulated
instance types loaded side by side with the same traffic, one report, a cost and a verdict.

It reproduces the AIM408 reference demo with no cloud account: generate the data, train one model
per state, build the repository, start two local endpoints (ml.c5.xlarge and ml.c5.2xlarge by
default, emulated as :mod:`mmeperf.instances` describes), warm each up with one request per model,
drive the same :class:`~mmeperf.load.profile.LoadProfile` at both at the same time, and compare.
"""

from __future__ import annotations

import contextlib
import csv
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from mmeperf.instances import DEFAULT_CATALOG
from mmeperf.load.profile import Duration
from mmeperf.metrics import ServerMetrics
from mmeperf.results.cost import DEFAULT_P99_BUDGET_MS

if TYPE_CHECKING:
    from mmeperf.demos.churn_reference import Window
    from mmeperf.endpoints.base import Endpoint
    from mmeperf.load.benchmark import Progress
    from mmeperf.load.result import BenchmarkResult
    from mmeperf.results.compare import RunSummary

__all__ = ["ChurnDemoOptions", "ChurnDemoResult", "run_churn_demo"]

MODEL_TEMPLATE = "churn-xgb-{state}"


class ChurnDemoOptions(BaseModel):
    """Options of ``mmeperf demo churn``; defaults keep the whole run near two minutes."""

    model_config = ConfigDict(extra="forbid")

    out: Path = Path("mmeperf-out/churn")
    """Where the repository, the runs, summary_results.csv and report.html go."""
    instance_types: list[str] = Field(default_factory=lambda: ["ml.c5.xlarge", "ml.c5.2xlarge"], min_length=1)
    """Instance types to emulate, one local endpoint each, loaded at the same time."""
    users: int | None = Field(default=None, ge=1)
    """Concurrent users per endpoint (None: the reference's 300 x the CPU scale in process mode,
    100 in thread mode)."""
    spawn_rate: float = Field(default=5.0, gt=0)
    """Users started per second (reference: 5)."""
    duration: Duration = 30.0
    """Measured load window per endpoint, ramp-up included, after warm-up (reference: 15m)."""
    wait_min_s: float = Field(default=0.0, ge=0)
    """Each user waits between wait_min_s and wait_max_s between requests (reference: 0-2 s)."""
    wait_max_s: float = Field(default=2.0, ge=0)
    workers: int = Field(default=0, ge=0)
    """Locust workers per endpoint (0: one process; the reference used a master and 2)."""
    user: str = "http"
    """Load user: "http" (fast SageMaker-runtime HTTP client) or "boto3" (the reference's)."""
    worker_mode: Literal["thread", "process"] = "process"
    """How the local MMEs run models: "process" (the faithful emulation: a worker process per
    loaded model, as SageMaker's CPU containers run Multi Model Server, inside the instance's
    CPU allowance; see docs/local-mme.md) or "thread" (in-process, no CPU allowance, fastest)."""
    cpu_scale: float | None = Field(default=None, gt=0, le=1)
    """Emulated CPUs per instance vCPU (None: the host's CPUs less client_cpus, over the largest
    instance's vCPUs, at most 1). Offered users are scaled by the same factor."""
    client_cpus: float = Field(default=0.5, ge=0)
    """CPUs kept out of the server allowances for the load generator (its use is measured and
    reported against this)."""
    side_by_side: bool | None = None
    """Measure the endpoints at the same time (None: when the host has CPU for every allowance
    plus client_cpus at the scale, else one after the other with the same profile)."""
    warm_up_concurrency: int = Field(default=1, ge=1)
    """Warm-up requests in flight per endpoint (1: each load's ModelLoadingTime is one worker start
    inside the allowance; more overlap starts, which share the allowance and each take longer)."""
    max_models: int | None = Field(default=None, ge=1, le=51)
    """Load only the first N states' models (a short configuration for tests; None: all 51)."""
    p99_budget_ms: float = Field(default=DEFAULT_P99_BUDGET_MS, gt=0)
    """Latency budget the recommendation must meet (exact client-side p99)."""
    rows: int = Field(default=5000, ge=510)
    """Rows of synthetic churn data (the reference has ~5,000)."""
    seed: int = 0
    """Seed of the data, the splits and the training."""


class ChurnDemoResult(BaseModel):
    """Where the demo wrote its outputs, and what it concluded."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    out: Path
    report: Path
    summary_csv: Path
    verdict: str
    summary: Any
    """The summary_results.csv frame."""
    reference: Any = None
    """The reference's figures beside ours (instance, metric, reference, this run)."""
    plan: str = ""
    """How the host's CPUs were shared out (scale, side by side or one after the other)."""


def _emit(progress: Callable[[str], None] | None, message: str) -> None:
    if progress is not None:
        progress(message)


def _warm_up_rows(test_csv: Path, features: tuple[str, ...]) -> dict[str, bytes]:
    """One CSV payload per state: the first held-out row of that state."""
    rows: dict[str, bytes] = {}
    with test_csv.open(newline="") as fh:
        for record in csv.DictReader(fh):
            state = record["State"]
            if state not in rows:
                rows[state] = ",".join(record[f] for f in features).encode()
    return rows


def _warm_up(endpoint: Endpoint, payloads: dict[str, bytes]) -> int:
    """Invoke every model once (the reference's endpoints had served traffic before the test)."""
    failures = 0
    for state, body in payloads.items():
        result = endpoint.invoke(f"{MODEL_TEMPLATE.format(state=state)}.tar.gz", body, content_type="text/csv")
        failures += not result.ok
    return failures


def _run_summary(
    label: str,
    itype: str,
    result: BenchmarkResult,
    start: ServerMetrics,
    end: ServerMetrics,
) -> RunSummary:
    from mmeperf.results.folders import run_summary

    summary = run_summary(result, label=label, instance_type=itype, start=start, end=end)
    return summary.model_copy(update={"emulated": True})


def _warm_up_parallel(endpoint: Endpoint, payloads: dict[str, bytes], concurrency: int) -> int:
    """Invoke every model once, ``concurrency`` at a time (worker starts overlap as they would
    under traffic); returns the number of failed requests."""
    items = list(payloads.items())
    chunks = [dict(items[i::concurrency]) for i in range(min(concurrency, len(items)))]
    with ThreadPoolExecutor(max(len(chunks), 1)) as pool:
        return sum(pool.map(lambda chunk: _warm_up(endpoint, chunk), chunks))


def run_churn_demo(
    options: ChurnDemoOptions | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    on_load_progress: Callable[[str, Progress], None] | None = None,
) -> ChurnDemoResult:
    """Run the churn workflow; see the module docstring."""
    from mmeperf.datasets.churn import FEATURES, build_churn_repository
    from mmeperf.demos.churn_reference import (
        Window,
        children_cpu_seconds,
        emulation_numbers,
        plan_cpu,
        reference_table,
        tree_cpu_seconds,
    )
    from mmeperf.endpoints.local import LocalEndpoint
    from mmeperf.endpoints.local.cpu import host_cpus
    from mmeperf.load.benchmark import Benchmark
    from mmeperf.load.profile import LoadProfile, WaitTime
    from mmeperf.load.traffic import Traffic
    from mmeperf.results.compare import compare
    from mmeperf.results.folders import overall_distribution, users_view
    from mmeperf.results.report import table_section, write_report

    opts = options or ChurnDemoOptions()
    for itype in opts.instance_types:
        DEFAULT_CATALOG.get(itype)  # unknown types fail before any work
    faithful = opts.worker_mode == "process"
    plan = plan_cpu(opts.instance_types, host_cpus=host_cpus(), client_cpus=opts.client_cpus,
                    scale=opts.cpu_scale if faithful else 1.0,
                    side_by_side=opts.side_by_side if faithful else True)
    users = opts.users or (plan.users() if faithful else 100)
    out = opts.out
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    _emit(progress, f"Generating {opts.rows} rows of churn data and training 51 per-state models ...")
    build = build_churn_repository(
        out / "repository", n_rows=opts.rows, seed=opts.seed, template=MODEL_TEMPLATE,
        test_csv=out / "churn_test.csv", overwrite=True,
    )
    test_csv = Path(build.test_csv)
    n_models = len(build.repository)
    payloads = _warm_up_rows(test_csv, FEATURES)
    if opts.max_models is not None and opts.max_models < len(payloads):
        keep = sorted(payloads)[: opts.max_models]
        payloads = {state: payloads[state] for state in keep}
        rows = pd.read_csv(test_csv)
        test_csv = out / "churn_test_subset.csv"
        rows[rows["State"].isin(keep)].to_csv(test_csv, index=False)
        n_models = len(keep)
    _emit(progress, f"Built {n_models} models in {time.perf_counter() - t0:.1f} s (median held-out AUC {build.median_auc:.3f}).")
    if faithful:
        _emit(progress, f"CPU: {plan.why}; {users} users per endpoint.")

    endpoints: dict[str, Endpoint] = {}
    results: dict[str, BenchmarkResult] = {}
    windows: dict[str, Window] = {}
    try:
        for itype in opts.instance_types:
            short = itype.removeprefix("ml.").replace(".", "-")
            server: dict[str, Any] = {"worker_mode": opts.worker_mode}
            server.update({"cpu_scale": plan.scale, "loader_threads": max(4, opts.warm_up_concurrency)}
                          if faithful else {"cpu_emulation": "none"})
            endpoints[itype] = LocalEndpoint(
                instance_profile=itype, endpoint_name=f"churn-mme-{short}", server_options=server,
            )
        _emit(progress, f"Starting {len(endpoints)} local MMEs: {', '.join(endpoints)} ...")
        with ThreadPoolExecutor(len(endpoints)) as pool:
            list(pool.map(lambda ep: ep.deploy(build.repository), endpoints.values()))

        t_warm = time.perf_counter()
        _emit(progress, f"Warming up: one request to each of the {len(payloads)} models on each endpoint, "
                        f"{opts.warm_up_concurrency} at a time, all endpoints at once ...")
        with ThreadPoolExecutor(len(endpoints)) as pool:
            warm_failures = dict(zip(endpoints, pool.map(
                lambda ep: _warm_up_parallel(ep, payloads, opts.warm_up_concurrency), endpoints.values()), strict=True))
        statuses = {itype: ep.status() for itype, ep in endpoints.items()}  # type: ignore[attr-defined]
        _emit(progress, f"Warm-up done in {time.perf_counter() - t_warm:.0f} s.")

        traffic = Traffic(
            data=str(test_csv),
            model_column="State",
            model_template=MODEL_TEMPLATE.replace("{state}", "{}") + ".tar.gz",
            label_column="Churn?",
            drop_columns=["CustomerID"],
            content_type="text/csv",
        )
        profile = LoadProfile.constant(
            users=users,
            spawn_rate=opts.spawn_rate,
            duration=opts.duration,
            traffic=traffic,
            wait=WaitTime(min=opts.wait_min_s, max=opts.wait_max_s),
            seed=opts.seed,
        )
        lock = threading.Lock()

        def reporter(label: str) -> Callable[[Progress], None]:
            def report(p: Progress) -> None:
                if on_load_progress is not None:
                    with lock:
                        on_load_progress(label, p)

            return report

        groups = [list(endpoints)] if plan.side_by_side else [[itype] for itype in endpoints]
        for group in groups:
            _emit(
                progress,
                f"Load: {users} users per endpoint, spawn {opts.spawn_rate:g}/s, {opts.duration:g} s, "
                f"model chosen by each row's State, on {' and '.join(group)}"
                + (" at the same time ..." if len(group) > 1 else " ..."),
            )
            starts = {itype: endpoints[itype].metrics() for itype in group}
            cpu0 = {itype: tree_cpu_seconds(endpoints[itype].pid) for itype in group}  # type: ignore[attr-defined]
            client0 = children_cpu_seconds()
            # Each handle is a context manager: if one run fails or Ctrl-C arrives, every Locust
            # process group still running is stopped before the endpoints go away.
            with contextlib.ExitStack() as stack:
                handles = {
                    itype: stack.enter_context(
                        Benchmark(
                            endpoints[itype],
                            profile,
                            workers=opts.workers,
                            user=opts.user,  # type: ignore[arg-type]
                            instance_type=itype,
                            platform="xgboost",
                            models_loaded=n_models,
                            progress=reporter(itype),
                            overwrite=True,
                        ).start(out / "runs" / itype)
                    )
                    for itype in group
                }
                group_results = {itype: handle.wait() for itype, handle in handles.items()}
            client_cpu = children_cpu_seconds() - client0
            for itype in group:
                r = group_results[itype]
                results[itype] = r
                windows[itype] = Window(
                    instance_type=itype, scale=plan.scale, users=users,
                    duration_s=float(r.duration_s or 0.0), ok_requests=r.total_requests - r.total_failures,
                    mean_think_s=(opts.wait_min_s + opts.wait_max_s) / 2,
                    server_cpu_s=tree_cpu_seconds(endpoints[itype].pid) - cpu0[itype],  # type: ignore[attr-defined]
                    client_cpu_s=client_cpu, client_shared=len(group) > 1,
                    start=starts[itype], end=endpoints[itype].metrics(), status=statuses[itype],
                    order="side by side" if plan.side_by_side else f"{groups.index(group) + 1} of {len(groups)}",
                )
    finally:
        for ep in endpoints.values():
            ep.delete()

    runs = [_run_summary(itype, itype, results[itype], windows[itype].start, windows[itype].end) for itype in results]
    comparison = compare(runs, n_models=n_models, p99_budget_ms=opts.p99_budget_ms)
    summary = comparison.frame()
    extra = pd.DataFrame([windows[run.label].row() for run in runs])
    summary = pd.concat([summary.reset_index(drop=True), extra], axis=1)
    summary_csv = out / "summary_results.csv"
    summary.to_csv(summary_csv, index=False)
    cache_lines = comparison.cache_lines(worker_mode=opts.worker_mode)
    client_lines = _client_lines(list(windows.values()), plan.client_cpus)
    ref_frame, mechanisms = reference_table(list(windows.values()), n_models)
    emulation = [str(s.get("emulation_note")) for s in statuses.values() if s.get("emulation_note")]
    notes = [
        "Latency is measured client-side per request in HDR histograms (exact to 3 significant "
        "digits), from send to the last byte of the response body.",
        "Server metrics carry CloudWatch's MME names; they are read from each local MME once a "
        "second and averaged per interval, not since the start.",
        f"Each endpoint was warmed up with one request per model before the load, all endpoints at "
        f"once (warm-up failures: {', '.join(f'{k}: {v}' for k, v in warm_failures.items())}); "
        "'after warm-up' figures count from the start of the load.",
        "Cost per million inferences uses the measured throughput, which the users' think time "
        "(0-2 s) bounds: it is the cost at this offered load, not at the instance's capacity.",
        (f"CPU: {plan.why}. Throughput is reported as measured and de-scaled to the instance "
         "(measured / scale)." if faithful else
         "Both endpoints and both load generators share this machine's cores (thread mode, no CPU allowance)."),
        f"Prices are us-east-1 on-demand as of {DEFAULT_CATALOG.get(opts.instance_types[0]).price_as_of}.",
        *[f"{itype}: {note}" for itype, note in zip(statuses, emulation, strict=False)],
    ]
    sections = [
        table_section("Against the reference (AIM408, 300 users)", ref_frame, notes=mechanisms),
        table_section("Emulation: what each run used", summary[["label", *extra.columns]],
                      notes=client_lines),
        table_section("Every number the emulation used, and its source", emulation_numbers(list(windows.values()), plan)),
    ]
    report = write_report(
        out,
        comparison,
        server_metrics={itype: r.server_metrics for itype, r in results.items()},
        stages={itype: users_view(r.history) for itype, r in results.items()},
        distributions={itype: overall_distribution(r) for itype, r in results.items()},
        title=f"Churn workflow: {n_models} XGBoost models on one MME, {' vs '.join(opts.instance_types)}",
        notes=notes,
        extra_verdict=[*cache_lines, *client_lines],
        sections=sections,
    )
    verdict = " ".join([comparison.recommendation.explanation, *cache_lines, *client_lines])
    return ChurnDemoResult(
        out=out, report=report, summary_csv=summary_csv, verdict=verdict, summary=summary,
        reference=ref_frame, plan=plan.why,
    )


def _client_lines(windows: list[Window], client_cpus: float) -> list[str]:
    """The load generator's own CPU against what it was given, so a saturated client is never
    mistaken for a slow server."""
    seen: set[str] = set()
    lines = []
    for w in windows:
        key = w.order if w.client_shared else w.instance_type
        if key in seen:
            continue
        seen.add(key)
        who = "both load generators" if w.client_shared else f"the load generator of {w.instance_type}"
        pct = w.client_cpu_percent()
        state = ("saturated: a core is fully busy, so throughput may be the client's limit, not the server's"
                 if pct >= 90 else "not saturated")
        if pct > 100 * client_cpus:
            state += "; it used more than was kept for it, so it competed with the servers' allowances"
        lines.append(
            f"Load generator CPU: {who} used {pct:.0f}% of one core (measured on the Locust processes; "
            f"{100 * client_cpus:.0f}% kept for it), {state}."
        )
    return lines
