"""Client counts against the local MME's own counters: every request counted exactly once."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mmeperf.datasets.churn import build_churn_repository
from mmeperf.endpoints.local import LocalEndpoint
from mmeperf.load import Benchmark, LoadProfile, Traffic

pytestmark = pytest.mark.slow


def test_client_counts_equal_server_invocations_and_4xx(tmp_path: Path) -> None:
    build = build_churn_repository(tmp_path / "repo", n_rows=2000, rounds=5)
    test = pd.read_csv(build.test_csv)
    # 5% of the rows target a model that does not exist (a 4xx on the server).
    test.loc[test.index % 20 == 0, "State"] = "ZZ"
    traffic = Traffic.from_frame(
        test, model_column="State", model_template="churn-xgb-{}.tar.gz",
        label_column="Churn?", drop_columns=["CustomerID"],
    )
    profile = LoadProfile.constant(users=8, spawn_rate=50, duration="30s", traffic=traffic, wait={"min": 0, "max": 0.05})
    with LocalEndpoint(endpoint_name="churn").deploy(build.repository) as endpoint:
        before = endpoint.metrics()
        result = Benchmark(endpoint, profile).run(tmp_path / "run")
        after = endpoint.metrics()

    invocations = after.invocations - before.invocations
    errors_4xx = after.invocation_4xx_errors - before.invocation_4xx_errors
    assert result.total_requests == invocations > 500
    assert result.total_failures == errors_4xx > 0
    assert after.invocation_5xx_errors == before.invocation_5xx_errors
    assert set(result.failures["model"]) == {"churn-xgb-ZZ.tar.gz"}
    # Cold requests: the first requests to each of the models that exist (then warm).
    cold = int(result.summary["cold_requests"].sum())
    assert 1 <= cold <= int(result.per_model["requests"].sum())
    assert int(result.per_model.loc[result.per_model.model != "churn-xgb-ZZ.tar.gz", "cold_requests"].min()) >= 1
    # Server metrics were sampled in this process on the run's clock; their intervals add up.
    metrics = result.server_metrics
    assert len(metrics) >= 25  # one row a second (LocalEndpoint keeps the default interval)
    assert int(metrics["Invocations"].sum()) <= invocations
    assert metrics["elapsed_s"].is_monotonic_increasing
