"""Exact request accounting: a :class:`Recorder` in every load process, an :class:`Aggregator` on the master.

Each request is recorded once, by the process that sent it, into HDR histograms (µs) keyed by
stage and cold/warm kind, by completion second, and by model. Every second a recorder is
drained into an encoded payload (sent to the master by Locust message, or merged in place), and
the aggregator writes the result files as the run goes. Neither imports Locust.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmeperf.load.hist import HIGHEST_US, LOWEST_US, SIGNIFICANT_DIGITS, Histogram
from mmeperf.load.profile import LoadProfile, StagePlan
from mmeperf.results import files as F

__all__ = ["KINDS", "Aggregator", "Counts", "Recorder", "WorkerReporter", "stage_index_at"]

#: Cold/warm attribution of a request, from the MME's response headers.
KINDS: tuple[str, ...] = ("warm", "cold", "unknown")
SUMMARY_PERCENTILES: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0)
DISTRIBUTION_PERCENTILES: tuple[float, ...] = (
    0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 90.0, 95.0, 97.5, 99.0, 99.5,
    99.75, 99.9, 99.95, 99.975, 99.99, 99.999, 100.0,
)


def stage_index_at(plans: list[StagePlan], t_since_load_start: float) -> int:
    """The stage a moment belongs to (before the first: 0, after the last: the last)."""
    index = 0
    for plan in plans:
        if t_since_load_start >= plan.start_s:
            index = plan.index
    return index


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


class Recorder:
    """Per-process buffers of one second's requests; :meth:`drain` turns them into a payload."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._stage_counts: dict[int, Counts] = defaultdict(Counts)
        self._stage_values: dict[tuple[int, str], list[int]] = defaultdict(list)
        self._second_counts: dict[int, Counts] = defaultdict(Counts)
        self._second_values: dict[int, list[int]] = defaultdict(list)
        self._model_counts: dict[str, Counts] = defaultdict(Counts)
        self._model_values: dict[str, list[int]] = defaultdict(list)
        self._failures: dict[tuple[int, str, int, str], list[Any]] = {}
        self.pending = 0

    def record(
        self,
        *,
        stage: int,
        model: str,
        latency_us: int,
        ok: bool,
        kind: str,
        sent_at: float,
        done_at: float,
        late: bool = False,
        status: int = 200,
        error_code: str | None = None,
        message: str | None = None,
    ) -> None:
        """Count one request (success or failure) exactly once."""
        latency_us = max(int(latency_us), 0)
        self._stage_counts[stage].add_request(latency_us, ok, kind, late, sent_at)
        self._stage_values[(stage, kind)].append(latency_us)
        second = int(done_at)
        self._second_counts[second].add_request(latency_us, ok, kind, late, sent_at)
        self._second_values[second].append(latency_us)
        self._model_counts[model].add_request(latency_us, ok, kind, late, sent_at)
        self._model_values[model].append(latency_us)
        if not ok:
            key = (stage, model, int(status), error_code or "")
            entry = self._failures.get(key)
            if entry is None:
                self._failures[key] = [1, (message or "")[:300]]
            else:
                entry[0] += 1
        self.pending += 1

    def drain(self, pause: Callable[[], None] | None = None) -> dict[str, Any]:
        """Everything recorded since the last drain as sparse HDR histograms; then start afresh.

        The buffers are swapped out first, so requests recorded while the payload is built
        (``pause`` lets a load process's other greenlets run) land in the next drain.
        """
        stage_counts, stage_values = self._stage_counts, self._stage_values
        second_counts, second_values = self._second_counts, self._second_values
        model_counts, model_values = self._model_counts, self._model_values
        failures, pending = self._failures, self.pending
        self._reset()
        payload: dict[str, Any] = {"stages": {}, "seconds": {}, "models": {}, "failures": []}
        for stage, counts in stage_counts.items():
            hists: dict[str, Any] = {}
            for kind in KINDS:
                values = stage_values.get((stage, kind))
                if values:
                    hists[kind] = _sparse(values)
            payload["stages"][str(stage)] = {"counts": counts.to_list(), "hists": hists}
        for second, counts in second_counts.items():
            payload["seconds"][str(second)] = {"counts": counts.to_list(), "hist": _sparse(second_values[second])}
        for n, (model, counts) in enumerate(model_counts.items()):
            if pause is not None and n % 16 == 15:
                pause()
            payload["models"][model] = {"counts": counts.to_list(), "hist": _sparse(model_values[model])}
        payload["failures"] = [[*key, entry[0], entry[1]] for key, entry in failures.items()]
        payload["requests"] = pending
        return payload


class WorkerReporter:
    """A worker's side of the reports to the master: every report is numbered, the final one says how many.

    A regular report's drain yields to other greenlets (``pause``), so the final report, sent
    by another greenlet meanwhile, can reach the master *before* it; the count in the final
    report lets the master wait for every report instead of stopping at the final one.
    """

    def __init__(self, recorder: Recorder, send: Callable[[dict[str, Any]], None]) -> None:
        self.recorder = recorder
        self.send = send
        self.sent = 0
        self.finished = False

    def report(self, pause: Callable[[], None] | None = None) -> None:
        """Send what was recorded since the last report (nothing once the final one is out)."""
        if self.finished or not self.recorder.pending:
            return
        # Counted before the drain can yield: a final report sent meanwhile includes this one.
        self.sent += 1
        payload = self.recorder.drain(pause)
        self.send({"final": False, "payload": payload})

    def final(self) -> None:
        """Send the last report, with the number of reports sent in all (itself included)."""
        self.finished = True
        payload = self.recorder.drain()
        self.sent += 1
        self.send({"final": True, "sent": self.sent, "payload": payload})


def _sparse(values: list[int]) -> dict[str, Any]:
    return Histogram.sparse_of(values)


@dataclass
class _Group:
    counts: Counts = field(default_factory=Counts)
    hist: Histogram = field(default_factory=Histogram)


class Aggregator:
    """Merges recorder payloads and writes the result folder, second by second."""

    def __init__(
        self,
        out_dir: Path,
        *,
        profile: LoadProfile,
        t0: float,
        labels: dict[str, Any] | None = None,
        lag_s: float = 1.0,
    ) -> None:
        self.out_dir = out_dir
        self.profile = profile
        self.plans = profile.stages()
        self.t0 = t0
        self.labels = labels or {}
        self.lag_s = lag_s
        self.load_start: float | None = None
        self.stop_at: float | None = None
        self.stop_reason: str | None = None
        self.status = "starting"
        self.users_at: dict[int, int] = {}
        self.stage_kind: dict[tuple[int, str], _Group] = {}
        self.stage_counts: dict[int, Counts] = defaultdict(Counts)
        self.models: dict[str, _Group] = {}
        self.seconds: dict[int, _Group] = {}
        self.failures: dict[tuple[int, str, int, str], list[Any]] = {}
        self.requests_merged = 0
        self.late_history_requests = 0
        self.payloads_merged = 0
        self.reports_received: dict[str, int] = {}
        self.reports_expected: dict[str, int] = {}
        self._next_second: int | None = None
        self._plateau_checked: set[int] = set()
        self._last_histograms_write = 0.0
        self._window_s = max(
            [s.window for s in (profile.stop.latency, profile.stop.error_rate) if s is not None] or [0.0]
        )
        self._history = F.AppendingCsv(out_dir / F.HISTORY_CSV, F.HISTORY_COLUMNS)
        #: Called between the steps of a flush, so a load process's event loop is never held long.
        self.pause: Callable[[], None] = lambda: None

    # --- merging --------------------------------------------------------------------------

    def merge(self, payload: dict[str, Any]) -> None:
        """Add one recorder payload (from any process) to the run's totals."""
        self.payloads_merged += 1
        self.requests_merged += int(payload.get("requests", 0))
        for stage_s, data in payload.get("stages", {}).items():
            stage = int(stage_s)
            self.stage_counts[stage].merge(Counts.from_list(data["counts"]))
            for kind, encoded in data.get("hists", {}).items():
                group = self.stage_kind.setdefault((stage, kind), _Group())
                group.hist.add_sparse(encoded)
        for second_s, data in payload.get("seconds", {}).items():
            second = int(second_s)
            if self._next_second is not None and second < self._next_second:
                # Its history row is already written; the stage and model totals still count it.
                self.late_history_requests += int(data["counts"][0])
                continue
            group = self.seconds.setdefault(second, _Group())
            group.counts.merge(Counts.from_list(data["counts"]))
            group.hist.add_sparse(data["hist"])
        for model, data in payload.get("models", {}).items():
            group = self.models.setdefault(model, _Group())
            group.counts.merge(Counts.from_list(data["counts"]))
            group.hist.add_sparse(data["hist"])
        for stage, model, status, code, count, message in payload.get("failures", []):
            key = (int(stage), str(model), int(status), str(code))
            entry = self.failures.get(key)
            if entry is None:
                self.failures[key] = [int(count), message]
            else:
                entry[0] += int(count)

    def receive(self, node: str, message: dict[str, Any]) -> None:
        """A worker's report (see :class:`WorkerReporter`): merge its payload and count it."""
        self.merge(message["payload"])
        received = self.reports_received[node] = self.reports_received.get(node, 0) + 1
        if message.get("final"):
            self.reports_expected[node] = int(message.get("sent", received))

    def workers_done(self) -> int:
        """Workers whose final report and every report before it have been merged."""
        return sum(1 for node, n in self.reports_expected.items() if self.reports_received.get(node, 0) >= n)

    def note_users(self, now: float, users: int) -> None:
        self.users_at[int(now)] = users

    # --- timeline -------------------------------------------------------------------------

    def stage_at(self, wall: float) -> int:
        if self.load_start is None:
            return 0
        return stage_index_at(self.plans, wall - self.load_start)

    def stage_window(self, plan: StagePlan, now: float) -> tuple[float, float] | None:
        """Wall-clock (start, end) of a stage as it ran (cut at a stop); None if not reached."""
        if self.load_start is None:
            return None
        start = self.load_start + plan.start_s
        end = self.load_start + plan.end_s
        limit = min(now, self.stop_at) if self.stop_at is not None else now
        if start >= limit and plan.index > 0:
            return None
        return start, max(min(end, limit), start)

    # --- stop conditions ------------------------------------------------------------------

    def check_stop(self, now: float) -> str | None:
        """A reason to end the run now, or None."""
        stop = self.profile.stop
        if self._next_second is not None and (stop.latency or stop.error_rate):
            last = self._next_second  # seconds < last are complete
            if stop.latency is not None:
                window = [g for s, g in self.seconds.items() if last - stop.latency.window <= s < last]
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
                window = [g for s, g in self.seconds.items() if last - stop.error_rate.window <= s < last]
                requests = sum(g.counts.requests for g in window)
                failures = sum(g.counts.failures for g in window)
                if requests >= stop.error_rate.min_requests and failures / requests > stop.error_rate.threshold:
                    return (
                        f"error rate {failures / requests:.2%} over the last {stop.error_rate.window:g} s "
                        f"exceeded {stop.error_rate.threshold:.2%}"
                    )
        if stop.throughput_plateau is not None and self.load_start is not None:
            for plan in self.plans[1:]:
                if plan.index in self._plateau_checked or now < self.load_start + plan.end_s + self.lag_s:
                    continue
                self._plateau_checked.add(plan.index)
                prev, cur = self._stage_rps(plan.index - 1, now), self._stage_rps(plan.index, now)
                if prev and cur is not None and cur < prev * (1 + stop.throughput_plateau.min_growth):
                    return (
                        f"throughput stopped growing: stage {plan.index} ({plan.name}) reached "
                        f"{cur:.1f} req/s after {prev:.1f} req/s"
                    )
        return None

    def _stage_rps(self, index: int, now: float) -> float | None:
        window = self.stage_window(self.plans[index], now)
        if window is None or window[1] <= window[0]:
            return None
        return self.stage_counts[index].requests / (window[1] - window[0]) if index in self.stage_counts else 0.0

    # --- writing --------------------------------------------------------------------------

    def flush(self, now: float | None = None, *, final: bool = False) -> None:
        """Write everything known so far (history rows up to ``now - lag``)."""
        now = time.time() if now is None else now
        self._write_history(now, final=final)
        self.pause()
        self._write_summary(now)
        self.pause()
        self._write_per_model()
        self.pause()
        self._write_failures()
        self._write_distribution()
        self.pause()
        # The standard encoding costs ~0.5 ms per histogram: every 30 s and at the end is enough.
        if final or now - self._last_histograms_write >= 30.0:
            self._write_histograms()
            self._last_histograms_write = now
        F.atomic_write_json(self.out_dir / F.RUN_JSON, self.run_info(now))
        F.atomic_write_json(self.out_dir / F.PROGRESS_JSON, self.progress(now))

    def close(self) -> None:
        self._history.close()

    def _write_history(self, now: float, *, final: bool) -> None:
        if self.load_start is None:
            return
        if self._next_second is None:
            self._next_second = int(self.load_start)
        horizon = int(now - self.lag_s) if not final else max([int(now), *self.seconds.keys()]) + 1
        rows = []
        while self._next_second < horizon:
            s = self._next_second
            group = self.seconds.get(s)
            counts = group.counts if group else Counts()
            pct = group.hist.percentiles_ms(SUMMARY_PERCENTILES) if group else {}
            rows.append(
                {
                    "timestamp": s + 1,
                    "elapsed_s": round(s + 1 - self.t0, 3),
                    "stage": self.stage_at(s + 0.5),
                    "users": self.users_at.get(s + 1, self.users_at.get(s)),
                    "requests": counts.requests,
                    "failures": counts.failures,
                    "rps": counts.requests,
                    "ok_rps": counts.requests - counts.failures,
                    "failures_per_s": counts.failures,
                    "p50_ms": pct.get(50.0),
                    "p90_ms": pct.get(90.0),
                    "p95_ms": pct.get(95.0),
                    "p99_ms": pct.get(99.0),
                    "max_ms": counts.max_us / 1000.0 if counts.requests else None,
                    "cold_requests": counts.cold,
                    "late_sends": counts.late,
                }
            )
            self._next_second += 1
        if rows:
            self._history.append(rows)
        # Keep per-second histograms only as long as a stop window may look at them.
        keep_from = self._next_second - math.ceil(self._window_s) - 1
        for s in [s for s in self.seconds if s < keep_from]:
            del self.seconds[s]

    def _stage_hist(self, stage: int, kinds: tuple[str, ...] = KINDS) -> Histogram:
        merged = Histogram()
        for kind in kinds:
            group = self.stage_kind.get((stage, kind))
            if group is not None:
                merged.merge(group.hist)
        return merged

    def summary_rows(self, now: float) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for plan in self.plans:
            window = self.stage_window(plan, now)
            counts = self.stage_counts.get(plan.index)
            if window is None and counts is None:
                continue
            counts = counts or Counts()
            duration = (window[1] - window[0]) if window else 0.0
            all_pct = self._stage_hist(plan.index).percentiles_ms(SUMMARY_PERCENTILES)
            warm = self._stage_hist(plan.index, ("warm",)).percentiles_ms((50.0, 99.0))
            cold = self._stage_hist(plan.index, ("cold",)).percentiles_ms((50.0, 99.0))
            users = plan.phase.users_at(plan.duration_s) if plan.phase is not None else plan.users
            rows.append(
                {
                    "stage": plan.index,
                    "name": plan.name,
                    "instance_type": self.labels.get("instance_type"),
                    "platform": self.labels.get("platform"),
                    "max_models_loaded": self.labels.get("max_models_loaded"),
                    "users": users,
                    "target_rate": plan.rate,
                    "start_s": plan.start_s,
                    "duration_s": round(duration, 3),
                    "requests": counts.requests,
                    "failures": counts.failures,
                    "failure_pct": 100.0 * counts.failures / counts.requests if counts.requests else 0.0,
                    "rps": counts.requests / duration if duration > 0 else None,
                    "ok_rps": (counts.requests - counts.failures) / duration if duration > 0 else None,
                    "send_rate": counts.send_rate,
                    "p50_ms": all_pct[50.0],
                    "p90_ms": all_pct[90.0],
                    "p95_ms": all_pct[95.0],
                    "p99_ms": all_pct[99.0],
                    "max_ms": counts.max_us / 1000.0 if counts.requests else None,
                    "mean_ms": counts.mean_ms,
                    "cold_requests": counts.cold,
                    "cold_share": counts.cold / counts.requests if counts.requests else None,
                    "warm_p50_ms": warm[50.0],
                    "warm_p99_ms": warm[99.0],
                    "cold_p50_ms": cold[50.0],
                    "cold_p99_ms": cold[99.0],
                    "late_sends": counts.late,
                }
            )
        return rows

    def _write_summary(self, now: float) -> None:
        F.atomic_write_csv(self.out_dir / F.SUMMARY_CSV, F.SUMMARY_COLUMNS, self.summary_rows(now))

    def _write_per_model(self) -> None:
        rows = []
        for n, model in enumerate(sorted(self.models)):
            if n % 16 == 15:
                self.pause()
            g = self.models[model]
            c = g.counts
            pct = g.hist.percentiles_ms(SUMMARY_PERCENTILES)
            rows.append(
                {
                    "model": model,
                    "requests": c.requests,
                    "failures": c.failures,
                    "failure_pct": 100.0 * c.failures / c.requests if c.requests else 0.0,
                    "cold_requests": c.cold,
                    "cold_share": c.cold / c.requests if c.requests else None,
                    "p50_ms": pct[50.0],
                    "p90_ms": pct[90.0],
                    "p95_ms": pct[95.0],
                    "p99_ms": pct[99.0],
                    "max_ms": c.max_us / 1000.0 if c.requests else None,
                    "mean_ms": c.mean_ms,
                }
            )
        F.atomic_write_csv(self.out_dir / F.PER_MODEL_CSV, F.PER_MODEL_COLUMNS, rows)

    def _write_failures(self) -> None:
        rows = [
            {"stage": k[0], "model": k[1], "status": k[2], "error_code": k[3], "count": v[0], "message": v[1]}
            for k, v in sorted(self.failures.items())
        ]
        F.atomic_write_csv(self.out_dir / F.FAILURES_CSV, F.FAILURES_COLUMNS, rows)

    def _distribution(self, stage: str, kind: str, hist: Histogram) -> list[dict[str, Any]]:
        total = hist.total
        if total == 0:
            return []
        values = hist.percentiles_ms(DISTRIBUTION_PERCENTILES)
        return [
            {"stage": stage, "kind": kind, "percentile": p, "latency_ms": values[p], "count": total}
            for p in DISTRIBUTION_PERCENTILES
        ]

    def _write_distribution(self) -> None:
        rows: list[dict[str, Any]] = []
        stages = sorted({s for s, _ in self.stage_kind})
        for kind in (*KINDS, "all"):
            kinds = KINDS if kind == "all" else (kind,)
            run_hist = Histogram()
            for stage in stages:
                run_hist.merge(self._stage_hist(stage, kinds))
            rows.extend(self._distribution("all", kind, run_hist))
        for stage in stages:
            for kind in (*KINDS, "all"):
                kinds = KINDS if kind == "all" else (kind,)
                rows.extend(self._distribution(str(stage), kind, self._stage_hist(stage, kinds)))
        F.atomic_write_csv(self.out_dir / F.LATENCY_DISTRIBUTION_CSV, F.LATENCY_DISTRIBUTION_COLUMNS, rows)

    def _write_histograms(self) -> None:
        data = {
            "unit": "microseconds",
            "lowest": LOWEST_US,
            "highest": HIGHEST_US,
            "significant_digits": SIGNIFICANT_DIGITS,
            "stages": {
                f"{stage}/{kind}": g.hist.encode() for (stage, kind), g in sorted(self.stage_kind.items())
            },
            "models": {model: g.hist.encode() for model, g in sorted(self.models.items())},
        }
        F.atomic_write_json(self.out_dir / F.HISTOGRAMS_JSON, data)

    def totals(self, now: float) -> dict[str, Any]:
        total = Counts()
        for c in self.stage_counts.values():
            total.merge(c)
        run_hist = Histogram()
        for stage in {s for s, _ in self.stage_kind}:
            run_hist.merge(self._stage_hist(stage))
        pct = run_hist.percentiles_ms(SUMMARY_PERCENTILES)
        duration = 0.0
        for plan in self.plans:
            window = self.stage_window(plan, now)
            if window:
                duration += window[1] - window[0]
        return {
            "requests": total.requests,
            "failures": total.failures,
            "cold_requests": total.cold,
            "late_sends": total.late,
            "duration_s": round(duration, 3),
            "rps": total.requests / duration if duration > 0 else None,
            "ok_rps": (total.requests - total.failures) / duration if duration > 0 else None,
            "p50_ms": pct[50.0],
            "p90_ms": pct[90.0],
            "p95_ms": pct[95.0],
            "p99_ms": pct[99.0],
            "max_ms": total.max_us / 1000.0 if total.requests else None,
        }

    def run_info(self, now: float) -> dict[str, Any]:
        return {
            "status": self.status,
            "stop_reason": self.stop_reason,
            "t0": self.t0,
            "load_start": self.load_start,
            "stopped_at": self.stop_at,
            "updated_at": now,
            "labels": self.labels,
            "totals": self.totals(now),
            "late_history_requests": self.late_history_requests,
            "payloads_merged": self.payloads_merged,
            "worker_reports": {
                node: {"received": n, "sent": self.reports_expected.get(node)}
                for node, n in sorted(self.reports_received.items())
            },
        }

    def progress(self, now: float) -> dict[str, Any]:
        last = self._next_second - 1 if self._next_second is not None else None
        group = self.seconds.get(last) if last is not None else None
        totals_requests = sum(c.requests for c in self.stage_counts.values())
        totals_failures = sum(c.failures for c in self.stage_counts.values())
        return {
            "status": self.status,
            "elapsed_s": round(now - self.t0, 3),
            "users": self.users_at.get(int(now), self.users_at.get(int(now) - 1, 0)),
            "rps": group.counts.requests if group else 0,
            "requests": totals_requests,
            "failures": totals_failures,
            "stage": self.stage_at(now),
        }
