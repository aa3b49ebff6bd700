"""The simulation against textbook results (M/M/c, Che's LRU), and its determinism and schema."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mmeperf.load import LoadProfile, Traffic
from mmeperf.planner import (
    Distribution,
    InstanceConfig,
    ModelSpec,
    Simulation,
    Source,
    che_hit_ratio,
)

SRC = Source(measurement="test input")


def erlang_c_wait(arrival_rate: float, service_rate: float, servers: int) -> float:
    """Mean time in queue of M/M/c (Erlang C)."""
    a = arrival_rate / service_rate
    rho = a / servers
    top = a**servers / math.factorial(servers) / (1 - rho)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(servers)) + top)
    return p_wait / (servers * service_rate - arrival_rate)


def _open(models: list[str], rate: float, duration: float, **traffic: object) -> LoadProfile:
    return LoadProfile.open_loop(
        rate=rate, duration=duration, arrivals="poisson", concurrency=10**6,
        traffic=Traffic(models=models, payloads=["x"], **traffic),  # type: ignore[arg-type]
        request_timeout=0, stop_timeout=10**6,
    )


def test_mmc_mean_wait_matches_erlang_c() -> None:
    servers, mu, lam = 4, 1.0, 3.0  # rho = 0.75
    profile = _open(["m"], lam, 100_000.0)
    spec = ModelSpec(name="m", service_time=Distribution.exponential(1 / mu, source=SRC), memory_bytes=0)
    result = Simulation(profile, [spec], instance=InstanceConfig(vcpus=servers), seed=7).run()
    assert result.total_failures == 0 and result.total_requests > 250_000
    service = np.asarray([x[2] for x in result.records.invocations])
    wait = float(np.mean(result.records.latency)) - float(service.mean())
    expected = erlang_c_wait(lam, mu, servers)
    assert abs(wait - expected) / expected < 0.02, (wait, expected)


def test_lru_hit_ratio_under_independent_zipf_requests_matches_che() -> None:
    n, fit = 100, 20
    names = [f"m{i}" for i in range(n)]
    tiny = Distribution.constant(1e-7, source=SRC)
    specs = [ModelSpec(name=m, service_time=tiny, memory_bytes=1) for m in names]
    profile = _open(names, 1000.0, 150.0, distribution="zipf", zipf_s=0.8)
    instance = InstanceConfig(vcpus=8, memory_budget_bytes=fit)
    result = Simulation(profile, specs, instance=instance, seed=3).run()
    expected = che_hit_ratio([1 / k**0.8 for k in range(1, n + 1)], fit)
    assert result.hit_ratio is not None
    assert abs(result.hit_ratio - expected) / expected < 0.02, (result.hit_ratio, expected)
    # The cache never held more than fits, and unloaded to make room.
    assert result.loaded_model_count()["LoadedModelCount"].max() == fit
    assert result.unloads_per_minute > 0


def _closed_run(seed: int) -> Simulation:
    names = [f"m{i}" for i in range(30)]
    service = Distribution.from_quantiles({0: 0.001, 50: 0.003, 99: 0.02, 100: 0.05}, source=SRC)
    specs = [ModelSpec(name=m, service_time=service, memory_bytes=10,
                       load_time=Distribution.constant(0.2, source=SRC)) for m in names]
    profile = LoadProfile.constant(
        users=20, spawn_rate=10, duration="60s", wait={"min": 0, "max": 0.1},
        traffic=Traffic(models=names, distribution="zipf", payloads=["x"]),
    )
    return Simulation(profile, specs, instance=InstanceConfig(vcpus=2, memory_budget_bytes=100),
                      instances=2, seed=seed)


def test_same_seed_same_result_and_another_seed_differs() -> None:
    a, b, c = _closed_run(1).run(), _closed_run(1).run(), _closed_run(2).run()
    assert a.summary() == b.summary()
    assert a.records.latency == b.records.latency
    assert a.records.latency != c.records.latency


def test_every_request_counted_once_and_written_as_a_run_folder(tmp_path: Path) -> None:
    result = _closed_run(5).run()
    assert result.total_requests == result.requests_sent > 1000
    folder = result.write(tmp_path / "predicted")
    assert folder.status == "predicted"
    assert folder.total_requests == result.total_requests
    assert folder.p99_ms == pytest.approx(result.p99_ms)
    assert int(folder.per_model["requests"].sum()) == result.total_requests
    assert int(folder.server_metrics["ModelLoads"].sum()) == len(result.records.loads)
    assert folder.info["environment"]["predicted"] is True
    hists = folder.histograms()
    assert sum(h.total for h in hists["models"].values()) == result.total_requests
    # Two instances under MME routing: each holds at most its budget.
    assert folder.server_metrics["LoadedModelCount"].max() <= 2 * 10


def test_overload_answers_503_and_timeouts_fail() -> None:
    spec = ModelSpec(name="m", service_time=Distribution.constant(0.1, source=SRC), memory_bytes=0)
    profile = LoadProfile.open_loop(rate=50, duration=20, concurrency=10**6,
                                    traffic=Traffic(models=["m"], payloads=["x"]), request_timeout=2.0)
    result = Simulation(profile, [spec], instance=InstanceConfig(vcpus=1, max_concurrent_requests=30)).run()
    reasons = result.failures_by_reason()
    assert reasons.get("ServiceUnavailable", 0) > 0
    assert reasons.get("Timeout", 0) > 0
    assert result.total_requests == result.requests_sent
    assert max(result.records.latency) <= 2.0 + 1e-9
