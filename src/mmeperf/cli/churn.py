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
    users: int = typer.Option(100, "--users", min=1, help="Users per endpoint (reference: 300)."),
    spawn_rate: float = typer.Option(5.0, "--spawn-rate", min=0.001, help="Users started per second."),
    duration: str = typer.Option("45s", "--duration", help="Load duration, e.g. 45s or 15m (reference: 15m)."),
    instance_type: list[str] = typer.Option(
        ["ml.c5.xlarge", "ml.c5.2xlarge"], "--instance-type", help="Instance types to emulate (repeat)."
    ),
    workers: int = typer.Option(0, "--workers", min=0, help="Locust workers per endpoint (0: one process)."),
    user: str = typer.Option("http", "--user", help="Load user: http (fast) or boto3 (the reference's)."),
    worker_mode: str = typer.Option("thread", "--worker-mode", help="thread (fast) or process (a worker process per model and a CPU allowance, as SageMaker's CPU containers)."),
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
                "out": out, "users": users, "spawn_rate": spawn_rate, "duration": duration,
                "instance_types": instance_type, "workers": workers, "user": user, "worker_mode": worker_mode,
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
    console.print(f"Verdict: {result.verdict}", highlight=False, soft_wrap=True)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def register(cli: CLI) -> None:
    cli.demo.command("churn")(churn)
