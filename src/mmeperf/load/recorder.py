"""Exact request accounting: a :class:`Recorder` in every load process, an :class:`Aggregator` on the master.

Each request is recorded once, by the process that sent it, into HDR histograms (µs) keyed by
stage and cold/warm kind, by completion second, and by model. Every second a recorder is
drained into an encoded payload (sent to the master by Locust message, or merged in place), and
the aggregator merges the payloads into the run's tally, asks the stop policy
(:mod:`.stop`) whether to end, and has the run folder written (:mod:`.runwriter`) as the run
goes. Neither imports Locust.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmeperf.load.hist import Histogram
from mmeperf.load.profile import LoadProfile, StagePlan
from mmeperf.load.runwriter import RunFolderWriter, run_totals, warmup_doc
from mmeperf.load.stop import StopPolicy
from mmeperf.load.tally import KINDS, WARMUP_STAGE, Counts, Group, RunTally
from mmeperf.load.workers import WorkerRoster

__all__ = ["KINDS", "Aggregator", "Counts", "Recorder", "WorkerReporter", "encode", "stage_index_at"]


def stage_index_at(plans: list[StagePlan], t_since_load_start: float) -> int:
    """The stage a moment belongs to (before the first: 0, after the last: the last)."""
    index = 0
    for plan in plans:
        if t_since_load_start >= plan.start_s:
            index = plan.index
    return index


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
        self._lateness: list[int] = []
        self._client_lag: list[int] = []
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
        lateness_us: int | None = None,
        client_lag_us: int | None = None,
    ) -> None:
        """Count one request (success or failure) exactly once.

        ``lateness_us``: how long after its scheduled time a scheduled send left (open loop,
        trace replay); the measured ones make run.json's ``lateness`` distribution.
        ``client_lag_us``: how long after the response reached this host (the kernel's receive
        stamp, :mod:`mmeperf.load.rxstamp`) the load process read it; already taken out of
        ``latency_us``; the measured ones make run.json's ``client_lag`` distribution.
        """
        latency_us = max(int(latency_us), 0)
        self._stage_counts[stage].add_request(latency_us, ok, kind, late, sent_at)
        self._stage_values[(stage, kind)].append(latency_us)
        self.pending += 1
        if stage == WARMUP_STAGE:  # its stage's counts and failures only: in no measured figure
            if not ok:
                self._fail(stage, model, status, error_code, message)
            return
        if lateness_us is not None:
            self._lateness.append(max(int(lateness_us), 0))
        if client_lag_us is not None:
            self._client_lag.append(max(int(client_lag_us), 0))
        second = int(done_at)
        self._second_counts[second].add_request(latency_us, ok, kind, late, sent_at)
        self._second_values[second].append(latency_us)
        self._model_counts[model].add_request(latency_us, ok, kind, late, sent_at)
        self._model_values[model].append(latency_us)
        if not ok:
            self._fail(stage, model, status, error_code, message)

    def _fail(self, stage: int, model: str, status: int, error_code: str | None, message: str | None) -> None:
        key = (stage, model, int(status), error_code or "")
        entry = self._failures.get(key)
        if entry is None:
            self._failures[key] = [1, (message or "")[:300]]
        else:
            entry[0] += 1

    def swap(self) -> _Buffers:
        """Take everything recorded so far and start afresh: O(1), safe in the request path.

        The buffers taken are no longer touched by :meth:`record`, so :func:`encode` may turn
        them into a payload in another thread while this process keeps sending.
        """
        taken = _Buffers(
            self._stage_counts, self._stage_values, self._second_counts, self._second_values,
            self._model_counts, self._model_values, self._failures, self.pending, self._lateness,
            self._client_lag,
        )
        self._reset()
        return taken

    def drain(self, pause: Callable[[], None] | None = None) -> dict[str, Any]:
        """Everything recorded since the last drain as sparse HDR histograms; then start afresh."""
        return encode(self.swap(), pause)


@dataclass
class _Buffers:
    """One interval's raw records, taken out of a :class:`Recorder` by :meth:`Recorder.swap`."""

    stage_counts: dict[int, Counts]
    stage_values: dict[tuple[int, str], list[int]]
    second_counts: dict[int, Counts]
    second_values: dict[int, list[int]]
    model_counts: dict[str, Counts]
    model_values: dict[str, list[int]]
    failures: dict[tuple[int, str, int, str], list[Any]]
    pending: int
    lateness: list[int]
    client_lag: list[int]


def encode(taken: _Buffers, pause: Callable[[], None] | None = None) -> dict[str, Any]:
    """Swapped-out buffers as a payload of sparse HDR histograms (the heavy part of a drain).

    ``pause`` is called now and then, so a caller on the load process's event loop can let its
    other greenlets run; in a native thread it is not needed.
    """
    payload: dict[str, Any] = {"stages": {}, "seconds": {}, "models": {}, "failures": []}
    for stage, counts in taken.stage_counts.items():
        hists: dict[str, Any] = {}
        for kind in KINDS:
            values = taken.stage_values.get((stage, kind))
            if values:
                hists[kind] = _sparse(values)
        payload["stages"][str(stage)] = {"counts": counts.to_list(), "hists": hists}
    for second, counts in taken.second_counts.items():
        payload["seconds"][str(second)] = {"counts": counts.to_list(), "hist": _sparse(taken.second_values[second])}
    for n, (model, counts) in enumerate(taken.model_counts.items()):
        if pause is not None and n % 16 == 15:
            pause()
        payload["models"][model] = {"counts": counts.to_list(), "hist": _sparse(taken.model_values[model])}
    payload["failures"] = [[*key, entry[0], entry[1]] for key, entry in taken.failures.items()]
    payload["requests"] = taken.pending
    if taken.lateness:
        payload["lateness"] = _sparse(taken.lateness)
    if taken.client_lag:
        payload["client_lag"] = _sparse(taken.client_lag)
    return payload


class WorkerReporter:
    """A worker's side of the reports to the master: every report is numbered, the final one says how many.

    A regular report's encoding runs in a native thread while the greenlet waits, so the final
    report, sent by another greenlet meanwhile, can reach the master *before* it; the count in the final
    report lets the master wait for every report instead of stopping at the final one.
    """

    def __init__(self, recorder: Recorder, send: Callable[[dict[str, Any]], None]) -> None:
        self.recorder = recorder
        self.send = send
        self.sent = 0
        self.finished = False

    def report(self, run_elsewhere: Callable[[Callable[[], dict[str, Any]]], dict[str, Any]] | None = None) -> None:
        """Send what was recorded since the last report (nothing once the final one is out).

        ``run_elsewhere(fn)`` runs the encoding off the request path (a native thread) and
        returns its result; without it the encoding runs here.
        """
        if self.finished or not self.recorder.pending:
            return
        # Counted before the encoding can yield: a final report sent meanwhile includes this one.
        self.sent += 1
        taken = self.recorder.swap()
        payload = run_elsewhere(lambda: encode(taken)) if run_elsewhere is not None else encode(taken)
        self.send({"final": False, "payload": payload})

    def final(self) -> None:
        """Send the last report, with the number of reports sent in all (itself included)."""
        self.finished = True
        payload = self.recorder.drain()
        self.sent += 1
        self.send({"final": True, "sent": self.sent, "payload": payload})


def _sparse(values: list[int]) -> dict[str, Any]:
    return Histogram.sparse_of(values)



class Aggregator:
    """Merges recorder payloads into the run's tally; applies the stop policy; has the folder written."""

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
        #: When the warm-up began (None: no warm-up, or not begun); it ends at load_start.
        self.warmup_start: float | None = None
        self.stop_at: float | None = None
        self.stop_reason: str | None = None
        self.status = "starting"
        self.users_at: dict[int, int] = {}
        self.tally = RunTally()
        self.requests_merged = 0
        self.late_history_requests = 0
        self.payloads_merged = 0
        self.reports_received: dict[str, int] = {}
        self.reports_expected: dict[str, int] = {}
        self.reports_requests: dict[str, int] = {}
        #: How late scheduled sends left (µs), measured stages only.
        self.lateness = Histogram()
        #: How long after a response reached this host the load process read it (µs), measured stages only.
        self.client_lag = Histogram()
        #: The master's workers (joined, lost); None in a single process.
        self.roster: WorkerRoster | None = None
        #: More run.json sections (e.g. ``trace``), written as given.
        self.extra_info: dict[str, Any] = {}
        self._next_second: int | None = None
        self.stop_policy = StopPolicy(profile.stop, self.plans, lag_s=lag_s)
        self.writer = RunFolderWriter(out_dir, plans=self.plans, t0=t0, labels=self.labels)
        #: Called between the steps of a flush, so a load process's event loop is never held long.
        self.pause: Callable[[], None] = lambda: None

    # --- merging --------------------------------------------------------------------------

    def merge(self, payload: dict[str, Any]) -> None:
        """Add one recorder payload (from any process) to the run's totals."""
        tally = self.tally
        self.payloads_merged += 1
        self.requests_merged += int(payload.get("requests", 0))
        for stage_s, data in payload.get("stages", {}).items():
            stage = int(stage_s)
            tally.stage_counts[stage].merge(Counts.from_list(data["counts"]))
            for kind, encoded in data.get("hists", {}).items():
                group = tally.stage_kind.setdefault((stage, kind), Group())
                group.hist.add_sparse(encoded)
        for second_s, data in payload.get("seconds", {}).items():
            second = int(second_s)
            if self._next_second is not None and second < self._next_second:
                # Its history row is already written; the stage and model totals still count it.
                self.late_history_requests += int(data["counts"][0])
                continue
            group = tally.seconds.setdefault(second, Group())
            group.counts.merge(Counts.from_list(data["counts"]))
            group.hist.add_sparse(data["hist"])
        for model, data in payload.get("models", {}).items():
            group = tally.models.setdefault(model, Group())
            group.counts.merge(Counts.from_list(data["counts"]))
            group.hist.add_sparse(data["hist"])
        lateness = payload.get("lateness")
        if lateness:
            self.lateness.add_sparse(lateness)
        client_lag = payload.get("client_lag")
        if client_lag:
            self.client_lag.add_sparse(client_lag)
        for stage, model, status, code, count, message in payload.get("failures", []):
            key = (int(stage), str(model), int(status), str(code))
            entry = tally.failures.get(key)
            if entry is None:
                tally.failures[key] = [int(count), message]
            else:
                entry[0] += int(count)

    def receive(self, node: str, message: dict[str, Any]) -> None:
        """A worker's report (see :class:`WorkerReporter`): merge its payload and count it."""
        self.merge(message["payload"])
        received = self.reports_received[node] = self.reports_received.get(node, 0) + 1
        self.reports_requests[node] = self.reports_requests.get(node, 0) + int(message["payload"].get("requests", 0))
        if message.get("final"):
            self.reports_expected[node] = int(message.get("sent", received))
            if self.roster is not None:
                self.roster.finished(node)

    def workers_done(self) -> int:
        """Workers whose final report and every report before it have been merged."""
        return sum(1 for node in self.reports_expected if self.worker_done(node))

    def worker_done(self, node: str) -> bool:
        """Whether a worker's final report and every report it numbered before it are merged."""
        expected = self.reports_expected.get(node)
        return expected is not None and self.reports_received.get(node, 0) >= expected

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

    def stage_windows(self, now: float) -> dict[int, tuple[float, float] | None]:
        """Every stage's :meth:`stage_window`, by index."""
        return {plan.index: self.stage_window(plan, now) for plan in self.plans}

    def stage_rps(self, index: int, now: float) -> float | None:
        """A stage's requests per second as it ran so far (None if it has not run)."""
        window = self.stage_window(self.plans[index], now)
        if window is None or window[1] <= window[0]:
            return None
        counts = self.tally.stage_counts
        return counts[index].requests / (window[1] - window[0]) if index in counts else 0.0

    # --- stop conditions ------------------------------------------------------------------

    def check_stop(self, now: float) -> str | None:
        """A reason to end the run now (see :class:`~mmeperf.load.stop.StopPolicy`), or None."""
        return self.stop_policy.check(
            now,
            self.tally,
            complete_before=self._next_second,
            load_start=self.load_start,
            stage_rps=lambda index: self.stage_rps(index, now),
        )

    # --- the once-a-second step -----------------------------------------------------------

    def tick(
        self,
        now: float,
        *,
        users: int,
        load_start: float | None,
        taken: _Buffers | None = None,
        stop_requested: bool = False,
        stopping: bool = False,
        warmup_start: float | None = None,
    ) -> tuple[str, str | None] | None:
        """Merge (``taken``: a local recorder's buffers), decide whether to end, write the folder.

        Everything heavy a second needs, in one call a load process runs in a native thread
        (never in its event loop). Returns (status, reason) when the run must end now.
        """
        if taken is not None:
            self.merge(encode(taken))
        self.load_start = load_start
        self.warmup_start = warmup_start
        self.note_users(now, users)
        if self.status == "starting" and (load_start is not None or warmup_start is not None):
            self.status = "running" if load_start is not None and now >= load_start else "warming up"
        elif self.status == "warming up" and load_start is not None and now >= load_start:
            self.status = "running"
        finish: tuple[str, str | None] | None = None
        if load_start is not None and not stopping:
            if stop_requested:
                finish = ("stopped", "stopped on request")
            elif now >= load_start + self.plans[-1].end_s:
                finish = ("completed", None)
            else:
                reason = self.check_stop(now)
                if reason is not None:
                    finish = ("stopped", reason)
        self.flush(now)
        return finish

    # --- writing --------------------------------------------------------------------------

    def flush(self, now: float | None = None, *, final: bool = False) -> None:
        """Write everything known so far (history rows up to ``now - lag``)."""
        now = time.time() if now is None else now
        self._flush_history(now, final=final)
        self.pause()
        self.writer.write_tables(self.tally, self.stage_windows(now), now=now, final=final, pause=self.pause)
        self.writer.write_status(self.run_info(now), self.progress(now))

    def close(self) -> None:
        self.writer.close()

    def _flush_history(self, now: float, *, final: bool) -> None:
        if self.load_start is None:
            return
        if self._next_second is None:
            self._next_second = int(self.load_start)
        seconds = self.tally.seconds
        horizon = int(now - self.lag_s) if not final else max([int(now), *seconds.keys()]) + 1
        if self._next_second < horizon:
            self.writer.append_history(
                range(self._next_second, horizon), self.tally, stage_at=self.stage_at, users_at=self.users_at
            )
            self._next_second = horizon
        # Keep per-second histograms only as long as a stop window may look at them.
        keep_from = self._next_second - self.stop_policy.seconds_kept
        for s in [s for s in seconds if s < keep_from]:
            del seconds[s]

    def totals(self, now: float) -> dict[str, Any]:
        return run_totals(self.tally, self.stage_windows(now))

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
            **({"warmup": self.warmup(now)} if self.profile.warmup is not None else {}),
            "late_history_requests": self.late_history_requests,
            "payloads_merged": self.payloads_merged,
            "worker_reports": {
                node: {"received": n, "sent": self.reports_expected.get(node),
                       "requests": self.reports_requests.get(node, 0)}
                for node, n in sorted(self.reports_received.items())
            },
            **({"workers": self.roster.to_json(self.t0)} if self.roster is not None else {}),
            **({"lateness": self.lateness_doc()} if self.lateness.total else {}),
            **({"client_lag": self.client_lag_doc()} if self.client_lag.total else {}),
            **self.extra_info,
        }

    def lateness_doc(self) -> dict[str, Any]:
        """run.json's ``lateness``: how late scheduled sends left (open loop, trace replay)."""
        pcts = self.lateness.percentiles_ms([50, 90, 99, 99.9, 100])
        late_after = getattr(self.profile.scheduled_shape, "late_after", None)
        return {
            "sends": self.lateness.total,
            "p50_ms": pcts[50], "p90_ms": pcts[90], "p99_ms": pcts[99], "p999_ms": pcts[99.9], "max_ms": pcts[100],
            "late_after_ms": None if late_after is None else late_after * 1000.0,
            "late": sum(c.late for stage, c in self.tally.stage_counts.items() if stage != WARMUP_STAGE),
        }

    def client_lag_doc(self) -> dict[str, Any]:
        """run.json's ``client_lag``: how long the load processes took to read responses already here.

        Latencies are timed to the kernel's receive stamp, so this is not in them; a large p99
        says the load generator is saturated (give it workers) even though its figures stay true.
        """
        pcts = self.client_lag.percentiles_ms([50, 90, 99, 99.9, 100])
        return {
            "requests": self.client_lag.total,
            "p50_ms": pcts[50], "p90_ms": pcts[90], "p99_ms": pcts[99], "p999_ms": pcts[99.9], "max_ms": pcts[100],
        }

    def warmup(self, now: float) -> dict[str, Any]:
        """run.json's ``warmup`` section: the warm-up's own figures (in no other)."""
        window = None
        if self.warmup_start is not None:
            end = self.load_start if self.load_start is not None and self.load_start <= now else now
            window = (self.warmup_start, max(end, self.warmup_start))
        doc = warmup_doc(self.tally, window)
        doc["config"] = self.profile.warmup.model_dump(mode="json") if self.profile.warmup else None
        return doc

    def progress(self, now: float) -> dict[str, Any]:
        last = self._next_second - 1 if self._next_second is not None else None
        group = self.tally.seconds.get(last) if last is not None else None
        stage_counts = self.tally.stage_counts.values()
        return {
            "status": self.status,
            "elapsed_s": round(now - self.t0, 3),
            "users": self.users_at.get(int(now), self.users_at.get(int(now) - 1, 0)),
            "rps": group.counts.requests if group else 0,
            "requests": sum(c.requests for c in stage_counts),
            "failures": sum(c.failures for c in stage_counts),
            "stage": self.stage_at(now),
        }
