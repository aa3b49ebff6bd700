"""Calibration: YAML/JSON round trips, sources, and one built from a real local run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mmeperf.errors import ConfigurationError
from mmeperf.planner import (
    Calibration,
    Distribution,
    InstanceConfig,
    Measured,
    ModelCalibration,
    Simulation,
    Source,
    calibrate,
)


def _calibration() -> Calibration:
    src = Source(run="runs/a", measurement="histograms.json stages */warm (client side)", note="scaled")
    service = Distribution.from_quantiles({0: 0.001, 50: 0.002, 99: 0.01, 100: 0.02}, source=src, samples=500)
    return Calibration(
        runs=["runs/a"], service_time=service,
        load_time=Distribution.constant(0.25, samples=12, source=Source(run="runs/a", measurement="ModelLoadingTime")),
        models={"a": ModelCalibration(requests=10, service_time=service.lognormal_fit()),
                "b": ModelCalibration(requests=30, memory_bytes=Measured(
                    value=1e6, unit="bytes", source=Source(measurement="given by the caller")))},
    )


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    cal = _calibration()
    path = cal.save(tmp_path / f"cal{suffix}")
    again = Calibration.load(path)
    assert again == cal
    assert again.service_time_of("a").kind == "lognormal"
    assert again.service_time_of("zzz") == cal.service_time  # replicated from the all-model figure
    assert again.memory_of("b") == 1_000_000 and again.memory_of("a") is None
    assert again.popularity() == {"a": 0.25, "b": 0.75}


def test_bad_files_and_distributions_are_typed_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigurationError, match="mapping"):
        Calibration.load(tmp_path / "bad.yaml")
    (tmp_path / "wrong.yaml").write_text("models: 3\n")
    with pytest.raises(ConfigurationError, match="Invalid calibration"):
        Calibration.load(tmp_path / "wrong.yaml")
    with pytest.raises(ValueError, match="0 and 100"):
        Distribution.from_quantiles({50: 1.0}, source=Source(measurement="x"))


def test_distribution_quantiles_and_mean() -> None:
    d = Distribution.from_quantiles({0: 0.0, 50: 1.0, 100: 2.0}, source=Source(measurement="x"))
    assert d.quantile(25) == pytest.approx(0.5)
    assert d.mean == pytest.approx(1.0)
    fit = d.lognormal_fit()
    assert fit.quantile(50) == pytest.approx(1.0) and fit.quantile(90) == pytest.approx(1.8, rel=1e-6)


@pytest.mark.slow
def test_calibration_from_a_real_local_run(tmp_path: Path) -> None:
    pytest.importorskip("xgboost")
    from mmeperf.datasets.churn import build_churn_repository
    from mmeperf.endpoints.local import LocalEndpoint
    from mmeperf.load import Benchmark, LoadProfile, Traffic

    build = build_churn_repository(tmp_path / "repo", n_rows=1000, rounds=3)
    test = pd.read_csv(build.test_csv)
    traffic = Traffic.from_frame(test, model_column="State", model_template="churn-xgb-{}.tar.gz",
                                 label_column="Churn?", drop_columns=["CustomerID"])
    profile = LoadProfile.constant(users=4, spawn_rate=50, duration="5s", traffic=traffic,
                                   wait={"min": 0, "max": 0.02})
    with LocalEndpoint(endpoint_name="churn", memory_budget="20MiB").deploy(build.repository) as endpoint:
        Benchmark(endpoint, profile).run(tmp_path / "run")
        charged = {m["name"]: m["charged_bytes"] for m in endpoint.status()["models"]}

    cal = calibrate(tmp_path / "run")
    # Each model's memory is what the server charged it at the run's end (thread workers here).
    assert charged and {name: cal.memory_of(name) for name in charged} == charged
    size = cal.models[next(iter(charged))].memory_bytes
    assert size is not None and "model_charged_bytes" in size.source.measurement
    assert "thread workers" in size.source.measurement
    assert cal.runs == [str(tmp_path / "run")]
    assert cal.service_time is not None and cal.service_time.samples and cal.service_time.samples > 50
    assert "ModelLatency" in (cal.service_time.source.note or "")
    assert cal.client_cold_latency is not None and cal.load_time is not None
    assert cal.load_time.source.measurement.endswith("weighted by ModelLoads")
    assert cal.host.endpoint_kind == "local" and cal.host.memory_budget_bytes == 20 * 2**20
    assert sum(m.requests for m in cal.models.values()) > 100
    assert cal.hit_ratio is not None and 0 < cal.hit_ratio.value <= 1
    # The client timed to the kernel's receive stamps where the OS has them (run.json client_lag).
    from mmeperf.load import rxstamp

    assert cal.latency_timing == ("kernel" if rxstamp.SO_TIMESTAMPNS is not None else "user")
    # One-user runs give the unloaded warm and cold latencies (here the same run stands in for both).
    both = calibrate(tmp_path / "run", unloaded_run=tmp_path / "run", cold_run=tmp_path / "run")
    cold_requests = sum(m.cold_requests for m in cal.models.values())
    assert both.unloaded_cold_latency is not None and both.unloaded_cold_latency.samples == cold_requests
    assert both.unloaded_latency is not None and both.unloaded_latency.samples == cal.client_warm_latency.samples  # type: ignore[union-attr]
    assert "cold" in both.unloaded_cold_latency.source.measurement
    cal.save(tmp_path / "cal.yaml")
    again = Calibration.load(tmp_path / "cal.yaml")
    assert again == cal
    # It drives a simulation of the same traffic.
    sim = Simulation.from_calibration(again, profile, instance=InstanceConfig(vcpus=2), seed=1).run()
    assert sim.total_requests > 100 and sim.total_failures == 0


def test_host_cpu_figures_from_a_warm_run(tmp_path: Path) -> None:
    from mmeperf.load import LoadProfile, Traffic
    from mmeperf.planner import HostModel, ModelSpec

    # A predicted warm run whose CPUUtilization is exactly 2 ms of event loop per request.
    spec = ModelSpec(name="m", service_time=Distribution.constant(0.002, source=Source(measurement="x")), memory_bytes=0)
    profile = LoadProfile.constant(users=2, spawn_rate=2, duration="20s", wait={"min": 0.01, "max": 0.02},
                                   traffic=Traffic(models=["m"], payloads=["x"]))
    host = HostModel(request_cpu_s=0.002, load_cpu_s=0.0)
    warm = Simulation(profile, [spec], instance=InstanceConfig(vcpus=1), host=host, seed=1).run().write(tmp_path / "warm")
    assert warm.total_requests > 1000
    cal = calibrate(tmp_path / "warm", warm_run=tmp_path / "warm")
    assert cal.request_cpu_s is not None
    assert cal.request_cpu_s.value == pytest.approx(0.002, rel=1e-6)
    assert "no loads" in (cal.request_cpu_s.source.note or "")
    # Its one load came in the first interval, whose length a predicted folder does not record
    # (no metrics_interval_s): no interval with a load, so no CPU per load is claimed.
    assert cal.load_cpu_s is None
    with pytest.raises(ConfigurationError, match="warm run"):
        HostModel.from_calibration(calibrate(tmp_path / "warm"))
    with pytest.raises(ConfigurationError, match=r"\['load_cpu_s'\]"):
        HostModel.from_calibration(cal)
    load = Measured(value=0.003, unit="cpu_s", source=Source(measurement="test input"))
    host = HostModel.from_calibration(cal.model_copy(update={"load_cpu_s": load}))
    assert host.request_cpu_s == pytest.approx(0.002, rel=1e-6) and host.load_cpu_s == 0.003


def _gap_runs(folder: Path, factor: tuple[tuple[float, float], ...],
              wake: tuple[tuple[float, float], ...]) -> dict[str, dict[float, Path]]:
    """Predicted runs of one user thinking g seconds against a host with a known CPU factor and
    wake delay after idle, on two paths (0.2 and 0.8 ms of CPU per request)."""
    from mmeperf.load import LoadProfile, Traffic
    from mmeperf.planner import HostModel, ModelSpec

    runs: dict[str, dict[float, Path]] = {"fast": {}, "slow": {}}
    for path, cpu in (("fast", 0.0002), ("slow", 0.0008)):
        spec = ModelSpec(name="m", service_time=Distribution.constant(cpu, source=Source(measurement="x")),
                         memory_bytes=0)
        host = HostModel(request_cpu_s=cpu, load_cpu_s=0.0, idle_slowdown=factor, wake_delay=wake)
        for g in (0.0, 0.005, 0.02):
            profile = LoadProfile.constant(users=1, spawn_rate=1, duration="3s", wait={"min": g, "max": g},
                                           traffic=Traffic(models=["m"], payloads=["x"]))
            run = folder / f"{path}-{g}"
            Simulation(profile, [spec], instance=InstanceConfig(vcpus=1), host=host, seed=1,
                       warm_start=True).run().write(run)
            runs[path][g] = run
    return runs


def test_the_idle_latency_curve_recovers_a_hosts_slowdown_and_wake_delay(tmp_path: Path) -> None:
    from mmeperf.planner import HostModel, idle_latency_curve

    # The decomposition of the two paths' median latencies gives the curves back.
    runs = _gap_runs(tmp_path, factor=((0.0, 1.0), (0.005, 1.4), (0.02, 1.6)),
                     wake=((0.0, 0.0), (0.005, 0.0001), (0.02, 0.0003)))
    slowdown, delay = idle_latency_curve(runs["fast"], runs["slow"], request_cpu_s=0.0002,
                                         uncompiled_request_cpu_s=0.0008)
    # Within HDR's 3 digits and the few tenths of a ms the server sleeps beyond the think time.
    assert [g for g, _ in slowdown.points] == [0.0, 0.005, 0.02]
    assert [f for _, f in slowdown.points] == pytest.approx([1.0, 1.4, 1.6], abs=0.03)
    assert [d for _, d in delay.points] == pytest.approx([0.0, 0.0001, 0.0003], abs=2e-5)
    assert "wake delay" in delay.source.measurement and slowdown.samples and slowdown.samples > 1000
    # It reaches the host model through a calibration.
    cal = _calibration().model_copy(update={"idle_slowdown": slowdown, "wake_delay": delay})
    fast = Measured(value=0.0002, unit="cpu_s", source=Source(measurement="x"))
    host = HostModel.from_calibration(cal.model_copy(update={"request_cpu_s": fast, "load_cpu_s": fast}))
    assert host.wake_delay == tuple(delay.points)
    with pytest.raises(ConfigurationError, match="same think times"):
        idle_latency_curve({0.0: runs["fast"][0.0]}, runs["slow"], request_cpu_s=0.0002, uncompiled_request_cpu_s=0.0008)
    with pytest.raises(ConfigurationError, match="differ in CPU"):
        idle_latency_curve(runs["fast"], runs["slow"], request_cpu_s=0.0008, uncompiled_request_cpu_s=0.0002)


def test_the_idle_latency_curve_takes_the_median_over_rounds(tmp_path: Path) -> None:
    from mmeperf.planner import idle_latency_curve

    # Three sweeps of the same host, one of them in a minute when waking took 1 ms more and the
    # CPU ran 2x slower after idle: the median over the rounds is the typical host, where pooling
    # the rounds' requests or averaging them would not be.
    factor, wake = ((0.0, 1.0), (0.005, 1.4), (0.02, 1.6)), ((0.0, 0.0), (0.005, 0.0001), (0.02, 0.0003))
    typical = _gap_runs(tmp_path / "typical", factor, wake)
    odd = _gap_runs(tmp_path / "odd", ((0.0, 1.0), (0.005, 2.8), (0.02, 3.2)),
                    ((0.0, 0.0), (0.005, 0.0011), (0.02, 0.0013)))
    rounds = {path: {g: [typical[path][g], odd[path][g], typical[path][g]] for g in typical[path]}
              for path in typical}
    slowdown, delay = idle_latency_curve(rounds["fast"], rounds["slow"], request_cpu_s=0.0002,
                                         uncompiled_request_cpu_s=0.0008)
    assert [f for _, f in slowdown.points] == pytest.approx([1.0, 1.4, 1.6], abs=0.03)
    assert [d for _, d in delay.points] == pytest.approx([0.0, 0.0001, 0.0003], abs=2e-5)
    assert "median over 3 / 3 rounds" in delay.source.measurement
    # The odd round alone is what one sweep would have measured.
    alone, _ = idle_latency_curve(odd["fast"], odd["slow"], request_cpu_s=0.0002, uncompiled_request_cpu_s=0.0008)
    assert alone.points[-1][1] > 2.5
    uneven = {g: runs[:2] if g else runs for g, runs in rounds["fast"].items()}
    with pytest.raises(ConfigurationError, match="same number of rounds"):
        idle_latency_curve(uneven, rounds["slow"], request_cpu_s=0.0002, uncompiled_request_cpu_s=0.0008)


def test_host_probe_measures_a_share_and_stalls() -> None:
    from mmeperf.planner.calibrate import measure_cpu_share

    share, stalls = measure_cpu_share(0.3, work_s=0.001, gap_s=0.005)
    assert 0 < share.value <= 1 and share.samples and share.samples > 10
    assert stalls.quantile(0) >= 0 and stalls.quantile(100) >= stalls.quantile(50)
    assert stalls.samples == share.samples


def test_host_speed_figures_round_trip_and_reach_the_host_model(tmp_path: Path) -> None:
    from mmeperf.planner import HostModel, IdleSlowdown

    src = Source(measurement="test input")
    curve = IdleSlowdown(points=[(0.02, 1.7), (0.0, 1.0), (0.001, 1.5)], samples=30, source=src)
    assert curve.points == [(0.0, 1.0), (0.001, 1.5), (0.02, 1.7)]  # kept sorted
    cpu = Measured(value=0.001, unit="cpu_s", source=src)
    cal = _calibration().model_copy(update={
        "request_cpu_s": cpu, "load_cpu_s": cpu, "fetch_cpu_s": cpu.model_copy(update={"value": 0.004}),
        "idle_slowdown": curve, "host_speed": cpu.model_copy(update={"value": 0.0006})})
    again = Calibration.load(cal.save(tmp_path / "cal.yaml"))
    assert again == cal
    host = HostModel.from_calibration(again)
    assert host.fetch_cpu_s == 0.004 and host.idle_slowdown == ((0.0, 1.0), (0.001, 1.5), (0.02, 1.7))
    with pytest.raises(ValueError, match="idle slowdown points"):
        IdleSlowdown(points=[(0.0, 0.0)], source=src)
    with pytest.raises(ValueError, match="idle slowdown points"):
        IdleSlowdown(points=[], source=src)


def test_a_run_that_mostly_failed_cannot_calibrate(tmp_path: Path) -> None:
    from mmeperf.load import LoadProfile, Traffic
    from mmeperf.planner import ModelSpec

    # Ten times the load one vCPU serves: most requests are answered 503 or time out.
    spec = ModelSpec(name="m", service_time=Distribution.constant(0.1, source=Source(measurement="x")), memory_bytes=0)
    profile = LoadProfile.open_loop(rate=100, duration=10, concurrency=10**6,
                                    traffic=Traffic(models=["m"], payloads=["x"]), request_timeout=1.0)
    result = Simulation(profile, [spec], instance=InstanceConfig(vcpus=1, max_concurrent_requests=10)).run()
    assert result.total_failures > result.total_requests / 2
    result.write(tmp_path / "collapsed")
    with pytest.raises(ConfigurationError, match=r"failed \d+ of its \d+ requests"):
        calibrate(tmp_path / "collapsed")


def test_loads_can_come_from_another_run(tmp_path: Path) -> None:
    from mmeperf.load import LoadProfile, Traffic
    from mmeperf.planner import ModelSpec

    src = Source(measurement="x")
    names = ["a", "b", "c"]
    specs = [ModelSpec(name=m, service_time=Distribution.constant(0.001, source=src), memory_bytes=10,
                       load_time=Distribution.constant(0.2, source=src)) for m in names]
    profile = LoadProfile.constant(users=2, spawn_rate=10, duration="10s", wait={"min": 0, "max": 0.01},
                                   traffic=Traffic(models=names, payloads=["x"]))
    for folder, budget in (("healthy", None), ("thrashing", 15)):
        Simulation(profile, specs, instance=InstanceConfig(vcpus=2, memory_budget_bytes=budget), seed=1).run().write(
            tmp_path / folder)
    cal = calibrate(tmp_path / "healthy", loads_run=tmp_path / "thrashing")
    assert cal.load_time is not None and cal.load_time.source.run == str(tmp_path / "thrashing")
    assert cal.load_time.mean == pytest.approx(0.2, rel=0.01)
    assert cal.runs == [str(tmp_path / "healthy")] and cal.service_time is not None
    assert cal.service_time.source.run == str(tmp_path / "healthy")
