"""``mmeperf plugins``: every backend and endpoint, who provides it, and whether it loads here."""

from __future__ import annotations

from mmeperf.cli import CLI


def plugins() -> None:
    """List plugins with their group, providing package and version, and whether they load."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from mmeperf import plugins as registry

    table = Table(title="mmeperf plugins")
    for column in ("group", "name", "provider", "version", "status"):
        table.add_column(column)
    for status in registry.status():
        info = status.info
        # escape(): the error's "pip install 'mmeperf[onnx]'" is not rich markup.
        state = "[green]ok[/green]" if status.loads else f"[red]unavailable[/red]: {escape(status.error or '')}"
        table.add_row(info.group.rsplit(".", 1)[-1], info.name, info.provider, info.version, state)
    Console(width=200).print(table)


def register(cli: CLI) -> None:
    cli.app.command("plugins")(plugins)


__all__ = ["plugins", "register"]
