"""The counts a run is made of: exact counters and an HDR histogram per group of requests.

A :class:`~mmeperf.load.recorder.Recorder` fills :class:`Counts` per process; the aggregator
merges them into a :class:`RunTally`, which the stop policy and the run folder's writers read.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from mmeperf.load.hist import Histogram
from mmeperf.protocol import CacheState

__all__ = ["KINDS", "WARMUP_STAGE", "Counts", "FailureKey", "Group", "RunTally"]

#: Cold/warm attribution of a request: its cache state's latency kind (hit: warm, miss: cold).
KINDS: tuple[str, ...] = tuple(state.latency_kind for state in CacheState)

#: The stage index of warm-up requests: counted apart, in no measured figure.
WARMUP_STAGE = -1

#: (stage, model, HTTP status, error code) of a group of failed requests.
FailureKey = tuple[int, str, int, str]


@dataclass
class Counts:
    """Exact counters of a group of requests."""

    requests: int = 0
    failures: int = 0
    cold: int = 0
    warm: int = 0
    late: int = 0
    sum_us: int = 0
    max_us: int = 0
    first_send: float = math.inf
    last_send: float = 0.0

    def add_request(self, latency_us: int, ok: bool, kind: str, late: bool, sent_at: float) -> None:
        self.requests += 1
        if not ok:
            self.failures += 1
        if kind == "cold":
            self.cold += 1
        elif kind == "warm":
            self.warm += 1
        if late:
            self.late += 1
        self.sum_us += latency_us
        if latency_us > self.max_us:
            self.max_us = latency_us
        if sent_at < self.first_send:
            self.first_send = sent_at
        if sent_at > self.last_send:
            self.last_send = sent_at

    def merge(self, other: Counts) -> None:
        self.requests += other.requests
        self.failures += other.failures
        self.cold += other.cold
        self.warm += other.warm
        self.late += other.late
        self.sum_us += other.sum_us
        self.max_us = max(self.max_us, other.max_us)
        self.first_send = min(self.first_send, other.first_send)
        self.last_send = max(self.last_send, other.last_send)

    def to_list(self) -> list[Any]:
        first = None if math.isinf(self.first_send) else self.first_send
        return [self.requests, self.failures, self.cold, self.warm, self.late, self.sum_us,
                self.max_us, first, self.last_send]

    @classmethod
    def from_list(cls, data: list[Any]) -> Counts:
        c = cls(*data[:7])
        c.first_send = math.inf if data[7] is None else float(data[7])
        c.last_send = float(data[8])
        return c

    @property
    def mean_ms(self) -> float | None:
        return self.sum_us / self.requests / 1000.0 if self.requests else None

    @property
    def send_rate(self) -> float | None:
        """Sends per second between the first and the last send of the group."""
        span = self.last_send - self.first_send
        return (self.requests - 1) / span if self.requests > 1 and span > 0 else None


@dataclass
class Group:
    """Counts and latencies (µs) of one group of requests: a stage and kind, a second, a model."""

    counts: Counts = field(default_factory=Counts)
    hist: Histogram = field(default_factory=Histogram)


@dataclass
class RunTally:
    """Everything merged so far in a run, by stage and kind, by stage, by model and by second."""

    stage_kind: dict[tuple[int, str], Group] = field(default_factory=dict)
    stage_counts: dict[int, Counts] = field(default_factory=lambda: defaultdict(Counts))
    models: dict[str, Group] = field(default_factory=dict)
    #: Per completion second; seconds no stop window looks at any more are dropped.
    seconds: dict[int, Group] = field(default_factory=dict)
    #: (stage, model, status, error code) -> [count, first message].
    failures: dict[FailureKey, list[Any]] = field(default_factory=dict)

    def stage_hist(self, stage: int, kinds: tuple[str, ...] = KINDS) -> Histogram:
        """One stage's latencies, of the given kinds merged."""
        merged = Histogram()
        for kind in kinds:
            group = self.stage_kind.get((stage, kind))
            if group is not None:
                merged.merge(group.hist)
        return merged

    def stages(self) -> list[int]:
        """The measured stages that recorded a request, in order (never the warm-up)."""
        return sorted({s for s, _ in self.stage_kind if s >= 0})

    def total(self) -> Counts:
        """Counts of the whole measured run (the warm-up excluded)."""
        total = Counts()
        for stage, c in self.stage_counts.items():
            if stage >= 0:
                total.merge(c)
        return total
