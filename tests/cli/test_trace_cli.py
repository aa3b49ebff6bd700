"""``mmeperf trace synth`` and ``mmeperf worker``'s option checks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from mmeperf.cli import app


def test_trace_synth_writes_a_seeded_trace(tmp_path: Path) -> None:
    out = tmp_path / "t.csv"
    args = ["trace", "synth", "--out", str(out), "--duration", "10m", "--rate", "2", "--models", "5", "--seed", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    first = pd.read_csv(out)
    assert set(first["model"]) <= {f"model-{i}" for i in range(5)} and len(first) > 600
    assert CliRunner().invoke(app, args).exit_code == 0
    pd.testing.assert_frame_equal(first, pd.read_csv(out))
    assert CliRunner().invoke(app, [*args[:3], "--duration", "nope"]).exit_code == 2


def test_worker_rejects_a_bad_master_address() -> None:
    result = CliRunner().invoke(app, ["worker", "--master", "no-port-here"])
    assert result.exit_code == 2 and "HOST:PORT" in result.output
