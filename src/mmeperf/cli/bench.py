"""``mmeperf bench``: the reference's Locust launch in one line, or a YAML spec for everything else.

Heavy imports (pandas, the runner) happen inside the command, so ``mmeperf --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

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
        users: Annotated[int | None, typer.Option("--users", min=1, help="Concurrent users (default 10; reference 300).")] = None,
        spawn_rate: Annotated[float | None, typer.Option("--spawn-rate", min=0.001, help="Users started per second (default 5).")] = None,
        duration: Annotated[str | None, typer.Option("--duration", help="30s (default), 15m, 1h30m ...")] = None,
        wait: Annotated[str, typer.Option("--wait", help="Per-user pause between requests, 'MIN:MAX' seconds.")] = "0:2",
        workers: Annotated[int | None, typer.Option("--workers", min=0, help="Locust workers (default 0: one process; reference 2).")] = None,
        reference_scale: Annotated[bool, typer.Option(
            "--reference-scale", help="The AIM408 reference's scale: 300 users, spawn 5/s, 15m, 2 workers "
            "(explicit --users/--spawn-rate/--duration/--workers still win).")] = False,
        zipf: Annotated[float | None, typer.Option("--zipf", min=0.0001, help="Zipf(S) popularity over the target models (the first the most popular).")] = None,
        weights: Annotated[Path | None, typer.Option("--weights", help="Popularity file: CSV/TSV lines 'model,weight' or a JSON/YAML mapping.")] = None,
        schema: Annotated[bool, typer.Option("--schema", help="Print the bench spec's JSON Schema and exit.")] = False,
        user: Annotated[str, typer.Option("--user", help="http, boto3 or endpoint.")] = "http",
        region: Annotated[str | None, typer.Option("--region", help="Sign requests with SigV4 for this AWS region.")] = None,
        instance_type: Annotated[str | None, typer.Option("--instance-type", "--instance-profile", help="Instance type label for file names, reports and prices (a label only: serve --instance-profile emulates).")] = None,
        platform: Annotated[str | None, typer.Option("--platform", help="Backend label (xgboost, pt, trt ...).")] = None,
        web_ui: Annotated[bool, typer.Option("--web-ui", help="Serve Locust's web UI on 127.0.0.1:8089 to watch.")] = False,
        out: Annotated[Path | None, typer.Option("--out", help="Result folder, one per run (default: mmeperf-out/bench-<timestamp>).")] = None,
        overwrite: Annotated[bool, typer.Option("--overwrite")] = False,
        threshold: Annotated[list[str] | None, typer.Option(
            "--threshold", help="Fail the run (exit 1) unless it holds, k6-style: p99<10ms, p95<200, "
            "failure_rate<1%, rps>100, ok_rps>50 (repeatable).")] = None,
        warmup: Annotated[str | None, typer.Option(
            "--warmup", help="Warm up before measuring: a duration (10s) of the first stage's load, or "
            "N/model (1/model: every model N requests). Reported apart, never measured.")] = None,
        master_bind: Annotated[str, typer.Option("--master-bind", help="Address the Locust master listens on for workers (other hosts: their reachable address or 0.0.0.0).")] = "127.0.0.1",
        master_port: Annotated[int | None, typer.Option("--master-port", min=1, max=65535, help="The master's port (default 5557 with --expect-workers, else a free one).")] = None,
        expect_workers: Annotated[int | None, typer.Option("--expect-workers", min=1, help="Workers in all, local ones included: the rest join with 'mmeperf worker --master ADDR:PORT'.")] = None,
    ) -> None:
        """Drive load at an endpoint; write Locust-format CSVs and exact HDR percentiles to --out.

        Exit codes: 0 the run passed; 1 a threshold failed, or the run is mostly failures (over
        50% without a failure_rate threshold), every request failed or the target never answered;
        2 a usage error or an unreachable target (nothing ran); 3 the load generator failed.
        """
        from mmeperf.errors import ConfigurationError, LoadTestError
        from mmeperf.load.thresholds import EXIT_LOAD_ERROR, EXIT_USAGE

        if schema:
            import json

            typer.echo(json.dumps(bench_spec_schema(), indent=1))
            return
        first_try: dict[str, Any] = {"users": 10, "spawn_rate": 5.0, "duration": "30s", "workers": 0}
        scale = REFERENCE_SCALE if reference_scale else first_try
        users = int(scale["users"]) if users is None else users
        spawn_rate = float(scale["spawn_rate"]) if spawn_rate is None else spawn_rate
        duration = str(scale["duration"]) if duration is None else duration
        workers = int(scale["workers"]) if workers is None else workers
        try:
            options = _options(
                spec, endpoint_url=endpoint_url, endpoint_name=endpoint_name, data=data,
                model_column=model_column, model_template=model_template, drop_columns=drop_columns,
                label_column=label_column, models=models, content_type=content_type, users=users,
                spawn_rate=spawn_rate, duration=duration, wait=wait, workers=workers, user=user,
                region=region, instance_type=instance_type, platform=platform, web_ui=web_ui, out=out,
                overwrite=overwrite, threshold=threshold or [], warmup=warmup, zipf=zipf, weights=weights,
            )
            options.update(master_bind=master_bind, master_port=master_port, expect_workers=expect_workers)
            _preflight(options)
        except ConfigurationError as exc:
            typer.secho(f"Error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(EXIT_USAGE) from exc
        try:
            code = _run(options)
        except ConfigurationError as exc:
            typer.secho(f"Error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(EXIT_USAGE) from exc
        except LoadTestError as exc:
            typer.secho(f"Error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(EXIT_LOAD_ERROR) from exc
        if code:
            raise typer.Exit(code)


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def _options(spec: Path | None, **cli: Any) -> dict[str, Any]:
    from pydantic import ValidationError

    from mmeperf._files import read_mapping
    from mmeperf.errors import ConfigurationError
    from mmeperf.load.profile import LoadProfile
    from mmeperf.load.traffic import Traffic

    if spec is not None:
        doc = read_mapping(spec, "bench spec")
        if "profile" not in doc:
            raise ConfigurationError(f"Bench spec {str(spec)!r} needs a 'profile' key")
        unknown = sorted(set(doc) - set(bench_spec_schema()["properties"]))
        if unknown:
            raise ConfigurationError(f"Bench spec {str(spec)!r}: unknown keys {unknown}; see mmeperf bench --schema")
        try:
            profile = LoadProfile.from_dict(doc["profile"])
        except ValidationError as exc:
            raise ConfigurationError(f"Bench spec {str(spec)!r}: {_one_line(exc, wait='')}") from exc
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
            "thresholds": _thresholds([*_as_list(doc.get("thresholds")), *cli["threshold"]]),
        } | _with_warmup(profile, cli["warmup"])
    models = _split(cli["models"])
    if cli["data"] is None and not models:
        raise ConfigurationError("Give a SPEC file, or --data (and --model-column or --models)")
    if cli["data"] is not None:
        _check_data(Path(cli["data"]))
    distribution, weights = _popularity(models, cli["zipf"], cli["weights"])
    if not models and not cli["model_column"]:
        models = _endpoint_targets(cli["endpoint_url"])
    lo, _, hi = cli["wait"].partition(":")
    _check_wait(cli["wait"], lo, hi or lo)
    try:
        traffic = Traffic(
            data=None if cli["data"] is None else str(cli["data"]),
            model_column=cli["model_column"],
            model_template=cli["model_template"],
            drop_columns=_split(cli["drop_columns"]),
            label_column=cli["label_column"],
            models=models,
            content_type=cli["content_type"],
            distribution=distribution,
            zipf_s=cli["zipf"] or 1.0,
            weights=weights,
        )
        profile = LoadProfile.constant(
            users=cli["users"], spawn_rate=cli["spawn_rate"], duration=cli["duration"], traffic=traffic,
            wait={"min": lo or 0, "max": hi or lo or 0},
        )
    except ValidationError as exc:
        raise ConfigurationError(_one_line(exc, wait=cli["wait"])) from exc
    return {**{k: cli[k] for k in ("endpoint_url", "endpoint_name", "workers", "user", "region",
                                   "instance_type", "platform", "web_ui", "out", "overwrite")},
            "thresholds": _thresholds(cli["threshold"])} | _with_warmup(profile, cli["warmup"])


#: ``--reference-scale``: the AIM408 churn reference's Locust launch.
REFERENCE_SCALE: dict[str, Any] = {"users": 300, "spawn_rate": 5.0, "duration": "15m", "workers": 2}


def _one_line(exc: Any, *, wait: str) -> str:
    """A pydantic error as one line: the option, what was expected, what was received."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    message = str(first.get("msg", "")).removeprefix("Value error, ")
    if "duration" in where:
        return f"Bad --duration: {message}"
    if "wait" in where or "min" in where or "max" in where:
        return f"Bad --wait {wait!r}: expected 'MIN:MAX' seconds (e.g. 0:2 or 0.5), {message}"
    return f"Bad option ({where or 'traffic'}): {message}, received {first.get('input')!r}"


def _check_wait(text: str, lo: str, hi: str) -> None:
    from mmeperf.errors import ConfigurationError
    from mmeperf.units import parse_duration

    try:
        low, high = parse_duration(lo or 0), parse_duration(hi or 0)
    except (ValueError, ConfigurationError):
        low = high = -1.0
    if not 0 <= low <= high:
        raise ConfigurationError(f"Bad --wait: expected 'MIN:MAX' seconds with 0 <= MIN <= MAX (e.g. 0:2, 0.5 or 1s:3s), received {text!r}")


def _check_data(path: Path) -> None:
    """--data must exist; a CSV whose first line is all numbers probably has no header (warn)."""
    from mmeperf.errors import ConfigurationError

    if not path.exists():
        raise ConfigurationError(f"--data: expected a payload CSV, .npy or folder, received {str(path)!r}, which does not exist")
    if path.is_file() and path.suffix.lower() in (".csv", ".txt", ""):
        try:
            with path.open(encoding="utf-8", errors="replace") as fh:
                first = fh.readline().strip()
        except OSError:
            return
        cells = [c.strip() for c in first.split(",") if c.strip()]

        def number(text: str) -> bool:
            try:
                float(text)
            except ValueError:
                return False
            return True

        if cells and all(number(c) for c in cells):
            typer.secho(
                f"Warning: {str(path)!r} looks headerless (its first line {first[:60]!r} is all numbers); "
                "the first line is read as column names, so that row is never sent. Add a header line.",
                fg=typer.colors.YELLOW, err=True,
            )


def _endpoint_targets(url: str | None) -> list[str]:
    """Targets from the endpoint's own listing when neither --models nor --model-column is given."""
    from mmeperf.errors import ConfigurationError
    from mmeperf.load.benchmark import check_url
    from mmeperf.load.servermetrics import endpoint_models

    if not url:
        return []
    from mmeperf.load.benchmark import probe_target

    check_url(url)
    problem = probe_target(url)
    if problem is not None:
        raise ConfigurationError(f"The endpoint at {url} did not answer: {problem}; is it running?")
    models = endpoint_models(url)
    if not models:
        raise ConfigurationError(
            f"No target models: expected --models A,B or --model-column COLUMN, received neither, and the "
            f"endpoint at {url} lists none (GET /mmeperf/models, GET /models)"
        )
    typer.echo(f"Targets: the endpoint's {len(models)} models ({', '.join(models[:3])}{', ...' if len(models) > 3 else ''})", err=True)
    return models


def _popularity(models: list[str], zipf: float | None,
                weights_file: Path | None) -> tuple[Literal["uniform", "zipf", "weights"], Any]:
    """(distribution, weights) from --zipf / --weights."""
    from mmeperf._files import read_mapping
    from mmeperf.errors import ConfigurationError

    if zipf is not None and weights_file is not None:
        raise ConfigurationError("Give --zipf or --weights, not both")
    if zipf is not None:
        return "zipf", None
    if weights_file is None:
        return "uniform", None
    mapping: dict[str, float] = {}
    if weights_file.suffix.lower() in (".json", ".yaml", ".yml"):
        items: list[Any] = list(read_mapping(weights_file, "--weights file (model -> weight)").items())
    else:
        try:
            text = weights_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"--weights: expected a readable text file, received {str(weights_file)!r} ({exc})") from exc
        items = [[part.strip() for part in line.replace("\t", ",").split(",")[:2]]
                 for line in text.splitlines() if line.strip() and not line.startswith("#")]
    for item in items:
        try:
            mapping[str(item[0])] = float(item[1])
        except (IndexError, ValueError):
            if mapping or str(item[0]).lower() not in ("model", "name", "target"):  # a header line
                raise ConfigurationError(
                    f"--weights {str(weights_file)!r}: expected lines 'model,weight', received {item!r}"
                ) from None
    if not models:
        models.extend(mapping)
    return "weights", mapping


def bench_spec_schema() -> dict[str, Any]:
    """JSON Schema of a bench spec file (``mmeperf bench SPEC``; YAML or JSON)."""
    from mmeperf.load.profile import LoadProfile

    profile = LoadProfile.model_json_schema()
    defs = profile.pop("$defs", {})
    string = {"type": "string"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "mmeperf bench spec",
        "type": "object",
        "required": ["profile"],
        "additionalProperties": False,
        "properties": {
            "profile": profile,
            "endpoint_url": {**string, "description": "Runtime base URL (http://HOST:PORT)."},
            "endpoint_name": {**string, "description": "The {name} in /endpoints/{name}/invocations."},
            "out": {**string, "description": "Result folder, relative to the spec file."},
            "workers": {"type": "integer", "minimum": 0, "description": "Locust workers (0: one process)."},
            "user": {"enum": ["http", "boto3", "endpoint"]},
            "region": {**string, "description": "Sign requests with SigV4 for this AWS region."},
            "instance_type": {**string, "description": "Instance type label for file names, reports and prices."},
            "platform": {**string, "description": "Backend label (xgboost, pt, trt ...)."},
            "web_ui": {"type": "boolean"},
            "overwrite": {"type": "boolean"},
            "thresholds": {"type": "array", "items": string, "description": "k6-style checks, e.g. p99<50ms."},
        },
        "$defs": defs,
    }


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _thresholds(texts: list[str]) -> list[Any]:
    from mmeperf.load.thresholds import parse_thresholds

    return parse_thresholds(texts)


def _with_warmup(profile: Any, warmup: str | None) -> dict[str, Any]:
    """``--warmup 10s`` or ``--warmup 1/model`` on top of the profile (a new profile)."""
    from mmeperf.errors import ConfigurationError
    from mmeperf.load.profile import LoadProfile

    if warmup is None:
        return {"profile": profile}
    text = warmup.strip().lower()
    config: dict[str, Any]
    if text.endswith("/model"):
        count = text[: -len("/model")].strip()
        if not count.isdigit() or int(count) < 1:
            raise ConfigurationError(f"Bad --warmup {warmup!r}: expected N/model (e.g. 1/model) or a duration (10s)")
        config = {"requests_per_model": int(count)}
    else:
        config = {"duration": text}
    return {"profile": LoadProfile.from_dict({**profile.model_dump(mode="json", exclude={"traffic"}), "warmup": config})
            .model_copy(update={"traffic": profile.traffic})}


def _preflight(options: dict[str, Any]) -> None:
    """Before starting Locust: the URL is well formed and its host takes connections."""
    from mmeperf.errors import ConfigurationError
    from mmeperf.load.benchmark import check_url, probe_target

    url = options["endpoint_url"]
    if not url:
        raise ConfigurationError("Give --endpoint-url (or endpoint_url in the spec)")
    if options["out"] is None:
        import time

        options["out"] = Path("mmeperf-out") / time.strftime("bench-%Y%m%d-%H%M%S")
    check_url(url)
    if options["user"] in ("http", "boto3"):
        problem = probe_target(url)
        if problem is not None:
            raise ConfigurationError(f"The endpoint at {url} did not answer: {problem}; is it running?")


def _run(options: dict[str, Any]) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from mmeperf.load.benchmark import Benchmark
    from mmeperf.load.benchmark import Progress as RunProgress
    from mmeperf.load.spec import AwsAuth

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
        source = status = None
        if options["user"] in ("http", "boto3") and auth is None:
            from mmeperf.load.servermetrics import discover_metrics, endpoint_status

            url = options["endpoint_url"]
            source = discover_metrics(url)
            status = (lambda: endpoint_status(url)) if source is not None else None
        result = Benchmark(
            options["endpoint_url"], profile, workers=options["workers"], user=options["user"],
            endpoint_name=options["endpoint_name"], auth=auth, instance_type=options["instance_type"],
            platform=options["platform"], web_ui=options["web_ui"], progress=on_progress,
            overwrite=options["overwrite"], thresholds=options["thresholds"],
            server_metrics=source, server_status=status,
            master_bind=options.get("master_bind", "127.0.0.1"), master_port=options.get("master_port"),
            expect_workers=options.get("expect_workers"),
        ).run(options["out"])
    out = Console()
    columns = ("stage", "users", "requests", "failures", "rps", "ok_rps", "p50_ms", "p95_ms", "p99_ms", "max_ms",
               "cold_share", "late_sends")
    table = Table(title=f"mmeperf bench -> {result.out_dir} ({result.status})")
    for column in columns:
        table.add_column(column, justify="right")
    for _, row in result.summary.iterrows():
        table.add_row(*[_fmt(row.get(c)) for c in columns])
    out.print(table)
    totals = result.totals
    out.print(
        f"Total: {result.total_requests} requests, {result.total_failures} failed; "
        f"rps {_fmt(result.rps)} (all), ok_rps {_fmt(result.ok_rps)} (successful); "
        f"p50 {_fmt(totals.get('p50_ms'))} ms, p99 {_fmt(totals.get('p99_ms'))} ms"
    )
    if len(result.summary) > 1 and result.max_users_without_failures is not None:
        out.print(f"Max users without failures: {result.max_users_without_failures}")
    elif len(result.summary) > 1 and "max_users_without_failures" in result.summary:
        out.print("Max users without failures: none (the first stage already failed)")
    warm = result.warmup
    if warm is not None:
        out.print(
            f"Warm-up (not measured): {warm.get('requests')} requests, {warm.get('failures')} failed, "
            f"{warm.get('cold_requests')} cold, {_fmt(warm.get('duration_s'))} s, p50 {_fmt(warm.get('p50_ms'))} ms, "
            f"p99 {_fmt(warm.get('p99_ms'))} ms"
        )
    for worker in ((result.info.get("run") or {}).get("workers") or {}).get("nodes", []):
        if worker.get("lost_at") is not None:
            out.print(f"Worker lost: {worker['node']} at {worker.get('lost_s')} s (the requests it reported are counted)")
    if result.stop_reason:
        out.print(f"Stopped early: {result.stop_reason}")
    for line in _cache_caveat(result):
        out.print(f"Caveat: {line}", markup=False, highlight=False)
    if not result.server_metrics.empty:
        out.print(f"Server metrics: {len(result.server_metrics)} intervals in server_metrics.csv; "
                  f"report with: mmeperf report {result.out_dir}", markup=False, highlight=False)
    verdict = result.verdict
    if verdict is None:
        return 0
    for checked in verdict.thresholds:
        out.print(f"Threshold {checked.describe()}")
    if verdict.top_failures:
        out.print("Top failure reasons:")
        for failure in verdict.top_failures:
            out.print(f"  {failure.describe()}", markup=False, highlight=False)
    if verdict.passed:
        out.print("Result: PASSED")
    else:
        for reason in verdict.reasons:
            out.print(f"Result: FAILED: {reason}", markup=False, highlight=False)
    return verdict.exit_code


def _cache_caveat(result: Any) -> list[str]:
    """The thrash caveat for one run: models unloaded after the warm-up (server metrics)."""
    from mmeperf.results.compare import THRASH_MARK
    from mmeperf.results.folders import metrics_from_intervals

    metrics = result.server_metrics
    if metrics.empty:
        return []
    warm_s = (result.warmup or {}).get("duration_s")
    end = metrics_from_intervals(metrics)
    start = metrics_from_intervals(metrics, until_s=float(warm_s)) if warm_s is not None else None
    unloads = end.model_unloads - (start.model_unloads if start else 0)
    if unloads <= 0:
        return []
    cold = (result.info.get("run", {}).get("report") or {}).get("cold_share")
    cold_text = f"; {cold:.0%} of requests were cold" if isinstance(cold, (int, float)) else ""
    return [f"the endpoint {THRASH_MARK}: {unloads} unloads after warm-up{cold_text}. Its latency "
            "includes model loads; read it as a lower bound for SageMaker, where loads are slower."]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)
