"""The model cache of the local MME: disk cache, then memory under a byte budget, LRU unloads.

Runs on the server's event loop: the hit path is a dict lookup with no lock (nothing awaits
between the check and taking the lease); a miss joins the one in-flight load of that model or
starts it (single flight), marked "loading" before anything is awaited. Downloads, loads and
unloads run in a thread pool, so they never block requests to other models. A model with a
lease (serving a request) or with requests waiting for it is never chosen for unloading.
Extracted artifacts of unloaded models stay on disk up to a byte limit (LRU beyond it).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mmeperf.backends.base import Backend, Runner
from mmeperf.endpoints.local.config import FAST_PATH_AFTER_USES
from mmeperf.endpoints.local.counters import MmeCounters
from mmeperf.errors import (
    ArchiveTooLargeError,
    InsufficientMemoryError,
    ModelLoadError,
    ModelNotFoundError,
    ModelNotReadyError,
    RepositoryError,
)
from mmeperf.repository.archive import DEFAULT_MAX_BYTES
from mmeperf.units import format_size

if TYPE_CHECKING:
    from mmeperf.endpoints.local.batching import Batcher
    from mmeperf.repository import ModelEntry, ModelRepository

__all__ = ["CachedModel", "FirstUse", "Lease", "ModelCache"]

#: Smallest extraction limit a budget sets (see ModelCache._extract_limit).
_MIN_EXTRACT_LIMIT = 2**20

#: Work for the request that caused a load, run in the loader thread right after it (never raises).
FirstUse = Callable[[Backend, Runner], None]


@dataclass(eq=False)
class CachedModel:
    """A model in memory."""

    target: str
    backend: Backend
    runner: Runner
    folder: Path
    charged_bytes: int
    """Runner memory plus the per-model overhead, as charged against the budget."""
    batcher: Batcher
    downloading_us: float
    loading_us: float
    source: str = ""
    """The repository target it was loaded from: its TargetModel, or for a model registered
    through the container API under another name, the entry its url named."""
    url: str | None = None
    """The url it was registered with (container API), else None."""
    worker_id: str = "9000"
    """Its worker's id in the container API's describe (MMS numbers workers from 9000)."""
    loaded_at: float = field(default_factory=time.time)
    leases: int = 0
    invocations: int = 0
    uses: int = 0
    """Leases taken since the load (the optimizer starts once a model proves to be reused)."""
    optimizing: bool = False


@dataclass(slots=True)
class Lease:
    """A request's hold on a loaded model; the model is not unloaded until it is released."""

    model: CachedModel
    hit: bool
    wait_us: float
    load_us: float
    _cache: ModelCache

    def release(self) -> None:
        self._cache._release(self.model)


class ModelCache:
    """Loaded models by target name, under ``budget_bytes`` (None: unlimited)."""

    def __init__(
        self,
        *,
        repository: ModelRepository,
        counters: MmeCounters,
        budget_bytes: int | None,
        per_model_overhead_bytes: int,
        disk_dir: Path,
        loader: Executor,
        allow_pickle: bool,
        load_wait_s: float,
        make_batcher: Callable[[Runner, Backend], Batcher],
        resolve_backend: Callable[[ModelEntry, Path], Backend],
        optimize: Callable[[Runner], Runner] | None = None,
        optimizer: Executor | None = None,
        optimize_after_uses: int = FAST_PATH_AFTER_USES,
        disk_limit_bytes: int | None = None,
        runner_factory: Callable[[Backend, ModelEntry, Path], Runner] | None = None,
    ) -> None:
        self._repo = repository
        self._counters = counters
        self.budget_bytes = budget_bytes
        self.overhead_bytes = per_model_overhead_bytes
        self._disk_dir = disk_dir
        self._loader = loader
        self._allow_pickle = allow_pickle
        self._load_wait_s = load_wait_s
        self._make_batcher = make_batcher
        self._resolve_backend = resolve_backend
        self._optimize = optimize
        self._optimizer = optimizer or loader
        self._optimize_after = max(optimize_after_uses, 1)
        self.disk_limit_bytes = disk_limit_bytes
        self._runner_factory = runner_factory  # None: backend.load in the loader thread
        self._loaded: OrderedDict[str, CachedModel] = OrderedDict()  # least recently used first
        self._loading: dict[str, asyncio.Future[CachedModel]] = {}
        self._loading_sources: dict[str, str] = {}  # target -> repository target, while loading
        self._waiting: dict[str, int] = {}  # requests awaiting a model's load
        self._reserved: dict[str, int] = {}  # bytes held for loads in progress
        self._used = 0  # charged bytes of loaded models plus reservations
        self._room_waiters: list[asyncio.Future[None]] = []
        # target -> (extracted artifact folder, its bytes), least recently used first
        # Keyed by repository target (a model registered under another name shares its files).
        self._on_disk: OrderedDict[str, tuple[Path, int]] = OrderedDict()
        self._disk_bytes = 0
        self._known_size: dict[str, int] = {}  # repository target -> charged bytes of its last load
        self._stored_size: dict[str, int] = {}  # target -> stored bytes, from the repository listing
        self._tasks: set[asyncio.Task[None]] = set()
        self._workers = 0  # worker ids handed out
        counters.memory_budget_bytes = budget_bytes

    # --- queries ----------------------------------------------------------------------------

    def get_loaded(self, target: str) -> CachedModel | None:
        return self._loaded.get(target)

    def loaded(self) -> list[CachedModel]:
        return list(self._loaded.values())

    def loading(self) -> list[str]:
        return list(self._loading)

    @property
    def used_bytes(self) -> int:
        return self._used

    @property
    def disk_bytes(self) -> int:
        """Bytes of extracted artifacts in the disk cache."""
        return self._disk_bytes

    def on_disk(self) -> list[str]:
        """Targets whose extracted artifact is in the disk cache, least recently used first."""
        return list(self._on_disk)

    def note_listing(self, sizes: dict[str, int]) -> None:
        """Stored sizes by target from a repository listing: first loads can then reserve room
        before their download (one loader hand-off instead of two)."""
        self._stored_size.update(sizes)

    # --- acquire / release ------------------------------------------------------------------

    def try_hit(self, target: str) -> Lease | None:
        """The hit path: a lease on a loaded model, or None (no lock: one event-loop thread)."""
        model = self._loaded.get(target)
        if model is None:
            return None
        model.leases += 1
        model.uses += 1
        self._loaded.move_to_end(target)
        self._counters.model_cache_lookups += 1
        self._counters.model_cache_hits += 1
        return Lease(model, True, 0.0, 0.0, self)

    async def acquire(self, target: str, *, first_use: FirstUse | None = None) -> Lease:
        """A lease on ``target``, loading it first if needed (``target`` already validated).

        ``first_use``: called in the loader thread right after the load this request starts
        (not one it joins), with the backend and runner, so the request that caused a miss is
        served in the same hand-off as the load; it must not raise.

        Raises the load's error (ModelNotFoundError, CorruptArtifactError, ModelLoadError,
        InsufficientMemoryError) or ModelNotReadyError when the wait limit passes first.
        """
        lease = self.try_hit(target)
        if lease is not None:
            return lease
        self._counters.model_cache_lookups += 1
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        deadline = t0 + self._load_wait_s
        load_us = 0.0
        while True:
            model = self._loaded.get(target)
            if model is not None:
                model.leases += 1
                model.uses += 1
                self._loaded.move_to_end(target)
                wait_us = (time.perf_counter() - t0) * 1e6
                self._counters.latency["ModelLoadingWaitTime"].add(wait_us)
                return Lease(model, False, wait_us, load_us, self)
            fut = self._loading.get(target)
            if fut is None:
                fut = self._start_load(target, loop, first_use)
                first_use = None  # a retry after a failed load starts without it
            remaining = deadline - time.perf_counter()
            self._waiting[target] = self._waiting.get(target, 0) + 1
            try:
                if not await _wait_done(fut, max(remaining, 0.0), loop):
                    raise ModelNotReadyError(
                        f"Model {target!r} is still being downloaded or loaded after "
                        f"{self._load_wait_s:g} s; try the request again"
                    )
                loaded = fut.result()  # the load's error, if it failed
                load_us = loaded.downloading_us + loaded.loading_us
            finally:
                left = self._waiting[target] - 1
                if left:
                    self._waiting[target] = left
                else:
                    del self._waiting[target]

    def _release(self, model: CachedModel) -> None:
        model.leases -= 1
        if model.leases == 0 and self._room_waiters:
            self._wake_room_waiters()
        if not model.optimizing and model.uses >= self._optimize_after and self._optimize is not None:
            self._start_optimize(model)

    # --- loading ----------------------------------------------------------------------------

    def _start_load(
        self, target: str, loop: asyncio.AbstractEventLoop, first_use: FirstUse | None = None,
        *, source: str | None = None, url: str | None = None,
    ) -> asyncio.Future[CachedModel]:
        fut: asyncio.Future[CachedModel] = loop.create_future()
        # Marked loading before anything awaits: listings and concurrent requests see it now.
        self._loading[target] = fut
        self._loading_sources[target] = source = target if source is None else source
        task = loop.create_task(self._load(target, fut, first_use, source, url))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return fut

    async def load(self, target: str) -> tuple[CachedModel, bool]:
        """Load ``target`` without serving a request (container API); (model, was it loaded)."""
        model = self._loaded.get(target)
        if model is not None:
            return model, True
        loop = asyncio.get_running_loop()
        fut = self._loading.get(target) or self._start_load(target, loop)
        return await asyncio.shield(fut), False

    def begin_load(self, name: str, *, source: str, url: str) -> asyncio.Future[CachedModel]:
        """Start loading repository target ``source`` under ``name`` (the container API's
        register; the caller checked ``name`` is neither loaded nor loading)."""
        return self._start_load(name, asyncio.get_running_loop(), source=source, url=url)

    async def _load(
        self, target: str, fut: asyncio.Future[CachedModel], first_use: FirstUse | None,
        source: str, url: str | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        counters = self._counters
        try:
            folder = self._disk_folder(source)
            # Room is reserved before anything is read when the size is known without I/O (the
            # last load's), or when the listing's stored size fits without unloading anything;
            # then fetch and load are one loader job.
            estimate = self._known_size.get(source)
            if estimate is None and source in self._stored_size:
                guess = self._first_estimate(self._stored_size[source])
                if self.budget_bytes is None or self._used + guess <= self.budget_bytes:
                    estimate = guess
            if estimate is None and self.budget_bytes is None:
                estimate = 0  # no budget: nothing to wait for, the charge is corrected after the load
            if estimate is not None:
                await self._reserve(target, estimate)
            else:
                # The real size is unknown and a guess would unload models: load first (files
                # bounded by the budget, see _extract_limit), then reserve what the runner
                # holds, so a model that cannot fit is refused (507) before anything is unloaded.
                # The request is served after the reservation, not in the loader thread.
                estimate = 0
                first_use = None
            job = await loop.run_in_executor(
                self._loader, self._fetch_and_load, source, folder, True, first_use
            )
            self._record_disk(source, job)
            assert job.runner is not None and job.backend is not None
            runner, backend = job.runner, job.backend
            counters.latency["ModelDownloadingTime"].add(job.downloading_us)
            actual = max(int(runner.memory_bytes), 0) + self.overhead_bytes
            self._known_size[source] = actual
            try:
                if actual > estimate:
                    await self._reserve(target, actual - estimate)
                elif actual < estimate:
                    self._unreserve(target, estimate - actual)
            except BaseException:
                loop.run_in_executor(self._loader, runner.close)
                raise
            model = CachedModel(
                target=target,
                backend=backend,
                runner=runner,
                folder=job.folder,
                charged_bytes=actual,
                batcher=self._make_batcher(runner, backend),
                downloading_us=job.downloading_us,
                loading_us=job.loading_us,
                source=source,
                url=url,
                worker_id=str(9000 + self._workers),
            )
            self._workers += 1
            self._reserved.pop(target, None)  # the reservation becomes the model's charge
            self._loaded[target] = model
            counters.latency["ModelLoadingTime"].add(job.loading_us)
            counters.model_loads += 1
            self._publish()
            if not fut.done():
                fut.set_result(model)
            # The optimizer starts once the model is reused (see _release), not now: compiling
            # holds the GIL for milliseconds and would delay this very miss's answer.
        except BaseException as exc:
            self._unreserve(target, self._reserved.get(target, 0))
            self._reserved.pop(target, None)  # also a zero reservation (no budget)
            counters.model_load_failures += 1
            if not fut.done():
                fut.set_exception(exc)
            fut.exception()  # retrieved: a load nobody waits for any more must not log noise
            if not isinstance(exc, Exception):
                raise
        finally:
            self._loading.pop(target, None)
            self._loading_sources.pop(target, None)
            self._trim_disk()

    def _first_estimate(self, stored_bytes: int) -> int:
        # First load: the stored size is only a guess, so it never alone refuses a model.
        estimate = stored_bytes + self.overhead_bytes
        if self.budget_bytes is not None:
            estimate = min(estimate, self.budget_bytes)
        return estimate

    def _disk_folder(self, target: str) -> Path | None:
        """The extracted folder of ``target`` if the disk cache holds it (marked recently used)."""
        held = self._on_disk.get(target)
        if held is None:
            return None
        self._on_disk.move_to_end(target)
        return held[0]

    def _fetch_and_load(
        self, target: str, folder: Path | None, load: bool, first_use: FirstUse | None
    ) -> _LoadJob:
        """In a loader thread: the entry, the extracted artifact (fetched unless on disk), and
        with ``load`` the backend's runner, in one hand-off. ``target`` is a repository target
        literally, as SageMaker joins TargetModel to its S3 prefix: ``m.tar.gz``, never ``m``."""
        t0 = time.perf_counter()
        entry = self._repo.get(target)
        if entry.target != target:
            raise ModelNotFoundError(
                f"Model {target!r} is not in the repository: a target is the artifact's key "
                f"({entry.target!r}), not the model's name"
            )
        for attempt in range(1, _FETCH_ATTEMPTS + 1):
            fetched_bytes: int | None = None
            try:
                if folder is None or not folder.is_dir():
                    folder, fetched_bytes = self._fetch(entry)
                job = _LoadJob(entry, folder, fetched_bytes, (time.perf_counter() - t0) * 1e6)
                if not load:
                    return job
                return self._finish_load(job, first_use)
            except Exception as exc:
                vanished = (not self._disk_dir.is_dir() or (folder is not None and _emptied(folder))
                            or _missing_file(exc))
                if fetched_bytes is not None and folder is not None:
                    # Not in the disk cache's books yet: nobody else removes it.
                    shutil.rmtree(folder, ignore_errors=True)
                if attempt < _FETCH_ATTEMPTS and vanished:
                    # The cache folder was removed under us (by hand, or a disk cleaner):
                    # fetch again into a re-created folder instead of failing the request.
                    folder = None
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _fetch(self, entry: ModelEntry) -> tuple[Path, int]:
        """In a loader thread: extract ``entry`` into the disk cache, no more bytes than the
        memory budget could ever hold (InsufficientMemoryError beyond them, before a load)."""
        limit = self._extract_limit
        try:
            return self._repo.fetch_counted(entry.target, self._disk_dir, max_bytes=limit)
        except RepositoryError as exc:
            cause: BaseException | None = exc
            while cause is not None and not isinstance(cause, ArchiveTooLargeError):
                cause = cause.__cause__
            if cause is None or limit >= DEFAULT_MAX_BYTES:
                raise
            raise InsufficientMemoryError(
                f"Model {entry.target!r} expands to more than {format_size(limit)}, more than the "
                f"whole memory budget of {format_size(self.budget_bytes or 0)} could ever hold; "
                "refused before loading it"
            ) from None

    @property
    def _extract_limit(self) -> int:
        """Bytes an artifact may expand to: a model's files are at least what it holds in
        memory (XGBoost's booster, ONNX initializers), so beyond the whole budget it never fits.
        At least 1 MiB: a tiny budget still lets a small artifact say what else is wrong with it."""
        budget = self.budget_bytes
        return DEFAULT_MAX_BYTES if budget is None else min(max(budget, _MIN_EXTRACT_LIMIT), DEFAULT_MAX_BYTES)

    def _finish_load(self, job: _LoadJob, first_use: FirstUse | None) -> _LoadJob:
        """In a loader thread: the backend and its runner for the job's artifact, then the
        first request's work if it came along."""
        t0 = time.perf_counter()
        job.backend, job.runner = self._load_runner(job.entry, job.folder)
        job.loading_us = (time.perf_counter() - t0) * 1e6
        if first_use is not None:
            first_use(job.backend, job.runner)
        return job

    def _load_runner(self, entry: ModelEntry, folder: Path) -> tuple[Backend, Runner]:
        """In a loader thread: the backend and its runner for the artifact."""
        backend = self._resolve_backend(entry, folder)
        try:
            if self._runner_factory is not None:  # process workers (see workers.py)
                runner = self._runner_factory(backend, entry, folder)
            else:
                runner = backend.load(folder, allow_pickle=self._allow_pickle)
        except ModelLoadError:
            raise
        except Exception as exc:  # a backend bug or odd file must still fail as a load error
            raise ModelLoadError(f"Model {entry.target!r} failed to load: {exc!r}") from exc
        return backend, runner

    # --- disk cache -------------------------------------------------------------------------

    def _record_disk(self, target: str, job: _LoadJob) -> None:
        """On the loop: note a newly extracted folder in the disk cache."""
        if job.fetched_bytes is None:
            return
        old = self._on_disk.pop(target, None)
        if old is not None:  # its folder vanished from under us: forget it
            self._disk_bytes -= old[1]
        self._on_disk[target] = (job.folder, job.fetched_bytes)
        self._disk_bytes += job.fetched_bytes

    def _trim_disk(self) -> None:
        """Remove least recently used extracted folders of models neither loaded nor loading
        while the disk cache holds more than its limit (the files are removed in a loader thread)."""
        limit = self.disk_limit_bytes
        if limit is None or self._disk_bytes <= limit:
            return
        busy = {m.source for m in self._loaded.values()} | set(self._loading_sources.values())
        for source in list(self._on_disk):
            if self._disk_bytes <= limit:
                break
            if source in busy:
                continue
            folder, nbytes = self._on_disk.pop(source)
            self._disk_bytes -= nbytes
            self._loader.submit(shutil.rmtree, folder, True)

    # --- optimizing -------------------------------------------------------------------------

    def _start_optimize(self, model: CachedModel) -> None:
        """Compile ``model``'s faster runner in the optimizer thread, after the current answer.

        Scheduled with call_soon: the request whose lease was just released writes its answer
        in this same loop step, before the compilation thread wakes and takes the GIL.
        """
        model.optimizing = True
        optimize = self._optimize
        assert optimize is not None
        loop = asyncio.get_running_loop()

        def submit() -> None:
            if self._loaded.get(model.target) is not model:
                return
            runner = model.runner
            loop.run_in_executor(self._optimizer, optimize, runner).add_done_callback(
                lambda done: self._swap_runner(model, done)
            )

        loop.call_soon(submit)

    def _swap_runner(self, model: CachedModel, done: asyncio.Future[Runner]) -> None:
        """Serve ``model`` with its optimized runner if it is still loaded and the budget allows."""
        if done.cancelled() or done.exception() is not None:
            return
        better = done.result()
        if better is model.runner or self._loaded.get(model.target) is not model:
            return
        extra = max(int(better.memory_bytes) - int(model.runner.memory_bytes), 0)
        if self.budget_bytes is not None and self._used + extra > self.budget_bytes:
            return  # never unload another model for a speed-up
        model.runner = better
        model.batcher.set_runner(better)
        model.charged_bytes += extra
        self._used += extra
        self._publish()

    # --- budget -----------------------------------------------------------------------------

    async def _reserve(self, target: str, nbytes: int) -> None:
        """Hold ``nbytes`` for ``target``'s load, unloading LRU idle models to make room."""
        budget = self.budget_bytes
        # Decided before anything is unloaded, on the model's whole need (what it holds already
        # reserved plus this), which is what the message says.
        if budget is not None and nbytes + self._reserved.get(target, 0) > budget:
            nbytes += self._reserved.get(target, 0)
            raise InsufficientMemoryError(
                f"Model {target!r} needs {format_size(nbytes)} (with the per-model overhead of "
                f"{format_size(self.overhead_bytes)}), more than the whole memory budget of "
                f"{format_size(budget)}"
            )
        loop = asyncio.get_running_loop()
        deadline = time.perf_counter() + self._load_wait_s
        while budget is not None and self._used + nbytes > budget:
            victim = self._victim()
            if victim is not None:
                self._unload(victim)
                continue
            # Every loaded model is busy: wait until a request releases one.
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise ModelNotReadyError(
                    f"Model {target!r} cannot be loaded: every loaded model is serving requests "
                    f"and the memory budget of {format_size(budget)} is full"
                )
            waiter: asyncio.Future[None] = loop.create_future()
            self._room_waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                continue
        self._used += nbytes
        self._reserved[target] = self._reserved.get(target, 0) + nbytes

    def _unreserve(self, target: str, nbytes: int) -> None:
        if nbytes <= 0:
            return
        self._used -= nbytes
        left = self._reserved.get(target, 0) - nbytes
        if left > 0:
            self._reserved[target] = left
        else:
            self._reserved.pop(target, None)
        self._wake_room_waiters()

    def _victim(self) -> CachedModel | None:
        for model in self._loaded.values():  # least recently used first
            if model.leases == 0 and model.target not in self._waiting and model.batcher.idle:
                return model
        return None

    def _wake_room_waiters(self) -> None:
        waiters, self._room_waiters = self._room_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _publish(self) -> None:
        self._counters.set_loaded(len(self._loaded), self._used)

    # --- unloading --------------------------------------------------------------------------

    def _unload(self, model: CachedModel) -> None:
        """Take an idle model out of memory now; its runner is closed in a loader thread."""
        del self._loaded[model.target]
        self._used -= model.charged_bytes
        self._publish()
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()

        def close() -> None:
            try:
                model.runner.close()
            finally:
                model.runner = None  # type: ignore[assignment]  # drop the last reference

        def done(f: asyncio.Future[None]) -> None:
            self._counters.latency["ModelUnloadingTime"].add((time.perf_counter() - t0) * 1e6)
            self._counters.model_unloads += 1
            f.exception()

        loop.run_in_executor(self._loader, close).add_done_callback(done)
        self._wake_room_waiters()
        self._trim_disk()

    def forget(self, target: str, runner: Runner) -> bool:
        """Take ``target`` out of memory now because its ``runner`` died (a worker process); its
        requests already failed, the next one loads it again. False if that runner is not loaded."""
        model = self._loaded.get(target)
        if model is None or model.runner is not runner:
            return False
        del self._loaded[target]
        self._used -= model.charged_bytes
        self._publish()
        self._wake_room_waiters()
        return True

    async def unload(self, target: str, *, wait_s: float) -> bool:
        """Unload ``target`` once its in-flight requests finish; False if it is not loaded."""
        model = self._loaded.get(target)
        if model is None:
            return False
        deadline = time.perf_counter() + wait_s
        loop = asyncio.get_running_loop()
        while model.leases or not model.batcher.idle:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise ModelNotReadyError(f"Model {target!r} is still serving requests; try again")
            waiter: asyncio.Future[None] = loop.create_future()
            self._room_waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, min(remaining, 0.05))
            except TimeoutError:
                pass
        if self._loaded.get(target) is model:
            self._unload(model)
        return True

    def close(self) -> None:
        """Drop every model and the disk cache (server shutdown)."""
        self._on_disk.clear()
        self._disk_bytes = 0
        for model in list(self._loaded.values()):
            try:
                model.runner.close()
            except Exception:  # shutting down: one bad runner must not keep the rest loaded
                pass
        self._loaded.clear()
        shutil.rmtree(self._disk_dir, ignore_errors=True)


@dataclass(slots=True, eq=False)
class _LoadJob:
    """What a loader thread hands back: the entry, the artifact folder, the runner, timings."""

    entry: ModelEntry
    folder: Path
    fetched_bytes: int | None
    """Bytes extracted by this job (None: the folder was already in the disk cache)."""
    downloading_us: float
    loading_us: float = 0.0
    backend: Backend | None = None
    runner: Runner | None = None


#: Fetches of one load when its folder keeps vanishing under it (a cleaner removing the cache
#: while it is being written): each is a fresh extraction into a re-created folder.
_FETCH_ATTEMPTS = 4


def _missing_file(exc: BaseException) -> bool:
    """Whether ``exc`` or one of its causes is a file or folder that disappeared (ENOENT)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, FileNotFoundError):
            return True
        cause = cause.__cause__
    return False


def _emptied(folder: Path) -> bool:
    """Whether an extracted folder was removed, or is being removed (no files left in it)."""
    try:
        return not any(p.is_file() for p in folder.rglob("*"))
    except OSError:
        return True


async def _wait_done(fut: asyncio.Future[CachedModel], timeout: float, loop: asyncio.AbstractEventLoop) -> bool:
    """Wait until ``fut`` is done or ``timeout`` seconds pass, never cancelling it; True if done.

    ``wait_for(shield(fut))`` without its extra future and coroutine: the waiting request
    resumes one loop step after the load finishes instead of three.
    """
    if fut.done():
        return True
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    fut.add_done_callback(wake)
    timer = loop.call_later(timeout, wake)
    try:
        await waiter
    finally:
        timer.cancel()
        fut.remove_done_callback(wake)
    return fut.done()
