"""``mmeperf worker``: join a benchmark's Locust master from another host (Locust's distributed mode).

The worker needs nothing but mmeperf and the master's address: it fetches the run (profile,
payloads, trace) from the master over Locust's own connection.
"""

from __future__ import annotations

from typing import Annotated

import typer

from mmeperf.cli import CLI

__all__ = ["register"]


def register(cli: CLI) -> None:
    """Add ``mmeperf worker`` to the top-level app."""

    @cli.app.command("worker")
    def worker(
        master: Annotated[str, typer.Option("--master", help="The master's HOST:PORT (mmeperf bench --master-bind/--master-port).")],
        bind: Annotated[str | None, typer.Option("--bind", help="Connect to the master from this local address (a multi-homed host's interface).")] = None,
        processes: Annotated[int, typer.Option("--processes", min=1, help="Locust worker processes to run here (one per core).")] = 1,
        loglevel: Annotated[str, typer.Option("--loglevel", help="Locust's log level.")] = "INFO",
    ) -> None:
        """Run Locust workers for a master started by ``mmeperf bench --expect-workers N``; exit when its run ends.

        Exit codes: 0 the run ended normally; 2 a bad option; otherwise a worker's exit code.
        """
        from mmeperf.errors import ConfigurationError
        from mmeperf.load.remote import parse_master, run_workers

        try:
            parse_master(master)
        except ConfigurationError as exc:
            typer.secho(f"Error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from exc
        code = run_workers(master, processes=processes, bind=bind, loglevel=loglevel)
        if code:
            raise typer.Exit(code)
