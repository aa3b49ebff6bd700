import json
import subprocess
import sys
import time
from pathlib import Path

import pytest


def test_bad_sizes_are_usage_errors_naming_the_expected_form(tmp_path: Path) -> None:
    for flag in ("--disk-cache", "--memory-budget"):
        out = subprocess.run(
            [sys.executable, "-m", "mmeperf", "serve", str(tmp_path), "--port", "0", flag, "lots"],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 2, (flag, out.stderr)
        assert "512MiB" in out.stderr and "'lots'" in out.stderr


def _tiny_repository(root: Path, names: list[str]) -> tuple[Path, Path]:
    """A repository of 5-tree XGBoost models on 3 features, and a CSV of rows for them."""
    import numpy as np
    import xgboost as xgb

    from mmeperf.repository import ModelRepository

    rng = np.random.default_rng(0)
    x = rng.random((64, 3), dtype=np.float32)
    repo = ModelRepository(root / "repo")
    for i, name in enumerate(names):
        booster = xgb.train({"max_depth": 2, "nthread": 1}, xgb.DMatrix(x, label=x[:, i % 3]), num_boost_round=5)
        src = root / "src" / name
        src.mkdir(parents=True)
        booster.save_model(str(src / "xgboost-model.json"))
        (src / "xgboost-model.json").rename(src / "xgboost-model")
        repo.add(name, src, backend="xgboost")
    data = root / "rows.csv"
    data.write_text("a,b,c\n" + "".join(",".join(f"{v:.6f}" for v in row) + "\n" for row in x[:16]))
    return root / "repo", data


@pytest.mark.slow
def test_bench_with_default_options_runs_against_a_default_serve(tmp_path: Path) -> None:
    """`mmeperf serve DIR`, then `mmeperf bench --endpoint-url URL --data X --models ...`: both on
    their default endpoint name, so every request succeeds. Only --duration and --users (the
    defaults are 300 users for 15 minutes), --port 0 and --out are given."""
    import pandas as pd

    repo, data = _tiny_repository(tmp_path, ["alpha", "beta"])
    ready = tmp_path / "ready.json"
    server = subprocess.Popen(
        [sys.executable, "-m", "mmeperf", "serve", str(repo), "--port", "0", "--ready-file", str(ready)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not (ready.exists() and ready.stat().st_size):
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
            assert time.monotonic() < deadline, "mmeperf serve did not become ready"
            time.sleep(0.05)
        port = json.loads(ready.read_text())["port"]
        out = subprocess.run(
            [sys.executable, "-m", "mmeperf", "bench", "--endpoint-url", f"http://127.0.0.1:{port}",
             "--data", str(data), "--models", "alpha.tar.gz,beta.tar.gz",
             "--duration", "3s", "--users", "2", "--out", str(tmp_path / "run")],
            capture_output=True, text=True, timeout=180, cwd=tmp_path,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        summary = pd.read_csv(tmp_path / "run" / "summary_results.csv")
        assert int(summary["requests"].sum()) > 0
        assert int(summary["failures"].sum()) == 0, summary.to_string()
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)
