"""``mmeperf bench``: the one-line form against the test server, and typed errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mmeperf.cli import app
from tests.load.conftest import test_server  # noqa: F401  (fixture)


@pytest.mark.slow
def test_one_line_bench(test_server, tmp_path: Path) -> None:  # noqa: F811
    server = test_server("--delay-ms", "1")
    pd.DataFrame({"CustomerID": [1, 2], "State": ["CA", "NY"], "Churn?": ["True.", "False."], "a": [1, 2]}).to_csv(
        tmp_path / "test.csv", index=False
    )
    result = CliRunner().invoke(app, [
        "bench", "--endpoint-url", server.url, "--data", str(tmp_path / "test.csv"), "--model-column", "State",
        "--model-template", "churn-xgb-{}.tar.gz", "--drop-columns", "CustomerID", "--label-column", "Churn?",
        "--users", "2", "--spawn-rate", "10", "--duration", "2s", "--wait", "0:0.05", "--out", str(tmp_path / "run"),
    ])
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(tmp_path / "run" / "summary_results.csv")
    assert int(summary["requests"].sum()) == server.stats()["requests"] > 0
    assert "mmeperf bench" in result.output


def test_bench_without_data_is_an_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "--endpoint-url", "http://127.0.0.1:1", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--data" in result.output
