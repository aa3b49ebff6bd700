"""``mmeperf advise``: the hosting decision tree, answered with reasons."""

from __future__ import annotations

import typer

from mmeperf.cli import CLI


def advise(
    n_models: int = typer.Option(1, "--models", min=1, help="How many models must be served."),
    frameworks: int = typer.Option(1, "--frameworks", min=1, help="How many different frameworks they need."),
    batch: bool = typer.Option(False, "--batch", help="Predictions run as scheduled jobs, not live traffic."),
    payload_mb: float = typer.Option(0.01, "--payload-mb", min=0, help="Largest request payload in MB."),
    processing_s: float = typer.Option(0.1, "--processing-seconds", min=0, help="Longest prediction time in seconds."),
    fluctuating: bool = typer.Option(False, "--fluctuating", help="Traffic varies over the day."),
    dev: bool = typer.Option(False, "--dev", help="Not a production endpoint (skip the high-availability step)."),
) -> None:
    """Where to host your models, and what to do next, each with its reason."""
    from mmeperf.advice import Workload
    from mmeperf.advice import advise as run_advise

    workload = Workload(
        live_traffic=not batch,
        payload_mb=payload_mb,
        processing_seconds=processing_s,
        n_models=n_models,
        frameworks=frameworks,
        fluctuating_traffic=fluctuating,
        production=not dev,
    )
    typer.echo(run_advise(workload).render())


def register(cli: CLI) -> None:
    cli.app.command("advise")(advise)
