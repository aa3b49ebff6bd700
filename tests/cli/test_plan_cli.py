"""``mmeperf plan`` as a subprocess: a ranked table with costs and reasons, plan.json, a chart, --confirm."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmeperf.planner import Calibration, Distribution, Measured, ModelCalibration, Source

SRC = Source(measurement="test input")


def _calibration(path: Path, models: list[str]) -> Path:
    service = Distribution.from_quantiles({0: 0.0003, 50: 0.0006, 99: 0.002, 100: 0.004}, source=SRC)
    return Calibration(
        service_time=service, load_time=Distribution.constant(0.004, source=SRC),
        models={m: ModelCalibration(requests=10 + i, memory_bytes=Measured(value=19_000.0, unit="bytes", source=SRC))
                for i, m in enumerate(models)},
    ).save(path)


def _plan(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mmeperf", "plan", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_plan_ranks_types_by_cost_with_reasons_and_writes_plan_json(tmp_path: Path) -> None:
    cal = _calibration(tmp_path / "cal.yaml", [f"m{i}.tar.gz" for i in range(8)])
    out = _plan(str(cal), "--models", "60", "--rate", "80", "--duration", "20s", "--p99", "50ms",
                "--max-cost", "0.3", "--types", "ml.c5.large,ml.c5.xlarge", "--types", "ml.g4dn.xlarge",
                "--counts", "1-2", "--zipf", "1.1", "--out", str(tmp_path / "plan"),
                "--hit-ratio-chart", str(tmp_path / "hit.png"), "--report", str(tmp_path / "report"))
    assert out.returncode == 0, out.stderr
    assert "mmeperf plan: 60 models" in out.stdout
    assert "meets constraints" in out.stdout and "GPU type" in out.stdout
    assert "cost $0.408/h > max $0.300/h" in out.stdout  # 2 x ml.c5.xlarge
    assert "Best: 1 x ml.c5.large, $0.102/h" in out.stdout
    assert "per-core speed" in out.stdout  # the CPU assumption is stated
    doc = json.loads((tmp_path / "plan" / "plan.json").read_text())
    assert doc["model_count"] == 60 and doc["constraints"]["p99_ms"] == 50.0
    assert doc["constraints"]["max_failure_rate"] == 0.01
    labels = [f"{c['instance_count']} x {c['instance_type']}" for c in doc["candidates"]]
    assert labels[0] == "1 x ml.c5.large" and len(labels) == 6
    assert all(c["reasons"] for c in doc["candidates"] if not c["feasible"])
    assert (tmp_path / "hit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (tmp_path / "report" / "report.html").read_text()
    assert "What if: instance type and count" in page and 'data-chart="what_if"' in page
    assert "ml.c5.xlarge" in page and "per-core speed" in page


def test_closed_loop_users_and_bad_options(tmp_path: Path) -> None:
    cal = _calibration(tmp_path / "cal.json", ["a.tar.gz", "b.tar.gz"])
    ok = _plan(str(cal), "--users", "5", "--think", "0:0.1", "--duration", "10s", "--types", "ml.m5.large",
               "--counts", "1", "--out", str(tmp_path / "p"))
    assert ok.returncode == 0, ok.stderr
    assert "1 x ml.m5.large" in ok.stdout
    both = _plan(str(cal), "--users", "5", "--rate", "3", "--out", str(tmp_path / "p"))
    assert both.returncode == 2 and "exactly one of --rate" in both.stderr
    missing = _plan(str(tmp_path / "nope.yaml"), "--rate", "3", "--out", str(tmp_path / "p"))
    assert missing.returncode == 2 and "calibration file or a run folder" in missing.stderr
    counts = _plan(str(cal), "--rate", "3", "--counts", "0-2", "--out", str(tmp_path / "p"))
    assert counts.returncode == 2 and "counts" in counts.stderr
    confirm = _plan(str(cal), "--rate", "3", "--confirm", "1", "--out", str(tmp_path / "p"))
    assert confirm.returncode == 2 and "--repository" in confirm.stderr


@pytest.mark.slow
def test_confirm_runs_the_best_for_real_and_prints_predicted_vs_measured(tmp_path: Path) -> None:
    pytest.importorskip("xgboost")
    from mmeperf.datasets.churn import build_churn_repository

    build = build_churn_repository(tmp_path / "repo", n_rows=600, rounds=2)
    cal = _calibration(tmp_path / "cal.yaml", ["churn-xgb-CA.tar.gz", "churn-xgb-TX.tar.gz", "churn-xgb-NY.tar.gz"])
    out = _plan(str(cal), "--models", "6", "--users", "2", "--think", "0:0.05", "--duration", "1m",
                "--types", "ml.c5.large", "--counts", "1-2", "--out", str(tmp_path / "plan"), "--confirm", "1",
                "--confirm-duration", "4s", "--repository", str(tmp_path / "repo"), "--data", build.test_csv,
                "--drop-columns", "CustomerID,State", "--label-column", "Churn?", timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Confirming 1 x ml.c5.large for 4 s" in out.stdout
    assert "vs measured" in out.stdout and "hit_ratio" in out.stdout
    doc = json.loads((tmp_path / "plan" / "plan.json").read_text())
    (row,) = doc["confirmed"]
    assert row["candidate"] == "1 x ml.c5.large"
    assert row["ok_rps"]["measured"] > 0 and row["ok_rps"]["predicted"] > 0
    assert row["failures"]["measured"] == 0
    # The replicated repository holds the copies under their plan names; the runs are on disk.
    assert (tmp_path / "plan" / "confirm-repository" / "churn-xgb-CA-r1.tar.gz").is_file()
    assert (tmp_path / "plan" / "confirm" / "1xml.c5.large" / "run.json").is_file()
    assert (tmp_path / "plan" / "predicted" / "1xml.c5.large" / "run.json").is_file()
