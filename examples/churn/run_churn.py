"""The churn workflow through mmeperf's public API: copy this script and change what you need.

51 per-state XGBoost churn models on one multi-model endpoint; ml.c5.xlarge against
ml.c5.2xlarge, emulated by two local MMEs, under the same load at the same time; one report.

    python examples/churn/run_churn.py --out churn-out --users 100 --duration 45
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mmeperf import Benchmark, LoadProfile
from mmeperf.datasets.churn import build_churn_repository
from mmeperf.endpoints.local import LocalEndpoint
from mmeperf.load.profile import WaitTime
from mmeperf.load.traffic import Traffic
from mmeperf.results.compare import RunSummary, compare
from mmeperf.results.report import write_report

INSTANCE_TYPES = ("ml.c5.xlarge", "ml.c5.2xlarge")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("churn-out"))
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--duration", type=float, default=45.0)
    args = parser.parse_args()
    out: Path = args.out

    # 1. Data and models: 51 per-state models in a SageMaker MME layout (<name>.tar.gz each).
    build = build_churn_repository(out / "repository", test_csv=out / "churn_test.csv", overwrite=True)
    print(f"{len(build.repository)} models, median held-out AUC {build.median_auc:.3f}")

    # 2. Traffic: each request is one held-out row, sent to the model of the row's State.
    profile = LoadProfile.constant(
        users=args.users,
        spawn_rate=5,
        duration=args.duration,
        wait=WaitTime(min=0, max=2),
        traffic=Traffic(
            data=str(build.test_csv),
            model_column="State",
            model_template="churn-xgb-{}.tar.gz",
            label_column="Churn?",
            drop_columns=["CustomerID"],
            content_type="text/csv",
        ),
    )

    # 3. Two emulated instance types, loaded at the same time.
    endpoints = {t: LocalEndpoint(instance_profile=t).deploy(build.repository) for t in INSTANCE_TYPES}
    try:
        starts = {t: ep.metrics() for t, ep in endpoints.items()}
        handles = {t: Benchmark(ep, profile, instance_type=t, platform="xgboost", overwrite=True).start(out / t)
                   for t, ep in endpoints.items()}
        results = {t: h.wait() for t, h in handles.items()}
        ends = {t: ep.metrics() for t, ep in endpoints.items()}
    finally:
        for ep in endpoints.values():
            ep.delete()

    # 4. Compare, cost, recommend, report.
    runs = [
        RunSummary(
            label=t, instance_type=t, emulated=True, requests=r.total_requests, failures=r.total_failures,
            duration_s=r.duration_s or 0.0, p50_ms=r.p50_ms, p95_ms=r.p95_ms, p99_ms=r.p99_ms,
            server_start=starts[t], server_end=ends[t],
            loaded_model_count_max=int(r.server_metrics["LoadedModelCount"].max()),
        )
        for t, r in results.items()
    ]
    comparison = compare(runs, n_models=len(build.repository), p99_budget_ms=100)
    comparison.write_csv(out / "summary_results.csv")
    latency = {t: r.latency_distribution[r.latency_distribution["stage"].astype(str) == "all"] for t, r in results.items()}
    stages = {t: r.summary for t, r in results.items()}
    report = write_report(out, comparison, server_metrics={t: r.server_metrics for t, r in results.items()},
                          stages=stages, distributions=latency, title="Churn workflow (example script)")
    print(comparison.frame().to_string(index=False))
    print(comparison.recommendation.explanation)
    print(f"Report: {report}")


if __name__ == "__main__":
    main()
