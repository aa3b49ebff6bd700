"""``mmeperf report RUN`` and ``mmeperf compare RUN RUN ...``: the demo's HTML report, charts and
verdict from finished run folders (:func:`mmeperf.results.report_from_folders`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mmeperf.cli import CLI

__all__ = ["register"]


def _budget_ms(text: str | None) -> float | None:
    from mmeperf.errors import ConfigurationError

    if text is None:
        return None
    raw = text.strip().lower()
    scale = 1.0
    for suffix, factor in (("ms", 1.0), ("us", 1e-3), ("s", 1000.0)):
        if raw.endswith(suffix):
            raw, scale = raw[: -len(suffix)], factor
            break
    try:
        value = float(raw) * scale
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigurationError(f"Bad --p99 {text!r}: expected a latency such as 50ms, 0.2s or 100 (ms)")
    return value


def _build(runs: list[Path], out: Path | None, labels: list[str] | None, p99: str | None,
           threshold: list[str] | None, catalog: Path | None, region: str | None,
           instance_type: list[str] | None) -> int:
    from mmeperf.cli import debug_enabled
    from mmeperf.errors import ConfigurationError
    from mmeperf.instances import DEFAULT_CATALOG, InstanceCatalog
    from mmeperf.load.thresholds import parse_thresholds
    from mmeperf.results.cost import DEFAULT_P99_BUDGET_MS
    from mmeperf.results.folders import report_from_folders

    try:
        for run in runs:
            if not run.is_dir():
                raise ConfigurationError(f"Expected a run folder, received {str(run)!r}, which is not a folder")
        options: dict[str, Any] = {
            "labels": labels or None,
            "instance_types": instance_type or None,
            "p99_budget_ms": _budget_ms(p99) or DEFAULT_P99_BUDGET_MS,
            "thresholds": parse_thresholds(threshold or []),
            "catalog": InstanceCatalog.from_file(catalog) if catalog is not None else DEFAULT_CATALOG,
            "region": region,
        }
        done = report_from_folders(runs, out, **options)
    except ConfigurationError as exc:
        if debug_enabled():
            raise
        typer.secho(f"Error: {exc}", fg=typer.colors.RED, err=True)
        return 2
    typer.echo(done.comparison.frame().to_string(index=False))
    for line in done.verdict:
        typer.echo(line)
    for label, verdict in done.thresholds.items():
        for checked in verdict.thresholds:
            typer.echo(f"{label}: threshold {checked.describe()}")
    typer.echo(f"Report: {done.report}")
    typer.echo(f"Summary: {done.summary_csv}")
    if done.passed:
        typer.echo("Result: PASSED")
    for reason in done.reasons:
        typer.echo(f"Result: FAILED: {reason}")
    return done.exit_code


_HELP = {
    "out": "Where report.html and charts/ go (default: the run's folder; for compare, comparison/ beside the first run).",
    "p99": "Latency budget of the recommendation, e.g. 50ms (default 100ms); no run within it fails (exit 1).",
    "threshold": "Fail (exit 1) unless every run holds it, k6-style: p99<50ms, failure_rate<1%, ok_rps>100 (repeatable).",
    "catalog": "Instance catalog JSON/YAML with your prices (see InstanceCatalog.from_file).",
    "region": "Region the prices should be for (the built-in catalog lists us-east-1).",
    "label": "Label per run, in order (default: each run's instance type).",
    "instance_type": "Instance type per run, in order, for runs that name none (bench --instance-type).",
}



def register(cli: CLI) -> None:
    """Add ``mmeperf report`` and ``mmeperf compare``."""

    @cli.app.command("report")
    def report(
        run: Annotated[Path, typer.Argument(help="A finished run folder (mmeperf bench --out).")],
        out: Annotated[Path | None, typer.Option("--out", help=_HELP["out"])] = None,
        p99: Annotated[str | None, typer.Option("--p99", help=_HELP["p99"])] = None,
        threshold: Annotated[list[str] | None, typer.Option("--threshold", help=_HELP["threshold"])] = None,
        catalog: Annotated[Path | None, typer.Option("--catalog", help=_HELP["catalog"])] = None,
        region: Annotated[str | None, typer.Option("--region", help=_HELP["region"])] = None,
        label: Annotated[str | None, typer.Option("--label", help=_HELP["label"])] = None,
        instance_type: Annotated[str | None, typer.Option("--instance-type", "--instance-profile", help=_HELP["instance_type"])] = None,
    ) -> None:
        """HTML report, charts and verdict of one finished run. Exit 1 when a threshold fails."""
        code = _build([run], out, [label] if label else None, p99, threshold, catalog, region,
                      [instance_type] if instance_type else None)
        if code:
            raise typer.Exit(code)

    @cli.app.command("compare")
    def compare(
        runs: Annotated[list[Path], typer.Argument(help="Finished run folders (mmeperf bench --out), two or more.")],
        out: Annotated[Path | None, typer.Option("--out", help=_HELP["out"])] = None,
        p99: Annotated[str | None, typer.Option("--p99", help=_HELP["p99"])] = None,
        threshold: Annotated[list[str] | None, typer.Option("--threshold", help=_HELP["threshold"])] = None,
        catalog: Annotated[Path | None, typer.Option("--catalog", help=_HELP["catalog"])] = None,
        region: Annotated[str | None, typer.Option("--region", help=_HELP["region"])] = None,
        label: Annotated[list[str] | None, typer.Option("--label", help=_HELP["label"])] = None,
        instance_type: Annotated[list[str] | None, typer.Option("--instance-type", "--instance-profile", help=_HELP["instance_type"])] = None,
    ) -> None:
        """Runs side by side: summary, costs, recommendation, thrash caveats, the HTML report.

        Exit codes: 0 passed; 1 a threshold failed or no run meets --p99; 2 a usage error.
        """
        code = _build(runs, out, label, p99, threshold, catalog, region, instance_type)
        if code:
            raise typer.Exit(code)
