"""The model cache of the local MME: disk cache, then memory under a byte budget, LRU unloads.

Runs on the server's event loop: the hit path is a dict lookup with no lock (nothing awaits
between the check and taking the lease); a miss joins the one in-flight load of that model or
starts it (single flight), marked "loading" before anything is awaited. Downloads, loads and
unloads run in a thread pool, so they never block requests to other models. A model with a
lease (serving a request) or with requests waiting for it is never chosen for unloading.
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
from mmeperf.endpoints.local.stats import ServerStats
from mmeperf.errors import (
    EndpointError,
    InsufficientMemoryError,
    ModelLoadError,
)
from mmeperf.units import format_size

if TYPE_CHECKING:
    from mmeperf.endpoints.local.batching import Batcher
    from mmeperf.repository import ModelEntry, ModelRepository

__all__ = ["CachedModel", "Lease", "ModelCache", "ModelNotReadyError"]


class ModelNotReadyError(EndpointError):
    """The model is still downloading or loading after the request's wait limit (429)."""

    http_status = 429
    error_code = "ModelNotReadyException"


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
    loaded_at: float = field(default_factory=time.time)
    leases: int = 0
    invocations: int = 0


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
        stats: ServerStats,
        budget_bytes: int | None,
        per_model_overhead_bytes: int,
        disk_dir: Path,
        loader: Executor,
        allow_pickle: bool,
        load_wait_s: float,
        make_batcher: Callable[[Runner, Backend], Batcher],
        resolve_backend: Callable[[ModelEntry, Path], Backend],
        optimize: Callable[[Runner], Runner] | None = None,
    ) -> None:
        self._repo = repository
        self._stats = stats
        self.budget_bytes = budget_bytes
        self.overhead_bytes = per_model_overhead_bytes
        self._disk_dir = disk_dir
        self._loader = loader
        self._allow_pickle = allow_pickle
        self._load_wait_s = load_wait_s
        self._make_batcher = make_batcher
        self._resolve_backend = resolve_backend
        self._optimize = optimize
        self._loaded: OrderedDict[str, CachedModel] = OrderedDict()  # least recently used first
        self._loading: dict[str, asyncio.Future[CachedModel]] = {}
        self._waiting: dict[str, int] = {}  # requests awaiting a model's load
        self._reserved: dict[str, int] = {}  # bytes held for loads in progress
        self._used = 0  # charged bytes of loaded models plus reservations
        self._room_waiters: list[asyncio.Future[None]] = []
        self._on_disk: dict[str, Path] = {}  # target -> extracted artifact folder
        self._known_size: dict[str, int] = {}  # target -> charged bytes of its last load
        self._tasks: set[asyncio.Task[None]] = set()
        stats.memory_budget_bytes = budget_bytes

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

    # --- acquire / release ------------------------------------------------------------------

    def try_hit(self, target: str) -> Lease | None:
        """The hit path: a lease on a loaded model, or None (no lock: one event-loop thread)."""
        model = self._loaded.get(target)
        if model is None:
            return None
        model.leases += 1
        self._loaded.move_to_end(target)
        self._stats.model_cache_lookups += 1
        self._stats.model_cache_hits += 1
        return Lease(model, True, 0.0, 0.0, self)

    async def acquire(self, target: str) -> Lease:
        """A lease on ``target``, loading it first if needed (``target`` already validated).

        Raises the load's error (ModelNotFoundError, CorruptArtifactError, ModelLoadError,
        InsufficientMemoryError) or ModelNotReadyError when the wait limit passes first.
        """
        lease = self.try_hit(target)
        if lease is not None:
            return lease
        self._stats.model_cache_lookups += 1
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        deadline = t0 + self._load_wait_s
        load_us = 0.0
        while True:
            model = self._loaded.get(target)
            if model is not None:
                model.leases += 1
                self._loaded.move_to_end(target)
                wait_us = (time.perf_counter() - t0) * 1e6
                self._stats.latency["ModelLoadingWaitTime"].add(wait_us)
                return Lease(model, False, wait_us, load_us, self)
            fut = self._loading.get(target)
            if fut is None:
                fut = self._start_load(target, loop)
            remaining = deadline - time.perf_counter()
            self._waiting[target] = self._waiting.get(target, 0) + 1
            try:
                loaded = await asyncio.wait_for(asyncio.shield(fut), max(remaining, 0.0))
                load_us = loaded.downloading_us + loaded.loading_us
            except TimeoutError:
                raise ModelNotReadyError(
                    f"Model {target!r} is still being downloaded or loaded after "
                    f"{self._load_wait_s:g} s; try the request again"
                ) from None
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

    # --- loading ----------------------------------------------------------------------------

    def _start_load(self, target: str, loop: asyncio.AbstractEventLoop) -> asyncio.Future[CachedModel]:
        fut: asyncio.Future[CachedModel] = loop.create_future()
        # Marked loading before anything awaits: listings and concurrent requests see it now.
        self._loading[target] = fut
        task = loop.create_task(self._load(target, fut))
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

    async def _load(self, target: str, fut: asyncio.Future[CachedModel]) -> None:
        loop = asyncio.get_running_loop()
        stats = self._stats
        try:
            t0 = time.perf_counter()
            entry, folder = await loop.run_in_executor(self._loader, self._download, target)
            downloading_us = (time.perf_counter() - t0) * 1e6
            stats.latency["ModelDownloadingTime"].add(downloading_us)

            estimate = self._known_size.get(target)
            if estimate is None:
                # First load: the stored size is only a guess, so it never alone refuses a model.
                estimate = entry.bytes + self.overhead_bytes
                if self.budget_bytes is not None:
                    estimate = min(estimate, self.budget_bytes)
            await self._reserve(target, estimate)

            t1 = time.perf_counter()
            backend, runner = await loop.run_in_executor(self._loader, self._load_runner, entry, folder)
            loading_us = (time.perf_counter() - t1) * 1e6
            actual = max(int(runner.memory_bytes), 0) + self.overhead_bytes
            self._known_size[target] = actual
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
                folder=folder,
                charged_bytes=actual,
                batcher=self._make_batcher(runner, backend),
                downloading_us=downloading_us,
                loading_us=loading_us,
            )
            self._reserved.pop(target, None)  # the reservation becomes the model's charge
            self._loaded[target] = model
            stats.latency["ModelLoadingTime"].add(loading_us)
            stats.model_loads += 1
            self._publish()
            if not fut.done():
                fut.set_result(model)
            if self._optimize is not None:
                # After the load, off the request's path: a miss costs no more than the load.
                optimize = self._optimize
                loop.run_in_executor(self._loader, optimize, runner).add_done_callback(
                    lambda done: self._swap_runner(model, done)
                )
        except BaseException as exc:
            self._unreserve(target, self._reserved.get(target, 0))
            stats.model_load_failures += 1
            if not fut.done():
                fut.set_exception(exc)
            fut.exception()  # retrieved: a load nobody waits for any more must not log noise
            if not isinstance(exc, Exception):
                raise
        finally:
            self._loading.pop(target, None)

    def _download(self, target: str) -> tuple[ModelEntry, Path]:
        """In a loader thread: the repository entry and the extracted artifact folder."""
        entry = self._repo.get(target)
        folder = self._on_disk.get(target)
        if folder is None or not folder.is_dir():
            folder = self._repo.fetch(target, self._disk_dir)
            self._on_disk[target] = folder
        return entry, folder

    def _load_runner(self, entry: ModelEntry, folder: Path) -> tuple[Backend, Runner]:
        """In a loader thread: the backend and its runner for the artifact."""
        backend = self._resolve_backend(entry, folder)
        try:
            runner = backend.load(folder, allow_pickle=self._allow_pickle)
        except ModelLoadError:
            raise
        except Exception as exc:  # a backend bug or odd file must still fail as a load error
            raise ModelLoadError(f"Model {entry.target!r} failed to load: {exc!r}") from exc
        return backend, runner

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
        model.batcher.runner = better
        model.charged_bytes += extra
        self._used += extra
        self._publish()

    # --- budget -----------------------------------------------------------------------------

    async def _reserve(self, target: str, nbytes: int) -> None:
        """Hold ``nbytes`` for ``target``'s load, unloading LRU idle models to make room."""
        budget = self.budget_bytes
        if budget is not None and nbytes + self._reserved.get(target, 0) > budget:
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
        self._stats.set_loaded(len(self._loaded), self._used)

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
            self._stats.latency["ModelUnloadingTime"].add((time.perf_counter() - t0) * 1e6)
            self._stats.model_unloads += 1
            f.exception()

        loop.run_in_executor(self._loader, close).add_done_callback(done)
        self._wake_room_waiters()

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
        for model in list(self._loaded.values()):
            try:
                model.runner.close()
            except Exception:  # shutting down: one bad runner must not keep the rest loaded
                pass
        self._loaded.clear()
        shutil.rmtree(self._disk_dir, ignore_errors=True)
