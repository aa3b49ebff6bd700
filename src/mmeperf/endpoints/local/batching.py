"""Per-model batching: concurrent requests to one model share one ``predict`` call.

While a model predicts, new requests for it queue; when the call returns, everything queued
(up to ``max_rows`` rows) goes in the next call. No request waits for a timer unless
``max_wait_s`` > 0, so a lone request is never slower than unbatched; rows are predicted
independently, so results are identical to unbatched ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from concurrent.futures import Future as ConcurrentFuture
from dataclasses import dataclass

import numpy as np

from mmeperf._types import Array, Batch
from mmeperf.backends.base import Runner
from mmeperf.errors import PredictionError

__all__ = ["Batcher", "Dispatcher", "Prediction"]


@dataclass(slots=True)
class Prediction:
    """One request's share of a batch."""

    output: Array
    model_latency_us: float
    """Microseconds of the predict call that served this request (shared by its batch)."""
    batch_rows: int


_Item = tuple[Batch, "asyncio.Future[Prediction]"]
_Outcome = tuple[list[Array], float] | BaseException


class Dispatcher:
    """Hands the pool, as one job per thread, every batch that became ready in one event-loop
    iteration, across models: with many models and few requests per model, per-model batches
    are small, and one thread hand-off per batch would cost more than a small predict."""

    def __init__(self, pool: Executor, *, loop: asyncio.AbstractEventLoop, threads: int) -> None:
        self._pool = pool
        self._loop = loop
        self._threads = max(threads, 1)
        self._pending: list[tuple[Batcher, list[_Item]]] = []
        self._scheduled = False

    def add(self, batcher: Batcher, items: list[_Item]) -> None:
        self._pending.append((batcher, items))
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        jobs, self._pending = self._pending, []
        # Round-robin over the pool's threads: heavy predicts (which release the GIL) run in
        # parallel, light ones share a hand-off.
        n = min(self._threads, len(jobs))
        for k in range(n):
            chunk = jobs[k::n]
            work = [(batcher.runner, items) for batcher, items in chunk]
            cf = self._pool.submit(_run_many, work)
            cf.add_done_callback(
                lambda done, chunk=chunk: self._loop.call_soon_threadsafe(self._finish, chunk, done)  # type: ignore[misc]
            )

    @staticmethod
    def _finish(chunk: list[tuple[Batcher, list[_Item]]], done: ConcurrentFuture[list[_Outcome]]) -> None:
        try:
            outcomes: list[_Outcome] = done.result()
        except BaseException as exc:  # the pool itself failed (shutting down)
            outcomes = [exc] * len(chunk)
        for (batcher, items), outcome in zip(chunk, outcomes, strict=True):
            batcher._finish(items, outcome)


class Batcher:
    """Queues requests for one runner and feeds them to a thread pool, one call at a time."""

    def __init__(
        self,
        runner: Runner,
        dispatcher: Dispatcher,
        *,
        loop: asyncio.AbstractEventLoop,
        max_rows: int,
        max_wait_s: float,
        supports_batching: bool,
        on_batch: Callable[[int], None],
        inline: bool = False,
    ) -> None:
        self._dispatcher = dispatcher
        self._loop = loop
        self._max_rows = max_rows if supports_batching else 1
        self._max_wait_s = max_wait_s
        self._batching = supports_batching
        self._on_batch = on_batch
        self._queue: list[_Item] = []
        self._queued_rows = 0
        self._busy = False
        self._timer: asyncio.TimerHandle | None = None
        self._inline = inline
        self._inline_rows = 0
        self.set_runner(runner)

    def set_runner(self, runner: Runner) -> None:
        """Serve with ``runner`` from now on (an optimized runner swapped in after the load)."""
        self.runner = runner
        # Only runners that declare a bounded cost may run on the event loop (see try_inline).
        self._inline_rows = int(getattr(runner, "inline_max_rows", 0)) if self._inline else 0

    def try_inline(self, batch: Batch) -> Prediction | None:
        """Predict ``batch`` right here on the event loop when the runner bounds its cost.

        Only the compiled XGBoost path declares ``inline_max_rows``: for that many rows its
        worst case is a few hundred node comparisons (tens of microseconds), less than handing
        the batch to a thread and back, and, being Python that holds the GIL, a thread would
        not run it in parallel anyway. Anything else (or more rows) returns None: use submit.
        Raises what the runner raises.
        """
        limit = self._inline_rows
        if not limit or not isinstance(batch, np.ndarray) or batch.ndim != 2 or batch.shape[0] > limit:
            return None
        t0 = time.perf_counter()
        out = self.runner.predict(batch)
        model_us = (time.perf_counter() - t0) * 1e6
        rows = int(batch.shape[0])
        self._on_batch(rows)
        return Prediction(out, model_us, rows)

    @property
    def idle(self) -> bool:
        return not self._busy and not self._queue

    def submit(self, batch: Batch) -> asyncio.Future[Prediction]:
        """Queue ``batch``; the future resolves with its predictions (or the runner's error)."""
        fut: asyncio.Future[Prediction] = self._loop.create_future()
        self._queue.append((batch, fut))
        self._queued_rows += _rows(batch)
        if not self._busy:
            if self._max_wait_s > 0 and self._queued_rows < self._max_rows:
                if self._timer is None:
                    self._timer = self._loop.call_later(self._max_wait_s, self._fire)
            else:
                self._dispatch()
        return fut

    def _fire(self) -> None:
        self._timer = None
        if not self._busy and self._queue:
            self._dispatch()

    def _dispatch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        items = self._take()
        if not items:
            return
        self._busy = True
        self._dispatcher.add(self, items)

    def _take(self) -> list[_Item]:
        """The next group of items that can share one predict call."""
        # Cancelled futures (timed-out requests) are dropped before they cost a predict.
        self._queue = [item for item in self._queue if not item[1].done()]
        if not self._queue:
            self._queued_rows = 0
            return []
        first = self._queue[0][0]
        taken = [self._queue[0]]
        rows = _rows(first)
        if self._batching and isinstance(first, np.ndarray) and first.ndim == 2:
            for item in self._queue[1:]:
                b = item[0]
                if not (isinstance(b, np.ndarray) and b.ndim == 2 and b.shape[1] == first.shape[1]
                        and b.dtype == first.dtype):
                    break
                if rows + b.shape[0] > self._max_rows:
                    break
                taken.append(item)
                rows += b.shape[0]
        del self._queue[: len(taken)]
        self._queued_rows = max(0, self._queued_rows - rows)
        return taken

    def _finish(self, items: list[_Item], outcome: _Outcome) -> None:
        self._busy = False
        if isinstance(outcome, BaseException):  # the runner failed: every request learns why
            err = outcome if isinstance(outcome, Exception) else PredictionError(repr(outcome))
            for _, fut in items:
                if not fut.done():
                    fut.set_exception(err)
        else:
            outputs, model_us = outcome
            n = sum(len(o) for o in outputs)
            self._on_batch(n)
            for (_, fut), out in zip(items, outputs, strict=True):
                if not fut.done():
                    fut.set_result(Prediction(out, model_us, n))
        if self._queue:
            self._dispatch()


def _rows(batch: Batch) -> int:
    if isinstance(batch, np.ndarray):
        return int(batch.shape[0]) if batch.ndim >= 1 else 1
    return 1


def _run_many(work: list[tuple[Runner, list[_Item]]]) -> list[_Outcome]:
    """In a pool thread: several models' batches, each failing on its own."""
    outcomes: list[_Outcome] = []
    for runner, items in work:
        try:
            outcomes.append(_run(runner, items))
        except Exception as exc:
            outcomes.append(exc)
    return outcomes


def _run(runner: Runner, items: list[_Item]) -> tuple[list[Array], float]:
    """In a pool thread: one predict for all items, split back per item."""
    batches = [item[0] for item in items]
    t0 = time.perf_counter()
    if len(batches) == 1:
        out = runner.predict(batches[0])
        model_us = (time.perf_counter() - t0) * 1e6
        return [out], model_us
    stacked: Array = np.concatenate(batches, axis=0)  # type: ignore[arg-type]
    out = np.asarray(runner.predict(stacked))
    model_us = (time.perf_counter() - t0) * 1e6
    if out.shape[0] != stacked.shape[0]:
        raise PredictionError(
            f"The model returned {out.shape[0]} output rows for {stacked.shape[0]} input rows"
        )
    parts: list[Array] = []
    offset = 0
    for b in batches:
        n = b.shape[0]  # type: ignore[union-attr]
        parts.append(out[offset: offset + n])
        offset += n
    return parts, model_us
