"""Commands of this area are registered here (filled in by its issue)."""

from __future__ import annotations

from mmeperf.cli import CLI


def register(cli: CLI) -> None:
    """Placeholder until this area's commands land."""
