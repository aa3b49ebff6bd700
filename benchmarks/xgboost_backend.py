"""Measure the XGBoost backend's hot path on this machine and print ratios from one run.

CSV decode of one churn row (ours vs the SageMaker container's parser vs pandas), predict paths
(inplace_predict vs DMatrix + predict, nthread 1 vs all cores), many models predicting at once,
and the memory a loaded booster holds. Timings are the best of several repeats (shared machines
are noisy); nothing here is asserted.

    python benchmarks/xgboost_backend.py [--rounds 20] [--models 16]
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import tempfile
import threading
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROW = b"106,0,274.4,120,46.65,198.6,82,16.88,160.8,62,7.24,6.0,1,1.62,0,0,2"


def best_us(fn: Callable[[], object], *, number: int, repeat: int = 5) -> float:
    fn()
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def paired_best_us(
    a: Callable[[], object], b: Callable[[], object], *, number: int, repeat: int = 15
) -> tuple[float, float]:
    """Best per-call time of ``a`` and ``b``, timed alternately so load changes hit both alike."""
    a(), b()
    best_a = best_b = float("inf")
    for _ in range(repeat):
        best_a = min(best_a, timeit.timeit(a, number=number) / number)
        best_b = min(best_b, timeit.timeit(b, number=number) / number)
    return best_a * 1e6, best_b * 1e6


def container_csv(body: bytes) -> Any:
    """What SageMaker's XGBoost container does with a CSV body (encoder.csv_to_dmatrix, minus DMatrix)."""
    text = body.strip().decode("utf-8")
    rows = [["nan" if x == "" else x for x in line.split(",")] for line in text.split("\n")]
    return np.array(rows).astype(float)


def bench_decode() -> None:
    import pandas as pd

    from mmeperf.backends import codecs

    accepted = ("text/csv",)
    ours = best_us(lambda: codecs.decode(ROW, "text/csv", accepted=accepted, n_features=17), number=20000)
    container = best_us(lambda: container_csv(ROW), number=20000)
    pandas = best_us(lambda: pd.read_csv(io.BytesIO(ROW), header=None).to_numpy(np.float32), number=200)
    print("CSV decode of one 17-feature row:")
    print(f"  mmeperf codecs.decode      {ours:8.2f} us")
    print(f"  container's csv parsing    {container:8.2f} us  ({container / ours:.1f}x ours)")
    print(f"  pandas.read_csv            {pandas:8.2f} us  ({pandas / ours:.1f}x ours)")


def train(rounds: int) -> Any:
    import xgboost

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 17)).astype(np.float32)
    y = (x[:, 0] + x[:, 3] * x[:, 5] > 0).astype(int)
    return xgboost.train({"objective": "binary:logistic"}, xgboost.DMatrix(x, label=y), rounds)


def bench_predict(rounds: int) -> None:
    import xgboost

    booster = train(rounds)
    rng = np.random.default_rng(1)
    print(f"\nPredict, one {rounds}-tree model ({os.cpu_count()} cores here):")
    for nthread in (0, 1):
        booster.set_param({"nthread": nthread})
        label = "all cores" if nthread == 0 else "nthread=1"
        for rows in (1, 10, 100):
            batch = rng.normal(size=(rows, 17)).astype(np.float32)
            inplace, dmatrix = paired_best_us(
                lambda b=batch: booster.inplace_predict(b),
                lambda b=batch, n=nthread or -1: booster.predict(xgboost.DMatrix(b, nthread=n)),
                number=40,
            )
            print(
                f"  {label:9s} {rows:4d} rows: inplace_predict {inplace:8.1f} us, "
                f"DMatrix+predict {dmatrix:8.1f} us ({dmatrix / inplace:.1f}x)"
            )
    booster.set_param({"nthread": 1})
    one_row = rng.normal(size=(1, 17)).astype(np.float32)
    hundred_rows = rng.normal(size=(100, 17)).astype(np.float32)
    one, hundred = paired_best_us(
        lambda: booster.inplace_predict(one_row), lambda: booster.inplace_predict(hundred_rows), number=40
    )
    print(f"  100 rows cost {hundred / one:.2f}x one row (nthread=1, inplace_predict)")


def bench_many_models(rounds: int, models: int) -> None:
    boosters = [train(rounds) for _ in range(models)]
    batch = np.random.default_rng(2).normal(size=(1, 17)).astype(np.float32)
    per_thread = 200
    print(f"\n{models} models, one thread each, {per_thread} one-row predictions per thread:")
    for nthread in (0, 1):
        for b in boosters:
            b.set_param({"nthread": nthread})
        start = threading.Barrier(models + 1)
        latencies: list[float] = []

        def work(b: Any, start: threading.Barrier = start, out: list[float] = latencies) -> None:
            mine: list[float] = []
            start.wait()
            for _ in range(per_thread):
                t = time.perf_counter()
                b.inplace_predict(batch)
                mine.append(time.perf_counter() - t)
            out.extend(mine)  # list.extend is atomic under the GIL

        threads = [threading.Thread(target=work, args=(b,)) for b in boosters]
        for t in threads:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        p50, p99 = np.percentile(np.array(latencies) * 1e3, [50, 99])
        label = "all cores" if nthread == 0 else "nthread=1"
        print(
            f"  {label:9s}: {models * per_thread / elapsed:7.0f} predictions/s, "
            f"per call p50 {p50:.2f} ms, p99 {p99:.2f} ms"
        )


def bench_memory(rounds: int) -> None:
    import psutil

    from mmeperf.backends.xgboost import XGBoostBackend

    backend = XGBoostBackend()
    with tempfile.TemporaryDirectory() as tmp:
        path = backend.save(train(rounds), Path(tmp))
        gc.collect()
        before = psutil.Process().memory_info().rss
        runners = [backend.load(Path(tmp)) for _ in range(200)]
        for r in runners:
            r.predict(np.zeros((1, 17), dtype=np.float32))
        gc.collect()
        per = (psutil.Process().memory_info().rss - before) / len(runners)
        print(f"\nMemory of a loaded {rounds}-tree booster: UBJSON {path.stat().st_size} B, RSS growth "
              f"{per:.0f} B per runner, memory_bytes estimate {runners[0].memory_bytes} B "
              f"({runners[0].memory_bytes / per:.2f}x measured)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=20, help="trees per model (the churn models have 20)")
    parser.add_argument("--models", type=int, default=16, help="models predicting at once")
    args = parser.parse_args()
    bench_decode()
    bench_predict(args.rounds)
    bench_many_models(args.rounds, args.models)
    bench_memory(args.rounds)


if __name__ == "__main__":
    main()
