"""How close to its scheduled time each send of a replayed trace leaves (the trace shape's timing).

One run: a seeded synthetic trace (one diurnal cycle over the trace, drifting Zipf popularity)
replayed open-loop at speed 1 against the loopback test server (``mmeperf.testing.servers``,
1-3 ms per request, its own process). Every send's lateness (actual send - scheduled send) is
recorded by the load process into run.json's ``lateness`` histogram; this prints its
distribution and checks the goal: every request sent within 5 ms of its schedule on an idle
machine, and client count == server count == the trace's rows.

Usage: python benchmarks/trace_replay.py [--duration 60] [--rate 20] [--workers 0]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from mmeperf.load import Benchmark, LoadProfile
from mmeperf.load.tracegen import synth_trace

GOAL_MS = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="trace length in seconds")
    parser.add_argument("--rate", type=float, default=20.0, help="mean requests per second")
    parser.add_argument("--workers", type=int, default=0, help="Locust workers (0: one process)")
    args = parser.parse_args()

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mmeperf.testing.servers", "--port", str(port), "--delay-ms", "1:3"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(url + "/ping", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        with tempfile.TemporaryDirectory() as tmp:
            frame = synth_trace(duration=args.duration, mean_rate=args.rate, models=20, period=args.duration,
                                peak_at=args.duration / 2, drift=0.1, drift_every=args.duration / 6, seed=11)
            log = Path(tmp) / "trace.csv"
            frame.to_csv(log, index=False)
            profile = LoadProfile.from_dict({
                "shape": {"kind": "trace", "path": str(log), "late_after": f"{GOAL_MS}ms"},
                "traffic": {"payloads": ["1,2,3,4"]},
            })
            result = Benchmark(url, profile, workers=args.workers).run(Path(tmp) / "run")
            run = result.info["run"]
            history = result.history
        with urllib.request.urlopen(url + "/stats", timeout=10) as resp:
            served = int(json.loads(resp.read())["requests"])
    finally:
        server.terminate()
        server.wait()

    lateness = run["lateness"]
    rows = len(frame)
    print(f"trace: {rows} rows over {args.duration:g} s (mean {rows / args.duration:.1f} req/s, 20 models), "
          f"workers={args.workers}, cpus={os.cpu_count()}, load average {os.getloadavg()[0]:.2f}")
    print(f"counts: trace rows {rows}, client {result.total_requests}, server {served}")
    print("lateness (actual send - scheduled send), ms: "
          f"p50 {lateness['p50_ms']:.3f}  p90 {lateness['p90_ms']:.3f}  p99 {lateness['p99_ms']:.3f}  "
          f"p99.9 {lateness['p999_ms']:.3f}  max {lateness['max_ms']:.3f}")
    late = int(lateness["late"])
    print(f"sends later than {GOAL_MS:g} ms: {late} of {lateness['sends']} ({100.0 * late / max(rows, 1):.3f}%)")
    if late and "late_sends" in history:
        worst = history[history["late_sends"] > 0].sort_values("late_sends", ascending=False).head(5)
        where = ", ".join(f"{int(r.late_sends)} at {r.elapsed_s:.0f} s" for r in worst.itertuples())
        print(f"seconds of the run with the most late sends: {where}")
    counts_ok = rows == result.total_requests == served
    timing_ok = late == 0
    print(f"counts equal: {'yes' if counts_ok else 'NO'}; every send within {GOAL_MS:g} ms: {'yes' if timing_ok else 'NO'}")
    return 0 if counts_ok and timing_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
