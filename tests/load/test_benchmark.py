"""The runner end to end: real Locust subprocesses against the ground-truth test server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmeperf.errors import ConfigurationError, LoadTestError
from mmeperf.load import AwsAuth, Benchmark, LoadProfile, Traffic, rxstamp
from mmeperf.load.benchmark import MetricsSampler
from mmeperf.load.result import BenchmarkResult
from tests.load.echo_endpoint import EchoEndpoint

slow = pytest.mark.slow
STATES = ("CA", "NY", "TX", "WA")


def _frame(n: int = 200, missing_every: int = 0, states: tuple[str, ...] = STATES) -> pd.DataFrame:
    column = [("ZZ" if missing_every and i % missing_every == 0 else states[i % len(states)]) for i in range(n)]
    return pd.DataFrame({"CustomerID": range(n), "State": column, "a": np.arange(n) * 0.5, "b": 1})


def _traffic(**kwargs: object) -> Traffic:
    return Traffic.from_frame(_frame(**kwargs), model_column="State", drop_columns=["CustomerID"])  # type: ignore[arg-type]


def _locust_pids(out: Path) -> list[int]:
    """Processes whose command line names the run's folder: its Locust master and workers."""
    needle = str(out).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
    return pids


def _assert_no_locust_left(out: Path) -> None:
    left = _locust_pids(out)
    for pid in left:  # never leak load generators past a failing test
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"Locust processes still running after the run: {left}"


@slow
def test_percentiles_match_the_servers_log_and_locust_stays_out(test_server, tmp_path: Path) -> None:
    # Delays large enough that 1% exceeds what a busy 2-core CI box adds (1-3 ms measured here).
    server = test_server("--delay-ms", "300:900", "--seed", "7")
    profile = LoadProfile.constant(users=60, spawn_rate=300, duration="5s", traffic=_traffic(), wait={"min": 0, "max": 0})
    result = Benchmark(server.url, profile).run(tmp_path / "run")

    log = server.log()
    handled_ms = np.array([h for _, _, _, h in log]) * 1000.0
    assert result.total_requests == len(log) > 300
    assert result.total_failures == 0
    row = result.summary.iloc[0]
    for pct, column in ((50, "p50_ms"), (95, "p95_ms"), (99, "p99_ms")):
        truth = float(np.percentile(handled_ms, pct, method="inverted_cdf"))
        measured = float(row[column])
        assert abs(measured - truth) <= max(0.01 * truth, 0.2), (column, measured, truth)
    # Timed to the kernel's receive stamps where the platform has them: run.json says how long
    # the load process took to read responses already here (taken out of every latency).
    lag = json.loads((tmp_path / "run" / "run.json").read_text()).get("client_lag")
    if rxstamp.SO_TIMESTAMPNS is not None:
        assert lag is not None and lag["requests"] == result.total_requests
        assert 0 <= lag["p50_ms"] <= lag["max_ms"]
    # The library process never imported Locust or gevent (they patch the whole process).
    assert "locust" not in sys.modules
    assert "gevent" not in sys.modules
    # Every request is in exactly one per-model row and one history second.
    assert int(result.per_model["requests"].sum()) == result.total_requests
    assert int(result.history["requests"].sum()) == result.total_requests
    kinds = set(result.latency_distribution["kind"])
    assert {"warm", "cold", "all"} <= kinds
    locust_stats = result.locust_csv("stats")
    assert int(locust_stats.loc[locust_stats["Name"] == "Aggregated", "Request Count"].iloc[0]) == result.total_requests


@slow
def test_open_loop_shows_a_stall_that_closed_loop_hides(test_server, tmp_path: Path) -> None:
    traffic = _traffic()
    open_server = test_server("--delay-ms", "1", "--stall-at", "2", "--stall-for", "1")
    open_profile = LoadProfile.open_loop(rate=100, duration="5s", traffic=traffic)
    opened = Benchmark(open_server.url, open_profile).run(tmp_path / "open")
    row = opened.summary.iloc[0]
    assert opened.total_requests == 500 == open_server.stats()["requests"]
    assert abs(float(row["send_rate"]) - 100.0) <= 1.0
    # wrk2's view: ~100 requests scheduled during the 1 s stall wait up to 1 s -> p99 ~0.95 s.
    assert 800.0 <= float(row["p99_ms"]) <= 1300.0

    closed_server = test_server("--delay-ms", "1", "--stall-at", "2", "--stall-for", "1")
    closed_profile = LoadProfile.constant(
        users=2, spawn_rate=100, duration="5s", traffic=traffic, wait={"min": 0.02, "max": 0.02}
    )
    closed = Benchmark(closed_server.url, closed_profile).run(tmp_path / "closed")
    crow = closed.summary.iloc[0]
    assert closed.total_requests == closed_server.stats()["requests"]
    # Closed loop: each user waits out the stall once, so only 2 slow samples: p99 hides it.
    assert float(crow["p99_ms"]) < 100.0
    assert float(crow["max_ms"]) > 500.0


@slow
def test_workers_merge_exact_counts_with_failures(test_server, tmp_path: Path) -> None:
    # 60 models: a worker's report drain yields every 16 models, so its final report can
    # overtake a regular one; the master must still merge every report before writing.
    states = tuple(f"S{i:02d}" for i in range(60))
    server = test_server("--delay-ms", "2:8", "--missing-models", "ZZ.tar.gz")
    frame = _frame(n=600, missing_every=7, states=states)
    traffic = Traffic.from_frame(frame, model_column="State", drop_columns=["CustomerID"])
    profile = LoadProfile.constant(users=8, spawn_rate=100, duration="4s", traffic=traffic, wait={"min": 0, "max": 0.01})
    result = Benchmark(server.url, profile, workers=2).run(tmp_path / "dist")
    stats = server.stats()
    assert result.total_requests == stats["requests"] > 100
    assert result.total_failures == stats["failed"] > 0
    for frame_name, view in (("summary", result.summary), ("per_model", result.per_model), ("history", result.history)):
        assert int(view["requests"].sum()) == stats["requests"], frame_name
        assert int(view["failures"].sum()) == stats["failed"], frame_name
    assert len(result.per_model) > 40
    reports = result.info["run"]["worker_reports"]
    assert len(reports) == 2 and all(r["received"] == r["sent"] for r in reports.values()), reports
    failures = result.failures
    assert set(failures["model"]) == {"ZZ.tar.gz"}
    assert set(failures["error_code"]) == {"ValidationError"}
    assert int(failures["count"].sum()) == result.total_failures
    assert result.info["run"]["status"] == "completed"
    assert list(tmp_path.joinpath("dist").glob(f"local*http*{frame['State'].nunique()}_stats_history.csv"))


@slow
def test_sigkill_midway_leaves_readable_csvs(test_server, tmp_path: Path) -> None:
    server = test_server("--delay-ms", "5")
    profile = LoadProfile.constant(users=4, spawn_rate=100, duration="60s", traffic=_traffic(), wait={"min": 0, "max": 0.05})
    out = tmp_path / "killed"
    # Ctrl-C inside the block: the handle SIGKILLs every Locust process at once on the way out.
    with pytest.raises(KeyboardInterrupt), Benchmark(server.url, profile).start(out) as handle:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            history = out / "history.csv"
            if history.exists() and len(history.read_text().splitlines()) >= 4:
                break
            time.sleep(0.2)
        raise KeyboardInterrupt
    assert not handle.running() and not handle.alive()
    handle.kill()  # idempotent: a second kill, and a close, on a run that is over do nothing
    handle.close()
    _assert_no_locust_left(out)
    result = BenchmarkResult.load(out)
    assert len(result.history) >= 3
    assert result.history["requests"].sum() > 0
    assert int(result.summary["requests"].iloc[0]) > 0
    assert result.status == "running"  # it never finished, and says so
    stats_history = pd.read_csv(next(out.glob("*_stats_history.csv")))
    assert len(stats_history) >= 1


@slow
def test_signed_http_and_boto3_users(test_server, tmp_path: Path) -> None:
    server = test_server("--delay-ms", "1", "--missing-models", "ZZ.tar.gz")
    profile = LoadProfile.constant(
        users=2, spawn_rate=100, duration="2s", traffic=_traffic(missing_every=4), wait={"min": 0, "max": 0.02}
    )
    auth = AwsAuth(region="us-east-1", access_key="AKIDEXAMPLE", secret_key="example-secret")
    signed = Benchmark(server.url, profile, auth=auth).run(tmp_path / "signed")
    after_signed = server.stats()
    assert after_signed["auth_headers"] == after_signed["requests"] == signed.total_requests > 0

    boto = Benchmark(server.url, profile, user="boto3", endpoint_name="churn").run(tmp_path / "boto3")
    stats = server.stats()
    assert boto.total_requests == stats["requests"] - after_signed["requests"] > 0
    assert boto.total_failures == stats["failed"] - after_signed["failed"] > 0
    assert set(boto.failures["error_code"]) == {"ValidationError"}


@slow
def test_stop_request_and_stop_condition(test_server, tmp_path: Path) -> None:
    server = test_server("--delay-ms", "1", "--missing-models", "ZZ.tar.gz")
    profile = LoadProfile.constant(users=2, spawn_rate=100, duration="60s", traffic=_traffic(), wait={"min": 0, "max": 0.05})
    handle = Benchmark(server.url, profile).start(tmp_path / "stopped")
    deadline = time.monotonic() + 30
    while (handle.progress is None or handle.progress.requests == 0) and time.monotonic() < deadline:
        time.sleep(0.2)
    result = handle.stop()
    assert result.status == "stopped" and result.stop_reason == "stopped on request"
    assert result.total_requests == server.stats()["requests"]

    failing = Traffic.from_frame(pd.DataFrame({"State": ["ZZ"] * 4, "a": 1}), model_column="State")
    profile = LoadProfile.constant(
        users=2, spawn_rate=100, duration="60s", traffic=failing, wait={"min": 0, "max": 0.05},
        stop={"error_rate": {"threshold": 0.5, "window": 2, "min_requests": 5}},
    )
    result = Benchmark(server.url, profile).run(tmp_path / "errors", timeout=60)
    assert result.status == "stopped"
    assert "error rate" in (result.stop_reason or "")
    assert result.duration_s is not None and result.duration_s < 30


def test_bad_options_are_typed_errors(tmp_path: Path) -> None:
    profile = LoadProfile.constant(users=1, duration="1s", traffic=_traffic())
    with pytest.raises(ConfigurationError):
        Benchmark("http://127.0.0.1:1", profile, workers=-1)
    with pytest.raises(ConfigurationError):
        Benchmark("http://127.0.0.1:1", profile, user="endpoint")
    (tmp_path / "summary_results.csv").write_text("stage\n")
    with pytest.raises(ConfigurationError):
        Benchmark("http://127.0.0.1:1", profile).start(tmp_path)


@slow
def test_endpoint_plugin_user(tmp_path: Path) -> None:
    profile = LoadProfile.constant(users=2, spawn_rate=10, duration="2s", traffic=_traffic(missing_every=4), wait={"min": 0, "max": 0.01})
    spec = {"target": "tests.load.echo_endpoint:EchoEndpoint", "kwargs": {"missing": "ZZ.tar.gz"}}
    local = EchoEndpoint()
    result = Benchmark(local, profile, user="endpoint", endpoint_spec=spec, sample_metrics=False).run(tmp_path / "echo")
    assert local.metrics_calls == 0 and result.server_metrics.empty
    assert result.total_requests > 0 and result.total_failures > 0
    assert set(result.failures["error_code"]) == {"ValidationError"}
    # One miss per model that exists (CA rows all became ZZ: NY, TX, WA), then hits.
    assert int(result.summary["cold_requests"].iloc[0]) == 3


@slow
def test_timeout_stops_the_run_and_leaves_no_locust_process(test_server, tmp_path: Path) -> None:
    server = test_server("--delay-ms", "2")
    profile = LoadProfile.constant(users=2, spawn_rate=100, duration="60s", traffic=_traffic(), wait={"min": 0, "max": 0.05})
    out = tmp_path / "timeout"
    with pytest.raises(LoadTestError, match="did not finish within"):
        Benchmark(server.url, profile, workers=1).run(out, timeout=4)
    _assert_no_locust_left(out)
    # Stopped gracefully before the kill: the files are final and count what the server saw.
    result = BenchmarkResult.load(out)
    assert result.status == "stopped"
    assert result.total_requests == server.stats()["requests"] > 0


@slow
def test_second_ctrl_c_during_the_stop_kills_every_locust_process(test_server, tmp_path: Path) -> None:
    # Slow requests keep the graceful stop going long enough for the second Ctrl-C to land in it.
    server = test_server("--delay-ms", "1500")
    out = tmp_path / "interrupted"
    main = threading.main_thread().ident
    assert main is not None and threading.get_ident() == main
    first = threading.Event()

    def interrupt_once_running(p: object) -> None:
        if getattr(p, "status", None) == "running" and not first.is_set():
            first.set()
            signal.pthread_kill(main, signal.SIGINT)  # Ctrl-C while run() waits

    def interrupt_again_once_stopping() -> None:
        deadline = time.monotonic() + 60
        while not (out / ".stop").exists() and time.monotonic() < deadline:  # stop() writes it first
            time.sleep(0.01)
        signal.pthread_kill(main, signal.SIGINT)  # Ctrl-C while stop() waits for the graceful end

    profile = LoadProfile.constant(users=2, spawn_rate=100, duration="60s", traffic=_traffic(), wait={"min": 0, "max": 0})
    bench = Benchmark(server.url, profile, progress=interrupt_once_running)
    second = threading.Thread(target=interrupt_again_once_stopping, daemon=True)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        second.start()
        with pytest.raises(KeyboardInterrupt):
            bench.run(out, timeout=60)
    finally:
        signal.signal(signal.SIGINT, previous)
    second.join(timeout=5)
    assert first.is_set()
    _assert_no_locust_left(out)


class _HourlyMetrics(EchoEndpoint):
    metrics_interval_s = 3600.0  # as a CloudWatch-backed endpoint would declare (60 s there)


def test_metrics_interval_comes_from_the_endpoint_or_the_benchmark() -> None:
    profile = LoadProfile.constant(users=1, duration="1s", traffic=_traffic())
    url = "http://127.0.0.1:1"
    assert Benchmark(EchoEndpoint(), profile, runtime_url=url).metrics_interval_s == 1.0
    assert Benchmark(_HourlyMetrics(), profile, runtime_url=url).metrics_interval_s == 3600.0
    assert Benchmark(_HourlyMetrics(), profile, runtime_url=url, metrics_interval_s=0.5).metrics_interval_s == 0.5
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ConfigurationError):
            Benchmark(EchoEndpoint(), profile, runtime_url=url, metrics_interval_s=bad)


def test_sampler_reads_at_its_interval_and_once_more_at_the_end(tmp_path: Path) -> None:
    # An hour between reads: one read at the start, one when the run ends, and nothing between.
    endpoint = _HourlyMetrics()
    sampler = MetricsSampler(endpoint, tmp_path / "hourly.csv", t0=time.time(), interval_s=3600.0).start()
    assert endpoint.metrics_read.wait(10)
    time.sleep(0.3)  # room for reads that must not happen
    assert endpoint.metrics_calls == 1
    sampler.stop(timeout=10)
    assert endpoint.metrics_calls == 2
    rows = pd.read_csv(tmp_path / "hourly.csv")
    assert len(rows) == 1 and rows["Invocations"].tolist() == [1]

    # A short interval reads again and again, one interval row per read after the first.
    fast = EchoEndpoint()
    sampler = MetricsSampler(fast, tmp_path / "fast.csv", t0=time.time(), interval_s=0.05).start()
    deadline = time.monotonic() + 10
    while fast.metrics_calls < 4 and time.monotonic() < deadline:
        fast.metrics_read.clear()
        fast.metrics_read.wait(1)
    sampler.stop(timeout=10)
    rows = pd.read_csv(tmp_path / "fast.csv")
    assert fast.metrics_calls >= 4 and len(rows) == fast.metrics_calls - 1
