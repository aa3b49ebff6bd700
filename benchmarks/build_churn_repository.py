"""Time building the churn workflow's 51-model repository and print the held-out AUCs (one run).

Generates the synthetic churn data, trains one 20-round XGBoost model per state, packs all 51
into a SageMaker MME repository, writes the test CSV, then verifies the repository.

    python benchmarks/build_churn_repository.py [--out DIR] [--rows 5000] [--seed 0] [--per-model]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=None, help="repository folder (default: a temporary one)")
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--per-model", action="store_true", help="print every model's AUC")
    args = parser.parse_args()

    from mmeperf.datasets.churn import build_churn_repository

    with tempfile.TemporaryDirectory(prefix="mmeperf-churn-") as tmp:
        out = args.out or Path(tmp) / "repo"
        started = time.perf_counter()
        build = build_churn_repository(
            out, n_rows=args.rows, seed=args.seed, rounds=args.rounds, overwrite=True
        )
        built = time.perf_counter() - started
        started = time.perf_counter()
        report = build.repository.verify()
        verified = time.perf_counter() - started

        aucs = build.aucs
        defined = [v for v in aucs.values() if not math.isnan(v)]
        total_bytes = sum(e.bytes for e in build.repository)
        print(f"models:             {len(build.repository)} in {build.repository.url}")
        print(f"build time:         {built:.2f} s (budget 30 s: {built / 30:.0%} of it)")
        print(f"verify time:        {verified:.3f} s ({report})")
        print(f"artifact bytes:     {total_bytes} total, {total_bytes // max(len(aucs), 1)} per model")
        print(f"held-out AUC:       median {statistics.median(defined):.3f}, "
              f"min {min(defined):.3f}, max {max(defined):.3f} "
              f"({len(defined)} of {len(aucs)} models with both classes in their test rows)")
        print(f"test rows:          {build.test_csv}")
        if args.per_model:
            for name, auc in sorted(aucs.items()):
                print(f"  {name:<16} {auc:.3f}")


if __name__ == "__main__":
    main()
