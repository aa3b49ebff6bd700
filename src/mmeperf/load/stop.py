"""The stop policy: when a run's :class:`~mmeperf.load.profile.StopConditions` say it must end.

Latency and error-rate conditions look at the last complete seconds; the throughput plateau
compares each finished stage with the one before it, once.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from mmeperf.load.hist import Histogram
from mmeperf.load.profile import StagePlan, StopConditions
from mmeperf.load.tally import RunTally

__all__ = ["StopPolicy"]


class StopPolicy:
    """Applies a profile's stop conditions to a run's tally as it grows."""

    def __init__(self, conditions: StopConditions, plans: list[StagePlan], *, lag_s: float = 1.0) -> None:
        self.conditions = conditions
        self.plans = plans
        self.lag_s = lag_s
        self._plateau_checked: set[int] = set()

    @property
    def window_s(self) -> float:
        """How many past seconds a condition looks at (the tally must keep them)."""
        c = self.conditions
        return max([s.window for s in (c.latency, c.error_rate) if s is not None] or [0.0])

    @property
    def seconds_kept(self) -> int:
        """Complete seconds to keep per-second histograms for, before the one being written."""
        return math.ceil(self.window_s) + 1

    def check(
        self,
        now: float,
        tally: RunTally,
        *,
        complete_before: int | None,
        load_start: float | None,
        stage_rps: Callable[[int], float | None],
    ) -> str | None:
        """A reason to end the run now, or None.

        ``complete_before``: seconds before it are complete (None before the first history row);
        ``stage_rps(index)``: a stage's requests per second as it ran so far.
        """
        stop = self.conditions
        if complete_before is not None and (stop.latency or stop.error_rate):
            last = complete_before
            if stop.latency is not None:
                window = [g for s, g in tally.seconds.items() if last - stop.latency.window <= s < last]
                merged = Histogram()
                n = 0
                for g in window:
                    merged.merge(g.hist)
                    n += g.counts.requests
                if n >= stop.latency.min_requests:
                    value = merged.percentiles_ms([stop.latency.percentile])[stop.latency.percentile]
                    if value is not None and value > stop.latency.threshold_ms:
                        return (
                            f"p{stop.latency.percentile:g} latency {value:.1f} ms over the last "
                            f"{stop.latency.window:g} s exceeded {stop.latency.threshold_ms:g} ms"
                        )
            if stop.error_rate is not None:
                window = [g for s, g in tally.seconds.items() if last - stop.error_rate.window <= s < last]
                requests = sum(g.counts.requests for g in window)
                failures = sum(g.counts.failures for g in window)
                if requests >= stop.error_rate.min_requests and failures / requests > stop.error_rate.threshold:
                    return (
                        f"error rate {failures / requests:.2%} over the last {stop.error_rate.window:g} s "
                        f"exceeded {stop.error_rate.threshold:.2%}"
                    )
        if stop.throughput_plateau is not None and load_start is not None:
            for plan in self.plans[1:]:
                if plan.index in self._plateau_checked or now < load_start + plan.end_s + self.lag_s:
                    continue
                self._plateau_checked.add(plan.index)
                prev, cur = stage_rps(plan.index - 1), stage_rps(plan.index)
                if prev and cur is not None and cur < prev * (1 + stop.throughput_plateau.min_growth):
                    return (
                        f"throughput stopped growing: stage {plan.index} ({plan.name}) reached "
                        f"{cur:.1f} req/s after {prev:.1f} req/s"
                    )
        return None
