"""``mmeperf bench``: the reference's Locust launch in one line, or a YAML spec for everything else.

Heavy imports (pandas, the runner) happen inside the command, so ``mmeperf --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mmeperf.cli import CLI
from mmeperf.protocol import DEFAULT_ENDPOINT_NAME

__all__ = ["register"]


def register(cli: CLI) -> None:
    """Add ``mmeperf bench`` to the top-level app."""

    @cli.app.command("bench")
    def bench(
        spec: Annotated[Path | None, typer.Argument(help="A YAML/JSON bench spec (endpoint_url, out, profile, ...).")] = None,
        endpoint_url: Annotated[str | None, typer.Option("--endpoint-url", help="Runtime base URL (speaks /endpoints/{name}/invocations).")] = None,
        endpoint_name: Annotated[str, typer.Option("--endpoint-name", help="The {name} in /endpoints/{name}/invocations.")] = DEFAULT_ENDPOINT_NAME,
        data: Annotated[Path | None, typer.Option("--data", help="Payload CSV (one row per request), .npy or a folder of files.")] = None,
        model_column: Annotated[str | None, typer.Option("--model-column", help="Column naming each row's model (e.g. State).")] = None,
        model_template: Annotated[str, typer.Option("--model-template", help="Column value -> target model, e.g. 'churn-xgb-{}.tar.gz'.")] = "{}.tar.gz",
        drop_columns: Annotated[list[str] | None, typer.Option("--drop-columns", help="Columns not sent (repeat or comma-separate).")] = None,
        label_column: Annotated[str | None, typer.Option("--label-column", help="Label column, dropped from the payload.")] = None,
        models: Annotated[list[str] | None, typer.Option("--models", help="Target models when there is no model column (uniform).")] = None,
        content_type: Annotated[str | None, typer.Option("--content-type")] = None,
        users: Annotated[int, typer.Option("--users", min=1)] = 300,
        spawn_rate: Annotated[float, typer.Option("--spawn-rate", min=0.001)] = 5.0,
        duration: Annotated[str, typer.Option("--duration", help="15m, 90s, 1h30m ...")] = "15m",
        wait: Annotated[str, typer.Option("--wait", help="Per-user pause between requests, 'MIN:MAX' seconds.")] = "0:2",
        workers: Annotated[int, typer.Option("--workers", min=0, help="Locust workers (0: one process).")] = 0,
        user: Annotated[str, typer.Option("--user", help="http, boto3 or endpoint.")] = "http",
        region: Annotated[str | None, typer.Option("--region", help="Sign requests with SigV4 for this AWS region.")] = None,
        instance_type: Annotated[str | None, typer.Option("--instance-type", help="Label for file names and reports.")] = None,
        platform: Annotated[str | None, typer.Option("--platform", help="Backend label (xgboost, pt, trt ...).")] = None,
        web_ui: Annotated[bool, typer.Option("--web-ui", help="Serve Locust's web UI on 127.0.0.1:8089 to watch.")] = False,
        out: Annotated[Path | None, typer.Option("--out", help="Result folder (one per run).")] = None,
        overwrite: Annotated[bool, typer.Option("--overwrite")] = False,
    ) -> None:
        """Drive load at an endpoint; write Locust-format CSVs and exact HDR percentiles to --out."""
        from mmeperf.errors import MmeperfError

        try:
            options = _options(
                spec, endpoint_url=endpoint_url, endpoint_name=endpoint_name, data=data,
                model_column=model_column, model_template=model_template, drop_columns=drop_columns,
                label_column=label_column, models=models, content_type=content_type, users=users,
                spawn_rate=spawn_rate, duration=duration, wait=wait, workers=workers, user=user,
                region=region, instance_type=instance_type, platform=platform, web_ui=web_ui, out=out,
                overwrite=overwrite,
            )
            _run(options)
        except MmeperfError as exc:
            typer.secho(f"Error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from exc


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def _options(spec: Path | None, **cli: Any) -> dict[str, Any]:
    from mmeperf.errors import ConfigurationError
    from mmeperf.load.profile import LoadProfile
    from mmeperf.load.traffic import Traffic

    if spec is not None:
        import yaml

        try:
            doc = yaml.safe_load(spec.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigurationError(f"Cannot read bench spec {str(spec)!r}: {exc}") from exc
        if not isinstance(doc, dict) or "profile" not in doc:
            raise ConfigurationError(f"Bench spec {str(spec)!r} needs a mapping with a 'profile' key")
        profile = LoadProfile.from_dict(doc["profile"])
        profile.traffic.resolve_paths(spec.parent)
        out = doc.get("out") or cli["out"]
        return {
            "profile": profile,
            "endpoint_url": doc.get("endpoint_url") or cli["endpoint_url"],
            "endpoint_name": doc.get("endpoint_name", cli["endpoint_name"]),
            "workers": int(doc.get("workers", cli["workers"])),
            "user": doc.get("user", cli["user"]),
            "region": doc.get("region", cli["region"]),
            "instance_type": doc.get("instance_type", cli["instance_type"]),
            "platform": doc.get("platform", cli["platform"]),
            "web_ui": bool(doc.get("web_ui", cli["web_ui"])),
            "out": None if out is None else (spec.parent / out if not Path(out).is_absolute() else Path(out)),
            "overwrite": bool(doc.get("overwrite", cli["overwrite"])),
        }
    if cli["data"] is None and not cli["models"]:
        raise ConfigurationError("Give a SPEC file, or --data (and --model-column or --models)")
    lo, _, hi = cli["wait"].partition(":")
    traffic = Traffic(
        data=None if cli["data"] is None else str(cli["data"]),
        model_column=cli["model_column"],
        model_template=cli["model_template"],
        drop_columns=_split(cli["drop_columns"]),
        label_column=cli["label_column"],
        models=_split(cli["models"]),
        content_type=cli["content_type"],
    )
    profile = LoadProfile.constant(
        users=cli["users"], spawn_rate=cli["spawn_rate"], duration=cli["duration"], traffic=traffic,
        wait={"min": lo or 0, "max": hi or lo or 0},
    )
    return {**{k: cli[k] for k in ("endpoint_url", "endpoint_name", "workers", "user", "region",
                                   "instance_type", "platform", "web_ui", "out", "overwrite")}, "profile": profile}


def _run(options: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from mmeperf.errors import ConfigurationError
    from mmeperf.load.benchmark import Benchmark
    from mmeperf.load.benchmark import Progress as RunProgress
    from mmeperf.load.spec import AwsAuth

    if not options["endpoint_url"]:
        raise ConfigurationError("Give --endpoint-url (or endpoint_url in the spec)")
    if options["out"] is None:
        raise ConfigurationError("Give --out DIR (or out in the spec): one result folder per run")
    profile = options["profile"]
    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(), console=console, transient=False
    ) as bar:
        task = bar.add_task("starting Locust", total=max(profile.duration_s, 1.0))
        start_elapsed: list[float] = []

        def on_progress(p: RunProgress) -> None:
            if p.status == "running" and not start_elapsed:
                start_elapsed.append(p.elapsed_s)
            done = p.elapsed_s - start_elapsed[0] if start_elapsed else 0.0
            bar.update(
                task, completed=min(done, profile.duration_s),
                description=f"{p.status}: stage {p.stage}, {p.users} users, {p.rps:.0f} req/s, "
                f"{p.requests} requests, {p.failures} failures",
            )

        auth = AwsAuth(region=options["region"]) if options["region"] else None
        result = Benchmark(
            options["endpoint_url"], profile, workers=options["workers"], user=options["user"],
            endpoint_name=options["endpoint_name"], auth=auth, instance_type=options["instance_type"],
            platform=options["platform"], web_ui=options["web_ui"], progress=on_progress,
            overwrite=options["overwrite"],
        ).run(options["out"])
    table = Table(title=f"mmeperf bench -> {result.out_dir} ({result.status})")
    for column in ("stage", "users", "requests", "failures", "rps", "p50_ms", "p95_ms", "p99_ms", "max_ms", "cold_share"):
        table.add_column(column, justify="right")
    for _, row in result.summary.iterrows():
        table.add_row(*[_fmt(row.get(c)) for c in ("stage", "users", "requests", "failures", "rps", "p50_ms",
                                                    "p95_ms", "p99_ms", "max_ms", "cold_share")])
    Console().print(table)
    if result.stop_reason:
        Console().print(f"Stopped early: {result.stop_reason}")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)
