"""How fast this host's CPU runs the same work now: hot (busy) and after a sleep, and by gap.

A shared or virtual host does not run a fixed amount of work in a fixed CPU time: other tenants
take turbo headroom or a sibling hyperthread (the same work took 0.6 ms in one minute and 1.0 ms
in the next on the 2-core machine mmeperf is developed on), and a thread that wakes after a
sleep runs slower for a while (up to ~1.8x there). The planner's CPU figures are measured hot;
:class:`HostSpeedProbe` measures the speed beside a run, so a prediction can be made for the
speed the host had, and :func:`measure_idle_slowdown` the slowdown by how long a thread slept.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

from mmeperf.planner.calibration import IdleSlowdown, Measured, Source

__all__ = ["IDLE_GAPS_S", "HostSpeed", "HostSpeedProbe", "measure_idle_slowdown"]

#: Seconds asleep at which measure_idle_slowdown times its work.
IDLE_GAPS_S: tuple[float, ...] = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
#: Loop iterations of the reference work: about 0.5-1 ms of one core.
WORK_ITERATIONS = 8000


def probe_work(n: int = WORK_ITERATIONS) -> int:
    """The reference work: interpreter work like a request's (bytecode, small ints, a dict, a list)."""
    total, seen = 0, {}
    for i in range(n):
        total += i * i
        if i % 64 == 0:
            seen[i] = [i, total]
    return total + len(seen)


@dataclass(frozen=True)
class HostSpeed:
    """What a :class:`HostSpeedProbe` measured: the reference work's thread CPU seconds when hot
    (right after other work; median) and its slowdown after each sleep it tried."""

    hot_s: float
    idle_points: tuple[tuple[float, float], ...]
    """(seconds asleep, median CPU factor of the first piece after it over the hot piece)."""
    samples: int

    @property
    def idle_factor(self) -> float:
        """The slowdown after the longest sleep tried."""
        return self.idle_points[-1][1] if self.idle_points else 1.0

    def idle_slowdown(self, what: str) -> IdleSlowdown:
        """The slowdown curve as a calibration keeps it."""
        points = list(self.idle_points)
        if not points or points[0][0] > 0:
            points.insert(0, (0.0, 1.0))  # no sleep: no slowdown
        return IdleSlowdown(points=points, samples=self.samples, source=Source(
            measurement=f"HostSpeedProbe beside {what}: per gap, median thread CPU of the reference work after "
                        "sleeping it over the same work hot", note=f"hot median {self.hot_s * 1e3:.3f} ms"))

    def measured(self, what: str) -> Measured:
        return Measured(value=self.hot_s, unit="cpu_s", samples=self.samples, source=Source(
            measurement=f"HostSpeedProbe beside {what}: median thread CPU of the reference work, hot",
            note=f"slowdown after {self.idle_points[-1][0] * 1e3:g} ms asleep: {self.idle_factor:.2f}"
            if self.idle_points else None))


class HostSpeedProbe:
    """A thread that measures the host's speed until stopped (a context manager).

    Each probe: pause ``pause_s``; two pieces of the reference work back to back, the second
    timed (hot); sleep the next of ``gaps_s`` (in turn); one piece timed (after that gap). The
    pause keeps its own share of a core near 3-5%, so it can run beside the runs it measures
    (and should run beside every run it is compared with, so all bear the same load).
    """

    def __init__(self, pause_s: float = 0.03, *, gaps_s: Sequence[float] = IDLE_GAPS_S,
                 work_iterations: int = WORK_ITERATIONS) -> None:
        if pause_s < 0 or work_iterations < 1 or not gaps_s or min(gaps_s) <= 0:
            raise ValueError("HostSpeedProbe needs pause_s >= 0, work_iterations >= 1 and gaps > 0")
        self.pause_s = pause_s
        self.gaps_s = tuple(sorted(set(float(g) for g in gaps_s)))
        self.work_iterations = work_iterations
        self._hot: list[float] = []
        self._at: list[float] = []  # time.time() of each probe
        self._ratios: list[tuple[float, float]] = []  # (gap, factor)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> HostSpeedProbe:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="host-speed-probe", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> HostSpeed:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join()
        return self.speed()

    def __enter__(self) -> HostSpeedProbe:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def mark(self) -> int:
        """The number of probes so far: pass it to :meth:`speed` for the ones after now."""
        with self._lock:
            return len(self._hot)

    def speed(self, since: int = 0) -> HostSpeed:
        """Medians of the probes so far (from probe ``since`` on: see :meth:`mark`)."""
        with self._lock:
            hot, ratios = self._hot[since:], self._ratios[since:]
        if not hot:
            raise RuntimeError("HostSpeedProbe has no samples yet: run it longer than one probe")
        points = tuple(
            (gap, max(statistics.median(r for g, r in ratios if g == gap), 1.0))
            for gap in self.gaps_s if any(g == gap for g, _ in ratios)
        )
        return HostSpeed(hot_s=statistics.median(hot), idle_points=points, samples=len(hot))

    def speed_trace(self, start: float, reference_hot_s: float, *, since: int = 0,
                    bin_s: float = 1.0) -> tuple[tuple[float, float], ...]:
        """The hot speed over time as (seconds since ``start`` (an epoch time, e.g. a run's
        load start), median hot CPU of the bin over ``reference_hot_s``), one point per ``bin_s``
        with probes, from probe ``since`` on: HostModel.speed_trace."""
        if reference_hot_s <= 0 or bin_s <= 0:
            raise ValueError("speed_trace needs reference_hot_s > 0 and bin_s > 0")
        with self._lock:
            at, hot = self._at[since:], self._hot[since:]
        bins: dict[int, list[float]] = {}
        for t, h in zip(at, hot, strict=True):
            if t >= start:
                bins.setdefault(int((t - start) // bin_s), []).append(h)
        return tuple((k * bin_s, statistics.median(v) / reference_hot_s) for k, v in sorted(bins.items()))

    def _run(self) -> None:
        n = self.work_iterations
        clock = time.thread_time
        k = 0
        while not self._stop.wait(self.pause_s):
            probe_work(n)
            t0 = clock()
            probe_work(n)
            hot = clock() - t0
            gap = self.gaps_s[k % len(self.gaps_s)]
            k += 1
            time.sleep(gap)
            t1 = clock()
            probe_work(n)
            cold = clock() - t1
            if hot > 0:
                with self._lock:
                    self._hot.append(hot)
                    self._at.append(time.time())
                    self._ratios.append((gap, cold / hot))


def measure_idle_slowdown(seconds: float = 10.0, *, gaps_s: Sequence[float] = IDLE_GAPS_S) -> IdleSlowdown:
    """This host's CPU factor for work a thread starts after sleeping, by how long it slept: a
    :class:`HostSpeedProbe` run alone for ``seconds`` (without pauses). Run it with the system
    under test idle."""
    if seconds <= 0:
        raise ValueError("measure_idle_slowdown needs seconds > 0")
    probe = HostSpeedProbe(0.0, gaps_s=gaps_s).start()
    time.sleep(seconds)
    return probe.stop().idle_slowdown("nothing else (measure_idle_slowdown)")
