"""``mmeperf plugins``: every plugin with its group, provider, version, and an honest status."""

from __future__ import annotations

import re

from typer.testing import CliRunner

import mmeperf
from mmeperf.cli import app
from mmeperf.plugins import status as plugin_status

BACKENDS = ("xgboost", "pytorch", "onnx", "tensorrt")
ENDPOINTS = ("local", "sagemaker", "triton")


def _rows(output: str) -> dict[str, list[str]]:
    """name -> cells of its table row (continuation lines of wrapped cells are skipped)."""
    rows: dict[str, list[str]] = {}
    for line in output.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line)[1:-1]]
        if len(cells) == 5 and cells[1] and cells[0] in ("backends", "endpoints"):
            rows[cells[1]] = cells
    return rows


def test_plugins_lists_four_backends_and_three_endpoints_honestly() -> None:
    result = CliRunner().invoke(app, ["plugins"])
    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    for group, names in (("backends", BACKENDS), ("endpoints", ENDPOINTS)):
        for name in names:
            assert name in rows, f"{name} missing from:\n{result.output}"
            assert rows[name][0] == group
            assert rows[name][2:4] == ["mmeperf", mmeperf.__version__]
    # Each row's status is what actually happens when the plugin is used here.
    for status in plugin_status():
        cell = rows[status.info.name][4]
        if status.loads:
            assert cell == "ok", (status.info.name, cell)
        else:
            assert status.error is not None
            if len(status.error) < 120:  # short enough not to wrap: printed verbatim
                assert cell == f"unavailable: {status.error}", (status.info.name, cell)
            else:
                assert cell.startswith(f"unavailable: {status.error[:60]}"), (status.info.name, cell)


def test_the_pip_command_survives_rich_markup() -> None:
    # "[tensorrt]" in "pip install 'mmeperf[tensorrt]'" must not be eaten as a markup tag.
    result = CliRunner().invoke(app, ["plugins"])
    for status in plugin_status():
        if status.error and "pip install" in status.error:
            assert status.error.split("Install it with: ")[1] in result.output
