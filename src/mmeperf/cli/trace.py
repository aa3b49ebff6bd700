"""``mmeperf trace synth``: write a synthetic invocation trace (diurnal rate, drifting popularity) to replay.

Replay it with a profile whose shape is ``{kind: trace, path: trace.csv}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmeperf.cli import CLI

__all__ = ["register"]


def register(cli: CLI) -> None:
    """Add ``mmeperf trace synth`` to the top-level app."""
    trace = typer.Typer(help="Invocation traces to replay (shape: trace).", no_args_is_help=True)
    cli.app.add_typer(trace, name="trace")

    @trace.command("synth")
    def synth(
        out: Annotated[Path, typer.Option("--out", help="trace.csv, or trace.parquet (needs pyarrow).")],
        duration: Annotated[str, typer.Option("--duration", help="Length of the trace: 1h, 24h, 90s ...")] = "1h",
        rate: Annotated[float, typer.Option("--rate", min=0.001, help="Mean requests per second.")] = 10.0,
        models: Annotated[int, typer.Option("--models", min=1, help="Number of models.")] = 20,
        model_template: Annotated[str, typer.Option("--model-template", help="Model names; {} is 0, 1, ...")] = "model-{}",
        zipf: Annotated[float, typer.Option("--zipf", min=0.001, help="Zipf exponent of model popularity.")] = 1.0,
        amplitude: Annotated[float, typer.Option("--amplitude", min=0.0, max=1.0, help="Diurnal swing: 0 flat, 1 from 0 to twice the mean.")] = 0.5,
        period: Annotated[str, typer.Option("--period", help="Length of one rate cycle.")] = "24h",
        peak_at: Annotated[str, typer.Option("--peak-at", help="When in the cycle the rate peaks.")] = "14h",
        drift: Annotated[float, typer.Option("--drift", min=0.0, max=1.0, help="Chance that neighbouring ranks trade places each --drift-every.")] = 0.05,
        drift_every: Annotated[str, typer.Option("--drift-every", help="How often popularity drifts.")] = "60s",
        seed: Annotated[int, typer.Option("--seed")] = 0,
    ) -> None:
        """Write a seeded synthetic trace (timestamp, model) with a diurnal rate and drifting Zipf popularity."""
        from mmeperf.errors import ConfigurationError
        from mmeperf.load.tracegen import synth_trace, write_trace
        from mmeperf.units import parse_duration

        try:
            frame = synth_trace(
                duration=parse_duration(duration), mean_rate=rate, models=models, model_template=model_template,
                zipf_s=zipf, amplitude=amplitude, period=parse_duration(period), peak_at=parse_duration(peak_at),
                drift=drift, drift_every=parse_duration(drift_every), seed=seed,
            )
            write_trace(frame, out)
        except ConfigurationError as exc:
            typer.secho(f"Error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from exc
        top = frame["model"].value_counts()
        typer.echo(
            f"{out}: {len(frame)} requests over {parse_duration(duration):g} s to {frame['model'].nunique()} models "
            f"(busiest {top.index[0]}: {int(top.iloc[0])})"
        )
