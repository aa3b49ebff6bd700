"""How well the planner predicts real local runs: calibrate on one run, predict held-out ones, run them.

Calibration: one local run (LocalEndpoint, thread workers, the 51 churn XGBoost models, traffic
by the data's State column, a cache budget that makes it unload). Held-out: configurations that
differ in budget (models that fit), users or rate, think time, model count (copies of the churn
models) and popularity skew. Each is simulated from the calibration (nothing tuned to it), then
run for real REPEATS times, in rounds (every configuration once per round, so one
configuration's runs meet the host minutes apart: this 2-core VM's speed drifts by up to ~1.7x
from one minute to the next), and predicted throughput, p50, p99 and hit ratio are printed
against the median of its runs, with relative errors, the medians of their absolute values, the
worst cases, the errors against each configuration's first run alone, and the runs' own spread.
The simulation mirrors the local MME's CPU stages and the client's (planner.simulation.HostModel),
calibrated from two warm runs without think time (one user: the unloaded latency; CALIBRATION's
users: server CPU per request, hot, and with the first, the client's CPU per request), a cold run
(one user, room for one model: the unloaded cold latency, i.e. a load's pure delay), the
calibration run (loads), a measurement of fetch, load and compile CPU, the host's CPU share and
stalls (other jobs on this shared host, probed before the calibration), and gap runs: one user
thinking exactly 0-50 ms between requests against a server with and without the fast path, in
three sweeps, whose latencies give the server's CPU factor and wake-up delay after it slept
(planner.calibrate.idle_latency_curve: the median over the sweeps).
Emulated vCPUs are not varied: the runs use thread workers on this host's cores (the simulation
gets min(host cores, ...) = host cores inference slots).

Run: ``python benchmarks/planner_accuracy.py`` (about 25 minutes on 2 cores); ``--quick`` checks
the script; ``--only=0,8`` runs those held-out configurations (indexes into HELD_OUT) at full
length; ``--repeats=N`` sets the runs per configuration.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mmeperf.datasets.churn import build_churn_repository
from mmeperf.endpoints.local import LocalEndpoint
from mmeperf.endpoints.local.config import FAST_PATH_AFTER_USES
from mmeperf.load import Benchmark, LoadProfile, Traffic
from mmeperf.planner import (
    HostModel,
    InstanceConfig,
    Measured,
    ModelSpec,
    Planner,
    Simulation,
    calibrate,
    measured_summary,
    relative_error,
)
from mmeperf.planner.calibrate import idle_latency_curve, measure_cpu_share, measure_model_cpu
from mmeperf.planner.calibration import Source

DURATION = 20.0
REPEATS = 3
"""Real runs of each held-out configuration, in rounds (each round runs every configuration once,
so one configuration's runs fall minutes apart): the prediction is compared with their median."""
IDLE_GAPS = (0.0, 0.002, 0.005, 0.01, 0.02, 0.05)
"""Think times of the gap runs (seconds; planner.calibrate.idle_latency_curve)."""
IDLE_ROUNDS = 3
"""Sweeps of the gap runs: the host's wake-up delay, measured in one sweep of a few seconds, moved
from 0.15 to 0.40 ms at 5-10 ms asleep between two runs of this benchmark; the median of three
sweeps is taken."""
SEED = 0
METRICS = ("ok_rps", "p50_ms", "p99_ms", "hit_ratio")


@dataclass(frozen=True)
class Config:
    name: str
    fit: int | None
    """Models that fit in the cache (None: no budget)."""
    users: int | None = None
    think: tuple[float, float] = (0.0, 0.02)
    rate: float | None = None
    models: int | None = None
    """None: the 51 churn models routed by the State column; N: N copies, routed by popularity."""
    popularity: Any = "calibrated"


CALIBRATION = Config("calibration", fit=20, users=8)
HELD_OUT = [
    Config("budget 8 fit", fit=8, users=8),
    Config("budget 35 fit", fit=35, users=8),
    Config("no budget, 16 users", fit=None, users=16),
    Config("2 users", fit=20, users=2),
    Config("24 users", fit=20, users=24),
    Config("think 0-0.2 s, 16 users", fit=20, users=16, think=(0.0, 0.2)),
    Config("think 0.05-0.1 s, 4 users", fit=20, users=4, think=(0.05, 0.1)),
    Config("open 100 req/s", fit=20, rate=100.0),
    Config("open 300 req/s", fit=20, rate=300.0),
    Config("120 models zipf 1.0, 150 req/s", fit=30, rate=150.0, models=120, popularity=1.0),
    Config("200 models uniform, 8 users", fit=50, users=8, models=200, popularity="uniform"),
    Config("51 models zipf 0.6", fit=15, users=8, models=51, popularity=0.6),
    Config("51 models zipf 1.4", fit=15, users=8, models=51, popularity=1.4),
    Config("100 models calibrated mix, 200 req/s", fit=25, rate=200.0, models=100),
]


def profile_for(config: Config, traffic: Traffic) -> LoadProfile:
    if config.rate is not None:
        return LoadProfile.open_loop(rate=config.rate, duration=DURATION, arrivals="poisson", traffic=traffic)
    assert config.users is not None
    return LoadProfile.constant(users=config.users, spawn_rate=float(config.users), duration=DURATION,
                                traffic=traffic, wait={"min": config.think[0], "max": config.think[1]})


def link_copies(repo: Path, names: list[str], bases: list[str], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, base in zip(names, bases, strict=True):
        target = folder / name
        if not target.exists():
            os.link(repo / base, target)
    return folder


def run_real(repo: Path, config: Config, traffic: Traffic, budget: int | None, out: Path,
             first: tuple[str, bytes, str]) -> dict[str, Any]:
    profile = profile_for(config, traffic)
    with LocalEndpoint(endpoint_name="accuracy", memory_budget=budget).deploy(repo) as endpoint:
        started_up(endpoint, first)
        result = Benchmark(endpoint, profile, overwrite=True).run(out)
        charged = {m["name"]: int(m["charged_bytes"]) for m in endpoint.status()["models"]}
    return {"summary": measured_summary(result), "charged": charged, "run": out}


def started_up(endpoint: LocalEndpoint, first: tuple[str, bytes, str], timeout_s: float = 60.0) -> None:
    """Process start-up is not simulated, so it happens before the load: the server imports its
    backend on a first request, and starts its fast-path compiler process (numpy, the backend:
    1-3 s of CPU on 2 cores) when a model is first used often enough; this waits until the first
    model runs compiled (or timeout_s), as a server in service would."""
    model, body, content_type = first
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        endpoint.invoke(model, body, content_type=content_type)
        runners = {m["name"]: m["runner"] for m in endpoint.status()["models"]}
        if runners.get(model, "").startswith("Compiled"):
            return
        time.sleep(0.05)
    print(f"  note: {model} did not run compiled within {timeout_s:g} s")


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def warm_runs(repo: Path, traffic: Traffic, bodies: list[tuple[str, bytes, str]], out: Path,
              durations: tuple[float, float]) -> tuple[Path, Path, Measured]:
    """Two runs against a server holding every model (no budget, each model used until its fast
    path is compiled): run 0 with one user (no queue: the unloaded latency), run 1 with
    CALIBRATION's users, whose server metrics give the CPU per warm request; the client's CPU per
    request is the difference of the Locust processes' CPU (getrusage of reaped children) over the
    difference of requests, which cancels Locust's start-up."""
    cpu: list[float] = []
    requests: list[int] = []
    with LocalEndpoint(endpoint_name="accuracy").deploy(repo) as endpoint:
        for _ in range(FAST_PATH_AFTER_USES + 1):
            for model, body, content_type in bodies:
                endpoint.invoke(model, body, content_type=content_type)
        for model, body, content_type in bodies:
            started_up(endpoint, (model, body, content_type))
        for i, seconds in enumerate(durations):
            users = 1 if i == 0 else CALIBRATION.users or 1
            # No think time: the server's CPU per request is measured hot (HostModel.idle_slowdown).
            profile = LoadProfile.constant(users=users, spawn_rate=float(users),
                                           duration=seconds, traffic=traffic, wait={"min": 0.0, "max": 0.0})
            before = children_cpu_s()
            result = Benchmark(endpoint, profile, overwrite=True).run(out / f"warm-{i}")
            cpu.append(children_cpu_s() - before)
            requests.append(int(measured_summary(result)["requests"]))
        gap_runs(endpoint, traffic, out / "idle-compiled", durations[0])
    per_request = (cpu[1] - cpu[0]) / max(requests[1] - requests[0], 1)
    client = Measured(value=max(per_request, 0.0), unit="cpu_s", samples=requests[1] - requests[0], source=Source(
        run=str(out / "warm-1"), measurement="getrusage(RUSAGE_CHILDREN) of the Locust processes, run 1 less run 0, "
        "over run 1's requests less run 0's",
        note=f"{cpu[0]:.2f} s for {requests[0]} requests, {cpu[1]:.2f} s for {requests[1]}"))
    return out / "warm-0", out / "warm-1", client


def gap_runs(endpoint: LocalEndpoint, traffic: Traffic, out: Path, seconds: float) -> dict[float, list[Path]]:
    """One user thinking exactly g seconds between requests, for each g in IDLE_GAPS, in
    IDLE_ROUNDS sweeps: the server sleeps about g before each request
    (planner.calibrate.idle_latency_curve takes the median over the sweeps)."""
    runs = idle_runs(out)
    for round_ in range(IDLE_ROUNDS):
        for g, folders in runs.items():
            profile = LoadProfile.constant(users=1, spawn_rate=1.0, duration=seconds, traffic=traffic,
                                           wait={"min": g, "max": g})
            Benchmark(endpoint, profile, overwrite=True).run(folders[round_])
    return runs


def idle_runs(out: Path) -> dict[float, list[Path]]:
    """The gap runs' folders under ``out``, by think time, one per sweep."""
    return {g: [out / f"think-{g * 1e3:g}ms-{r}" for r in range(IDLE_ROUNDS)] for g in IDLE_GAPS}


def uncompiled_run(repo: Path, traffic: Traffic, bodies: list[tuple[str, bytes, str]], out: Path,
                   seconds: float, gap_seconds: float) -> Path:
    """Like warm run 1 against a server without the fast path: every request served by XGBoost's
    own predict, as a model's are before its fast path is compiled (uncompiled_request_cpu_s);
    then the same server's gap runs."""
    with LocalEndpoint(endpoint_name="accuracy", server_options={"fast_path": False}).deploy(repo) as endpoint:
        for model, body, content_type in bodies:
            endpoint.invoke(model, body, content_type=content_type)
        users = CALIBRATION.users or 1
        profile = LoadProfile.constant(users=users, spawn_rate=float(users), duration=seconds, traffic=traffic,
                                       wait={"min": 0.0, "max": 0.0})
        Benchmark(endpoint, profile, overwrite=True).run(out / "uncompiled-1")
        gap_runs(endpoint, traffic, out / "idle-uncompiled", gap_seconds)
    return out / "uncompiled-1"


def cold_run(repo: Path, traffic: Traffic, bodies: list[tuple[str, bytes, str]], out: Path, budget: int,
             seconds: float) -> Path:
    """One user against a server with room for one model, every model already on its disk (one
    request each first): nearly every request is a load with nothing else running, so its
    client-side latency is the unloaded cold latency (Calibration.unloaded_cold_latency)."""
    with LocalEndpoint(endpoint_name="accuracy", memory_budget=budget).deploy(repo) as endpoint:
        for model, body, content_type in bodies:
            endpoint.invoke(model, body, content_type=content_type)
        profile = LoadProfile.constant(users=1, spawn_rate=1.0, duration=seconds, traffic=traffic,
                                       wait={"min": 0.0, "max": 0.0})
        Benchmark(endpoint, profile, overwrite=True).run(out / "cold-1")
    return out / "cold-1"


def main() -> None:
    global DURATION, REPEATS
    held_out = HELD_OUT
    if "--quick" in sys.argv[1:]:  # a smoke test of the script itself: 2 configurations of 3 s, twice
        DURATION, REPEATS, held_out = 3.0, 2, [HELD_OUT[0], HELD_OUT[9]]
    repeats = [arg.split("=", 1)[1] for arg in sys.argv[1:] if arg.startswith("--repeats=")]
    if repeats:
        REPEATS = int(repeats[0])
    only = [arg.split("=", 1)[1] for arg in sys.argv[1:] if arg.startswith("--only=")]
    if only:  # --only=INDEX,INDEX: those held-out configurations at full length (iterating)
        held_out = [HELD_OUT[int(i)] for i in only[0].split(",")]
    print(f"load average at start: {os.getloadavg()}  cores: {os.cpu_count()}  python {sys.version.split()[0]}")
    t_start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="planner-accuracy-"))
    build = build_churn_repository(work / "repo", n_rows=3000, rounds=10)
    repo = Path(build.repository.root)
    by_state = Traffic(data=build.test_csv, model_column="State", model_template="churn-xgb-{}.tar.gz",
                       label_column="Churn?", drop_columns=["CustomerID"])
    table = by_state.build()
    first = (table.models[0], table.bodies[0], table.content_types[0])

    # --- sizes, then the calibration run -------------------------------------------------
    # Every model's charged bytes, measured by the server with no budget (one request each).
    with LocalEndpoint(endpoint_name="sizes").deploy(repo) as endpoint:
        for i, model in enumerate(table.models):
            endpoint.invoke(model, table.bodies[i % len(table.bodies)], content_type=first[2])
        sizes = {m["name"]: int(m["charged_bytes"]) for m in endpoint.status()["models"]}
    biggest, smallest = max(sizes.values()), min(sizes.values())

    def budget(fit: int | None) -> int | None:
        # Exactly `fit` models of any size fit, and never one more.
        return None if fit is None else fit * biggest + smallest // 2

    share = measure_cpu_share(5.0)
    calib = run_real(repo, CALIBRATION, by_state, budget(CALIBRATION.fit), work / "calibration", first)
    warm_durations = (2.0, 4.0) if DURATION < 10 else (4.0, 12.0)
    warm_bodies = [(m, table.bodies[i % len(table.bodies)], first[2]) for i, m in enumerate(table.models)]
    one_user, warm_run, client_cpu = warm_runs(repo, by_state, warm_bodies, work, warm_durations)
    cold = cold_run(repo, by_state, warm_bodies, work, biggest + smallest // 2, warm_durations[0])
    slow = uncompiled_run(repo, by_state, warm_bodies, work, warm_durations[1], warm_durations[0])
    model_cpu = measure_model_cpu(repo, table.models[:8], body=table.bodies[0], content_type=first[2])
    # Under churn a model is evicted long before FAST_PATH_AFTER_USES: the calibration run's
    # requests ran uncompiled, so its CPU beyond them per load is taken against that run's cost.
    residual = calibrate(work / "calibration", warm_run=slow).load_cpu_s
    hot = calibrate(work / "calibration", warm_run=warm_run, uncompiled_run=slow)
    assert hot.request_cpu_s is not None and hot.uncompiled_request_cpu_s is not None
    # The server's CPU factor and wake-up delay after it slept, from its own requests on both paths.
    idle_factor, wake = idle_latency_curve(idle_runs(work / "idle-compiled"), idle_runs(work / "idle-uncompiled"),
                                           request_cpu_s=hot.request_cpu_s.value,
                                           uncompiled_request_cpu_s=hot.uncompiled_request_cpu_s.value)
    calibration = calibrate(work / "calibration", model_bytes=sizes, warm_run=warm_run, client_cpu_s=client_cpu,
                            unloaded_run=one_user, model_cpu=model_cpu, cold_run=cold, uncompiled_run=slow,
                            idle_slowdown=idle_factor, wake_delay=wake)
    calibration = calibration.model_copy(update={"cpu_share": share[0], "cpu_stalls": share[1], "stall_probe_s": 0.002})
    calibration.save(work / "calibration.yaml")
    print(f"calibration: {work / 'calibration.yaml'}  measured {calib['summary']}")
    assert calibration.service_time is not None and calibration.load_time is not None
    print(f"  service time mean {calibration.service_time.mean * 1e3:.3f} ms, load {calibration.load_time.mean * 1e3:.3f} ms, "
          f"overhead {calibration.overhead_latency.mean * 1e3 if calibration.overhead_latency else float('nan'):.3f} ms, "
          f"model bytes {smallest}..{biggest}")
    planner = Planner(calibration, seed=SEED)
    host = HostModel.from_calibration(calibration)
    # The calibration run's CPU per load (residual) holds the loader's work (measured alone in
    # model_cpu), the compiles of the models reused, and the server's own work per load (miss
    # path, sizing, batcher, unload). The compiles per load of that run are the simulation's own
    # count for it; what remains is the server's work per load.
    calib_load = planner.workload(traffic=by_state)
    calib_sim = Simulation(
        profile_for(CALIBRATION, Traffic(models=calib_load.names, distribution="weights",
                                         weights=calib_load.weights, payloads=["x"])),
        [ModelSpec(name=n, service_time=calibration.service_time_of(b), memory_bytes=sizes[b])
         for n, b in zip(calib_load.names, calib_load.base, strict=True)],
        weights=calib_load.weights, seed=SEED, host=host,
        instance=InstanceConfig(vcpus=os.cpu_count() or 1, memory_budget_bytes=budget(CALIBRATION.fit)))
    calib_pred = calib_sim.run()
    compiles_per_load = calib_sim.compiles / max(len(calib_pred.records.loads), 1)
    server_per_load = max((residual.value if residual else 0.0) - model_cpu.load.value
                          - compiles_per_load * model_cpu.compile.value, 0.0)
    host = replace(host, load_cpu_s=model_cpu.load.value + server_per_load)
    print(f"  compiles per load (simulated calibration run) {compiles_per_load:.2f}; server work per load "
          f"{server_per_load * 1e3:.3f} ms")
    print(f"  host model: server CPU per warm request {host.request_cpu_s * 1e3:.3f} ms (uncompiled {(host.uncompiled_request_cpu_s or float('nan')) * 1e3:.3f} ms), per load "
          f"{host.load_cpu_s * 1e3:.3f} ms, client CPU per request {host.client_cpu_s * 1e3:.3f} ms "
          f"({client_cpu.source.note}); host CPU share {host.cpu_share:.2f}, stall p50/p99 "
          f"{share[1].quantile(50) * 1e3:.2f}/{share[1].quantile(99) * 1e3:.2f} ms per 2 ms; compile {host.compile_cpu_s * 1e3:.3f} ms; the calibration run's "
          f"CPU beyond requests, per load: {residual.value * 1e3 if residual else float('nan'):.3f} ms; "
          f"unloaded latency p50 {calibration.unloaded_latency.quantile(50) * 1e3 if calibration.unloaded_latency else float('nan'):.3f} ms, "
          f"cold p50 {calibration.unloaded_cold_latency.quantile(50) * 1e3 if calibration.unloaded_cold_latency else float('nan'):.3f} ms; "
          f"fetch CPU {model_cpu.fetch.value * 1e3:.3f} ms; after the server slept (think time: CPU factor, wake delay) "
          + ", ".join(f"{g * 1e3:g} ms: x{f:.2f} {d * 1e3:.3f} ms"
                      for (g, f), (_, d) in zip(idle_factor.points, wake.points, strict=True)))

    vcpus = os.cpu_count() or 1  # the local MME's inference threads without an instance profile
    prepared: list[dict[str, Any]] = []
    for config in held_out:
        if config.models is None:
            workload = planner.workload(traffic=by_state)
            real_traffic = by_state
            folder = repo
        else:
            workload = planner.workload(config.models, popularity=config.popularity)
            real_traffic = Traffic(data=build.test_csv, models=workload.names, distribution="weights",
                                   weights=workload.weights, label_column="Churn?",
                                   drop_columns=["CustomerID", "State"])
            folder = link_copies(repo, workload.names, workload.base, work / f"copies-{config.models}")
        specs = [ModelSpec(name=n, service_time=calibration.service_time_of(b), memory_bytes=sizes[b],
                           load_time=calibration.load_time, download_time=calibration.download_time,
                           unload_time=calibration.unload_time)
                 for n, b in zip(workload.names, workload.base, strict=True)]
        # Loads cost what this configuration's repository costs to fetch, read and load (a plain
        # folder of copies is read differently from the churn repository), plus the server's own
        # work per load measured in the calibration run (see server_per_load above).
        cpu = model_cpu if config.models is None else measure_model_cpu(
            folder, workload.names[:8], body=first[1], content_type=first[2])
        host_then = replace(host, load_cpu_s=cpu.load.value + server_per_load, fetch_cpu_s=cpu.fetch.value)
        sim_traffic = Traffic(models=workload.names, distribution="weights", weights=workload.weights, payloads=["x"])
        t0 = time.perf_counter()
        predicted = Simulation(
            profile_for(config, sim_traffic), specs, weights=workload.weights, seed=SEED,
            instance=InstanceConfig(vcpus=vcpus, memory_budget_bytes=budget(config.fit)), host=host_then,
        ).run().summary()
        prepared.append({"config": config, "folder": folder, "traffic": real_traffic, "first": workload.names[0],
                         "predicted": predicted, "sim_s": time.perf_counter() - t0, "host": host_then, "runs": []})
    # Real runs in rounds: every configuration once per round, so a configuration's runs meet the
    # host in different minutes (its speed drifts by up to ~1.7x from one minute to the next).
    for round_ in range(REPEATS):
        for item in prepared:
            config = item["config"]
            out = work / "runs" / f"{config.name.replace(' ', '_').replace('/', '_')}-{round_}"
            item["runs"].append(run_real(item["folder"], config, item["traffic"], budget(config.fit), out,
                                         (item["first"], first[1], first[2]))["summary"])
            print(f"  round {round_ + 1}/{REPEATS} {config.name}: {_brief(item['runs'][-1])} "
                  f"(load average {os.getloadavg()[0]:.1f})", flush=True)

    rows: list[dict[str, Any]] = []
    for item in prepared:
        predicted, runs = item["predicted"], item["runs"]
        row: dict[str, Any] = {"config": item["config"].name, "sim_s": item["sim_s"]}
        for key in METRICS:
            values = [float(r[key]) for r in runs if r[key] is not None]
            measured = statistics.median(values) if values else None
            row[f"{key}.p"], row[f"{key}.m"] = predicted[key], measured
            row[f"{key}.err"] = relative_error(predicted[key], measured)
            row[f"{key}.err1"] = relative_error(predicted[key], runs[0][key])
            # The measurement's own spread: each run's distance from the median of its runs.
            row[f"{key}.spread"] = (statistics.median(abs(v - measured) / measured for v in values)
                                    if measured else None)
            row[f"{key}.range"] = (min(values), max(values)) if values else None
        row["fail.p"] = predicted["failures"]
        row["fail.m"] = sum(int(r["failures"]) for r in runs)
        rows.append(row)

    print()
    print(f"{'configuration':40s} " + " ".join(f"{k:>26s}" for k in METRICS) + "  fail p/m")
    print(f"{'':40s} " + " ".join(f"{'pred / meas (err)':>26s}" for _ in METRICS))
    for row in rows:
        cells = []
        for key in METRICS:
            p, m, e = row[f"{key}.p"], row[f"{key}.m"], row[f"{key}.err"]
            digits = 3 if key == "hit_ratio" else 1
            text = f"{_f(p, digits)} / {_f(m, digits)} ({'-' if e is None else f'{100 * e:+.0f}%'})"
            cells.append(f"{text:>26s}")
        print(f"{row['config']:40s} " + " ".join(cells) + f"  {row['fail.p']}/{row['fail.m']}")
    print(f"\nmeasured: the median of {REPEATS} runs per configuration; their range:")
    for row in rows:
        print(f"  {row['config']:38s} " + "  ".join(
            f"{key} {_f(row[key + '.range'][0], 3 if key == 'hit_ratio' else 1)}-"
            f"{_f(row[key + '.range'][1], 3 if key == 'hit_ratio' else 1)}"
            for key in METRICS if row[key + ".range"] is not None))
    print()
    for key in METRICS:
        errors = [(abs(r[f"{key}.err"]), r["config"], r[f"{key}.err"]) for r in rows if r[f"{key}.err"] is not None]
        if not errors:
            continue
        med = statistics.median(e for e, _, _ in errors)
        worst = sorted(errors, reverse=True)[:3]
        print(f"{key:10s} median |error| {100 * med:5.1f}%  over {len(errors)} configs; worst: "
              + "; ".join(f"{name} {100 * e:+.0f}%" for _, name, e in worst))
    print("\nAgainst each configuration's first run alone (as one run each would score), and the "
          "measurement's own spread (median over configurations of each run's distance from its median):")
    for key in METRICS:
        single = [abs(r[f"{key}.err1"]) for r in rows if r[f"{key}.err1"] is not None]
        spread = [r[f"{key}.spread"] for r in rows if r[f"{key}.spread"] is not None]
        if single and spread:
            print(f"{key:10s} first run {100 * statistics.median(single):5.1f}%   spread {100 * statistics.median(spread):5.1f}%")
    print(f"\nwall time {time.perf_counter() - t_start:.0f} s; work folder {work}")
    print(f"load average at end: {os.getloadavg()}")


def _brief(summary: dict[str, Any]) -> str:
    return (f"ok_rps {_f(summary['ok_rps'], 1)} p50 {_f(summary['p50_ms'], 2)} ms p99 {_f(summary['p99_ms'], 2)} ms "
            f"hit {_f(summary['hit_ratio'], 3)}")


def _f(value: Any, digits: int) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


if __name__ == "__main__":
    main()
