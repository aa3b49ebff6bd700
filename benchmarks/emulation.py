"""Faithful-emulation costs, measured in one run on this host (prints ratios; asserts nothing).

1. Warm-request overhead of process workers vs thread mode at p50 (goal: at most +150 us),
   next to the floor of a process hand-off on this host (a uvloop ping-pong over a socketpair).
2. Cold-load cost (ModelLoadingTime) in both modes.
3. Throughput of a CPU-bound model at 1 vs 2 emulated CPU units (goal: ratio 1.7-2.3).

    python benchmarks/emulation.py [--warm-requests 2000] [--seconds 8]

The machine may be shared: the load average is printed before and after, and the client's own
CPU use is printed beside each throughput so a saturated client is not mistaken for a slow server.
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from mmeperf.datasets.churn import FEATURES, build_churn_repository
from mmeperf.endpoints.local import LocalEndpoint
from mmeperf.endpoints.local.cpu import host_cpus

# The benchmark sends NPY bodies: the XGBoost container takes CSV/libsvm/RecordIO only, so the
# servers started here (and their workers) opt in to the extra types.
os.environ.setdefault("MMEPERF_XGBOOST_EXTRA_TYPES", "1")

PATH = "/endpoints/local-mme/invocations"


def _loadavg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg()) + f" (host cores: {os.cpu_count()})"


def _post(conn: http.client.HTTPConnection, target: str, body: bytes, content_type: str) -> int:
    conn.request("POST", PATH, body=body, headers={"X-Amzn-SageMaker-Target-Model": target,
                                                   "Content-Type": content_type})
    resp = conn.getresponse()
    resp.read()
    return resp.status


def _pingpong_floor_us(n: int = 3000) -> float:
    """p50 of a 20-byte round trip to a forked echo process over a Unix socketpair, from uvloop."""
    import asyncio

    import uvloop

    a, b = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the echo process
        a.close()
        while True:
            data = b.recv(64)
            if not data:
                os._exit(0)
            b.sendall(data)
    b.close()
    lat: list[float] = []

    class Echo(asyncio.Protocol):
        fut: asyncio.Future[bytes]

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.fut.set_result(data)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        proto = Echo()
        a.setblocking(False)
        await loop.create_unix_connection(lambda: proto, sock=a)
        for _ in range(n):
            t0 = time.perf_counter()
            proto.fut = loop.create_future()
            proto.transport.write(b"x" * 20)  # type: ignore[attr-defined]
            await proto.fut
            lat.append((time.perf_counter() - t0) * 1e6)

    uvloop.run(main())
    a.close()
    os.waitpid(pid, 0)
    return statistics.median(lat)


def warm_and_cold(url: str, rows: dict[str, bytes], mode: str, warm_requests: int) -> dict[str, Any]:
    """Cold loads of three models, then sequential warm requests to one, on one connection."""
    options = {"worker_mode": mode, "cpu_emulation": "none"}
    with LocalEndpoint(server_options=options).deploy(url) as ep:
        conn = http.client.HTTPConnection("127.0.0.1", int(ep.url.rsplit(":", 1)[1]), timeout=120)
        for state, body in rows.items():
            assert _post(conn, f"churn-xgb-{state}.tar.gz", body, "text/csv") == 200
        m = ep.metrics().model_loading_time
        cold_ms = m.sum_us / max(m.count, 1) / 1e3
        target, body = next(iter(rows.items()))
        target = f"churn-xgb-{target}.tar.gz"
        for _ in range(200):  # warm up (the fast path compiles after 2 uses)
            _post(conn, target, body, "text/csv")
        lat = []
        for _ in range(warm_requests):
            t0 = time.perf_counter()
            _post(conn, target, body, "text/csv")
            lat.append((time.perf_counter() - t0) * 1e6)
        conn.close()
        model_latency = ep.metrics().model_latency
    lat.sort()
    return {"p50_us": lat[len(lat) // 2], "p90_us": lat[int(len(lat) * 0.9)], "cold_ms": cold_ms,
            "model_latency_mean_us": model_latency.sum_us / max(model_latency.count, 1)}


def build_cpu_bound_model(root: Path) -> tuple[str, bytes]:
    """A deep XGBoost model (400 trees, depth 8) and a 200-row npy body: ms of CPU per request."""
    import xgboost

    from mmeperf.repository import ModelRepository

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 17)).astype(np.float32)
    y = (x[:, 0] + np.sin(x[:, 1] * 3) + x[:, 2] * x[:, 3] > 0).astype(np.float32)
    booster = xgboost.train({"max_depth": 8, "objective": "binary:logistic", "nthread": 1},
                            xgboost.DMatrix(x, label=y), num_boost_round=400)
    src = root / "heavy-src"
    src.mkdir(parents=True)
    booster.save_model(str(src / "model.json"))
    shutil.move(src / "model.json", src / "xgboost-model")
    repo = ModelRepository(root / "heavy")
    repo.add("heavy", src, backend="xgboost")
    buf = io.BytesIO()
    np.save(buf, rng.normal(size=(200, 17)).astype(np.float32))
    return repo.url, buf.getvalue()


def throughput(url: str, body: bytes, scale: float, seconds: float, clients: int) -> dict[str, Any]:
    """Requests/s of the heavy model under ``clients`` closed-loop clients, in an allowance of
    ml.c5.large's 2 vCPUs x ``scale``, with two workers for the model."""
    # XGBoost's own predict (the compiled fast path is for a few rows of small models).
    options = {"worker_mode": "process", "workers_per_model": 2, "cpu_emulation": "quota", "cpu_scale": scale,
               "fast_path": False}
    with LocalEndpoint(instance_profile="ml.c5.large", server_options=options).deploy(url) as ep:
        port = int(ep.url.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for _ in range(5):
            assert _post(conn, "heavy.tar.gz", body, "application/x-npy") == 200
        conn.close()
        label = ep.status()["cpu_emulation"]["label"]
        done = [0] * clients
        stop = threading.Event()

        def client(k: int) -> None:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            while not stop.is_set():
                if _post(c, "heavy.tar.gz", body, "application/x-npy") == 200:
                    done[k] += 1
            c.close()

        me = psutil.Process()
        server = [psutil.Process(ep.pid or 0), *psutil.Process(ep.pid or 0).children()]
        server0 = sum(sum(p.cpu_times()[:2]) for p in server)
        cpu0, t0 = me.cpu_times(), time.perf_counter()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        cpu1 = me.cpu_times()
        server_cpu = (sum(sum(p.cpu_times()[:2]) for p in server) - server0) / elapsed
    client_cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / elapsed
    return {"rps": sum(done) / elapsed, "label": label, "client_cpu_cores": client_cpu, "server_cpu_cores": server_cpu}


def hand_off_and_cold_loads(root: Path, warm_requests: int) -> None:
    """Parts 1 and 2: the hand-off floor, warm p50 and cold loads in both modes."""
    build = build_churn_repository(root / "churn")
    import pandas as pd

    test = pd.read_csv(build.test_csv)
    rows = {}
    for state in ("CA", "NY", "TX"):
        row = test[test.State == state][list(FEATURES)].to_numpy(np.float32)[0]
        rows[state] = ",".join(repr(float(v)) for v in row).encode()

    floor = _pingpong_floor_us()
    print(f"\n1. process hand-off floor on this host (uvloop <-> process, socketpair, 20 B): p50 {floor:.0f} us")
    results = {mode: warm_and_cold(str(root / "churn"), rows, mode, warm_requests) for mode in ("thread", "process")}
    print(f"{'mode':<8} {'warm p50 us':>12} {'warm p90 us':>12} {'ModelLatency mean us':>21} {'cold load ms':>13}")
    for mode, r in results.items():
        print(f"{mode:<8} {r['p50_us']:>12.0f} {r['p90_us']:>12.0f} {r['model_latency_mean_us']:>21.0f} {r['cold_ms']:>13.1f}")
    extra = results["process"]["p50_us"] - results["thread"]["p50_us"]
    print(f"warm overhead of process workers at p50: {extra:+.0f} us (goal <= +150 us: "
          f"{'met' if extra <= 150 else 'NOT met'})")
    print(f"cold-load cost: process/thread = {results['process']['cold_ms'] / results['thread']['cold_ms']:.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warm-requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--unit", type=float, default=1.0,
                        help="CPUs per emulated unit (below 1 on a busy shared host, so both allowances bind)")
    parser.add_argument("--only-cpu", action="store_true", help="run only part 3")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    print(f"load average before: {_loadavg()}; python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="mmeperf-emulation-") as tmp:
        root = Path(tmp)
        if not args.only_cpu:
            hand_off_and_cold_loads(root, args.warm_requests)

        heavy_url, heavy_body = build_cpu_bound_model(root)
        cores = host_cpus()
        print(f"\n3. CPU-bound model (400 trees depth 8, 200 rows/request), {args.clients} clients, "
              f"{args.seconds:g} s each; ml.c5.large (2 vCPU) x scale, 1 unit = {args.unit:g} CPU; host cores {cores}")
        one = throughput(heavy_url, heavy_body, 0.5 * args.unit, args.seconds, args.clients)
        two = throughput(heavy_url, heavy_body, 1.0 * args.unit, args.seconds, args.clients)
        for name, r in (("1 CPU unit", one), ("2 CPU units", two)):
            print(f"{name:<12} {r['rps']:8.1f} req/s   server CPU used {r['server_cpu_cores']:.2f} cores   "
                  f"client CPU {r['client_cpu_cores']:.2f} cores   [{r['label']}]")
        print("(a quota is a ceiling, not a reservation: on a busy host the larger allowance may not get "
              "its CPUs, which the server CPU column shows)")
        ratio = two["rps"] / one["rps"]
        print(f"throughput ratio 2 units / 1 unit: {ratio:.2f} (goal 1.7-2.3: "
              f"{'met' if 1.7 <= ratio <= 2.3 else 'NOT met'})")
    print(f"\nload average after: {_loadavg()}")


if __name__ == "__main__":
    main()
