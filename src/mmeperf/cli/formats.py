"""``mmeperf demo formats``: one model as TorchScript, ONNX and TensorRT on the local MME."""

from __future__ import annotations

from pathlib import Path

import typer

from mmeperf.cli import CLI

_DEFAULT_OUT = Path("mmeperf-out/formats")


def formats(
    model: str = typer.Option("resnet50", "--model", help="Sample model: resnet50, vit or bert."),
    tiny: bool = typer.Option(
        False, "--tiny", help="Tiny model variant and 5 s steps (a few minutes)."
    ),
    copies: int = typer.Option(
        0,
        "--copies",
        min=0,
        help="Copies of each format in the repository (default 0: enough to pass the budget "
        "at the measured memory per copy).",
    ),
    out: Path = typer.Option(
        _DEFAULT_OUT,
        "--out",
        help="Output folder (exports, repositories, runs, charts).",
    ),
    users: str = typer.Option(
        "", "--users", help="User steps, comma-separated (default 1,2,4,8 tiny; 10,20,40,60,80)."
    ),
    step_duration: float = typer.Option(
        0.0, "--step-duration", min=0.0, help="Seconds per step (default 5 tiny, 30)."
    ),
    memory_budget: str = typer.Option(
        "",
        "--memory-budget",
        help="Local MME model budget, e.g. 2GiB (default 32MiB with --tiny, else 4GiB).",
    ),
    payload: str = typer.Option(
        "npy", "--payload", help="Request encoding: npy (NPZ for NLP) or json (KServe v2)."
    ),
    fmt: list[str] | None = typer.Option(
        None, "--format", help="Formats to try (repeat; default pytorch, onnx, tensorrt)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the weights and payloads."),
) -> None:
    """Export a sample model to every format available here, serve N copies of each through the
    local MME under one memory budget, step users up, and compare (summary_results.csv, charts)."""
    from rich.console import Console

    from mmeperf.demos.formats import FORMATS, FormatsDemoOptions, run_formats_demo
    from mmeperf.errors import MmeperfError

    console = Console(highlight=False, markup=False, soft_wrap=True)
    try:
        steps = [int(u) for u in users.split(",") if u.strip()] if users.strip() else None
        options = FormatsDemoOptions(
            model=model,  # type: ignore[arg-type]
            tiny=tiny,
            copies=copies or None,
            out=out,
            users=steps,
            step_duration_s=step_duration or None,
            memory_budget=memory_budget or None,
            payload=payload,  # type: ignore[arg-type]
            formats=list(fmt or []) or list(FORMATS),
            seed=seed,
        )
        result = run_formats_demo(options, progress=lambda m: console.print(m))
    except (MmeperfError, ValueError) as exc:
        console.print(f"error: {exc}", style="red")
        raise typer.Exit(2) from exc
    console.print(result.summary.to_string(index=False))
    console.print(
        "max_models_loaded: copies resident in the local MME when loading one more first evicted "
        f"one, each charged its measured resident memory, in a "
        f"{result.memory_budget_bytes / 2**20:.1f} MiB budget:"
    )
    for outcome in result.outcomes:
        if outcome.available and outcome.models_loaded is not None:
            console.print(
                f"  {outcome.format}: {outcome.models_loaded} copies at "
                f"{(outcome.resident_bytes_per_copy or 0) / 2**20:.2f} MiB each (weights "
                f"{(outcome.memory_bytes or 0) / 2**20:.2f} MiB)"
            )
    for outcome in result.outcomes:
        if not outcome.available:
            console.print(f"{outcome.format}: not run: {outcome.reason}")
    if result.onnx_vs_torchscript_rps is not None:
        console.print(
            f"ONNX Runtime vs TorchScript, highest req/s: {result.onnx_vs_torchscript_rps:.2f}x"
        )
    console.print(f"Summary: {result.summary_csv}")
    for chart in result.charts:
        console.print(f"Chart:   {chart}")


def register(cli: CLI) -> None:
    """Add ``mmeperf demo formats``."""
    cli.demo.command("formats")(formats)
