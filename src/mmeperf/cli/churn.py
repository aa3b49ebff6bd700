"""``mmeperf demo churn``: the churn workflow on the local MME, two instance types side by side."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mmeperf.cli import CLI

if TYPE_CHECKING:
    from mmeperf.load.benchmark import Progress


def churn(
    out: Path = typer.Option(Path("mmeperf-out/churn"), "--out", help="Output folder."),
    users: int | None = typer.Option(None, "--users", min=1, help="Users per endpoint (default: the reference's 300 x the CPU scale; thread mode 100)."),
    spawn_rate: float = typer.Option(5.0, "--spawn-rate", min=0.001, help="Users started per second."),
    duration: str = typer.Option("30s", "--duration", help="Measured window per endpoint after warm-up, e.g. 45s or 15m (reference: 15m)."),
    full: bool = typer.Option(False, "--full", help="The reference's 15-minute window (about 16 minutes per endpoint run one after the other)."),
    instance_type: list[str] = typer.Option(
        ["ml.c5.xlarge", "ml.c5.2xlarge"], "--instance-type", help="Instance types to emulate (repeat)."
    ),
    workers: int = typer.Option(0, "--workers", min=0, help="Locust workers per endpoint (0: one process)."),
    user: str = typer.Option("http", "--user", help="Load user: http (fast) or boto3 (the reference's)."),
    worker_mode: str = typer.Option("process", "--worker-mode", help="process (the faithful emulation: a worker process per model and a CPU allowance, as SageMaker's CPU containers) or thread (fast, no CPU allowance)."),
    cpu_scale: float | None = typer.Option(None, "--cpu-scale", min=0.001, max=1.0, help="Emulated CPUs per vCPU (default: host CPUs less --client-cpus over the largest instance's vCPUs)."),
    client_cpus: float = typer.Option(0.5, "--client-cpus", min=0.0, help="CPUs kept for the load generator."),
    side_by_side: bool | None = typer.Option(None, "--side-by-side/--one-after-other", help="Order of the measured windows (default: side by side when the host has CPU for every allowance)."),
    p99_budget_ms: float = typer.Option(100.0, "--p99-budget-ms", min=0.001, help="Latency budget for the recommendation."),
    rows: int = typer.Option(5000, "--rows", min=510, help="Rows of synthetic churn data."),
    seed: int = typer.Option(0, "--seed", help="Seed of data, splits and training."),
) -> None:
    """51 per-state XGBoost churn models on one MME: ml.c5.xlarge vs ml.c5.2xlarge, report, cost, verdict."""
    from rich.console import Console
    from rich.table import Table

    from mmeperf.demos.churn import ChurnDemoOptions, run_churn_demo
    from mmeperf.errors import MmeperfError

    console = Console()
    if not console.is_terminal:  # logs and CI: do not squeeze the table into 80 columns
        console = Console(width=170)
    last: dict[str, str] = {}

    def on_load(label: str, p: Progress) -> None:
        line = (
            f"{label}: {p.status:<8} {p.elapsed_s:5.0f}s users {p.users:4d}  "
            f"{p.rps:7.1f} req/s  requests {p.requests:7d}  failures {p.failures}"
        )
        if last.get(label) != line and int(p.elapsed_s) % 10 == 0:
            console.print(f"  {line}", highlight=False, soft_wrap=True)
        last[label] = line

    try:
        options = ChurnDemoOptions.model_validate(
            {
                "out": out, "users": users, "spawn_rate": spawn_rate, "duration": "15m" if full else duration,
                "instance_types": instance_type, "workers": workers, "user": user, "worker_mode": worker_mode,
                "cpu_scale": cpu_scale, "client_cpus": client_cpus, "side_by_side": side_by_side,
                "p99_budget_ms": p99_budget_ms, "rows": rows, "seed": seed,
            }
        )
        result = run_churn_demo(
            options, progress=lambda m: console.print(m, highlight=False, soft_wrap=True), on_load_progress=on_load
        )
    except (MmeperfError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from exc
    table = Table(title="summary_results.csv")
    columns = ("instance_type", "requests", "failures", "rps", "p50_ms", "p99_ms", "loaded_model_count_max",
               "model_unloads_after_warmup", "cache_hit_ratio", "cost_per_hour_usd", "cost_per_million_usd")
    for column in columns:
        table.add_column(column.replace("_", " "), justify="right")
    for row in result.summary.to_dict("records"):
        table.add_row(*[_cell(row[c]) for c in columns])
    console.print(table)
    console.print(f"Summary: {result.summary_csv}", highlight=False, soft_wrap=True)
    console.print(f"Report:  {result.report}", highlight=False, soft_wrap=True)
    if result.reference is not None and not result.reference.empty:
        ref = Table(title="Against the reference (AIM408, 300 users)")
        for column in result.reference.columns:
            ref.add_column(str(column))
        for record in result.reference.astype(str).itertuples(index=False):
            ref.add_row(*record)
        console.print(ref)
    if result.plan:
        console.print(f"CPU: {result.plan}", highlight=False, soft_wrap=True)
    console.print(f"Verdict: {result.verdict}", highlight=False, soft_wrap=True)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def register(cli: CLI) -> None:
    cli.demo.command("churn")(churn)
