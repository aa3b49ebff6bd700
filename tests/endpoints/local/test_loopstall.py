"""The event-loop stall monitor: a stall injected on the loop is reported as blocked; the host's
share (run-queue wait, from schedstat) is read and kept apart; the monitor shows on the app's
``/metrics`` and ``/mmeperf/status``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from mmeperf.endpoints.local.loopstall import LoopStallMonitor, SchedStat
from mmeperf.endpoints.local.memory import MemoryEndpoint
from mmeperf.repository import ModelRepository

from .conftest import wait_until

STALL_S = 0.150
INTERVAL_S = 0.010
#: An injected stall of STALL_S, less the monitor's interval (the stall may begin mid-sleep)
#: and a little timer rounding.
MIN_SEEN_S = STALL_S - INTERVAL_S - 0.005
HAS_SCHEDSTAT = os.path.exists("/proc/thread-self/schedstat")


def _spin_cpu(seconds: float) -> None:
    """Busy the calling thread for ``seconds`` of its own CPU time (no sleep: it holds the loop
    and the GIL the whole time, however long the host makes it wait for a CPU)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


async def _stall_under_monitor(monitor: LoopStallMonitor) -> None:
    monitor.start()
    while monitor.wakes < 3:  # gate: the monitor is measuring before the stall
        await asyncio.sleep(0.005)
    asyncio.get_running_loop().call_soon(_spin_cpu, STALL_S)
    seen = monitor.wakes
    while monitor.wakes < seen + 3:  # the wake after the stall, and a couple more
        await asyncio.sleep(0.005)
    await monitor.stop()


def test_a_callback_spinning_on_the_loop_is_reported_blocked() -> None:
    monitor = LoopStallMonitor(interval_s=INTERVAL_S)
    asyncio.run(_stall_under_monitor(monitor))
    worst = monitor.worst
    assert worst is not None
    assert worst.blocked_s >= MIN_SEEN_S, worst
    assert worst.late_s == pytest.approx(worst.runqueue_s + worst.blocked_s)
    assert monitor.blocked.max_s == worst.blocked_s
    assert monitor.max_late_s >= worst.late_s
    assert monitor.schedstat is HAS_SCHEDSTAT
    if monitor.schedstat:
        assert worst.loop_cpu_s >= MIN_SEEN_S  # the loop thread itself was busy: work on the loop
    status = monitor.status()
    assert status["max_blocked_ms"] >= MIN_SEEN_S * 1000 and status["schedstat"] is HAS_SCHEDSTAT
    assert sum(monitor.blocked.counts[-5:]) >= 1  # the 0.1 s bucket and above


def test_without_schedstat_the_whole_lateness_is_blocked_and_labelled() -> None:
    monitor = LoopStallMonitor(interval_s=INTERVAL_S, schedstat=False)
    asyncio.run(_stall_under_monitor(monitor))
    assert monitor.schedstat is False
    worst = monitor.worst
    assert worst is not None and worst.runqueue_s == 0.0
    assert worst.blocked_s == worst.late_s >= MIN_SEEN_S
    assert monitor.runqueue.max_s == 0.0
    assert monitor.status()["schedstat"] is False


def test_record_splits_lateness_and_never_counts_more_run_queue_than_lateness() -> None:
    monitor = LoopStallMonitor()
    wake = monitor.record(0.030, 0.010, 0.018)
    assert (wake.late_s, wake.runqueue_s, wake.blocked_s) == pytest.approx((0.030, 0.010, 0.020))
    wake = monitor.record(0.002, 0.050, 0.0)  # runnable before the timer was due: delayed nothing
    assert (wake.runqueue_s, wake.blocked_s) == pytest.approx((0.002, 0.0))
    wake = monitor.record(-0.0001, 0.0, 0.0)  # early by timer rounding
    assert wake.late_s == 0.0
    assert monitor.wakes == 3
    assert monitor.max_late_s == pytest.approx(0.030) and monitor.blocked.max_s == pytest.approx(0.020)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(monitor)
    text = generate_latest(registry).decode()
    assert 'event_loop_blocked_seconds_bucket{le="0.025"} 3.0' in text
    assert 'event_loop_blocked_seconds_bucket{le="0.01"} 2.0' in text
    assert "event_loop_blocked_seconds_count 3.0" in text
    assert 'event_loop_runqueue_wait_seconds_bucket{le="+Inf"} 3.0' in text
    line = next(x for x in text.splitlines() if x.startswith("event_loop_blocked_max_seconds "))
    assert float(line.split()[1]) == pytest.approx(0.020)
    assert "event_loop_schedstat 0.0" in text  # not started: nothing read from schedstat


_SPINNER = "import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])}); print('pinned', flush=True)\nwhile True: pass"


@pytest.fixture
def one_cpu_shared_with_a_spinner() -> Iterator[int]:
    """This thread and a CPU-bound process pinned to the same CPU (restored afterwards)."""
    before = os.sched_getaffinity(0)
    cpu = min(before)
    spinner = subprocess.Popen([sys.executable, "-c", _SPINNER, str(cpu)], stdout=subprocess.PIPE, text=True)
    try:
        assert spinner.stdout is not None and spinner.stdout.readline().strip() == "pinned"
        os.sched_setaffinity(0, {cpu})  # pid 0: this thread only
        yield cpu
    finally:
        os.sched_setaffinity(0, before)
        spinner.kill()
        spinner.wait(timeout=30)


@pytest.mark.skipif(not HAS_SCHEDSTAT, reason="the kernel offers no per-thread schedstat")
def test_run_queue_wait_is_read_from_schedstat_and_kept_out_of_blocked(one_cpu_shared_with_a_spinner: int) -> None:
    stat = SchedStat.of_current_thread()
    assert stat is not None
    try:
        cpu0, waited0 = stat.read()
        assert cpu0 >= 0 and waited0 >= 0
        monitor = LoopStallMonitor(interval_s=INTERVAL_S)
        asyncio.run(_stall_under_monitor(monitor))
        cpu1, waited1 = stat.read()
    finally:
        stat.close()
    # Two CPU-bound tasks on one CPU: the loop thread waited its turn during the stall.
    assert cpu1 - cpu0 >= STALL_S * 1e9
    assert waited1 > waited0
    worst = monitor.worst
    assert worst is not None and monitor.schedstat
    assert monitor.runqueue.max_s > 0.0 and worst.runqueue_s > 0.0
    # The spin was STALL_S of the loop thread's own CPU: blocked, however long the wait for a
    # CPU stretched it; the wait is the host's share, not counted as blocked.
    assert worst.blocked_s >= MIN_SEEN_S
    assert worst.late_s == pytest.approx(worst.runqueue_s + worst.blocked_s)


def test_the_app_serves_its_loop_monitor_on_metrics_and_status(tmp_path: Path) -> None:
    with MemoryEndpoint(endpoint_name="loop").deploy(ModelRepository(tmp_path / "repo")) as ep:
        monitor = ep.app.loop_monitor
        wait_until(lambda: monitor.wakes >= 3, "the monitor running on the app's loop")
        loop = ep._loop
        assert loop is not None
        loop.call_soon_threadsafe(_spin_cpu, STALL_S)
        wait_until(lambda: monitor.blocked.max_s >= MIN_SEEN_S, "the stall reported")
        status = json.loads(ep._request("GET", "/mmeperf/status").body)
        assert status["loop"]["max_blocked_ms"] >= MIN_SEEN_S * 1000
        assert status["loop"]["schedstat"] is HAS_SCHEDSTAT
        assert status["loop"]["worst"]["late_ms"] >= status["loop"]["worst"]["blocked_ms"]
        text = ep._request("GET", "/metrics").body.decode()
        line = next(x for x in text.splitlines() if x.startswith("event_loop_blocked_max_seconds "))
        assert float(line.split()[1]) >= MIN_SEEN_S
        assert "event_loop_runqueue_wait_seconds_bucket" in text and "invocations_total" in text
    ep.delete()
    assert monitor._task is None  # stopped with the lifespan
