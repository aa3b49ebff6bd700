"""Open-loop send schedules: when each request of a process should leave, whatever the server does.

With ``processes`` load processes, process ``index`` takes every ``processes``-th slot of the
constant schedule (so the merged arrivals are evenly spaced), or a Poisson process at
``rate / processes`` (the superposition of Poisson processes is Poisson at the summed rate).
A trace replay (:class:`TraceSchedule`) deals the trace's rows out the same way: process
``index`` sends rows ``index``, ``index + processes``, ...

Both hand out slots with :meth:`claim`: (scheduled wall-clock time, trace row or -1).
"""

from __future__ import annotations

import random
from typing import Literal, Protocol

import numpy as np

from mmeperf.load.profile import StagePlan

__all__ = ["OpenLoopSchedule", "SendSchedule", "TraceSchedule"]


class SendSchedule(Protocol):
    """What a load process asks for its next send slot."""

    issued: int

    def claim(self) -> tuple[float, int] | None:
        """(scheduled wall-clock time, trace row or -1), or None when the schedule is over."""
        ...


class OpenLoopSchedule:
    """Hands out scheduled send times (wall clock) in order; None when the plan is over."""

    def __init__(
        self,
        plans: list[StagePlan],
        *,
        load_start: float,
        index: int = 0,
        processes: int = 1,
        arrivals: Literal["constant", "poisson"] = "constant",
        seed: int | None = None,
    ) -> None:
        if processes < 1 or not 0 <= index < processes:
            raise ValueError(f"index {index} must be in [0, {processes})")
        self._plans = [p for p in plans if p.rate]
        self._load_start = load_start
        self._index = index
        self._processes = processes
        self._poisson = arrivals == "poisson"
        self._rng = random.Random(seed)
        self._stage = 0
        self._k = 0
        self._t: float | None = None
        self.issued = 0

    def claim(self) -> tuple[float, int] | None:
        t = self.next()
        return None if t is None else (t, -1)

    def next(self) -> float | None:
        while self._stage < len(self._plans):
            plan = self._plans[self._stage]
            assert plan.rate is not None
            start = self._load_start + plan.start_s
            end = start + plan.duration_s
            if self._poisson:
                base = start if self._t is None else self._t
                t = base + self._rng.expovariate(plan.rate / self._processes)
                self._t = t
            else:
                # Multiplying, not accumulating, keeps the schedule free of rounding drift.
                t = start + (self._k * self._processes + self._index) / plan.rate
                self._k += 1
            if t < end:
                self.issued += 1
                return t
            self._stage += 1
            self._k = 0
            self._t = None
        return None


class TraceSchedule:
    """A trace's sends for one load process: rows ``index``, ``index + processes``, ... in time order."""

    def __init__(self, offsets: np.ndarray, *, load_start: float, index: int = 0, processes: int = 1) -> None:
        if processes < 1 or not 0 <= index < processes:
            raise ValueError(f"index {index} must be in [0, {processes})")
        rows = np.arange(index, offsets.size, processes, dtype=np.int64)
        self._times: list[float] = (load_start + np.asarray(offsets, dtype=np.float64)[rows]).tolist()
        self._rows: list[int] = rows.tolist()
        self._k = 0
        self.issued = 0

    def __len__(self) -> int:
        return len(self._rows)

    def claim(self) -> tuple[float, int] | None:
        k = self._k
        if k >= len(self._rows):
            return None
        self._k = k + 1
        self.issued += 1
        return self._times[k], self._rows[k]
