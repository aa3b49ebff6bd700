"""The compiled XGBoost fast path on vs off, through the real ``mmeperf serve`` and ``mmeperf bench``.

A repository of mixed models (by default 30: a third with 500 trees of depth 6, the rest 20
trees of depth 4; binary:logistic on 20 features), served by ``mmeperf serve`` in a subprocess
with ``--fast-path`` and then ``--no-fast-path``, each loaded by ``mmeperf bench`` with a spec:
open loop at ``--rate`` requests per second (the same offered load for both, as in the issue
that found the old fast path at fault), Zipf popularity, every model warmed up first and the
warm-up left out of the figures. The runs alternate on/off ``--rounds`` times; the script
prints each run's p50/p99 and the on/off ratios of the medians over rounds (goal: <= 1.0, the
fast path never hurts). ``--workdir`` keeps the repository for the next run. Usage::

    python benchmarks/fast_path.py [--models 30] [--big-share 0.33] [--rate 150] [--duration 30s]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def build_repository(folder: Path, n_models: int, big_share: float, seed: int = 0) -> tuple[list[str], Path]:
    import xgboost

    from mmeperf.repository import ModelRepository

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4000, 20)).astype(np.float32)
    repo = ModelRepository(str(folder / "repo"), create=True)
    n_big = round(n_models * big_share)
    names = []
    for i in range(n_models):
        big = i % max(round(1 / big_share), 1) == 0 and sum(n.startswith("big") for n in names) < n_big
        trees, depth = (500, 6) if big else (20, 4)
        label = (x[:, i % 20] + x[:, (i + 1) % 20] * x[:, (i + 2) % 20] > 0).astype(np.float32)
        booster = xgboost.train({"objective": "binary:logistic", "max_depth": depth, "nthread": 2, "base_score": 0.5,
                                 "seed": i}, xgboost.DMatrix(x, label=label), trees)
        name = f"{'big' if big else 'small'}-{i:03d}"
        repo.add_model(name, booster, backend="xgboost")
        names.append(f"{name}.tar.gz")
    data = folder / "payload.csv"
    header = ",".join(f"f{j}" for j in range(20))
    rows = "\n".join(",".join(f"{v:.5f}" for v in row) for row in x[:500])
    data.write_text(header + "\n" + rows + "\n")
    return names, data


def serve(repo: Path, fast_path: bool, ready: Path) -> subprocess.Popen[bytes]:
    ready.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "mmeperf", "serve", str(repo), "--port", "0", "--ready-file", str(ready),
           "--fast-path" if fast_path else "--no-fast-path"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"mmeperf serve did not start (exit {proc.poll()})")
        time.sleep(0.2)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def one_run(repo: Path, names: list[str], data: Path, out: Path, fast_path: bool, args: argparse.Namespace) -> dict[str, float]:
    ready = out.parent / "ready.json"
    proc = serve(repo, fast_path, ready)
    try:
        port = json.loads(ready.read_text())["port"]
        spec = out.parent / f"{out.name}.yaml"
        spec.write_text(json.dumps({
            "endpoint_url": f"http://127.0.0.1:{port}", "out": str(out), "overwrite": True,
            "profile": {"shape": {"kind": "open", "rate": args.rate, "duration": args.duration},
                        "warmup": {"requests_per_model": 3},
                        "traffic": {"data": str(data), "models": names, "distribution": "zipf", "zipf_s": 1.0}},
        }))
        cmd = [sys.executable, "-m", "mmeperf", "bench", str(spec)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if done.returncode not in (0, 1):
            raise SystemExit(f"bench failed ({done.returncode}): {done.stderr[-2000:]}")
        totals = json.loads((out / "run.json").read_text())["totals"]
        status = json.loads(subprocess.run(
            [sys.executable, "-c", f"import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:{port}/mmeperf/status').read().decode())"],
            capture_output=True, text=True, check=True).stdout)
        compiled = sum(m["runner"] == "CompiledXGBoostRunner" for m in status["models"])
        return {"p50_ms": float(totals["p50_ms"]), "p99_ms": float(totals["p99_ms"]), "rps": float(totals["rps"]),
                "late": float(totals.get("late_sends") or 0),
                "failures": float(totals["failures"]), "compiled": float(compiled), "loaded": float(len(status["models"]))}
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=30)
    parser.add_argument("--big-share", type=float, default=1 / 3)
    parser.add_argument("--rate", type=float, default=150.0, help="Requests per second (open loop).")
    parser.add_argument("--workdir", type=Path, default=None, help="Keep (and reuse) the repository here.")
    parser.add_argument("--duration", default="30s")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mmeperf-fastpath-") as tmp:
        folder = args.workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        names_file = folder / "names.json"
        if names_file.exists():
            names, data = json.loads(names_file.read_text()), folder / "payload.csv"
        else:
            names, data = build_repository(folder, args.models, args.big_share)
            names_file.write_text(json.dumps(names))
        big = sum(n.startswith("big") for n in names)
        print(f"{len(names)} models ({big} x 500 trees depth 6, {len(names) - big} x 20 trees depth 4), "
              f"ready in {time.perf_counter() - t0:.0f} s; open loop at {args.rate:g} req/s, Zipf(1.0), "
              f"{args.duration} measured after 3 requests per model of warm-up", flush=True)
        results: dict[bool, list[dict[str, float]]] = {True: [], False: []}
        for r in range(args.rounds):
            for fast in (True, False):
                res = one_run(folder / "repo", names, data, folder / f"run-{r}-{'on' if fast else 'off'}", fast, args)
                if args.workdir is not None:
                    shutil.rmtree(folder / f"run-{r}-{'on' if fast else 'off'}", ignore_errors=True)
                results[fast].append(res)
                print(f"round {r + 1} fast path {'on ' if fast else 'off'}: p50 {res['p50_ms']:.2f} ms, p99 "
                      f"{res['p99_ms']:.2f} ms, {res['rps']:.0f} req/s, {res['failures']:.0f} failures, {res['late']:.0f} late sends, "
                      f"{res['compiled']:.0f}/{res['loaded']:.0f} loaded models compiled", flush=True)
        on = {k: statistics.median(r[k] for r in results[True]) for k in ("p50_ms", "p99_ms", "rps")}
        off = {k: statistics.median(r[k] for r in results[False]) for k in ("p50_ms", "p99_ms", "rps")}
        print(f"median on:  p50 {on['p50_ms']:.2f} ms, p99 {on['p99_ms']:.2f} ms, {on['rps']:.0f} req/s")
        print(f"median off: p50 {off['p50_ms']:.2f} ms, p99 {off['p99_ms']:.2f} ms, {off['rps']:.0f} req/s")
        print(f"on/off p50 ratio {on['p50_ms'] / off['p50_ms']:.2f}, p99 ratio {on['p99_ms'] / off['p99_ms']:.2f}, "
              f"throughput ratio {on['rps'] / off['rps']:.2f} (goal: latency ratios <= 1.0)")


if __name__ == "__main__":
    main()
