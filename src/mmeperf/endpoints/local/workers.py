"""Process workers of the local MME: each loaded model runs in its own worker process(es), as
SageMaker's CPU multi-model containers run Multi Model Server (MMS).

What is taken from MMS and SageMaker (sources read at the commits named in docs/local-mme.md):

- A load starts the model's workers and is done when every one of them is up
  (MMS ``WorkLoadManager.java`` L194-224 ``addThreads``, ``WorkerStateListener(future, count)``);
  unloading kills them (L143-169 ``destroyForcibly``). ModelLoadingTime is therefore process
  start + imports + artifact load, measured, and each model is charged its workers' memory.
- Workers per model: 1 in multi-model mode (sagemaker-inference-toolkit
  ``etc/mme-mms.properties`` L4 ``default_workers_per_model=1``; sagemaker-xgboost-container
  ``serving_mms.py`` L36/L98 ``SAGEMAKER_NUM_MODEL_WORKERS`` default 1), overridden by
  ``SAGEMAKER_MODEL_SERVER_WORKERS`` (toolkit ``parameters.py`` L21, written to
  ``default_workers_per_model`` in ``model_server.py`` L161).
- One job queue per model, 100 deep (MMS ``ConfigManager.java`` L257-258 ``job_queue_size``
  default 100, ``Model.java`` L57; the XGBoost container's ``serving_mms.py`` L37/L99
  ``SAGEMAKER_MODEL_JOB_QUEUE_SIZE`` default 100); a full queue answers 503 (MMS
  ``InferenceRequestHandler.java`` L174-178, ``HttpRequestHandler.java`` L70-72).
- A worker that dies fails its request with "Worker died." (MMS ``WorkerThread.java`` L248-249,
  507 when the exit status is 137, L244-245); one that does not answer within the response
  timeout is killed and restarted (L148-158, then ``retry()`` L264).

Ours differs where it pays: the front end decodes the request and hands the worker the raw
numpy batch over a Unix socket (two small writes, no parsing in the worker), concurrent requests
to one model are batched into one frame, and the worker compiles the XGBoost fast path after a
few uses as thread mode does. A dead worker takes its model out of the cache (the next request
loads it again); a hung one is replaced while the model stays loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmeperf._types import Array, Batch
from mmeperf.backends.base import Backend, Runner
from mmeperf.endpoints.local.batching import Batcher, Prediction
from mmeperf.endpoints.local.config import (
    DEFAULT_JOB_QUEUE_SIZE,
    DEFAULT_WORKERS_PER_MODEL,
    FAST_PATH_AFTER_USES,
    ServerConfig,
)
from mmeperf.endpoints.local.worker import (
    ERROR,
    FAILED,
    HEADER,
    PREDICT,
    READY,
    RESULT,
    decode_batch,
    encode_batch,
)
from mmeperf.errors import (
    InvocationTimeoutError,
    MmeperfError,
    ModelLoadError,
    PredictionError,
    ServiceUnavailableError,
    WorkerDiedError,
)

if TYPE_CHECKING:
    from mmeperf.repository import ModelEntry

__all__ = ["WorkerBatcher", "WorkerPool", "WorkerRunner", "WorkerSettings"]

log = logging.getLogger("mmeperf.serve")

_F64_SIZE = 8


@dataclass(frozen=True)
class WorkerSettings:
    """How the pool runs workers (built from :class:`ServerConfig` by :meth:`WorkerPool.from_config`)."""

    workers_per_model: int = DEFAULT_WORKERS_PER_MODEL
    job_queue_size: int = DEFAULT_JOB_QUEUE_SIZE
    response_timeout_s: float = 60.0
    """A worker that does not answer a batch in this time is killed and replaced."""
    start_timeout_s: float = 60.0
    """Longest a worker may take to start and load its model."""
    max_batch_rows: int = 64
    allow_pickle: bool = False
    fast_path_after_uses: int = FAST_PATH_AFTER_USES
    """Predictions after which a worker compiles the XGBoost fast path (0: never)."""
    log_dir: Path | None = None
    """Where each worker's stdout/stderr go (the last line explains a crash); None: discarded."""


# --- one worker process ---------------------------------------------------------------------------

_Item = tuple[Batch, "asyncio.Future[Prediction]"]


class _Channel(asyncio.Protocol):
    """The front end's end of one worker's socket: frames in, callbacks out."""

    def __init__(self, worker: _Worker) -> None:
        self._worker = worker
        self._buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos, end = 0, len(buf)
        header_size = HEADER.size
        while end - pos >= header_size:
            size, rid, kind = HEADER.unpack_from(buf, pos)
            if end - pos - header_size < size:
                break
            body = bytes(buf[pos + header_size: pos + header_size + size])
            pos += header_size + size
            self._worker.on_frame(kind, rid, body)
        if pos:
            del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self._worker.on_lost()


class _Worker:
    """One worker process and its channel; serves one batch at a time (as an MMS worker does)."""

    def __init__(self, runner: WorkerRunner, proc: subprocess.Popen[bytes], sock: socket.socket,
                 log_path: Path | None) -> None:
        self.runner = runner
        self.proc = proc
        self.pid = proc.pid
        self.sock = sock
        self.log_path = log_path
        self.channel: _Channel | None = None
        self.ready: asyncio.Future[dict[str, Any]] | None = None
        self.info: dict[str, Any] = {}
        self.busy: list[_Item] | None = None
        self.busy_rid = 0
        self.timer: asyncio.TimerHandle | None = None
        self.stopping = False
        self.lost = False

    # on the loop
    async def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.ready = loop.create_future()
        channel = self.channel = _Channel(self)
        await loop.create_unix_connection(lambda: channel, sock=self.sock)

    def on_frame(self, kind: int, rid: int, body: bytes) -> None:
        if kind == RESULT:
            if self.busy is None or rid != self.busy_rid:
                return  # the answer to a batch that already timed out
            model_us = float(np.frombuffer(body, dtype="<f8", count=1)[0])
            out = decode_batch(memoryview(body), _F64_SIZE)
            self._done(self._split(out, model_us))
        elif kind == ERROR:
            if self.busy is None or rid != self.busy_rid:
                return
            self._done(_rebuild_error(json.loads(body)))
        elif kind == READY:
            self.info = json.loads(body)
            if self.ready is not None and not self.ready.done():
                self.ready.set_result(self.info)
        elif kind == FAILED:
            err = json.loads(body)
            if self.ready is not None and not self.ready.done():
                self.ready.set_exception(ModelLoadError(
                    f"Model {self.runner.target!r} failed to load in its worker: {err['type']}: {err['message']}"
                ))

    def _split(self, out: Array, model_us: float) -> list[Prediction] | BaseException:
        items = self.busy or []
        rows = [_rows(batch) for batch, _ in items]
        total = sum(rows)
        if len(items) == 1:
            return [Prediction(out, model_us, total)]
        if out.shape[0] != total:
            return PredictionError(f"The model returned {out.shape[0]} output rows for {total} input rows")
        preds, offset = [], 0
        for n in rows:
            preds.append(Prediction(out[offset: offset + n], model_us, total))
            offset += n
        return preds

    def send(self, items: list[_Item], rid: int, timeout_s: float, loop: asyncio.AbstractEventLoop) -> None:
        batches = [b for b, _ in items]
        batch = batches[0] if len(batches) == 1 else np.concatenate(batches, axis=0)  # type: ignore[arg-type]
        parts = encode_batch(batch)
        size = sum(len(p) if isinstance(p, bytes) else p.nbytes for p in parts)
        assert self.channel is not None and self.channel.transport is not None
        self.busy, self.busy_rid = items, rid
        self.channel.transport.write(b"".join([HEADER.pack(size, rid, PREDICT), *parts]))
        self.timer = loop.call_later(timeout_s, self.runner._on_hung, self)

    def _done(self, outcome: list[Prediction] | BaseException) -> None:
        items, self.busy = self.busy or [], None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if isinstance(outcome, BaseException):
            for _, fut in items:
                if not fut.done():
                    fut.set_exception(outcome)
        else:
            self.runner._on_batch(sum(p.batch_rows for p in outcome[:1]))
            for (_, fut), pred in zip(items, outcome, strict=True):
                if not fut.done():
                    fut.set_result(pred)
        self.runner._pump()

    def fail(self, exc: BaseException) -> None:
        """Fail the batch in flight (the worker is gone or hung)."""
        items, self.busy = self.busy or [], None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        for _, fut in items:
            if not fut.done():
                fut.set_exception(exc)

    def on_lost(self) -> None:
        self.lost = True
        if self.ready is not None and not self.ready.done():
            # Died while loading: the load fails (load_runner says why); nothing was served yet.
            self.ready.set_exception(WorkerDiedError(
                f"The worker of model {self.runner.target!r} exited while loading it",
            ))
            self.ready.exception()
            return
        if not self.stopping:
            self.runner._on_worker_lost(self)

    # any thread
    def kill(self) -> None:
        """SIGKILL by PID (as MMS's destroyForcibly) and reap it."""
        self.stopping = True
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def reason(self) -> tuple[str, int | None]:
        """How the process ended, with the last line it wrote."""
        code = self.proc.poll()
        if code is None:
            text = "closed its channel but is still running (it was killed)"
        elif code < 0:
            sig = -code
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
            text = f"killed by signal {sig} ({name})"
            if sig == signal.SIGKILL:
                text += ": kill -9 or the kernel's out-of-memory killer"
        else:
            text = f"exited with status {code}"
        tail = _last_line(self.log_path)
        if tail:
            text += f"; its last output: {tail}"
        return text, code


def _last_line(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(f.tell() - 2048, 0))
            lines = [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1].strip()[:300] if lines else ""


def _rows(batch: Batch) -> int:
    if isinstance(batch, np.ndarray):
        return int(batch.shape[0]) if batch.ndim >= 1 else 1
    return 1


_KNOWN_ERRORS: dict[str, type[MmeperfError]] = {}


def _rebuild_error(err: dict[str, Any]) -> MmeperfError:
    """The worker's error as our typed error: its own class when it is one of ours."""
    if not _KNOWN_ERRORS:
        import mmeperf.errors as errors

        for name in errors.__all__:
            cls = getattr(errors, name)
            if isinstance(cls, type) and issubclass(cls, MmeperfError):
                _KNOWN_ERRORS[name] = cls
    cls = _KNOWN_ERRORS.get(str(err.get("type")))
    message = str(err.get("message", ""))
    if cls is not None and cls is not WorkerDiedError:
        try:
            return cls(message)
        except TypeError:
            pass
    return PredictionError(f"{err.get('type')}: {message}")


# --- one model's workers -------------------------------------------------------------------------


class WorkerRunner(Runner):
    """A model served by worker processes: its workers, its job queue and its batching.

    ``predict`` may be called from any thread but the event loop's (it hands the batch to the
    loop and waits); the event loop uses :class:`WorkerBatcher` instead.
    """

    def __init__(self, pool: WorkerPool, target: str, backend: Backend, folder: Path) -> None:
        self.pool = pool
        self.target = target
        self.backend_name = backend.name
        self.folder = folder
        self.supports_batching = backend.supports_batching
        self.workers: list[_Worker] = []
        self._queue: list[_Item] = []
        self._rid = 0
        self.dead: WorkerDiedError | None = None
        self.replacing = 0
        self.closed = False

    # --- Runner -----------------------------------------------------------------------------------

    @property
    def memory_bytes(self) -> int:
        """The workers' unique resident memory (USS) measured when they became ready."""
        return sum(int(w.info.get(self.pool.memory_measure, 0)) for w in self.workers)

    @property
    def n_features(self) -> int | None:
        for w in self.workers:
            n = w.info.get("n_features")
            if n is not None:
                return int(n)
        return None

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers]

    def predict(self, batch: Batch) -> Array:
        loop = self.pool.loop
        if _on_loop(loop):
            raise RuntimeError("WorkerRunner.predict blocks: call it from a thread, not the event loop")
        fut = asyncio.run_coroutine_threadsafe(self._predict(batch), loop)
        return fut.result(self.pool.settings.response_timeout_s + 5)

    async def _predict(self, batch: Batch) -> Array:
        return (await self.submit(batch)).output

    def close(self) -> None:
        """Stop every worker by PID (any thread)."""
        self.closed = True
        for w in list(self.workers):
            w.kill()
        self.pool._forget(self)
        loop = self.pool.loop
        if not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._close_on_loop)

    def _close_on_loop(self) -> None:
        for w in self.workers:
            if w.channel is not None and w.channel.transport is not None:
                w.channel.transport.close()
        self._fail_queue(WorkerDiedError(f"Model {self.target!r} was unloaded", reason="unloaded"))

    # --- the job queue (event loop) ---------------------------------------------------------------

    def submit(self, batch: Batch) -> asyncio.Future[Prediction]:
        if self.dead is not None:
            raise self.dead
        if len(self._queue) >= self.pool.settings.job_queue_size:
            # MMS's answer when a model's job queue is full (InferenceRequestHandler.java L174-178).
            raise ServiceUnavailableError(
                f"No worker is available to serve request for model: {self.target}. "
                f"Consider increasing job queue size (job_queue_size={self.pool.settings.job_queue_size})."
            )
        fut: asyncio.Future[Prediction] = self.pool.loop.create_future()
        self._queue.append((batch, fut))
        self._pump()
        return fut

    @property
    def idle(self) -> bool:
        return not self._queue and all(w.busy is None for w in self.workers)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def _pump(self) -> None:
        """Send queued requests to free workers, stacking what can share one predict."""
        if not self._queue:
            return
        loop = self.pool.loop
        for w in self.workers:
            if not self._queue:
                return
            if w.busy is not None or w.stopping or w.lost or w.channel is None or not w.info:
                continue
            items = self._take()
            if not items:
                return
            self._rid = (self._rid + 1) & 0xFFFFFFFF
            try:
                w.send(items, self._rid, self.pool.settings.response_timeout_s, loop)
            except Exception as exc:  # could not encode (an object array): that request's error
                w.busy = None
                for _, fut in items:
                    if not fut.done():
                        fut.set_exception(PredictionError(f"Cannot hand this batch to the worker: {exc}"))

    def _take(self) -> list[_Item]:
        queue = [item for item in self._queue if not item[1].done()]  # timed-out requests drop out
        if not queue:
            self._queue = []
            return []
        first = queue[0][0]
        taken = [queue[0]]
        rows = _rows(first)
        limit = self.pool.settings.max_batch_rows if self.supports_batching else 1
        if self.supports_batching and isinstance(first, np.ndarray) and first.ndim == 2:
            for item in queue[1:]:
                b = item[0]
                if not (isinstance(b, np.ndarray) and b.ndim == 2 and b.shape[1] == first.shape[1]
                        and b.dtype == first.dtype) or rows + b.shape[0] > limit:
                    break
                taken.append(item)
                rows += b.shape[0]
        self._queue = queue[len(taken):]
        return taken

    def _on_batch(self, rows: int) -> None:
        self.pool.on_batch(rows)

    def _fail_queue(self, exc: BaseException) -> None:
        queue, self._queue = self._queue, []
        for _, fut in queue:
            if not fut.done():
                fut.set_exception(exc)

    # --- faults (event loop) --------------------------------------------------------------------------

    def _on_worker_lost(self, worker: _Worker) -> None:
        """A worker died on its own: fail what it held, take the model out, count it."""
        if self.closed or self.dead is not None:
            return
        self.pool.loop.create_task(self._worker_died(worker))

    async def _worker_died(self, worker: _Worker) -> None:
        # The channel closes a moment before the kernel reports the exit status: wait for it.
        deadline = time.monotonic() + 2.0
        while worker.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        if worker.proc.poll() is None:
            worker.kill()
        reason, code = worker.reason()
        err = WorkerDiedError(
            f"Worker died: the worker process (pid {worker.pid}) of model {self.target!r} {reason}; "
            "the model was unloaded and the next request loads it again",
            reason=reason, exit_code=code,
        )
        log.warning("%s", err)
        self.dead = err
        worker.fail(err)
        self._fail_queue(err)
        for other in self.workers:  # the model's other workers go with it
            if other is not worker:
                other.fail(err)
                await self.pool.loop.run_in_executor(None, other.kill)
        self.pool.worker_deaths += 1
        self.pool.on_death(self.target, self, err)
        self.close()

    def _on_hung(self, worker: _Worker) -> None:
        """A batch outlived the response timeout: kill that worker and start another."""
        if worker.busy is None or worker.stopping:
            return
        timeout = self.pool.settings.response_timeout_s
        worker.fail(InvocationTimeoutError(
            f"Model {self.target!r}'s worker (pid {worker.pid}) did not respond in {timeout:g} s; "
            "it was killed and is being replaced"
        ))
        worker.stopping = True
        self.pool.worker_timeouts += 1
        self.pool.loop.create_task(self._replace(worker))

    async def _replace(self, worker: _Worker) -> None:
        loop = self.pool.loop
        self.replacing += 1
        try:
            await loop.run_in_executor(None, worker.kill)
            if worker.channel is not None and worker.channel.transport is not None:
                worker.channel.transport.close()
            if self.closed or self.dead is not None:
                return
            try:
                new = await loop.run_in_executor(None, self.pool._spawn, self)
                await new.attach(loop)
                assert new.ready is not None
                await asyncio.wait_for(new.ready, self.pool.settings.start_timeout_s)
            except Exception as exc:
                err = WorkerDiedError(
                    f"Model {self.target!r}: the replacement of a hung worker failed to start ({exc}); "
                    "the model was unloaded", reason=str(exc),
                )
                self.dead = err
                self._fail_queue(err)
                self.pool.worker_deaths += 1
                self.pool.on_death(self.target, self, err)
                return
            if self.closed:
                await loop.run_in_executor(None, new.kill)
                return
            self.workers = [new if w is worker else w for w in self.workers]
            self._pump()
        finally:
            self.replacing -= 1


class WorkerBatcher(Batcher):
    """The cache's batcher for a :class:`WorkerRunner`: requests go to the model's job queue.

    Nothing runs inline on the event loop (the model lives in another process), and there is
    no thread hand-off: the loop writes the batch to the worker's socket itself.
    """

    def __init__(self, runner: WorkerRunner) -> None:  # Batcher's pool and dispatcher are not used
        self.runner: WorkerRunner = runner  # type: ignore[assignment]

    def set_runner(self, runner: Runner) -> None:
        if isinstance(runner, WorkerRunner):
            self.runner = runner

    def try_inline(self, batch: Batch) -> Prediction | None:
        return None

    @property
    def idle(self) -> bool:
        return self.runner.idle

    def submit(self, batch: Batch) -> asyncio.Future[Prediction]:
        return self.runner.submit(batch)


# --- all models' workers ---------------------------------------------------------------------------


class WorkerPool:
    """Starts, tracks and stops the worker processes of the loaded models of one MME.

    ``load_runner`` is the cache's runner factory in process mode (called in a loader thread);
    ``make_batcher`` its batcher factory. ``on_death(target, runner, error)`` runs on the loop
    when a model's worker died, so the service can take the model out of the cache.
    """

    #: Which measure of a worker's resident memory is charged to the budget: USS (see docs).
    memory_measure = "uss"

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        loop: asyncio.AbstractEventLoop,
        on_death: Callable[[str, WorkerRunner, WorkerDiedError], None],
        on_batch: Callable[[int], None],
    ) -> None:
        self.settings = settings
        self.loop = loop
        self.on_death = on_death
        self.on_batch = on_batch
        self.worker_deaths = 0
        self.worker_timeouts = 0
        self.workers_started = 0
        self._runners: set[WorkerRunner] = set()
        self._lock = threading.Lock()
        if settings.log_dir is not None:
            settings.log_dir.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_config(
        cls,
        config: ServerConfig,
        *,
        loop: asyncio.AbstractEventLoop,
        log_dir: Path | None,
        on_death: Callable[[str, WorkerRunner, WorkerDiedError], None],
        on_batch: Callable[[int], None],
    ) -> WorkerPool:
        settings = WorkerSettings(
            workers_per_model=config.effective_workers_per_model(),
            job_queue_size=config.effective_job_queue_size(),
            response_timeout_s=config.invocation_timeout_s,
            start_timeout_s=config.model_load_wait_s,
            max_batch_rows=config.max_batch_size,
            allow_pickle=config.allow_pickle,
            fast_path_after_uses=config.fast_path_after_uses if config.fast_path else 0,
            log_dir=log_dir,
        )
        return cls(settings, loop=loop, on_death=on_death, on_batch=on_batch)

    # --- factories for the cache ------------------------------------------------------------------

    def load_runner(self, backend: Backend, entry: ModelEntry, folder: Path) -> Runner:
        """In a loader thread: start the model's workers; return once every one is ready.

        Raises ModelLoadError with the worker's own error when the load fails or a worker
        exits or does not start in time.
        """
        runner = WorkerRunner(self, entry.target, backend, folder)
        with self._lock:
            self._runners.add(runner)
        try:
            workers = [self._spawn(runner) for _ in range(self.settings.workers_per_model)]
            runner.workers = workers
            fut = asyncio.run_coroutine_threadsafe(self._attach_all(workers), self.loop)
            fut.result(self.settings.start_timeout_s + 5)
        except BaseException as exc:
            runner.close()
            if isinstance(exc, ModelLoadError):
                raise
            if isinstance(exc, TimeoutError | asyncio.TimeoutError):
                raise ModelLoadError(
                    f"Model {entry.target!r}: its worker did not become ready within "
                    f"{self.settings.start_timeout_s:g} s"
                ) from exc
            raise ModelLoadError(f"Model {entry.target!r} failed to start its worker: {exc}") from exc
        return runner

    def make_batcher(self, runner: Runner, backend: Backend) -> Batcher:
        if not isinstance(runner, WorkerRunner):
            raise TypeError(f"process workers serve WorkerRunner, not {type(runner).__name__}")
        return WorkerBatcher(runner)

    async def _attach_all(self, workers: list[_Worker]) -> None:
        for w in workers:
            await w.attach(self.loop)
        try:
            await asyncio.wait_for(
                asyncio.gather(*(w.ready for w in workers if w.ready is not None)),
                self.settings.start_timeout_s,
            )
        except WorkerDiedError as exc:
            died = next((w for w in workers if w.lost), workers[0])
            await asyncio.sleep(0.05)  # let the exit status land
            reason, _ = died.reason()
            raise ModelLoadError(f"{exc}: {reason}") from exc

    def _spawn(self, runner: WorkerRunner) -> _Worker:
        """Start one worker process for ``runner`` (any thread but the loop's: fork and exec)."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        log_path: Path | None = None
        out: Any = subprocess.DEVNULL
        try:
            if self.settings.log_dir is not None:
                log_path = self.settings.log_dir / f"{_safe(runner.target)}-{time.monotonic_ns()}.log"
                out = log_path.open("wb")
            cmd = [
                sys.executable, "-m", "mmeperf.endpoints.local.worker",
                "--fd", str(child.fileno()), "--backend", runner.backend_name,
                "--folder", str(runner.folder), "--target", runner.target,
                "--fast-path-after", str(self.settings.fast_path_after_uses),
            ]
            if self.settings.allow_pickle:
                cmd.append("--allow-pickle")
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    pass_fds=(child.fileno(),), close_fds=True)
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
            if out is not subprocess.DEVNULL:
                out.close()
        parent.setblocking(False)
        self.workers_started += 1
        return _Worker(runner, proc, parent, log_path)

    def _forget(self, runner: WorkerRunner) -> None:
        with self._lock:
            self._runners.discard(runner)

    # --- views -----------------------------------------------------------------------------------------

    def runners(self) -> list[WorkerRunner]:
        with self._lock:
            return list(self._runners)

    def pids(self) -> list[int]:
        """PIDs of every worker process alive or starting."""
        return [w.pid for r in self.runners() for w in r.workers if w.proc.poll() is None]

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {
            "worker_mode": "process",
            "workers_per_model": s.workers_per_model,
            "job_queue_size": s.job_queue_size,
            "memory_measure": self.memory_measure,
            "workers_started": self.workers_started,
            "worker_deaths": self.worker_deaths,
            "worker_timeouts": self.worker_timeouts,
            "worker_pids": {r.target: r.pids for r in self.runners()},
        }

    def close(self) -> None:
        """Stop every worker (server shutdown)."""
        for runner in self.runners():
            runner.close()


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _safe(target: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in target)[:80]
