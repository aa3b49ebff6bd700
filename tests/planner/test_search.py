"""Planner search: the instance mapping is the local MME's, ranking by cost, every rejection has its reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmeperf.endpoints.local.config import ServerConfig
from mmeperf.errors import ConfigurationError
from mmeperf.instances import DEFAULT_CATALOG
from mmeperf.load import LoadProfile, Traffic
from mmeperf.planner import (
    Calibration,
    Constraints,
    Distribution,
    HostFacts,
    Measured,
    ModelCalibration,
    Planner,
    Source,
    measured_summary,
    relative_error,
    replica_name,
)

SRC = Source(measurement="test input")
MiB = 2**20


def _calibration(*, service_s: float = 0.002, host: HostFacts | None = None, n: int = 5) -> Calibration:
    service = Distribution.from_quantiles({0: service_s / 2, 50: service_s, 99: service_s * 3, 100: service_s * 5},
                                          source=SRC, mean_s=service_s * 1.1)
    return Calibration(
        service_time=service, load_time=Distribution.constant(0.02, source=SRC), host=host or HostFacts(),
        models={f"m{i}.tar.gz": ModelCalibration(requests=10 * (i + 1), memory_bytes=Measured(
            value=float(MiB), unit="bytes", source=SRC)) for i in range(n)},
    )


def _open(rate: float, duration: float = 20.0) -> LoadProfile:
    return LoadProfile.open_loop(rate=rate, duration=duration, arrivals="poisson", traffic=Traffic(payloads=["x"]))


def test_instance_mapping_is_the_local_mme_rule() -> None:
    planner = Planner(_calibration())
    for name in ("ml.c5.large", "ml.m5.xlarge", "ml.r5.2xlarge"):
        profile = DEFAULT_CATALOG.get(name)
        # The planner models thread-mode memory (runner bytes + the profile's per-model overhead);
        # process mode charges each worker's measured memory instead (no fixed overhead).
        server = ServerConfig(repository=".", instance_profile=name, worker_mode="thread")
        config = planner.instance_config(profile)
        assert config.memory_budget_bytes == server.effective_budget()
        assert config.vcpus == profile.vcpus
        workload = planner.workload(3)
        assert {s.memory_bytes for s in planner.specs(workload, profile)} == {MiB + server.effective_overhead()}


def test_calibration_overhead_is_taken_off_before_the_target_types_is_added() -> None:
    # A calibration run on an emulated ml.c5.large charged 200 MiB per model on top of its own bytes.
    overhead = DEFAULT_CATALOG.get("ml.c5.large").per_model_overhead_bytes
    cal = _calibration(host=HostFacts(instance_type="ml.c5.large", emulated=True))
    for m in cal.models.values():
        assert m.memory_bytes is not None
        m.memory_bytes = m.memory_bytes.model_copy(update={"value": float(MiB + overhead)})
    assert Planner(cal).workload(2).own_bytes == [MiB, MiB]
    assert Planner(cal, model_bytes=123).workload(2).own_bytes == [123, 123]


def test_workload_replicates_calibrated_models_and_popularity() -> None:
    planner = Planner(_calibration(n=5))
    w = planner.workload(12)
    assert len(set(w.names)) == 12 and w.names[:5] == [f"m{i}.tar.gz" for i in range(5)]
    assert w.names[5] == replica_name("m0.tar.gz", 1) == "m0-r1.tar.gz"
    assert w.base[5] == "m0.tar.gz" and w.base[11] == "m1.tar.gz"
    assert w.weights[5] == w.weights[0] and w.weights[4] == 5 * w.weights[0]  # requests 10..50
    assert planner.workload(4, popularity="uniform").popularity == [0.25] * 4
    zipf = planner.workload(4, popularity=1.0).popularity
    assert zipf[0] == pytest.approx(2 * zipf[1])
    with pytest.raises(ConfigurationError, match="weights"):
        planner.workload(3, popularity=[1.0, 2.0])
    # The profile's own models, when it names them and no count is given.
    named = planner.workload(traffic=Traffic(models=["m1.tar.gz", "x"], payloads=["x"]))
    assert named.names == ["m1.tar.gz", "x"] and named.base == ["m1.tar.gz", "m0.tar.gz"]


def test_search_ranks_by_cost_and_gives_every_rejection_a_reason(tmp_path: Path) -> None:
    planner = Planner(_calibration(service_s=0.004), seed=3)
    plan = planner.search(
        _open(rate=900.0), models=40, constraints=Constraints(p99_ms=100, max_cost_per_hour=1.0),
        instance_types=["ml.c5.large", "ml.c5.2xlarge", "ml.c5.4xlarge", "ml.g4dn.xlarge"], counts=[1, 2],
    )
    assert len(plan.candidates) == 8
    feasible = plan.feasible
    assert feasible, [c.reasons for c in plan.candidates]
    costs = [c.cost_per_hour_usd for c in feasible]
    assert costs == sorted(costs) and plan.best is feasible[0]
    assert plan.candidates[: len(feasible)] == feasible  # feasible ones first
    reasons = {c.label: " ".join(c.reasons) for c in plan.rejected}
    assert all(reasons.values())
    assert "GPU type" in reasons["1 x ml.g4dn.xlarge"]
    assert "cost $1.632/h > max $1.000/h" in reasons["2 x ml.c5.4xlarge"]
    # 900 req/s x 4.4 ms needs ~4 busy cores: one 2-vCPU instance cannot keep up.
    assert "p99" in reasons["1 x ml.c5.large"]
    best = plan.best
    assert best is not None and best.cost_per_million_usd == pytest.approx(
        best.cost_per_hour_usd / (best.predicted["ok_rps"] * 3600) * 1e6)  # type: ignore[index]
    doc = json.loads(plan.save(tmp_path / "plan.json").read_text())
    assert doc["predicted"] is True and doc["best"] == best.label and len(doc["candidates"]) == 8
    assert any("per-core speed" in a for a in doc["assumptions"])
    # Calibrated on a thread-mode server (no emulated instance): the plan warns its loads are optimistic.
    assert any(a.startswith("WARNING Loads") for a in doc["assumptions"])
    emulated = Planner(_calibration(service_s=0.004, host=HostFacts(emulated=True, instance_type="ml.c5.large")), seed=3)
    assert not any(a.startswith("WARNING Loads") for a in emulated.search(
        _open(rate=100.0, duration=2.0), models=5, instance_types=["ml.c5.large"], counts=[1]).assumptions)
    # The same seed, the same plan.
    again = planner.search(
        _open(rate=900.0), models=40, constraints=Constraints(p99_ms=100, max_cost_per_hour=1.0),
        instance_types=["ml.c5.large", "ml.c5.2xlarge", "ml.c5.4xlarge", "ml.g4dn.xlarge"], counts=[1, 2],
    )
    assert [c.to_dict() for c in again.candidates] == [c.to_dict() for c in plan.candidates]


def test_unmeetable_throughput_and_failures_are_reasons() -> None:
    planner = Planner(_calibration(service_s=0.05))
    profile = LoadProfile.open_loop(rate=200, duration=10, traffic=Traffic(payloads=["x"]), request_timeout=0.5)
    plan = planner.search(profile, models=5, constraints=Constraints(min_rps=150, max_failure_rate=0.01),
                          instance_types=["ml.c5.large"], counts=[1])
    (only,) = plan.candidates
    assert not only.feasible and plan.best is None
    text = " ".join(only.reasons)
    assert "throughput" in text and "< min 150 req/s" in text
    assert "failures" in text and "Timeout" in text


def test_a_model_larger_than_the_budget_is_rejected_without_simulating() -> None:
    planner = Planner(_calibration(), model_bytes=5 * 2**30)
    (only,) = planner.search(_open(10.0), models=3, instance_types=["ml.c5.large"], counts=[1]).candidates
    assert only.predicted is None and "more than the cache budget" in only.reasons[0]


def test_no_memory_figure_is_a_clear_error() -> None:
    cal = _calibration()
    for m in cal.models.values():
        m.memory_bytes = None
    with pytest.raises(ConfigurationError, match="no memory figure"):
        Planner(cal).search(_open(10.0), models=3, instance_types=["ml.c5.large"], counts=[1])


def test_measured_summary_reads_a_run_folder_like_the_prediction(tmp_path: Path) -> None:
    planner = Planner(_calibration())
    result = planner.simulate(_open(100.0), "ml.c5.large", 1, workload=planner.workload(60, popularity=0.9))
    folder = result.write(tmp_path / "run")
    measured = measured_summary(folder)
    predicted = result.summary()
    assert measured["requests"] == predicted["requests"]
    assert measured["p99_ms"] == pytest.approx(predicted["p99_ms"])
    # Interval ratios weighted by Invocations (counted at completion) against lookups: close, not equal.
    assert measured["hit_ratio"] == pytest.approx(predicted["hit_ratio"], abs=0.005)
    assert relative_error(110.0, 100.0) == pytest.approx(0.1) and relative_error(1.0, 0.0) is None


def test_a_worker_process_calibration_charges_each_models_measured_memory_whole() -> None:
    # With worker processes the local MME (like Multi Model Server) charges each model its
    # worker's measured memory and no fixed overhead: the planner does the same on every type.
    cal = _calibration(host=HostFacts(emulated=True, instance_type="ml.c5.xlarge", worker_mode="process"))
    planner = Planner(cal)
    large = DEFAULT_CATALOG.get("ml.c5.large")
    workload = planner.workload(3)
    assert {s.memory_bytes for s in planner.specs(workload, large)} == {MiB}
    thread = Planner(_calibration(host=HostFacts(emulated=True, instance_type="ml.c5.xlarge", worker_mode="thread")))
    overhead = DEFAULT_CATALOG.get("ml.c5.xlarge").per_model_overhead_bytes
    # Thread mode: the calibration's charge holds the profile's overhead, taken off then added back.
    assert {s.memory_bytes for s in thread.specs(thread.workload(3), large)} == {max(MiB - overhead, 0) + large.per_model_overhead_bytes}
    cand = planner.evaluate(_open(5.0, 5.0), large, 1, constraints=Constraints(), workload=workload)
    assert cand.per_model_overhead_bytes == 0 and cand.models_that_fit == 3


def test_a_plan_from_a_calibration_without_loads_warns_that_loads_cost_nothing() -> None:
    from mmeperf.planner.search import NO_LOADS_MEASURED

    # 5 MiB-models, 40 of them, on a 4 GiB type (~13 fit with the overhead): misses.
    no_loads = _calibration().model_copy(update={"load_time": None})
    plan = Planner(no_loads).search(_open(20.0, 10.0), models=40, instance_types=["ml.c5.large"], counts=[1])
    assert NO_LOADS_MEASURED in plan.assumptions
    plan = Planner(_calibration()).search(_open(20.0, 10.0), models=40, instance_types=["ml.c5.large"], counts=[1])
    assert NO_LOADS_MEASURED not in plan.assumptions
