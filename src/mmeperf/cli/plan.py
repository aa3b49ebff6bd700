"""``mmeperf plan``: which instance type and how many, for N models and this traffic, at what cost.

Predicts every instance type x count from a calibration (or a run folder, calibrated on the
spot), ranks those that meet the constraints, writes plan.json, and with ``--confirm K`` runs
the K best that fit this host as real local benchmarks and prints predicted against measured.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mmeperf.cli import CLI

if TYPE_CHECKING:
    from mmeperf.load.profile import LoadProfile
    from mmeperf.load.traffic import Traffic
    from mmeperf.planner import Candidate, Plan, Planner

__all__ = ["register"]

_COMPARED = ("ok_rps", "p50_ms", "p99_ms", "hit_ratio", "failures")


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def parse_counts(text: str) -> list[int]:
    """``"1-5"`` -> [1..5]; ``"1,2,4"``; ``"3"``."""
    from mmeperf.errors import ConfigurationError

    counts: set[int] = set()
    try:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            lo, dash, hi = part.partition("-")
            counts.update(range(int(lo), int(hi) + 1) if dash else [int(lo)])
    except ValueError:
        raise ConfigurationError(f"Expected counts such as 1-5 or 1,2,4, received {text!r}") from None
    if not counts or min(counts) < 1:
        raise ConfigurationError(f"Expected counts >= 1 such as 1-5, received {text!r}")
    return sorted(counts)


def parse_latency_ms(text: str) -> float:
    """``"50ms"``, ``"0.05s"`` or ``"50"`` (milliseconds) -> 50.0."""
    from mmeperf.units import parse_duration

    stripped = text.strip()
    try:
        return float(stripped)
    except ValueError:
        return parse_duration(stripped) * 1000.0


def parse_rate(text: str) -> float:
    """``"1%"`` -> 0.01; ``"0.01"`` -> 0.01."""
    from mmeperf.errors import ConfigurationError

    stripped = text.strip()
    try:
        value = float(stripped[:-1]) / 100.0 if stripped.endswith("%") else float(stripped)
    except ValueError:
        raise ConfigurationError(f"Expected a rate such as 1% or 0.01, received {text!r}") from None
    if not 0 <= value <= 1:
        raise ConfigurationError(f"Expected a rate between 0% and 100%, received {text!r}")
    return value


def _load_calibration(source: Path, loads_from: Path | None = None) -> Any:
    from mmeperf.errors import ConfigurationError
    from mmeperf.planner import Calibration, calibrate

    if loads_from is not None and not source.is_dir():
        raise ConfigurationError("--loads-from needs a run folder as the source, not a calibration file")
    if source.is_dir():
        return calibrate(source, loads_run=loads_from)
    if source.is_file():
        return Calibration.load(source)
    raise ConfigurationError(f"Expected a calibration file or a run folder, received {str(source)!r}")


def _profile(*, rate: float | None, users: int | None, spawn_rate: float | None, think: str, duration: float,
             traffic: Traffic, timeout: float) -> LoadProfile:
    from mmeperf.errors import ConfigurationError
    from mmeperf.load import LoadProfile

    if (rate is None) == (users is None):
        raise ConfigurationError("Give exactly one of --rate (open loop, req/s) or --users (closed loop)")
    if rate is not None:
        return LoadProfile.open_loop(rate=rate, duration=duration, arrivals="poisson", traffic=traffic,
                                     request_timeout=timeout)
    assert users is not None
    lo, _, hi = think.partition(":")
    return LoadProfile.constant(users=users, spawn_rate=spawn_rate or float(users), duration=duration,
                                traffic=traffic, wait={"min": lo or 0, "max": hi or lo or 0},
                                request_timeout=timeout)


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _plan_table(plan: Plan) -> Any:
    from rich.table import Table

    table = Table(title=f"mmeperf plan: {len(plan.workload)} models, predicted (prices as of {plan.prices_as_of})")
    for column in ("rank", "instances", "vCPUs", "fit", "req/s", "p50 ms", "p99 ms", "hit", "fail %", "$/h",
                   "$/M inf", "verdict"):
        table.add_column(column, justify="left" if column in ("instances", "verdict") else "right")
    rank = 0
    for c in plan.candidates:
        p = c.predicted or {}
        requests = int(p.get("requests") or 0)
        fail = 100.0 * int(p.get("failures") or 0) / requests if requests else None
        if c.feasible:
            rank += 1
        table.add_row(
            str(rank) if c.feasible else "-", c.label, str(c.vcpus), _fmt(c.models_that_fit), _fmt(p.get("ok_rps")),
            _fmt(p.get("p50_ms"), 2), _fmt(p.get("p99_ms"), 2), _fmt(p.get("hit_ratio"), 3), _fmt(fail, 2),
            f"{c.cost_per_hour_usd:.3f}", _fmt(c.cost_per_million_usd, 3),
            "[green]meets constraints[/green]" if c.feasible else "[red]" + "; ".join(c.reasons) + "[/red]",
        )
    return table


def _fits_host(c: Candidate) -> bool:
    """One instance whose emulated memory budget is below this host's RAM (the local MME is one)."""
    try:
        host_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return c.instance_count == 1
    return c.instance_count == 1 and c.memory_budget_bytes < host_bytes


def _replicated_repository(repository: Path, plan: Plan, work: Path) -> Path:
    """A folder of ``<model>.tar.gz`` artifacts: each plan model linked to its calibrated original."""
    from mmeperf.errors import ConfigurationError

    work.mkdir(parents=True, exist_ok=True)
    for name, base in zip(plan.workload.names, plan.workload.base, strict=True):
        source = repository / base if base.endswith(".tar.gz") else repository / f"{base}.tar.gz"
        if not source.is_file():
            raise ConfigurationError(
                f"--repository {str(repository)!r} has no artifact {source.name!r} for model {base!r}"
            )
        target = work / (name if name.endswith(".tar.gz") else f"{name}.tar.gz")
        if not target.exists():
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
    return work


def _confirm(plan: Plan, planner: Planner, k: int, *, repository: Path, data: Path, drop_columns: list[str],
             label_column: str | None, cap_s: float, out: Path, profile_args: dict[str, Any],
             console: Any) -> list[dict[str, Any]]:
    from rich.table import Table

    from mmeperf.endpoints.local import LocalEndpoint
    from mmeperf.load import Benchmark, Traffic
    from mmeperf.planner import measured_summary, relative_error

    chosen = [c for c in plan.feasible if _fits_host(c)][:k]
    if len(chosen) < k:
        console.print(f"Only {len(chosen)} of the feasible candidates fit this host (one instance, memory "
                      "budget below this host's RAM); confirming those.")
    if not chosen:
        return []
    repo = _replicated_repository(repository, plan, out / "confirm-repository")
    duration = min(profile_args["duration"], cap_s)
    weights = plan.workload.weights
    real = Traffic(data=str(data), models=plan.workload.names, distribution="weights", weights=weights,
                   drop_columns=drop_columns, label_column=label_column)
    sim_traffic = Traffic(models=plan.workload.names, distribution="weights", weights=weights, payloads=["x"])
    table_ = real.build()
    body, content_type = table_.bodies[0], table_.content_types[0]
    real_profile = _profile(**{**profile_args, "duration": duration}, traffic=real)
    sim_profile = _profile(**{**profile_args, "duration": duration}, traffic=sim_traffic)
    cores = os.cpu_count() or 1
    rows: list[dict[str, Any]] = []
    for c in chosen:
        label = f"{c.instance_count}x{c.instance_type}"
        console.print(f"Confirming {c.label} for {duration:g} s on this host ...")
        with LocalEndpoint(instance_profile=c.instance_type, endpoint_name="plan-confirm").deploy(repo) as endpoint:
            # One request first, so the server has imported its backend: process start-up is not
            # part of the simulation (nor of a SageMaker endpoint already in service).
            endpoint.invoke(plan.workload.names[0], body, content_type=content_type)
            if planner.warm_start:  # as predicted: the most requested models that fit, loaded first
                order = sorted(range(len(plan.workload.names)), key=lambda i: -weights[i])
                for i in order[:c.models_that_fit or 0]:
                    endpoint.invoke(plan.workload.names[i], body, content_type=content_type)
            result = Benchmark(endpoint, real_profile, overwrite=True).run(out / "confirm" / label)
        measured = measured_summary(result)
        # The same duration on this host: the local MME runs min(vCPUs, host cores) inference threads.
        again = planner.simulate(sim_profile, c.instance_type, 1, workload=plan.workload,
                                 vcpus=min(c.vcpus, cores))
        again.write(out / "predicted" / label)
        predicted = again.summary()
        table = Table(title=f"{c.label}: predicted (this host: {min(c.vcpus, cores)} vCPUs, {duration:g} s) "
                            "vs measured")
        for column in ("metric", "predicted", "measured", "error"):
            table.add_column(column, justify="right")
        row: dict[str, Any] = {"candidate": c.label, "instance_type": c.instance_type,
                               "models_that_fit": c.models_that_fit, "duration_s": duration,
                               "vcpus_here": min(c.vcpus, cores)}
        for key in _COMPARED:
            p, m = predicted.get(key), measured.get(key)
            err = relative_error(p, m)
            row[key] = {"predicted": p, "measured": m, "error": err}
            table.add_row(key, _fmt(p, 3), _fmt(m, 3), "-" if err is None else f"{100 * err:+.1f}%")
        console.print(table)
        rows.append(row)
    return rows


def what_if_rows(plan: Plan, confirmed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The report's what-if rows: every simulated candidate, with measured figures where confirmed."""
    by_label = {r["candidate"]: r for r in confirmed}
    rows = []
    for c in plan.candidates:
        if c.predicted is None:
            continue
        row: dict[str, Any] = {
            "instance_type": c.instance_type, "instance_count": c.instance_count,
            "ok_rps": c.predicted.get("ok_rps"), "p99_ms": c.predicted.get("p99_ms"),
            "hit_ratio": c.predicted.get("hit_ratio"), "cost_per_hour_usd": c.cost_per_hour_usd,
            "cost_per_million_usd": c.cost_per_million_usd,
            "verdict": "meets constraints" if c.feasible else "; ".join(c.reasons),
        }
        done = by_label.get(c.label)
        if done is not None:
            row["measured_ok_rps"] = done["ok_rps"]["measured"]
            row["measured_p99_ms"] = done["p99_ms"]["measured"]
            row["predicted_here_ok_rps"] = done["ok_rps"]["predicted"]
            row["predicted_here_p99_ms"] = done["p99_ms"]["predicted"]
        rows.append(row)
    return rows


def _hit_ratio_chart(plan: Plan, path: Path, confirmed: list[dict[str, Any]]) -> Path:
    import numpy as np

    from mmeperf.planner import hit_ratio_curve
    from mmeperf.results.charts import hit_ratio_vs_cache_size

    n = len(plan.workload)
    sizes = sorted({round(float(x)) for x in np.geomspace(1, n, num=min(n, 14))})
    curve = hit_ratio_curve(plan.workload.popularity, sizes, requests=50_000, seed=plan.seed)
    simulated = [(float(c.models_that_fit), float(c.predicted["hit_ratio"]), c.instance_type)
                 for c in plan.candidates
                 if c.instance_count == 1 and c.predicted and c.predicted.get("hit_ratio") is not None
                 and c.models_that_fit is not None]
    measured = [(float(r["models_that_fit"]), float(r["hit_ratio"]["measured"]), r["instance_type"])
                for r in confirmed if r.get("models_that_fit") is not None
                and r["hit_ratio"]["measured"] is not None]
    return hit_ratio_vs_cache_size(curve, path, simulated=simulated, measured=measured,
                                   title=f"Hit ratio against cache size, {n} models")


def plan(
    source: Annotated[Path, typer.Argument(help="A calibration (YAML/JSON) or a run folder to calibrate from.")],
    models: Annotated[int | None, typer.Option("--models", min=1, help="Models to serve (copies of the calibrated ones).")] = None,
    rate: Annotated[float | None, typer.Option("--rate", min=0.001, help="Open-loop requests per second (Poisson).")] = None,
    users: Annotated[int | None, typer.Option("--users", min=1, help="Closed-loop users.")] = None,
    think: Annotated[str, typer.Option("--think", help="Closed-loop think time 'MIN:MAX' seconds.")] = "0:2",
    spawn_rate: Annotated[float | None, typer.Option("--spawn-rate", min=0.001, help="Users started per second (default: all in 1 s).")] = None,
    duration: Annotated[str, typer.Option("--duration", help="Simulated traffic duration: 10m, 90s ...")] = "2m",
    p99: Annotated[str | None, typer.Option("--p99", help="p99 latency budget: 50ms, 0.05s, 50 (ms).")] = None,
    min_rps: Annotated[float | None, typer.Option("--min-rps", min=0, help="Successful req/s a candidate must sustain.")] = None,
    max_failure_rate: Annotated[str, typer.Option("--max-failure-rate", help="1% or 0.01.")] = "1%",
    max_cost: Annotated[float | None, typer.Option("--max-cost", min=0, help="Max USD per hour, all instances.")] = None,
    types: Annotated[list[str] | None, typer.Option("--types", help="Instance types (comma-separated or repeated; default: every CPU type).")] = None,
    counts: Annotated[str, typer.Option("--counts", help="Instance counts: 1-5 or 1,2,4.")] = "1-5",
    zipf: Annotated[float | None, typer.Option("--zipf", min=0.0001, help="Zipf exponent of popularity (default: the calibrated popularity).")] = None,
    uniform: Annotated[bool, typer.Option("--uniform", help="Uniform popularity.")] = False,
    model_bytes: Annotated[str | None, typer.Option("--model-bytes", help="Each model's own size (e.g. 300KiB), if the calibration has none.")] = None,
    timeout: Annotated[str, typer.Option("--timeout", help="Client request timeout.")] = "60s",
    seed: Annotated[int, typer.Option("--seed", help="Simulation seed.")] = 0,
    out: Annotated[Path, typer.Option("--out", help="Folder for plan.json (and confirmation runs).")] = Path("mmeperf-out/plan"),
    confirm: Annotated[int, typer.Option("--confirm", min=0, help="Run the K best that fit this host for real.")] = 0,
    repository: Annotated[Path | None, typer.Option("--repository", help="Model repository of the calibrated models (for --confirm).")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Payload CSV, one row per request (for --confirm).")] = None,
    drop_columns: Annotated[list[str] | None, typer.Option("--drop-columns", help="Payload columns not sent (for --confirm).")] = None,
    label_column: Annotated[str | None, typer.Option("--label-column", help="Label column, not sent (for --confirm).")] = None,
    confirm_duration: Annotated[str, typer.Option("--confirm-duration", help="Longest confirmation run.")] = "30s",
    hit_ratio_chart: Annotated[Path | None, typer.Option("--hit-ratio-chart", help="Write hit ratio vs cache size (PNG).")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Write a what-if HTML report into this folder.")] = None,
    warm_start: Annotated[bool, typer.Option("--warm-start/--cold-start", help="Simulate endpoints in service (caches holding the most requested models that fit) or fresh ones.")] = False,
    loads_from: Annotated[Path | None, typer.Option("--loads-from", help="A run folder whose measured loads and unloads calibrate load times (the source's run loaded nothing, or thrashed).")] = None,
) -> None:
    """Predict instance types x counts for N models under this traffic; rank by cost; say why others fail."""
    import json
    import time

    from rich.console import Console

    from mmeperf.errors import ConfigurationError, MmeperfError
    from mmeperf.load import Traffic
    from mmeperf.planner import Constraints, Planner
    from mmeperf.units import parse_duration, parse_size

    console = Console() if sys.stdout.isatty() else Console(width=200)
    try:
        if zipf is not None and uniform:
            raise ConfigurationError("Give --zipf S or --uniform, not both")
        if confirm and (repository is None or data is None):
            raise ConfigurationError("--confirm needs --repository (the calibrated models) and --data (payload CSV)")
        calibration = _load_calibration(source, loads_from)
        planner = Planner(calibration, model_bytes=None if model_bytes is None else parse_size(model_bytes), seed=seed,
                          warm_start=warm_start)
        constraints = Constraints(p99_ms=None if p99 is None else parse_latency_ms(p99), min_rps=min_rps,
                                  max_failure_rate=parse_rate(max_failure_rate), max_cost_per_hour=max_cost)
        profile_args: dict[str, Any] = {"rate": rate, "users": users, "spawn_rate": spawn_rate, "think": think,
                                        "duration": parse_duration(duration), "timeout": parse_duration(timeout)}
        popularity: Any = zipf if zipf is not None else ("uniform" if uniform else "calibrated")
        workload = planner.workload(models, popularity=popularity)
        traffic = Traffic(models=workload.names, distribution="weights", weights=workload.weights, payloads=["x"])
        profile = _profile(**profile_args, traffic=traffic)
        started = time.perf_counter()
        result = planner.search(profile, constraints=constraints, instance_types=_split(types) or None,
                                counts=parse_counts(counts), workload=workload)
        elapsed = time.perf_counter() - started
        console.print(_plan_table(result))
        console.print(f"{len(result.candidates)} candidates simulated in {elapsed:.1f} s "
                      f"({profile.duration_s:g} s of traffic each, seed {seed}).", highlight=False)
        for line in result.assumptions:
            console.print(f"  assumption: {line}", highlight=False, soft_wrap=True)
        best = result.best
        console.print(f"Best: {best.label}, ${best.cost_per_hour_usd:.3f}/h" if best is not None
                      else "No candidate meets the constraints.", highlight=False)
        out.mkdir(parents=True, exist_ok=True)
        path = result.save(out / "plan.json")
        confirmed: list[dict[str, Any]] = []
        if confirm:
            assert repository is not None and data is not None
            confirmed = _confirm(result, planner, confirm, repository=repository, data=data,
                                 drop_columns=_split(drop_columns), label_column=label_column,
                                 cap_s=parse_duration(confirm_duration), out=out, profile_args=profile_args,
                                 console=console)
            doc = json.loads(path.read_text(encoding="utf-8"))
            doc["confirmed"] = confirmed
            path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
        console.print(f"Plan: {path}", highlight=False, soft_wrap=True)
        if hit_ratio_chart is not None:
            chart = _hit_ratio_chart(result, hit_ratio_chart, confirmed)
            console.print(f"Hit ratio chart: {chart}", highlight=False, soft_wrap=True)
        if report is not None:
            from mmeperf.results.report import write_what_if_report

            page = write_what_if_report(report, what_if_rows(result, confirmed), title="mmeperf plan: what if",
                                        notes=result.assumptions)
            console.print(f"Report: {page}", highlight=False, soft_wrap=True)
    except MmeperfError as exc:
        typer.secho(f"Error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc


def register(cli: CLI) -> None:
    cli.app.command("plan")(plan)
