"""The simulation against textbook results (M/M/c, Che's LRU), and its determinism and schema."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import numpy as np
import pytest

from mmeperf.errors import ConfigurationError
from mmeperf.load import LoadProfile, Traffic
from mmeperf.planner import (
    Calibration,
    Distribution,
    HostModel,
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


# --- the host model: CPU stages of the local MME and its client --------------------------------


class _Clock:
    """What the CPU resources need of a simulation: a clock and a way to schedule."""

    def __init__(self) -> None:
        from simpy import Environment

        self.env = Environment()

    def _at(self, delay: float, fn: object, value: object = None) -> None:
        from simpy.events import Timeout

        Timeout(self.env, delay, value).callbacks.append(fn)  # type: ignore[union-attr,arg-type]

    def _woken(self, idle_since: float) -> float:
        return 1.0  # no idle slowdown

    def _slowed(self, kind: str, work: float, factor: float) -> float:
        return work * factor


@pytest.mark.parametrize(("capacity", "expected"), [(1.0, {"a": 2.0, "b": 4.0}), (2.0, {"a": 1.0, "b": 3.0}),
                                                    (0.5, {"a": 4.0, "b": 8.0})])
def test_processor_sharing_splits_the_cpu_evenly(capacity: float, expected: dict[str, float]) -> None:
    from mmeperf.planner.simulation import _Shared

    clock = _Clock()
    cpu = _Shared(clock, capacity)  # type: ignore[arg-type]
    finished: dict[str, float] = {}
    cpu.add(1.0, lambda name: finished.__setitem__(name, clock.env.now), "a")
    cpu.add(3.0, lambda name: finished.__setitem__(name, clock.env.now), "b")
    clock.env.run()
    # Two jobs share min(1, capacity / 2) each until the short one ends; the long one then runs alone.
    assert finished == pytest.approx(expected)


def _host_open(rate: float, duration: float) -> LoadProfile:
    return _open(["m"], rate, duration)


def test_event_loop_is_an_m_d_1_queue() -> None:
    # Poisson arrivals, every request a constant S of event-loop CPU: Pollaczek-Khinchine's
    # mean wait rho S / (2 (1 - rho)).
    s, lam = 1.0, 0.7
    spec = ModelSpec(name="m", service_time=Distribution.constant(s, source=SRC), memory_bytes=0)
    host = HostModel(request_cpu_s=s, load_cpu_s=0.0)
    result = Simulation(_host_open(lam, 200_000.0), [spec], instance=InstanceConfig(vcpus=8), host=host, seed=11).run()
    assert result.total_failures == 0 and result.total_requests > 130_000
    wait = float(np.mean(result.records.latency)) - s
    expected = lam * s * s / (2 * (1 - lam * s))
    assert abs(wait - expected) / expected < 0.02, (wait, expected)


def test_host_stalls_stretch_cpu_work_by_their_measured_mean() -> None:
    # One user, no think, timed in user space: each request is client CPU + loop CPU; a job of w
    # meets a stall of D with probability w / probe, so the mean latency is c + S + (c + S) / probe * D.
    c, s, d, probe = 0.0004, 0.0006, 0.004, 0.002
    spec = ModelSpec(name="m", service_time=Distribution.constant(s, source=SRC), memory_bytes=0)
    host = HostModel(request_cpu_s=s, load_cpu_s=0.0, client_cpu_s=c,
                     stalls=Distribution.constant(d, source=SRC), stall_probe_s=probe, stamped=False)
    profile = LoadProfile.constant(users=1, spawn_rate=1, duration="200s", wait={"min": 0, "max": 0},
                                   traffic=Traffic(models=["m"], payloads=["x"]))

    def run(seed: int) -> list[float]:
        sim = Simulation(profile, [spec], instance=InstanceConfig(vcpus=1), host=host, seed=seed)
        return sim.run().records.latency

    latency = run(4)
    expected = c + s + (c + s) / probe * d
    assert len(latency) > 50_000
    assert abs(float(np.mean(latency[1:])) - expected) / expected < 0.02
    assert latency == run(4) and latency != run(5)


@pytest.mark.parametrize(("stamped", "in_latency"), [(True, 0.0), (False, 1.0)])
def test_the_clients_cpu_is_in_the_latency_only_when_timed_in_user_space(stamped: bool, in_latency: float) -> None:
    # One user, no think: a request costs the client c (half to send, half to read) and the
    # server's loop s. Timed to the kernel's stamps (mmeperf's default) the latency is s alone
    # and the client's work only spaces the requests; timed in user space it is c + s.
    c, s = 0.0004, 0.0006
    spec = ModelSpec(name="m", service_time=Distribution.constant(s, source=SRC), memory_bytes=0)
    host = HostModel(request_cpu_s=s, load_cpu_s=0.0, client_cpu_s=c, stamped=stamped)
    profile = LoadProfile.constant(users=1, spawn_rate=1, duration="20s", wait={"min": 0, "max": 0},
                                   traffic=Traffic(models=["m"], payloads=["x"]))
    result = Simulation(profile, [spec], instance=InstanceConfig(vcpus=1), host=host, seed=0).run()
    latency = np.asarray(result.records.latency[1:])
    assert latency == pytest.approx(s + in_latency * c)
    assert result.total_requests == pytest.approx(20.0 / (c + s), rel=0.001)


def test_loads_share_the_server_cpu_with_the_event_loop() -> None:
    # Requests at 0 and 0.5 s, each loading its model (1 s of CPU) on one core shared with the
    # event loop (0.5 s per answer). Load a runs alone to 0.5 s, then at half speed with load b
    # and ends at 1.5 s; a's answer then shares the core with load b: both end at 2.5 s; b's
    # answer runs alone and ends at 3 s.
    names = ["a", "b"]
    specs = [ModelSpec(name=m, service_time=Distribution.constant(0.5, source=SRC), memory_bytes=0) for m in names]
    host = HostModel(request_cpu_s=0.5, load_cpu_s=1.0)
    profile = LoadProfile.open_loop(rate=2.0, duration=1.0, arrivals="constant", concurrency=10,
                                    traffic=Traffic(models=names, payloads=["x"], distribution="weights",
                                                    weights=[1, 1]),
                                    request_timeout=0, stop_timeout=100)
    sim = Simulation(profile, specs, instance=InstanceConfig(vcpus=2), host=host, seed=0, weights=[0.5, 0.5])
    result = sim.run()
    loads = sorted(t for t, *_ in result.records.loads)
    done = sorted(result.records.done)
    if len({result.records.model[0], result.records.model[1]}) == 2:
        assert loads == pytest.approx([1.5, 2.5])
        assert done == pytest.approx([2.5, 3.0])
    else:  # both requests drew one model: one load, then two answers
        assert loads == pytest.approx([1.0])
        assert done == pytest.approx([1.5, 2.0])


def test_a_load_costs_the_measured_unloaded_cold_latency() -> None:
    # One request to a model not loaded, nothing else running: its latency is the unloaded cold
    # latency measured (a load's pure delay, the load's CPU and the answer's loop CPU), whatever
    # part of it is CPU.
    s, cpu, cold = 0.0005, 0.002, 0.009
    spec = ModelSpec(name="m", service_time=Distribution.constant(s, source=SRC), memory_bytes=0)
    host = HostModel(request_cpu_s=s, load_cpu_s=cpu, unloaded_latency=Distribution.constant(s, source=SRC),
                     unloaded_cold_latency=Distribution.constant(cold, source=SRC))
    profile = LoadProfile.open_loop(rate=1.0, duration=1.0, arrivals="constant", concurrency=1,
                                    traffic=Traffic(models=["m"], payloads=["x"]), request_timeout=0, stop_timeout=10)
    result = Simulation(profile, [spec], instance=InstanceConfig(vcpus=1), host=host, seed=0).run()
    assert result.records.latency == pytest.approx([cold])
    assert [load[3] for load in result.records.loads] == pytest.approx([cold - s])  # the load's length


@pytest.mark.parametrize(("vcpus", "latencies"), [(2, [0.004, 0.001]), (1, [0.005, 0.002])])
def test_a_load_whose_cpu_exceeds_the_cold_latency_runs_the_rest_beside(vcpus: int, latencies: list[float]) -> None:
    # The unloaded cold latency (4 ms) leaves a load 3 ms of CPU on the request's path: the rest
    # of it is the warm answer's 0.5 ms and the first, uncompiled predict's 0.5 ms more. The
    # load's other 3 ms run beside, from when the model goes into service. Where the instance
    # has a core beside the server's, the cold request takes 4 ms, as measured, whatever the
    # load's CPU, and the next request (sent at 5 ms) runs its 1 ms uncompiled predict alone. On
    # one core the work beside shares it: the cold answer's 1 ms takes 2 ms, and so does the next.
    s, slow, cpu, cold = 0.0005, 0.001, 0.006, 0.004
    spec = ModelSpec(name="m", service_time=Distribution.constant(s, source=SRC), memory_bytes=0)
    host = HostModel(request_cpu_s=s, load_cpu_s=cpu, uncompiled_request_cpu_s=slow,
                     unloaded_latency=Distribution.constant(s, source=SRC),
                     unloaded_cold_latency=Distribution.constant(cold, source=SRC))
    profile = LoadProfile.open_loop(rate=200.0, duration=0.01, arrivals="constant", concurrency=2,
                                    traffic=Traffic(models=["m"], payloads=["x"]), request_timeout=0, stop_timeout=10)
    sim = Simulation(profile, [spec], instance=InstanceConfig(vcpus=vcpus), host=host, seed=0)
    result = sim.run()
    assert result.records.latency == pytest.approx(latencies)
    assert [load[3] for load in result.records.loads] == pytest.approx([cold - slow])  # 3 ms on the path


def test_an_overloaded_open_loop_fails_its_waiting_sends_one_by_one() -> None:
    # The one client slot's request times out after 1 s but keeps the only server slot (10 s of
    # service); meanwhile every other send waited for the client slot. Each then gets its 503 at
    # once and frees the slot for the next: thousands in a row, each counted once.
    spec = ModelSpec(name="m", service_time=Distribution.constant(10.0, source=SRC), memory_bytes=0)
    profile = LoadProfile.open_loop(rate=5000.0, duration=1.0, arrivals="constant", concurrency=1,
                                    traffic=Traffic(models=["m"], payloads=["x"]), request_timeout=1.0, stop_timeout=60)
    result = Simulation(profile, [spec], instance=InstanceConfig(vcpus=1, max_concurrent_requests=1), seed=0).run()
    assert result.total_requests == 5000
    assert result.total_failures == 5000


def test_a_model_costs_its_uncompiled_cpu_until_its_fast_path_is_compiled() -> None:
    # One user, one model loaded at the start: requests cost the uncompiled CPU until the model
    # has served compile_after_uses of them and its compile (1 ms on the compile thread) is done.
    fast, slow = 0.001, 0.004
    spec = ModelSpec(name="m", service_time=Distribution.constant(fast, source=SRC), memory_bytes=0)
    host = HostModel(request_cpu_s=fast, load_cpu_s=0.0, compile_cpu_s=0.001, compile_after_uses=3,
                     uncompiled_request_cpu_s=slow)
    profile = LoadProfile.constant(users=1, spawn_rate=1, duration="1s", wait={"min": 0, "max": 0},
                                   traffic=Traffic(models=["m"], payloads=["x"]))
    latency = Simulation(profile, [spec], instance=InstanceConfig(vcpus=1), host=host, seed=0).run().records.latency
    assert latency[:3] == pytest.approx([slow] * 3)
    assert latency[-10:] == pytest.approx([fast] * 10)
    # The compile shares the server's CPU with the fourth request: it is slower than either.
    assert latency[3] > fast


def test_host_model_needs_measured_figures() -> None:
    with pytest.raises(ConfigurationError, match="warm run"):
        HostModel.from_calibration(Calibration())
    with pytest.raises(ConfigurationError, match=">= 0"):
        HostModel(request_cpu_s=-1.0, load_cpu_s=0.0)


def _one_user(think: float, duration: str = "20s") -> LoadProfile:
    return LoadProfile.constant(users=1, spawn_rate=1, duration=duration, wait={"min": think, "max": think},
                                traffic=Traffic(models=["m"], payloads=["x"]))


def test_work_after_a_sleep_runs_slower_by_the_measured_idle_slowdown() -> None:
    # One user thinking 0.1 s between requests: the client and the server sleep between them,
    # so every piece of their work runs at the slowdown after a long sleep (2x here).
    c, s = 0.0004, 0.0006
    spec = ModelSpec(name="m", service_time=Distribution.constant(s, source=SRC), memory_bytes=0)
    curve = ((0.0, 1.0), (0.001, 2.0))
    host = HostModel(request_cpu_s=s, load_cpu_s=0.0, client_cpu_s=c, idle_slowdown=curve)
    sim = Simulation(_one_user(0.1), [spec], instance=InstanceConfig(vcpus=1), host=host, seed=0)
    latency = sim.run().records.latency[1:]  # the first follows its model's load: a busy CPU
    assert latency == pytest.approx([2 * s] * len(latency))
    assert sim.mean_slowdown("request") == pytest.approx(2.0, rel=0.01) and sim.mean_slowdown("client") == pytest.approx(2.0, rel=0.01)
    assert sim.mean_slowdown("load") is None  # no loads: no load CPU
    # Saturated (4 users, no think, the loop the bottleneck): the server never sleeps, so its
    # work runs hot but for the first request.
    busy = LoadProfile.constant(users=4, spawn_rate=1000, duration="20s", wait={"min": 0, "max": 0},
                                traffic=Traffic(models=["m"], payloads=["x"]))
    host = HostModel(request_cpu_s=s, load_cpu_s=0.0, client_cpu_s=0.0001, idle_slowdown=curve)
    sim = Simulation(busy, [spec], instance=InstanceConfig(vcpus=1), host=host, seed=0)
    result = sim.run()
    assert result.total_requests == pytest.approx(20.0 / s, rel=0.01)
    request = sim.mean_slowdown("request")
    assert request is not None and request < 1.001


def test_a_request_that_finds_the_server_asleep_pays_the_wake_delay_for_how_long_it_slept() -> None:
    s = 0.0006
    spec = ModelSpec(name="m", service_time=Distribution.constant(s, source=SRC), memory_bytes=0)
    host = HostModel(request_cpu_s=s, load_cpu_s=0.0, wake_delay=((0.0, 0.0), (0.01, 0.0002), (0.05, 0.0005)))
    slope = 0.0003 / 0.04  # the curve's from 10 to 50 ms
    for think, delay in ((0.02, (0.0002 + slope * 0.01) / (1 - slope)), (0.1, 0.0005)):
        # The server sleeps the think time plus the last answer's delay (its wake-up, on the
        # client's side of the clock) between requests: d = wake_delay(think + d).
        sim = Simulation(_one_user(think), [spec], instance=InstanceConfig(vcpus=1), host=host, seed=0)
        latency = sim.run().records.latency[5:]  # after the load, once the gaps have settled
        assert latency == pytest.approx([s + delay] * len(latency), rel=1e-6)
    # Back to back (no think, no client CPU) the server sleeps only through the last delay: it
    # dies away within a few requests.
    records = Simulation(_one_user(0.0, "2s"), [spec], instance=InstanceConfig(vcpus=1), host=host, seed=0).run().records
    assert records.latency[5:] == pytest.approx([s] * (len(records.latency) - 5))


def test_the_host_speed_ratio_scales_every_cpu_stage() -> None:
    s = 0.0006
    spec = ModelSpec(name="m", service_time=Distribution.constant(s, source=SRC), memory_bytes=0)
    host = HostModel(request_cpu_s=s, load_cpu_s=0.0, client_cpu_s=0.0004, speed_ratio=1.5)
    result = Simulation(_one_user(0.01), [spec], instance=InstanceConfig(vcpus=1), host=host, seed=0).run()
    assert result.records.latency == pytest.approx([1.5 * s] * len(result.records.latency))
    with pytest.raises(ConfigurationError):
        HostModel(request_cpu_s=s, load_cpu_s=0.0, speed_ratio=0.0)
    # A speed trace: 1.5x until 10 s, then 3x (the requests' latencies follow it).
    traced = HostModel(request_cpu_s=s, load_cpu_s=0.0, speed_trace=((10.0, 3.0), (0.0, 1.5)))
    records = Simulation(_one_user(0.01), [spec], instance=InstanceConfig(vcpus=1), host=traced, seed=0).run().records
    late = [lat for lat, sent in zip(records.latency, records.sent, strict=True) if sent > 10.0]
    early = [lat for lat, sent in zip(records.latency, records.sent, strict=True) if sent < 9.9]
    assert early == pytest.approx([1.5 * s] * len(early)) and late == pytest.approx([3 * s] * len(late))


def test_only_a_models_first_load_pays_for_fetching_it() -> None:
    # Room for one of two models, a request every second (nothing overlaps): each model's first
    # load extracts its archive (fetch CPU), later loads read it from the disk cache.
    load, fetch = 0.002, 0.010
    names = ["a", "b"]
    specs = [ModelSpec(name=m, service_time=Distribution.constant(0.0005, source=SRC), memory_bytes=10)
             for m in names]
    host = HostModel(request_cpu_s=0.0005, load_cpu_s=load, fetch_cpu_s=fetch)
    profile = LoadProfile.open_loop(rate=1.0, duration=30.0, arrivals="constant", concurrency=10,
                                    traffic=Traffic(models=names, payloads=["x"], distribution="weights",
                                                    weights=[1, 1]),
                                    request_timeout=0, stop_timeout=100)
    sim = Simulation(profile, specs, instance=InstanceConfig(vcpus=1, memory_budget_bytes=15), host=host,
                     seed=3, weights=[0.5, 0.5])
    loads = sim.run().records.loads
    first = [duration for _t, _i, _d, duration, fetched in loads if fetched]
    again = [duration for _t, _i, _d, duration, fetched in loads if not fetched]
    assert first == pytest.approx([load + fetch] * 2)
    assert len(again) >= 3 and again == pytest.approx([load] * len(again))


def _models_that_load(count: int, *, load_s: float) -> tuple[list[str], list[ModelSpec]]:
    """``count`` models of 10 bytes, 1 ms per request, ``load_s`` per load."""
    names = [f"m{i}" for i in range(count)]
    return names, [ModelSpec(name=m, service_time=Distribution.constant(0.001, source=SRC), memory_bytes=10,
                             load_time=Distribution.constant(load_s, source=SRC)) for m in names]


def test_a_finished_load_is_in_service_when_the_event_loop_comes_to_it() -> None:
    # Room for two of three models, 4 users without think time, 5 ms of loop work per request:
    # a loader thread finishes a load while requests for the other model wait in the event loop,
    # and the model is in service (counted loaded, hits served) only once the loop has worked
    # through them, as the local MME completes a load in a coroutine on its loop.
    names, specs = _models_that_load(3, load_s=0.0)
    host = HostModel(request_cpu_s=0.005, load_cpu_s=0.001)
    profile = LoadProfile.constant(users=4, spawn_rate=1000, duration="5s", wait={"min": 0, "max": 0},
                                   traffic=Traffic(models=names, payloads=["x"]))
    records = Simulation(profile, specs, instance=InstanceConfig(vcpus=1, memory_budget_bytes=25), host=host,
                         seed=2, weights=[1, 1, 1]).run().records
    finished = [t for t, *_ in records.loads]
    in_service = list(records.counts)
    for t, inst, _ in records.unloads:  # an unload's count entry: not a load's
        in_service.remove(next(c for c in in_service if c[0] == t and c[1] == inst))
    lags = [served - done for done, (served, _, _) in zip(finished, in_service, strict=True)]
    assert len(lags) > 50 and lags[0] == pytest.approx(0.0)  # the first: nothing ahead of it in the loop
    assert min(lags) >= 0 and statistics.median(lags) >= 0.005  # later ones wait for queued requests


def test_room_is_reserved_when_a_load_is_asked_for_not_when_a_loader_takes_it() -> None:
    # 20 of 30 models fit, one loader, loads of 50 ms, 24 users without think time: misses come
    # faster than one loader serves them. Each miss reserves its room (unloading an idle model)
    # at once, as the local MME does before its load waits for a loader thread, so while loads
    # queue fewer than 19 models stay loaded (reserving only when a loader is free would keep 19).
    names, specs = _models_that_load(30, load_s=0.05)
    profile = LoadProfile.constant(users=24, spawn_rate=1000, duration="20s", wait={"min": 0, "max": 0},
                                   traffic=Traffic(models=names, payloads=["x"]))
    sim = Simulation(profile, specs, instance=InstanceConfig(vcpus=4, memory_budget_bytes=200, load_concurrency=1),
                     seed=0)
    counts = [count for t, _inst, count in sim.run().records.counts if t > 5.0]
    assert counts and max(counts) <= 20 and min(counts) < 19


def test_a_warm_start_begins_with_the_most_requested_models_that_fit() -> None:
    names, specs = _models_that_load(10, load_s=0.5)
    profile = LoadProfile.constant(users=1, spawn_rate=10, duration="3s", wait={"min": 0.1, "max": 0.1},
                                   traffic=Traffic(models=names, payloads=["x"]))

    def run(warm: bool, weights: list[float], instances: int = 1) -> Simulation:
        sim = Simulation(profile, specs, instance=InstanceConfig(vcpus=1, memory_budget_bytes=40),
                         instances=instances, weights=weights, warm_start=warm, seed=2)
        sim.run()
        return sim

    # Only the four most requested are requested, and four fit: warm, none ever misses.
    top4 = [4.0, 3.0, 2.0, 1.0] + [0.0] * 6
    warm, cold = run(True, top4), run(False, top4)
    assert warm.rec.counts[0] == (0.0, 0, 4) and not any(warm.rec.cold) and len(warm.rec.cold) > 20
    assert sum(cold.rec.cold) == 4  # a fresh endpoint loads each once
    # Two instances hold the eight most requested, spread over them in turn: none misses.
    top8 = [8.0 - i for i in range(8)] + [0.0, 0.0]
    two = run(True, top8, instances=2)
    assert [c for c in two.rec.counts if c[0] == 0.0] == [(0.0, 0, 4), (0.0, 1, 4)]
    assert not any(two.rec.cold)
