"""The ``mmeperf`` command: a thin skin over the library's API.

Each area registers its commands from its own module (``mmeperf.cli.<area>``); those modules
import their heavy dependencies inside the command functions, so ``mmeperf --help`` stays fast.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from typing import Annotated

import typer

__all__ = ["CLI", "app", "debug_enabled", "main"]


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

_DEBUG_ENV = "MMEPERF_DEBUG"


def debug_enabled() -> bool:
    """Whether ``mmeperf --debug`` (or MMEPERF_DEBUG=1) asked for tracebacks instead of one line."""
    return os.environ.get(_DEBUG_ENV, "") not in ("", "0")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"mmeperf {version('mmeperf')}")
        except PackageNotFoundError:
            typer.echo("mmeperf (not installed)")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of an error.")] = False,
    version: Annotated[bool | None, typer.Option("--version", callback=_version, is_eager=True,
                                                 help="Print the version and exit.")] = None,
) -> None:
    """Measure how to host many ML models cost-effectively."""
    if debug:
        os.environ[_DEBUG_ENV] = "1"  # child processes (servers, Locust) inherit it


_AREAS = (
    "plugins", "serve", "bench", "report", "worker", "trace", "churn", "formats", "advise", "sagemaker", "plan",
    "autoscale",
)
_cli = CLI(app=app, demo=_demo, deploy=_deploy)
for _area in _AREAS:
    importlib.import_module(f"mmeperf.cli.{_area}").register(_cli)


def main() -> None:
    """Run the CLI: an error nobody caught becomes one line and exit 2 (a usage or configuration
    error) or 1, unless ``--debug`` asks for the traceback."""
    from mmeperf.errors import ConfigurationError, MmeperfError

    try:
        app(standalone_mode=True)
    except SystemExit:
        raise
    except (ConfigurationError, MmeperfError, OSError) as exc:
        if debug_enabled():
            raise
        typer.secho(f"Error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2 if isinstance(exc, (ConfigurationError, OSError)) else 1)
    except Exception as exc:
        if debug_enabled():
            raise
        typer.secho(f"Error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                    fg=typer.colors.RED, err=True)
        sys.exit(1)
