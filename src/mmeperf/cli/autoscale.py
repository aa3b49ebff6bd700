"""``mmeperf autoscale-check``: "does my autoscaling policy trigger under this load?" as a yes or
no, with the scaling timeline: the policy applied to a multi-instance local MME while a load runs.

Heavy imports happen inside the command, so ``mmeperf --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from mmeperf.cli import CLI

__all__ = ["register"]

#: Exit codes: the policy did (0) or did not (1) do what was expected; 2 a usage error.
EXIT_TRIGGERED, EXIT_NOT_TRIGGERED, EXIT_USAGE = 0, 1, 2


def register(cli: CLI) -> None:
    """Add ``mmeperf autoscale-check``."""

    @cli.app.command("autoscale-check")
    def autoscale_check(
        repository: Annotated[str, typer.Argument(help="Model repository served by the local MME.")],
        out: Annotated[Path, typer.Option("--out", help="Result folder: the load's files and scaling.jsonl.")],
        models: Annotated[list[str] | None, typer.Option("--models", help="Target models (uniform), repeat or comma-separate.")] = None,
        data: Annotated[Path | None, typer.Option("--data", help="Payload CSV (one row per request).")] = None,
        model_column: Annotated[str | None, typer.Option("--model-column", help="Column naming each row's model (e.g. State).")] = None,
        model_template: Annotated[str, typer.Option("--model-template", help="Column value -> target model.")] = "{}.tar.gz",
        drop_columns: Annotated[list[str] | None, typer.Option("--drop-columns", help="Columns not sent.")] = None,
        users: Annotated[int, typer.Option("--users", min=1)] = 20,
        spawn_rate: Annotated[float, typer.Option("--spawn-rate", min=0.001)] = 5.0,
        duration: Annotated[str, typer.Option("--duration", help="How long the load runs: 5m, 90s ...")] = "5m",
        wait: Annotated[str, typer.Option("--wait", help="Per-user pause between requests, 'MIN:MAX' seconds.")] = "0:2",
        min_capacity: Annotated[int, typer.Option("--min-capacity", min=1)] = 2,
        max_capacity: Annotated[int, typer.Option("--max-capacity", min=1)] = 5,
        target: Annotated[float, typer.Option("--target", help="InvocationsPerInstance per minute to hold.")] = 4000.0,
        scale_out_cooldown: Annotated[int, typer.Option("--scale-out-cooldown", help="Seconds.")] = 300,
        scale_in_cooldown: Annotated[int, typer.Option("--scale-in-cooldown", help="Seconds.")] = 600,
        period: Annotated[float, typer.Option("--period", help="Seconds per datapoint (CloudWatch: 60; shorter rescales to per minute).")] = 60.0,
        scale_out_datapoints: Annotated[int, typer.Option("--scale-out-datapoints", min=1)] = 3,
        scale_in_datapoints: Annotated[int, typer.Option("--scale-in-datapoints", min=1)] = 15,
        instance_count: Annotated[int | None, typer.Option("--instance-count", min=1, help="Instances at start (default: --min-capacity).")] = None,
        memory_budget: Annotated[str | None, typer.Option("--memory-budget", help="Per instance, e.g. 512MiB.")] = None,
        instance_profile: Annotated[str | None, typer.Option("--instance-profile", help="Emulate this instance type's memory.")] = None,
        expect: Annotated[str, typer.Option("--expect", help="scale-out, scale-in or both.")] = "scale-out",
        settle: Annotated[str, typer.Option("--settle", help="After the load, keep watching this long for a scale in (e.g. 2m).")] = "0s",
        overwrite: Annotated[bool, typer.Option("--overwrite")] = False,
    ) -> None:
        """Serve REPOSITORY from a local multi-instance MME under the target-tracking policy, drive
        the load at it, and say whether the policy scaled (exit 0) or not (exit 1)."""
        import time

        from rich.console import Console
        from rich.table import Table

        from mmeperf.cloud.autoscaling import AutoscalingPolicy
        from mmeperf.endpoints.local import LocalEndpoint
        from mmeperf.endpoints.local.autoscaling import LocalAutoscaling, verdict
        from mmeperf.errors import ConfigurationError, MmeperfError
        from mmeperf.load.benchmark import Benchmark
        from mmeperf.load.profile import LoadProfile
        from mmeperf.load.traffic import Traffic
        from mmeperf.units import parse_duration

        def usage(message: str) -> typer.Exit:
            typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)
            return typer.Exit(EXIT_USAGE)

        if expect not in ("scale-out", "scale-in", "both"):
            raise usage(f"--expect must be scale-out, scale-in or both, received {expect!r}")
        wanted: Literal["scale-out", "scale-in", "both"] = expect  # type: ignore[assignment]
        names = [v.strip() for value in models or [] for v in value.split(",") if v.strip()]
        if data is None and not names:
            raise usage("Give --models, or --data (and --model-column)")
        try:
            settings = LocalAutoscaling(
                policy=AutoscalingPolicy(
                    min_capacity=min_capacity, max_capacity=max_capacity, target_invocations_per_instance=target,
                    scale_out_cooldown_s=scale_out_cooldown, scale_in_cooldown_s=scale_in_cooldown),
                period_s=period, scale_out_datapoints=scale_out_datapoints, scale_in_datapoints=scale_in_datapoints,
            )
            lo, _, hi = wait.partition(":")
            traffic = Traffic(
                data=None if data is None else str(data), model_column=model_column, model_template=model_template,
                drop_columns=[v.strip() for value in drop_columns or [] for v in value.split(",") if v.strip()],
                models=names,
            )
            profile = LoadProfile.constant(users=users, spawn_rate=spawn_rate, duration=duration, traffic=traffic,
                                           wait={"min": lo or 0, "max": hi or lo or 0})
            settle_s = parse_duration(settle)
        except (ConfigurationError, ValueError) as exc:
            raise usage(str(exc)) from exc
        out.mkdir(parents=True, exist_ok=True)
        log = out / "scaling.jsonl"
        console = Console(stderr=True)
        try:
            with LocalEndpoint(
                instance_count=instance_count or min_capacity, autoscaling=settings,
                memory_budget=memory_budget, instance_profile=instance_profile, startup_timeout_s=300,
                fleet_options={"scaling_log": str(log)},
            ).deploy(repository) as ep:
                console.print(f"Serving {repository} at {ep.url} with {ep.info().instance_count} instance(s); "
                              f"running the load for {profile.duration_s:g} s")
                result = Benchmark(ep, profile, overwrite=overwrite).run(out)
                console.print(f"Load: {result.total_requests} requests, {result.total_failures} failed")
                deadline = time.monotonic() + settle_s
                while time.monotonic() < deadline and not verdict(ep.scaling_events(), wanted).triggered:
                    time.sleep(min(1.0, period / 2))
                events = ep.scaling_events()
        except MmeperfError as exc:
            raise usage(str(exc)) from exc
        answer = verdict(events, wanted)
        table = Table(title=f"Scaling timeline ({log})")
        for column in ("elapsed_s", "event", "instance", "in_service", "desired", "cause"):
            table.add_column(column)
        for event in events:
            if event["event"] == "datapoint":
                continue
            desired = "" if event["desired_after"] is None else f"{event['desired_before']} -> {event['desired_after']}"
            table.add_row(f"{event['elapsed_s']:.1f}", event["event"], event["instance"] or "",
                          str(event["in_service"] if event["in_service"] is not None else ""), desired, event["cause"])
        stdout = Console()
        stdout.print(table)
        stdout.print(f"{'YES' if answer.triggered else 'NO'} ({expect}): {answer.summary}", markup=False, highlight=False)
        raise typer.Exit(EXIT_TRIGGERED if answer.triggered else EXIT_NOT_TRIGGERED)
