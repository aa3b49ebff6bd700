"""Event-loop stall monitor: how late the serving loop wakes from a short sleep, split into the
time the OS left its thread waiting for a CPU (the host) and the rest (the loop blocked by us).

A task sleeps ``interval_s`` and measures how late it woke (wall clock). The loop thread's
``/proc/self/task/<tid>/schedstat`` (CPU ns, run-queue wait ns, slices) says how much of that
the thread spent runnable but not running: the host not running us (other processes, other
threads, the kernel). The rest is the loop blocked by this process: a callback running on the
loop, or another thread holding the GIL. Where schedstat cannot be read (not Linux, no
``CONFIG_SCHED_INFO``), the whole lateness counts as blocked and ``schedstat`` says False.
The split errs towards blaming us: while another of our threads holds the GIL and the host has
descheduled it, the loop thread sleeps on the GIL, not in the run queue, and that counts as
blocked. ``loop_cpu_s`` of the worst wake tells work on the loop from waiting on the GIL.
One ``pread`` of a small file per wake (about a microsecond); plain numbers on the loop, the
Prometheus families are built only when ``/metrics`` is read.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import gc
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["BUCKETS_S", "LoopStallMonitor", "SchedStat", "Wake"]

log = logging.getLogger("mmeperf.serve")

#: Histogram bucket bounds, seconds (the last bucket, +Inf, is implicit).
BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: A stall this long (blocked by the process) is logged when it is the worst so far.
WARN_BLOCKED_S = 0.100


class SchedStat:
    """One thread's ``schedstat``, read through an fd kept open (``pread`` at offset 0)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = os.open(path, os.O_RDONLY)
        self.read()  # fails here, not on the loop later, when the file is there but unreadable

    @classmethod
    def of_current_thread(cls) -> SchedStat | None:
        """The calling thread's schedstat, or None where the kernel does not offer it."""
        try:
            return cls(f"/proc/self/task/{threading.get_native_id()}/schedstat")
        except (OSError, ValueError, AttributeError):
            return None

    def read(self) -> tuple[int, int]:
        """(CPU ns, run-queue wait ns) of the thread since it started."""
        if self._fd is None:
            raise OSError(f"{self.path} is closed")
        fields = os.pread(self._fd, 128, 0).split()
        return int(fields[0]), int(fields[1])

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


@dataclass(frozen=True, slots=True)
class Wake:
    """One wake of the monitor, seconds: ``late_s = runqueue_s + blocked_s``."""

    late_s: float
    runqueue_s: float
    blocked_s: float
    loop_cpu_s: float
    """CPU the loop thread used over the interval (about ``blocked_s``: work on the loop;
    much less: the thread waited on something else, e.g. the GIL)."""
    at_s: float
    """Seconds since the monitor started."""

    def as_ms(self) -> dict[str, float]:
        return {"late_ms": self.late_s * 1000, "runqueue_ms": self.runqueue_s * 1000,
                "blocked_ms": self.blocked_s * 1000, "loop_cpu_ms": self.loop_cpu_s * 1000,
                "at_s": round(self.at_s, 3)}


@dataclass(slots=True)
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS_S) + 1))
    sum_s: float = 0.0
    max_s: float = 0.0

    def add(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS_S, seconds)] += 1
        self.sum_s += seconds
        if seconds > self.max_s:
            self.max_s = seconds

    def family(self, name: str, doc: str) -> HistogramMetricFamily:
        cumulative = 0
        buckets: list[tuple[str, float]] = []
        for bound, count in zip((*(str(b) for b in BUCKETS_S), "+Inf"), self.counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=self.sum_s)


class LoopStallMonitor(Collector):
    """Measures the running loop's stalls (see the module docstring); a Prometheus collector."""

    def __init__(self, *, interval_s: float = 0.010, schedstat: bool = True) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.interval_s = interval_s
        self._use_schedstat = schedstat
        #: Whether the run-queue part was read from schedstat (False: blocked is all the lateness).
        self.schedstat = False
        self.wakes = 0
        self.blocked = _Histogram()
        self.runqueue = _Histogram()
        self.max_late_s = 0.0
        #: The wake with the most blocked time, and the latest one.
        self.worst: Wake | None = None
        self._task: asyncio.Task[None] | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start watching the running loop (call on it)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._watch(), name="loop-stall-monitor")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self) -> None:
        stat = SchedStat.of_current_thread() if self._use_schedstat else None
        self.schedstat = stat is not None
        interval = self.interval_s
        perf = time.perf_counter
        start = then = perf()
        cpu, waited = stat.read() if stat is not None else (0, 0)
        try:
            while True:
                await asyncio.sleep(interval)
                now = perf()
                if stat is not None:
                    cpu_now, waited_now = stat.read()
                    self.record(now - then - interval, (waited_now - waited) / 1e9,
                                (cpu_now - cpu) / 1e9, at_s=now - start)
                    cpu, waited = cpu_now, waited_now
                else:
                    self.record(now - then - interval, None, None, at_s=now - start)
                then = now
        finally:
            if stat is not None:
                stat.close()

    # --- measurement ------------------------------------------------------------------------

    def record(self, late_s: float, runqueue_s: float | None, loop_cpu_s: float | None,
               *, at_s: float = 0.0) -> Wake:
        """Count one wake: ``late_s`` past the interval, of which ``runqueue_s`` (None: unknown)
        the thread waited for a CPU. Run-queue wait beyond the lateness (runnable while the
        timer was not yet due) delayed nothing and is not counted."""
        late = max(late_s, 0.0)
        runqueue = min(max(runqueue_s, 0.0), late) if runqueue_s is not None else 0.0
        wake = Wake(late_s=late, runqueue_s=runqueue, blocked_s=late - runqueue,
                    loop_cpu_s=loop_cpu_s if loop_cpu_s is not None else 0.0, at_s=at_s)
        self.wakes += 1
        if wake.blocked_s > self.blocked.max_s:
            self.worst = wake
            if wake.blocked_s >= WARN_BLOCKED_S:
                log.warning("Event loop blocked %.0f ms by this process (late %.0f ms, run-queue wait "
                            "%.0f ms, loop thread CPU %.0f ms)", wake.blocked_s * 1000, late * 1000,
                            runqueue * 1000, wake.loop_cpu_s * 1000)
        self.blocked.add(wake.blocked_s)
        self.runqueue.add(runqueue)
        if late > self.max_late_s:
            self.max_late_s = late
        return wake

    # --- views ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The ``loop`` entry of ``/mmeperf/status``."""
        return {
            "interval_ms": self.interval_s * 1000,
            "wakes": self.wakes,
            "schedstat": self.schedstat,
            "max_blocked_ms": self.blocked.max_s * 1000,
            "max_runqueue_ms": self.runqueue.max_s * 1000,
            "max_late_ms": self.max_late_s * 1000,
            "worst": self.worst.as_ms() if self.worst is not None else None,
            # A collection holds the GIL while it walks the heap: what it has left to walk.
            "gc_frozen_objects": gc.get_freeze_count(),
            "gc_collections": [generation["collections"] for generation in gc.get_stats()],
        }

    def collect(self) -> Iterator[Metric]:
        yield self.blocked.family(
            "event_loop_blocked_seconds",
            "How late the event loop woke from a short sleep, less the loop thread's run-queue "
            "wait: blocked by this process (work on the loop, the GIL)")
        yield self.runqueue.family(
            "event_loop_runqueue_wait_seconds",
            "Of that lateness, the loop thread's wait for a CPU (schedstat): the host, not us")
        yield GaugeMetricFamily("event_loop_blocked_max_seconds", "Longest event_loop_blocked since start",
                                value=self.blocked.max_s)
        yield GaugeMetricFamily("event_loop_runqueue_wait_max_seconds",
                                "Longest event_loop_runqueue_wait since start", value=self.runqueue.max_s)
        yield GaugeMetricFamily("event_loop_late_max_seconds", "Longest lateness of a wake since start",
                                value=self.max_late_s)
        yield GaugeMetricFamily("event_loop_schedstat", "1 when the run-queue wait is read from "
                                "schedstat, 0 when it is unknown (blocked is then all the lateness)",
                                value=1.0 if self.schedstat else 0.0)
