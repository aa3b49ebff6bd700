"""The ``mmeperf`` command: a thin skin over the library's API.

Each area registers its commands from its own module (``mmeperf.cli.<area>``); those modules
import their heavy dependencies inside the command functions, so ``mmeperf --help`` stays fast.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import typer

__all__ = ["CLI", "app", "main"]


@dataclass(frozen=True)
class CLI:
    """The command groups an area module may add commands to."""

    app: typer.Typer
    demo: typer.Typer
    deploy: typer.Typer


app = typer.Typer(
    name="mmeperf",
    help="Measure how to host many ML models cost-effectively.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
_demo = typer.Typer(help="Run a reference workflow end to end.", no_args_is_help=True)
_deploy = typer.Typer(help="Deploy a model repository to a real endpoint.", no_args_is_help=True)
app.add_typer(_demo, name="demo")
app.add_typer(_deploy, name="deploy")

_AREAS = (
    "plugins", "serve", "bench", "worker", "trace", "churn", "formats", "advise", "sagemaker", "plan",
    "autoscale",
)
_cli = CLI(app=app, demo=_demo, deploy=_deploy)
for _area in _AREAS:
    importlib.import_module(f"mmeperf.cli.{_area}").register(_cli)


def main() -> None:
    app()
