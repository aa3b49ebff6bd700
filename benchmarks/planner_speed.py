"""How long the planner's simulation takes: 10 minutes at 300 req/s over 200 models, one core.

Two cases, since a server that keeps up and one that thrashes cost the simulation different work:
"thrashing" (loads of 0.5 s, 120 of 200 models fit: misses outrun the 4 loaders, requests wait
for loads and time out) and "healthy" (loads of 10 ms, about the churn models' measured
ModelLoadingTime, so misses are served). Prints the wall time of each simulation (and, apart, of
its summary and of writing its run folder) and what it predicted.
"""

from __future__ import annotations

import tempfile
import time

from mmeperf.load import LoadProfile, Traffic
from mmeperf.planner import Distribution, InstanceConfig, ModelSpec, Simulation, Source

MODELS = 200
RATE = 300.0
DURATION = 600.0


CASES = {"thrashing": (0.3, 0.2, 0.05), "healthy": (0.008, 0.002, 0.001)}  # load, download, unload (s)


def simulate(case: str) -> float:
    """Simulate one case, print its figures; returns the simulation's wall time."""
    load_s, download_s, unload_s = CASES[case]
    src = Source(measurement="benchmark input")
    service = Distribution.from_quantiles({0: 0.002, 50: 0.004, 90: 0.008, 99: 0.02, 100: 0.05}, source=src)
    names = [f"m{i}" for i in range(MODELS)]
    specs = [ModelSpec(name=n, service_time=service, memory_bytes=100 << 20,
                       load_time=Distribution.constant(load_s, source=src),
                       download_time=Distribution.constant(download_s, source=src),
                       unload_time=Distribution.constant(unload_s, source=src)) for n in names]
    traffic = Traffic(models=names, distribution="zipf", zipf_s=0.9, payloads=["x"])
    profile = LoadProfile.open_loop(rate=RATE, duration=DURATION, arrivals="poisson", traffic=traffic)
    instance = InstanceConfig(vcpus=4, memory_budget_bytes=120 * (100 << 20), name="bench")
    t0 = time.perf_counter()
    result = Simulation(profile, specs, instance=instance, seed=1).run()
    simulated = time.perf_counter() - t0
    t1 = time.perf_counter()
    summary = result.summary()
    summarised = time.perf_counter() - t1
    with tempfile.TemporaryDirectory() as tmp:
        t2 = time.perf_counter()
        result.write(tmp)
        written = time.perf_counter() - t2
    print(f"{case}: simulated {DURATION:g} s at {RATE:g} req/s over {MODELS} models: {result.total_requests} requests, "
          f"{len(result.records.loads)} loads")
    print(f"  simulation: {simulated:.2f} s  (target <= 5 s)")
    print(f"  summary:    {summarised:.2f} s")
    print(f"  run folder: {written:.2f} s")
    print(f"  predicted ok_rps={summary['ok_rps']:.1f} p50={summary['p50_ms']:.2f} ms p99={summary['p99_ms']:.2f} ms "
          f"hit_ratio={summary['hit_ratio']:.3f} loads/min={summary['loads_per_minute']:.1f}")
    return simulated


def main() -> None:
    times = {case: simulate(case) for case in CASES}
    print("slowest case: " + max(times, key=lambda c: times[c]) + f" {max(times.values()):.2f} s (target <= 5 s)")


if __name__ == "__main__":
    main()
