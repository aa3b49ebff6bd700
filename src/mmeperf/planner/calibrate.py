"""Build a :class:`Calibration` from a run folder: histograms, per-model stats, server metrics.

Server metrics are per-interval averages with CloudWatch's names (µs); a mean over the run is
weighted by the interval's sample count where the run recorded one (Invocations, ModelLoads,
ModelUnloads) and is an unweighted mean of interval averages where it did not (said so).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from mmeperf._types import PathLike
from mmeperf.errors import ConfigurationError
from mmeperf.load.hist import Histogram
from mmeperf.planner._runfolder import (
    ENVIRONMENT_JSON,
    HISTOGRAMS_JSON,
    SERVER_METRICS_CSV,
    BenchmarkResult,
)
from mmeperf.planner.calibration import (
    QUANTILES,
    Calibration,
    Distribution,
    HostFacts,
    IdleSlowdown,
    Measured,
    ModelCalibration,
    Source,
    WakeDelay,
)

__all__ = ["ModelCpu", "calibrate", "histogram_distribution", "idle_latency_curve", "measure_cpu_share",
           "measure_model_cpu"]

#: A model's own client histogram stands for its warm service time when at most this share was cold.
MAX_COLD_SHARE_FOR_OWN = 0.05
#: ... and when it has at least this many requests.
MIN_REQUESTS_FOR_OWN = 20


def histogram_distribution(hist: Histogram, *, source: Source) -> Distribution | None:
    """Empirical quantiles (seconds) of an HDR histogram of microseconds; None when empty."""
    if hist.total == 0:
        return None
    values = hist.values_at(QUANTILES)
    quantiles = {p: (v or 0) / 1e6 for p, v in values.items()}
    # HDR values are bucket tops (3 digits); keep the table monotone after the exact min/max.
    ordered = sorted(quantiles)
    running = 0.0
    for p in ordered:
        running = max(running, quantiles[p])
        quantiles[p] = running
    return Distribution.from_quantiles(quantiles, samples=int(hist.total), source=source)


def _numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series(dtype=float)
    return pd.to_numeric(frame[column], errors="coerce")


def _weighted_mean_us(
    frame: pd.DataFrame, column: str, weight: str | None, *, run: str,
) -> tuple[float, int | None, Source] | None:
    values = _numeric(frame, column)
    if weight is not None:
        weights = _numeric(frame, weight).fillna(0)
        mask = values.notna() & (weights > 0)
        if not mask.any():
            return None
        w = weights[mask].to_numpy(dtype=float)
        mean = float(np.sum(values[mask].to_numpy(dtype=float) * w) / np.sum(w))
        src = Source(run=run, measurement=f"{SERVER_METRICS_CSV} {column}, intervals weighted by {weight}")
        return mean, int(np.sum(w)), src
    mask = values.notna()
    if not mask.any():
        return None
    src = Source(
        run=run, measurement=f"{SERVER_METRICS_CSV} {column}",
        note=f"unweighted mean of {int(mask.sum())} interval averages: the run records no sample count for it",
    )
    return float(values[mask].mean()), None, src


def _mean_distribution(frame: pd.DataFrame, column: str, weight: str | None, *, run: str) -> Distribution | None:
    found = _weighted_mean_us(frame, column, weight, run=run)
    if found is None:
        return None
    mean_us, samples, src = found
    src = src.model_copy(update={"note": "; ".join(
        x for x in (src.note, "interval averages give the mean only: a constant at that mean") if x
    )})
    return Distribution.constant(mean_us / 1e6, samples=samples, source=src)


def calibrate(
    run_dir: PathLike, *, model_bytes: Mapping[str, int] | None = None, warm_run: PathLike | None = None,
    client_cpu_s: Measured | None = None, unloaded_run: PathLike | None = None,
    model_cpu: ModelCpu | None = None, cold_run: PathLike | None = None,
    uncompiled_run: PathLike | None = None, idle_slowdown: IdleSlowdown | None = None,
    host_speed: Measured | None = None, loads_run: PathLike | None = None,
    wake_delay: WakeDelay | None = None,
) -> Calibration:
    """A Calibration from the run folder ``run_dir`` (see the module docstring).

    ``warm_run``: a run of the same server and models in which every model was loaded before the
    load started (no loads): its CPU per request is the server's CPU per warm request, and the
    CPU ``run_dir`` spent beyond that per request is charged to its loads (``load_cpu_s``).
    ``client_cpu_s``: the load client's CPU per request, as the caller measured it.
    ``unloaded_run``: a warm run with one user: its client-side warm latency is the latency of a
    request that meets no queue (``unloaded_latency``).
    ``model_cpu``: load, compile and fetch CPU per model from :func:`measure_model_cpu`; the load
    figure then replaces the residual estimate of ``load_cpu_s``.
    ``cold_run``: a run with one user against a server with room for one model, every model
    already on its disk: its client-side cold latency is ``unloaded_cold_latency``.
    ``uncompiled_run``: a warm run like ``warm_run`` against a server without the fast path: its
    CPU per request is ``uncompiled_request_cpu_s``.
    ``idle_slowdown``, ``host_speed``: the host's CPU factor after a thread slept and its speed
    beside these runs, from :mod:`mmeperf.planner.hostspeed` or, with ``wake_delay``, from
    :func:`idle_latency_curve` (the server's own requests after it slept).
    ``loads_run``: a run of the same models whose cache loaded and unloaded while it was measured:
    its load, unload, download and load-wait times replace ``run_dir``'s. With worker processes a
    healthy run often loads nothing in its window (every model fits) and a thrashing run queues
    every request behind seconds-long loads: take service times from the one, loads from the other.
    """
    result = BenchmarkResult.load(run_dir)
    run = str(Path(run_dir))
    _check_served(result, run)
    hists = result.histograms()
    env: dict[str, Any] = result.info.get("environment", {}) or {}
    endpoint: dict[str, Any] = env.get("endpoint", {}) or {}
    sm = result.server_metrics

    host = HostFacts(
        instance_type=endpoint.get("instance_type"),
        emulated=endpoint.get("emulated"),
        endpoint_kind=endpoint.get("kind"),
        cpu_count=env.get("cpu_count"),
        platform=env.get("platform"),
        memory_budget_bytes=endpoint.get("memory_budget_bytes"),
        worker_mode=(result.info.get("run", {}).get("report") or {}).get("worker_mode"),
    )

    # --- client latency: warm and cold over every stage -----------------------------------
    warm, cold = Histogram(), Histogram()
    for key, hist in hists.get("stages", {}).items():
        kind = key.rpartition("/")[2]
        if kind == "warm":
            warm.merge(hist)
        elif kind == "cold":
            cold.merge(hist)
    client_warm = histogram_distribution(
        warm, source=Source(run=run, measurement=f"{HISTOGRAMS_JSON} stages */warm (client side)")
    )
    client_cold = histogram_distribution(
        cold, source=Source(run=run, measurement=f"{HISTOGRAMS_JSON} stages */cold (client side)")
    )

    # --- server side ----------------------------------------------------------------------
    model_latency = _weighted_mean_us(sm, "ModelLatency", "Invocations", run=run)
    overhead = _mean_distribution(sm, "OverheadLatency", "Invocations", run=run)
    loads_sm, loads_from = sm, run
    if loads_run is not None:
        loads_from = str(Path(loads_run))
        loads_sm = BenchmarkResult.load(loads_run).server_metrics
    load_time = _mean_distribution(loads_sm, "ModelLoadingTime", "ModelLoads", run=loads_from)
    unload_time = _mean_distribution(loads_sm, "ModelUnloadingTime", "ModelUnloads", run=loads_from)
    download_time = _mean_distribution(loads_sm, "ModelDownloadingTime", None, run=loads_from)
    loading_wait = _mean_distribution(loads_sm, "ModelLoadingWaitTime", None, run=loads_from)

    # Service time: the client's warm shape, scaled to the server's mean ModelLatency when known
    # (the client's figure also holds network, front end and queueing).
    scale: float | None = None
    scale_note = ""
    service: Distribution | None = None
    if client_warm is not None:
        service = client_warm
        if model_latency is not None and client_warm.mean > 0:
            mean_us, samples, _ = model_latency
            scale = (mean_us / 1e6) / client_warm.mean
            scale_note = (
                f"shape of the client's warm latency, scaled by {scale:.4f} to the server's mean "
                f"ModelLatency {mean_us / 1000:.3f} ms over {samples} invocations"
            )
            service = client_warm.scaled(scale, note=scale_note).model_copy(update={"mean_s": mean_us / 1e6})
        else:
            service = client_warm.scaled(
                1.0, note="client-side warm latency as is (no server ModelLatency): includes network and queueing"
            )

    # --- per model ------------------------------------------------------------------------
    sizes, size_source = _model_sizes(result, run, model_bytes)
    models: dict[str, ModelCalibration] = {}
    per_model = result.per_model
    model_hists = hists.get("models", {})
    for row in per_model.to_dict("records") if len(per_model) else []:
        name = str(row["model"])
        requests = int(row.get("requests") or 0)
        cold_requests = int(row.get("cold_requests") or 0)
        own: Distribution | None = None
        hist = model_hists.get(name)
        failures = int(row.get("failures") or 0)
        if (
            hist is not None and requests >= MIN_REQUESTS_FOR_OWN and failures == 0
            and cold_requests <= MAX_COLD_SHARE_FOR_OWN * requests
        ):
            own = histogram_distribution(
                hist, source=Source(run=run, measurement=f"{HISTOGRAMS_JSON} models[{name}] (client side)")
            )
            if own is not None and scale is not None:
                own = own.scaled(scale, note=scale_note + f"; {cold_requests} of {requests} requests were cold")
        size: Measured | None = None
        if name in sizes:
            size = Measured(value=float(sizes[name]), unit="bytes", source=size_source)
        models[name] = ModelCalibration(
            requests=requests, cold_requests=cold_requests, service_time=own, memory_bytes=size
        )
    for name, nbytes in sizes.items():
        if name not in models:
            models[name] = ModelCalibration(memory_bytes=Measured(value=float(nbytes), unit="bytes", source=size_source))
    memory_per_model = _memory_per_model(sm, host, run=run)
    if memory_per_model is None and sizes and model_bytes is None:
        # Models not loaded at the run's end take the median of those that were.
        memory_per_model = Measured(value=float(np.median(list(sizes.values()))), unit="bytes", samples=len(sizes),
                                    source=size_source.model_copy(update={"note": "median over the models loaded at "
                                                                          "the run's end"}))

    request_cpu, load_cpu = _host_cpu(sm, env, run=run, warm_run=warm_run)
    uncompiled_cpu = _host_cpu(sm, env, run=run, warm_run=uncompiled_run)[0]
    compile_cpu: Measured | None = None
    fetch_cpu: Measured | None = None
    if model_cpu is not None:
        load_cpu, compile_cpu, fetch_cpu = model_cpu
    unloaded = None if unloaded_run is None else _one_kind(unloaded_run, "warm", "one user")
    unloaded_cold = None if cold_run is None else _one_kind(cold_run, "cold", "one user, room for one model")
    return Calibration(
        runs=[run],
        host=host,
        models=models,
        service_time=service,
        client_warm_latency=client_warm,
        client_cold_latency=client_cold,
        overhead_latency=overhead,
        load_time=load_time,
        unload_time=unload_time,
        download_time=download_time,
        loading_wait_time=loading_wait,
        cpu_seconds_per_request=_cpu_per_request(sm, env, run=run),
        memory_per_model_bytes=memory_per_model,
        hit_ratio=_hit_ratio(sm, run=run),
        request_cpu_s=request_cpu,
        uncompiled_request_cpu_s=uncompiled_cpu,
        load_cpu_s=load_cpu,
        client_cpu_s=client_cpu_s,
        compile_cpu_s=compile_cpu,
        unloaded_latency=unloaded,
        unloaded_cold_latency=unloaded_cold,
        fetch_cpu_s=fetch_cpu,
        idle_slowdown=idle_slowdown,
        wake_delay=wake_delay,
        host_speed=host_speed,
        # run.json's client_lag exists when the client timed to the kernel's receive stamps.
        latency_timing="kernel" if result.info.get("run", {}).get("client_lag") else "user",
    )


def _model_sizes(result: BenchmarkResult, run: str,
                 model_bytes: Mapping[str, int] | None) -> tuple[dict[str, int], Source]:
    """Per-model memory: the caller's, else what the server charged each model loaded at the run's
    end (run.json report.model_charged_bytes: the worker process's USS plus the per-model
    overhead with worker processes, the runner's own estimate with threads)."""
    if model_bytes is not None:
        return dict(model_bytes), Source(measurement="given by the caller")
    report = result.info.get("run", {}).get("report") or {}
    charged = report.get("model_charged_bytes") or {}
    mode = report.get("worker_mode")
    what = {"process": "worker processes: each worker's USS + the per-model overhead",
            "thread": "thread workers: the runner's estimate + the per-model overhead"}
    return ({str(k): int(v) for k, v in charged.items() if isinstance(v, int | float) and v > 0},
            Source(run=run, measurement="run.json report.model_charged_bytes: the server's charge per model at the "
                   "run's end" + (f" ({what[mode]})" if mode in what else "")))


#: A run that failed more than this share of its requests measured an endpoint that could not
#: serve its load: its service times and loads say nothing of one that can.
MAX_FAILED_SHARE = 0.5


def _check_served(result: BenchmarkResult, run: str) -> None:
    totals = result.totals
    requests, failures = int(totals.get("requests") or 0), int(totals.get("failures") or 0)
    if requests and failures / requests > MAX_FAILED_SHARE:
        raise ConfigurationError(
            f"Run {run!r} failed {failures} of its {requests} requests (more than "
            f"{MAX_FAILED_SHARE:.0%}): it measured an endpoint that could not serve its load, so it "
            "cannot calibrate one that can. Calibrate from a run that mostly succeeded (fewer users, "
            "a lower rate, a larger instance)."
        )


def idle_latency_curve(
    compiled: Mapping[float, PathLike | Sequence[PathLike]],
    uncompiled: Mapping[float, PathLike | Sequence[PathLike]], *,
    request_cpu_s: float, uncompiled_request_cpu_s: float,
) -> tuple[IdleSlowdown, WakeDelay]:
    """The host's CPU factor and wake-up delay after the whole server slept, from its own requests.

    ``compiled`` and ``uncompiled`` map a think time (seconds, 0 among them) to a run with one
    user thinking exactly that long between requests, against a server holding every model: one
    whose requests cost ``request_cpu_s`` of server CPU, back to back (the fast path), and one
    whose requests cost ``uncompiled_request_cpu_s`` (XGBoost's own predict). Between requests the
    server sleeps for about the think time. At think time g a request's median latency exceeds the
    back-to-back one (g = 0) by Δ(g) = w(g) + cpu × (f(g) − 1): a delay w that both paths pay
    (waking the server's threads on a halted core) and a factor f on the request's CPU (caches,
    clocks, a shared core). Two paths with different CPU give the two unknowns:
    f(g) − 1 = (Δu − Δc) / (cpu_u − cpu_c) and w(g) = Δc − cpu_c × (f(g) − 1), each kept >= 0.
    Medians: the decomposition is of the typical request, the spread stays in the unloaded
    latency's distribution.

    A think time may map to several runs, one per round (each round one sweep of every think
    time, the same number of rounds for every think time of a path): Δ is then each round's
    median at g less the same round's at 0, and the median of those over the rounds. A host whose
    speed drifts from one minute to the next (a shared VM) moves a whole round together, which
    the difference cancels, and one odd round does not move the median.
    """
    gaps = sorted(compiled)
    if sorted(uncompiled) != gaps or 0.0 not in compiled:
        raise ConfigurationError(
            f"idle_latency_curve needs runs at the same think times for both paths, 0 among them: "
            f"compiled {sorted(compiled)}, uncompiled {sorted(uncompiled)}")
    if not uncompiled_request_cpu_s > request_cpu_s >= 0:
        raise ConfigurationError(
            f"The two paths must differ in CPU per request (uncompiled {uncompiled_request_cpu_s} s > "
            f"compiled {request_cpu_s} s): their difference is what tells CPU from delay")

    def rounds(runs: Mapping[float, PathLike | Sequence[PathLike]], path: str) -> dict[float, list[Path]]:
        by_gap = {g: [Path(r)] if isinstance(r, (str, os.PathLike)) else [Path(x) for x in r]
                  for g, r in runs.items()}
        counts = {len(r) for r in by_gap.values()}
        if len(counts) != 1 or 0 in counts:
            raise ConfigurationError(
                f"idle_latency_curve needs the same number of rounds (at least one) at every think time "
                f"of the {path} path: {({g: len(r) for g, r in by_gap.items()})}")
        return by_gap

    def warm(run: Path) -> Distribution:
        latency = _one_kind(run, "warm", "warm")
        if latency is None:
            raise ConfigurationError(f"Run {str(run)!r} has no warm requests: it cannot measure a latency after idle")
        return latency

    def excess(runs: dict[float, list[Path]]) -> tuple[dict[float, float], int]:
        dists = {g: [warm(r) for r in rs] for g, rs in runs.items()}
        medians = {g: [d.quantile(50) for d in ds] for g, ds in dists.items()}
        samples = sum(int(d.samples or 0) for ds in dists.values() for d in ds)
        return ({g: float(np.median([m - m0 for m, m0 in zip(ms, medians[0.0], strict=True)]))
                 for g, ms in medians.items()}, samples)

    runs_c, runs_u = rounds(compiled, "compiled"), rounds(uncompiled, "uncompiled")
    delta_c, samples_c = excess(runs_c)
    delta_u, samples_u = excess(runs_u)
    factors: list[tuple[float, float]] = []
    delays: list[tuple[float, float]] = []
    for g in gaps:
        dc, du = delta_c[g], delta_u[g]
        extra = max((du - dc) / (uncompiled_request_cpu_s - request_cpu_s), 0.0)
        factors.append((g, 1.0 + extra))
        delays.append((g, max(dc - request_cpu_s * extra, 0.0)))
    runs = ", ".join(f"{g * 1e3:g} ms: {', '.join(r.name for r in runs_c[g])} / "
                     f"{', '.join(r.name for r in runs_u[g])}" for g in gaps)
    how = (f"median warm latency of one user thinking g seconds less at g = 0, fast path against XGBoost's "
           f"predict ({request_cpu_s * 1e3:.3f} / {uncompiled_request_cpu_s * 1e3:.3f} ms CPU per request): "
           f"Δ = wake delay + CPU × (factor − 1), solved for both; the median over "
           f"{len(runs_c[0.0])} / {len(runs_u[0.0])} rounds")
    source = Source(run=str(runs_c[0.0][0].parent), measurement=how, note=runs)
    return (IdleSlowdown(points=factors, samples=samples_c + samples_u, source=source),
            WakeDelay(points=delays, source=source))


def _one_kind(run_dir: PathLike, kind: str, what: str) -> Distribution | None:
    """The client-side latency of one kind (warm, cold) over a run's stages."""
    merged = Histogram()
    for key, hist in BenchmarkResult.load(run_dir).histograms().get("stages", {}).items():
        if key.rpartition("/")[2] == kind:
            merged.merge(hist)
    return histogram_distribution(merged, source=Source(
        run=str(Path(run_dir)), measurement=f"{HISTOGRAMS_JSON} stages */{kind} (client side, {what})"))


class ModelCpu(NamedTuple):
    """CPU seconds of one model's life in the local MME (see :func:`measure_model_cpu`)."""

    load: Measured
    """Entry lookup, backend load and the first request's decode, predict and encode."""
    compile: Measured
    """The fast path's compile, as the server's thread runs it (the compiler process's own CPU
    runs beside the server and is not in it)."""
    fetch: Measured
    """Extracting the model's archive into the disk cache (a model's first load only)."""


def measure_model_cpu(repository: PathLike, targets: Sequence[str], *, body: bytes,
                      content_type: str) -> ModelCpu:
    """CPU seconds (one thread's) to fetch a model into the disk cache, to load it and serve its
    first request, and to compile its fast path, as the local MME's loader and compile threads do
    it: the median over ``targets``, each step run back to back (no idle spell before it).

    Runs in a fresh process started with the server's environment (``OMP_WAIT_POLICY=PASSIVE``,
    set by the server before XGBoost loads OpenMP): in a process whose OpenMP threads spin-wait,
    the loading thread's own spinning at barriers would be counted as load CPU.
    """
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    saved = os.environ.get("OMP_WAIT_POLICY")
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # inherited by the spawned child only at its start
    try:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            load_s, compile_s, fetch_s = pool.submit(
                _model_cpu, str(repository), list(targets), body, content_type).result()
    finally:
        if saved is None:
            del os.environ["OMP_WAIT_POLICY"]
        else:
            os.environ["OMP_WAIT_POLICY"] = saved
    note = f"time.thread_time around each step, median of {len(targets)} models (after one warm-up load)"
    src = str(repository)
    return ModelCpu(
        load=Measured(value=float(np.median(load_s)), unit="cpu_s", samples=len(load_s), source=Source(
            run=None, measurement=f"measure_model_cpu({src}): entry lookup, backend.load, decode/predict/encode of one request",
            note=note)),
        compile=Measured(value=float(np.median(compile_s)), unit="cpu_s", samples=len(compile_s), source=Source(
            run=None, measurement=f"measure_model_cpu({src}): endpoints.local.fastpath.compile_runner", note=note)),
        fetch=Measured(value=float(np.median(fetch_s)), unit="cpu_s", samples=len(fetch_s), source=Source(
            run=None, measurement=f"measure_model_cpu({src}): ModelRepository.fetch_counted into an empty folder",
            note=note)),
    )


def _model_cpu(repository: str, targets: list[str], body: bytes,
               content_type: str) -> tuple[list[float], list[float], list[float]]:
    """In the child process of measure_model_cpu: (load, compile, fetch) seconds per target."""
    import tempfile
    import time

    from mmeperf.backends import get_backend
    from mmeperf.endpoints.local.fastpath import compile_runner
    from mmeperf.repository import ModelRepository, detect_backend

    repo = ModelRepository(repository, create=False)
    load_s: list[float] = []
    compile_s: list[float] = []
    fetch_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix="mmeperf-cpu-") as tmp:
        for k, target in enumerate([targets[0], *targets]):  # the first pass warms imports up: not kept
            entry = repo.get(target)
            tf = time.thread_time()
            folder, _ = repo.fetch_counted(target, tmp)
            fetched = time.thread_time() - tf
            backend = get_backend(detect_backend(folder, hint=entry.backend) or "")
            t0 = time.thread_time()
            repo.get(target)
            runner = backend.load(folder)
            backend.encode(runner.predict(backend.decode(body, content_type, runner)), None)
            t1 = time.thread_time()
            compile_runner(runner)
            t2 = time.thread_time()
            if k:
                load_s.append(t1 - t0)
                compile_s.append(t2 - t1)
                fetch_s.append(fetched)
            runner.close()
    return load_s, compile_s, fetch_s


def _interval_cpu(sm: pd.DataFrame, env: Mapping[str, Any]) -> pd.DataFrame:
    """Per metrics interval with invocations: server CPU seconds, invocations, loads."""
    cpu = _numeric(sm, "CPUUtilization")
    elapsed = _numeric(sm, "elapsed_s")
    if cpu.notna().sum() == 0 or elapsed.isna().all():
        return pd.DataFrame(columns=["cpu_s", "invocations", "loads"])
    dt = elapsed.diff()
    first = env.get("metrics_interval_s")
    dt.iloc[0] = float(first) if first else math.nan
    frame = pd.DataFrame({
        "cpu_s": cpu / 100.0 * dt,
        "invocations": _numeric(sm, "Invocations").fillna(0),
        "loads": _numeric(sm, "ModelLoads").fillna(0),
    })
    return frame[frame["cpu_s"].notna() & (frame["invocations"] > 0)]


def _host_cpu(
    sm: pd.DataFrame, env: Mapping[str, Any], *, run: str, warm_run: PathLike | None,
) -> tuple[Measured | None, Measured | None]:
    """Server CPU per warm request (from ``warm_run``) and per load (the rest of ``run``'s CPU)."""
    if warm_run is None:
        return None, None
    warm = BenchmarkResult.load(warm_run)
    w = _interval_cpu(warm.server_metrics, warm.info.get("environment", {}) or {})
    w = w[w["loads"] == 0]
    if w.empty:
        return None, None
    n = int(w["invocations"].sum())
    per_request = float(w["cpu_s"].sum()) / n
    request = Measured(value=per_request, unit="cpu_s", samples=n, source=Source(
        run=str(Path(warm_run)), measurement=f"{SERVER_METRICS_CSV} CPUUtilization x interval / Invocations",
        note=f"{len(w)} intervals with invocations and no loads (every model loaded first)",
    ))
    r = _interval_cpu(sm, env)
    loads = float(r["loads"].sum())
    if loads <= 0:
        return request, None
    rest = float(r["cpu_s"].sum()) - per_request * float(r["invocations"].sum())
    load = Measured(value=max(rest, 0.0) / loads, unit="cpu_s", samples=int(loads), source=Source(
        run=run, measurement=f"{SERVER_METRICS_CSV} CPUUtilization x interval, less request_cpu_s x Invocations, / ModelLoads",
        note=f"over {len(r)} intervals with invocations; holds reads, parses, first uses and fast-path compiles",
    ))
    return request, load


def _cpu_per_request(sm: pd.DataFrame, env: Mapping[str, Any], *, run: str) -> Measured | None:
    cpu = _numeric(sm, "CPUUtilization")
    invocations = _numeric(sm, "Invocations").fillna(0)
    elapsed = _numeric(sm, "elapsed_s")
    if cpu.notna().sum() == 0 or invocations.sum() <= 0 or elapsed.isna().all():
        return None
    first = env.get("metrics_interval_s")
    dt = elapsed.diff()
    dt.iloc[0] = float(first) if first else math.nan
    mask = cpu.notna() & dt.notna() & (dt > 0) & (invocations > 0)
    if not mask.any():
        return None
    cpu_s = float(np.sum(cpu[mask].to_numpy(dtype=float) / 100.0 * dt[mask].to_numpy(dtype=float)))
    n = int(invocations[mask].sum())
    return Measured(
        value=cpu_s / n, unit="cpu_s", samples=n,
        source=Source(
            run=run, measurement=f"{SERVER_METRICS_CSV} CPUUtilization x interval / Invocations",
            note="every CPU second of the server process in intervals with invocations (loads included)",
        ),
    )


def _hit_ratio(sm: pd.DataFrame, *, run: str) -> Measured | None:
    hit = _numeric(sm, "ModelCacheHit")
    invocations = _numeric(sm, "Invocations").fillna(0)
    mask = hit.notna() & (invocations > 0)
    if not mask.any():
        return None
    w = invocations[mask].to_numpy(dtype=float)
    return Measured(
        value=float(np.sum(hit[mask].to_numpy(dtype=float) * w) / np.sum(w)), unit="ratio", samples=int(w.sum()),
        source=Source(run=run, measurement=f"{SERVER_METRICS_CSV} ModelCacheHit, weighted by Invocations"),
    )


def _memory_per_model(sm: pd.DataFrame, host: HostFacts, *, run: str) -> Measured | None:
    """Budget / most models held, from a run whose cache was full (it unloaded to make room)."""
    unloads = _numeric(sm, "ModelUnloads").fillna(0)
    loaded = _numeric(sm, "LoadedModelCount")
    if host.memory_budget_bytes is None or unloads.sum() <= 0 or loaded.isna().all():
        return None
    most = int(loaded.max())
    if most <= 0:
        return None
    return Measured(
        value=float(host.memory_budget_bytes // most), unit="bytes", samples=int(unloads.sum()),
        source=Source(
            run=run,
            measurement=f"{ENVIRONMENT_JSON} endpoint.memory_budget_bytes / max {SERVER_METRICS_CSV} LoadedModelCount",
            note=f"the cache unloaded {int(unloads.sum())} times, so it was full at {most} models; "
            "assumes the models are of one size (give model_bytes otherwise)",
        ),
    )


def measure_cpu_share(
    seconds: float = 3.0, *, work_s: float = 0.002, gap_s: float = 0.02,
) -> tuple[Measured, Distribution]:
    """The share of a core one runnable thread gets on this host now (1: an idle host), and the
    distribution of the wall time it lost per ``work_s`` of CPU (its stalls).

    Spins ``work_s`` of thread CPU at a time, ``gap_s`` apart (a ~10% duty cycle, so the probe
    hardly loads the host), for ``seconds``. On a host shared with other jobs every CPU stage of a
    local run is stretched by 1/share on average, in lumps: whole time slices lost to other jobs.
    """
    import time

    cpu: list[float] = []
    wall: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        w0, c0 = time.perf_counter(), time.thread_time()
        while time.thread_time() - c0 < work_s:
            pass
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - w0)
        time.sleep(gap_s)
    c, w = np.asarray(cpu), np.asarray(wall)
    src = Source(measurement=f"measure_cpu_share: {c.size} spins of {work_s * 1e3:g} ms thread CPU, {gap_s * 1e3:g} ms apart",
                 note="taken with the system under test idle: other jobs on the host only")
    share = Measured(value=float(min(c.sum() / w.sum(), 1.0)), unit="ratio", samples=int(c.size),
                     source=src.model_copy(update={"note": "CPU over wall time; " + (src.note or "")}))
    lost = np.maximum(w - c, 0.0)
    stalls = Distribution.from_quantiles(
        {p: float(np.percentile(lost, p)) for p in QUANTILES}, mean_s=float(lost.mean()), samples=int(lost.size),
        source=src.model_copy(update={"note": "wall less CPU per spin; " + (src.note or "")}))
    return share, stalls

