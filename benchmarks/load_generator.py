"""How much load one core of mmeperf's generator makes, against raw Locust and the boto3 user.

One run, one trivial server (``mmeperf.testing.servers`` with no delay, its own process), three
generators one after the other, each a single Locust process with the same users and no wait:

* mmeperf's HTTP user (FastHttpUser's geventhttpclient, exact HDR recording per request);
* a raw Locust ``FastHttpUser`` posting the same body (Locust's own stats only);
* mmeperf's boto3 user (``sagemaker-runtime`` ``invoke_endpoint``, the reference's way).

Requests are counted by the server over a window after warm-up, and CPU by ``psutil`` on the
generator process over the same window, so "req/s per core" is requests / generator CPU-seconds
whatever else the machine is doing. Prints the ratios (goals: HTTP >= 0.8x raw, >= 5x boto3).

Usage: python benchmarks/load_generator.py [--users 20] [--window 6]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import psutil

from mmeperf.load import Benchmark, LoadProfile, Traffic


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def served(url: str) -> int:
    with urllib.request.urlopen(url + "/stats", timeout=10) as resp:
        return int(json.loads(resp.read())["requests"])


def measure(url: str, pid_of: Callable[[], int], warmup: float, window: float) -> tuple[float, float]:
    """(req/s, req per CPU-second of the generator) over ``window`` after ``warmup``."""
    base = served(url)
    deadline = time.monotonic() + 60
    while served(url) == base:  # wait for the load to begin
        if time.monotonic() > deadline:
            raise RuntimeError("the generator never sent a request")
        time.sleep(0.1)
    time.sleep(warmup)
    proc = psutil.Process(pid_of())
    c1, t1, w1 = served(url), sum(proc.cpu_times()[:2]), time.monotonic()
    time.sleep(window)
    c2, t2, w2 = served(url), sum(proc.cpu_times()[:2]), time.monotonic()
    return (c2 - c1) / (w2 - w1), (c2 - c1) / max(t2 - t1, 1e-9)


RAW_LOCUSTFILE = textwrap.dedent(
    """
    from locust import FastHttpUser, constant, task

    class RawFastHttpUser(FastHttpUser):
        wait_time = constant(0)

        @task
        def invoke(self):
            self.client.post(
                "/endpoints/bench/invocations",
                data=b"1.5,0",
                headers={"Content-Type": "text/csv", "X-Amzn-SageMaker-Target-Model": "CA.tar.gz"},
                name="CA.tar.gz",
            )
    """
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--window", type=float, default=6.0)
    args = parser.parse_args()
    duration = args.warmup + args.window + 4.0
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "mmeperf.testing.servers", "--port", str(port), "--delay-ms", "0"])
    work = Path(tempfile.mkdtemp(prefix="mmeperf-loadgen-"))
    results: dict[str, tuple[float, float]] = {}
    try:
        time.sleep(1.5)
        traffic = Traffic.from_frame(pd.DataFrame({"State": ["CA"], "a": [1.5], "b": [0]}), model_column="State")
        profile = LoadProfile.constant(
            users=args.users, spawn_rate=args.users * 10, duration=duration, traffic=traffic, wait={"min": 0, "max": 0}
        )
        for name, user in (("mmeperf http", "http"), ("mmeperf boto3", "boto3")):
            handle = Benchmark(url, profile, user=user, endpoint_name="bench").start(work / user)  # type: ignore[arg-type]
            try:
                results[name] = measure(url, lambda h=handle: h.pid, args.warmup, args.window)
                handle.wait(timeout=120)
            finally:
                if handle.running():
                    handle.kill()
                handle.cleanup()

        raw_file = work / "raw_locustfile.py"
        raw_file.write_text(RAW_LOCUSTFILE)
        raw = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(raw_file), "--headless", "--only-summary", "-u", str(args.users),
             "-r", str(args.users * 10), "-t", f"{duration:g}s", "--host", url, "--loglevel", "WARNING"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            results["raw locust FastHttpUser"] = measure(url, lambda: raw.pid, args.warmup, args.window)
            raw.wait(timeout=120)
        finally:
            if raw.poll() is None:
                raw.kill()
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)

    print(f"{args.users} users, no wait, one generator process each; window {args.window:g} s after {args.warmup:g} s warm-up")
    print(f"{'generator':<26}{'req/s':>10}{'req/s per core':>18}")
    for name, (rps, per_core) in results.items():
        print(f"{name:<26}{rps:>10.0f}{per_core:>18.0f}")
    http, raw_, boto = (results[k][1] for k in ("mmeperf http", "raw locust FastHttpUser", "mmeperf boto3"))
    print(f"mmeperf http / raw FastHttpUser, per core: {http / raw_:.2f}x (goal >= 0.8x)")
    print(f"mmeperf http / boto3 user, per core:       {http / boto:.2f}x (goal >= 5x)")


if __name__ == "__main__":
    main()
