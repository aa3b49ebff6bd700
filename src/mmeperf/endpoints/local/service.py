"""The local MME without its transport: invoke, load, list, unload, metrics, as plain coroutines.

The ASGI app (:mod:`.app`) calls this one class; the in-process
:class:`~mmeperf.endpoints.local.memory.MemoryEndpoint` drives that same app, so HTTP and
socket-free tests exercise the same routing, cache, batching and metrics. Answers are :class:`Reply` objects; errors are turned into SageMaker-shaped replies here.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import re
import secrets
import socket
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmeperf.backends.base import Backend, Encoded, Runner
from mmeperf.endpoints.local.batching import Batcher, Dispatcher
from mmeperf.endpoints.local.cache import Lease, ModelCache
from mmeperf.endpoints.local.config import ServerConfig, emulation_note
from mmeperf.endpoints.local.counters import MmeCounters
from mmeperf.endpoints.local.replies import Headers, Reply, mms_error
from mmeperf.errors import (
    CorruptArtifactError,
    InsufficientMemoryError,
    InvalidModelNameError,
    InvocationTimeoutError,
    MmeperfError,
    ModelLoadError,
    ModelNotFoundError,
    ModelNotReadyError,
    PayloadError,
    PluginError,
    RepositoryError,
    ServiceUnavailableError,
)
from mmeperf.protocol import (
    HEADER_CACHE,
    HEADER_ERROR_TYPE,
    HEADER_INSTANCE,
    HEADER_INVOKED_VARIANT,
    HEADER_LOAD_US,
    HEADER_MODEL_LATENCY_US,
    HEADER_REQUEST_ID,
    HEADER_WAIT_US,
    CacheState,
)

if TYPE_CHECKING:
    from mmeperf.endpoints.local.workers import WorkerPool
    from mmeperf.repository import ModelEntry, ModelRepository

__all__ = ["MMEService", "Reply"]

log = logging.getLogger("mmeperf.serve")

_JSON = b"application/json"
#: Bodies larger than this are decoded, and their answers encoded, in the inference threads
#: instead of on the event loop (a few rows parse in microseconds; megabytes take seconds).
INLINE_DECODE_MAX_BYTES = 64 * 1024
#: Placeholder account in ARNs (the local endpoint has no AWS account).
LOCAL_ACCOUNT = "000000000000"


def _json_reply(status: int, payload: Any, headers: Headers | None = None) -> Reply:
    body = json.dumps(payload).encode()
    return Reply(status, [(b"content-type", _JSON), *(headers or [])], body)


class MMEService:
    """One local multi-model endpoint: repository, cache, inference pool, metrics."""

    def __init__(self, config: ServerConfig, *, repository: ModelRepository | None = None) -> None:
        self.config = config.check()
        self._repository = repository
        self._profile = config.profile()
        self._work_dir = Path(tempfile.mkdtemp(prefix="mmeperf-mme-", dir=config.cache_dir))
        self.counters = MmeCounters(
            memory_total_bytes=self._profile.memory_bytes if self._profile else None,
            disk_path=str(self._work_dir),
        )
        self._infer_pool: ThreadPoolExecutor | None = None
        self._load_pool: ThreadPoolExecutor | None = None
        self._compile_pool: ThreadPoolExecutor | None = None
        self._cache: ModelCache | None = None
        self._workers: WorkerPool | None = None
        self._in_flight = 0
        self.started_at = time.time()
        self._endpoint_path = f"/endpoints/{config.endpoint_name}/invocations"
        self._variant = config.variant_name.encode()
        #: This server as ``x-mmeperf-instance`` names it, and the attribution every hit carries.
        self.instance = f"{socket.gethostname()}:{os.getpid()}"
        self._hit_headers: Headers = [*_HIT_HEADERS, (_INSTANCE_HEADER, self.instance.encode("ascii", "replace"))]
        # Request ids: a random 64-bit prefix and a counter, 32 hex digits like a UUID's hex,
        # unique per server without a urandom call per request.
        self._request_prefix = secrets.token_hex(8)
        self._request_counter = itertools.count(1)
        self._content_types: dict[str, bytes] = {}
        self.log_stream_arn = (
            f"arn:aws:logs:local:{LOCAL_ACCOUNT}:log-group:/aws/sagemaker/Endpoints/"
            f"{config.endpoint_name}"
        )

    # --- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the repository and the thread pools (call on the loop that will serve)."""
        if self._repository is None:
            from mmeperf.repository import ModelRepository

            self._repository = ModelRepository(self.config.repository, create=False)
        loop = asyncio.get_running_loop()
        self._infer_pool = ThreadPoolExecutor(
            self.config.effective_inference_threads(), thread_name_prefix="mme-infer"
        )
        self._load_pool = ThreadPoolExecutor(self.config.loader_threads, thread_name_prefix="mme-load")
        # One thread compiles fast paths, one model at a time: loads never queue behind it.
        self._compile_pool = ThreadPoolExecutor(1, thread_name_prefix="mme-compile")
        max_rows, max_wait = self.config.max_batch_size, self.config.max_batch_wait_s
        dispatcher = Dispatcher(self._infer_pool, loop=loop, threads=self.config.effective_inference_threads())

        def make_batcher(runner: Runner, backend: Backend) -> Batcher:
            return Batcher(
                runner, dispatcher, loop=loop, max_rows=max_rows, max_wait_s=max_wait,
                supports_batching=backend.supports_batching, on_batch=self._on_batch,
                inline=self.config.inline_fast_path,
            )

        workers = self._start_workers(loop)
        self._cache = ModelCache(
            repository=self._repository,
            counters=self.counters,
            budget_bytes=self.config.effective_budget(),
            per_model_overhead_bytes=self.config.effective_overhead(),
            disk_dir=self._work_dir / "models",
            loader=self._load_pool,
            allow_pickle=self.config.allow_pickle,
            load_wait_s=self.config.model_load_wait_s,
            make_batcher=workers.make_batcher if workers else make_batcher,
            runner_factory=workers.load_runner if workers else None,
            resolve_backend=_resolve_backend,
            # Process workers compile the fast path themselves (see worker.py).
            optimize=_optimize if self.config.fast_path and not workers else None,
            optimizer=self._compile_pool,
            optimize_after_uses=self.config.fast_path_after_uses,
            disk_limit_bytes=self.config.disk_cache_bytes,
        )
        # Import the repository's frameworks now, not inside the first request's load time
        # (a SageMaker container has its framework imported before it answers /ping).
        sizes = await loop.run_in_executor(self._load_pool, _warm_backends, self._repository)
        self._cache.note_listing(sizes)

    def _start_workers(self, loop: asyncio.AbstractEventLoop) -> WorkerPool | None:
        """The worker processes' pool in process mode (see workers.py), else None."""
        if self.config.effective_worker_mode() != "process":
            return None
        from mmeperf.endpoints.local.workers import WorkerPool

        def on_death(target: str, runner: Runner, error: Exception) -> None:
            self.counters.worker_deaths += 1
            self.cache.forget(target, runner)

        self._workers = WorkerPool.from_config(
            self.config, loop=loop, log_dir=self._work_dir / "workers", on_death=on_death,
            on_batch=self._on_batch,
        )
        return self._workers

    async def stop(self) -> None:
        """Release models, pools and the disk cache (after in-flight requests finished)."""
        if self._cache is not None:
            self._cache.close()
        if self._workers is not None:
            self._workers.close()
        from mmeperf.endpoints.local.fastpath import shutdown_compiler

        shutdown_compiler()
        for pool in (self._infer_pool, self._load_pool, self._compile_pool):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        import shutil

        shutil.rmtree(self._work_dir, ignore_errors=True)

    @property
    def cache(self) -> ModelCache:
        if self._cache is None:
            raise RuntimeError("MMEService.start() has not run")
        return self._cache

    def _on_batch(self, rows: int) -> None:
        self.counters.batches += 1
        self.counters.batched_rows += rows

    # --- invocations ------------------------------------------------------------------------

    async def invoke(
        self,
        target: str | None,
        body: bytes,
        *,
        content_type: str | None,
        accept: str | None,
        runtime: bool = True,
        load: bool = True,
    ) -> Reply:
        """One invocation. ``runtime``: SageMaker runtime error shapes (else the container's
        plain statuses); ``load``: load the model on a miss (``/models/{name}/invoke`` does not)."""
        t0 = time.perf_counter()
        counters = self.counters
        lease: Lease | None = None
        model_us: float | None = None
        try:
            if self._in_flight >= self.config.max_concurrent_requests:
                raise ServiceUnavailableError(
                    f"The endpoint has {self._in_flight} requests in progress "
                    f"(limit {self.config.max_concurrent_requests}); try again"
                )
            self._in_flight += 1
            try:
                if target is None:
                    raise InvalidModelNameError(
                        "This is a multi-model endpoint: the X-Amzn-SageMaker-Target-Model "
                        "header (TargetModel) is required"
                    )
                cache = self.cache
                lease = cache.try_hit(target)
                first: _FirstUse | None = None
                if lease is None:
                    _validate_target(target)
                    if not load:
                        raise ModelNotFoundError(f"Model {target!r} is not loaded")
                    first = _FirstUse(body, content_type or "", accept)
                    lease = await cache.acquire(target, first_use=first)
                model = lease.model
                if runtime and model.source != target:
                    # Registered through the container API under a name that is not an artifact
                    # key: a TargetModel names the artifact itself.
                    lease.release()
                    lease = None
                    raise ModelNotFoundError(f"Model {target!r} is not in the repository")
                if first is not None and first.ran:
                    # This request caused the load: it was served in the loader thread right
                    # after it (one hand-off for load and predict, as loading by hand would).
                    encoded, model_us = first.result()
                    self._on_batch(first.rows)
                else:
                    t_model = time.perf_counter()
                    backend = model.backend
                    large = len(body) > INLINE_DECODE_MAX_BYTES
                    if large:  # never parse megabytes on the event loop: every request would wait
                        batch = await asyncio.get_running_loop().run_in_executor(
                            self._infer_pool, backend.decode, body, content_type or "", model.runner
                        )
                    else:
                        batch = backend.decode(body, content_type or "", model.runner)
                    prediction = model.batcher.try_inline(batch)
                    if prediction is None:
                        fut = model.batcher.submit(batch)
                        timer = asyncio.get_running_loop().call_later(
                            self.config.invocation_timeout_s, _expire, fut, target
                        )
                        try:
                            prediction = await fut
                        finally:
                            timer.cancel()
                    if large:
                        encoded = await asyncio.get_running_loop().run_in_executor(
                            self._infer_pool, backend.encode, prediction.output, accept
                        )
                    else:
                        encoded = backend.encode(prediction.output, accept)
                    model_us = (time.perf_counter() - t_model) * 1e6
                model.invocations += 1
            finally:
                self._in_flight -= 1
            content_type_bytes = self._content_types.get(encoded.content_type)
            if content_type_bytes is None:
                content_type_bytes = self._content_types[encoded.content_type] = encoded.content_type.encode()
            if lease.hit:
                headers: Headers = [
                    (b"content-type", content_type_bytes),
                    (_VARIANT_HEADER, self._variant),
                    (_REQUEST_ID_HEADER, self._request_id()),
                    *self._hit_headers,
                    (_MODEL_LATENCY_HEADER, b"%d" % round(model_us)),
                ]
            else:
                headers = [
                    (b"content-type", content_type_bytes),
                    (_VARIANT_HEADER, self._variant),
                    (_REQUEST_ID_HEADER, self._request_id()),
                    *self._attribution(lease, model_us),
                ]
            total_us = (time.perf_counter() - t0) * 1e6
            counters.latency["ModelLatency"].add(model_us)
            counters.latency["OverheadLatency"].add(max(total_us - model_us - lease.wait_us, 0.0))
            counters.count_response(200)
            return Reply(200, headers, encoded.body)
        except Exception as exc:
            reply, counted_status = self._error_reply(exc, target, runtime=runtime)
            reply.headers.extend(self._attribution(lease, model_us))
            counters.count_response(counted_status)
            return reply
        finally:
            if lease is not None:
                lease.release()

    def _attribution(self, lease: Lease | None, model_us: float | None) -> Headers:
        """The attribution headers of an answer whose request reached its model's cache."""
        if lease is None:
            return []
        headers = [
            (_CACHE_HEADER, _CACHE_VALUES[lease.hit]),
            (_WAIT_HEADER, str(round(lease.wait_us)).encode()),
            (_LOAD_HEADER, str(round(lease.load_us)).encode()),
            (_INSTANCE_HEADER, self.instance.encode("ascii", "replace")),
        ]
        if model_us is not None:
            headers.append((_MODEL_LATENCY_HEADER, str(round(model_us)).encode()))
        return headers

    def _request_id(self) -> bytes:
        return f"{self._request_prefix}{next(self._request_counter):016x}".encode()

    def _error_reply(self, exc: Exception, target: str | None, *, runtime: bool) -> tuple[Reply, int]:
        """The reply for ``exc`` and the status CloudWatch would count it under."""
        if not isinstance(exc, MmeperfError):
            log.exception("Unexpected error serving %r", target)
        status, code, message = _classify(exc, target, self.config.repository)
        message = self._hide_paths(message)
        request_id = self._request_id()
        payload: dict[str, Any]
        if not runtime:
            if isinstance(exc, ModelNotFoundError):
                return mms_error(404, "ModelNotFoundException", f"Model not found: {target}"), 404
            return mms_error(status, type(exc).__name__, message), status
        if code == "ModelError":
            # What SageMaker says when the container answered an error: 424 wrapping it.
            kind = "client" if 400 <= status < 500 else "server"
            original = 0 if isinstance(exc, InvocationTimeoutError) else status
            payload = {
                "ErrorCode": f"{kind.upper()}_ERROR_FROM_MODEL",
                "Message": (
                    f"Received {kind} error ({original}) from model with message \"{message}\". "
                    f"See {self.log_stream_arn} in account {LOCAL_ACCOUNT} for more information."
                ),
                "OriginalStatusCode": original,
                "OriginalMessage": message,
                "LogStreamArn": self.log_stream_arn,
            }
            http_status, counted = 424, status
        else:
            payload = {"Message": message}
            http_status = 413 if status == 413 else _RUNTIME_STATUS.get(code, status)
            counted = http_status
        headers: Headers = [(_ERROR_TYPE_HEADER, code.encode()), (_REQUEST_ID_HEADER, request_id)]
        return _json_reply(http_status, payload, headers), counted

    def _hide_paths(self, message: str) -> str:
        """``message`` without this server's cache paths (clients need not learn the host's
        folders): a model's extracted folder reads ``<model>``, the cache itself ``<cache>``."""
        work = str(self._work_dir)
        if work not in message:
            return message
        message = re.sub(re.escape(work) + r"/models/[^/\s'\"]+", "<model>", message)
        return message.replace(work, "<cache>")

    def count_rejected(self, status: int) -> None:
        """Count an invocation the transport refused before it reached the service (413...)."""
        self.counters.count_response(status)

    def error_reply(self, exc: Exception, *, runtime: bool) -> Reply:
        """A reply for an error raised outside ``invoke`` (e.g. a body over the size limit)."""
        return self._error_reply(exc, None, runtime=runtime)[0]

    @property
    def repository(self) -> ModelRepository:
        """The repository models are loaded from (after :meth:`start`)."""
        if self._repository is None:
            raise RuntimeError("MMEService.start() has not run")
        return self._repository

    @property
    def load_pool(self) -> ThreadPoolExecutor:
        """The threads that read the repository and load models (never the event loop)."""
        if self._load_pool is None:
            raise RuntimeError("MMEService.start() has not run")
        return self._load_pool

    # --- status -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """``GET /mmeperf/status``: configuration, emulation and the cache right now."""
        cache = self.cache
        s = self.counters
        return {
            "endpoint_name": self.config.endpoint_name,
            "pid": os.getpid(),
            "started_at": self.started_at,
            "repository": self.config.repository,
            "instance_profile": self.config.instance_profile,
            "emulated": self._profile is not None,
            "emulation_note": self._emulation_note(),
            "memory_budget_bytes": cache.budget_bytes,
            "per_model_overhead_bytes": cache.overhead_bytes,
            "memory_used_bytes": cache.used_bytes,
            "peak_memory_used_bytes": s.peak_memory_used_bytes,
            "loaded_models": [m.target for m in cache.loaded()],
            "models": [
                {"name": m.target, "source": m.source, "url": m.url, "backend": m.backend.name,
                 "runner": type(m.runner).__name__, "charged_bytes": m.charged_bytes,
                 "in_use": m.leases, "invocations": m.invocations, "loaded_at": m.loaded_at}
                for m in cache.loaded()
            ],
            "loading_models": cache.loading(),
            "peak_loaded_model_count": s.peak_loaded_model_count,
            "model_load_failures": s.model_load_failures,
            "disk_cache_bytes": cache.disk_bytes,
            "disk_cache_limit_bytes": cache.disk_limit_bytes,
            "models_on_disk": cache.on_disk(),
            "batches": s.batches,
            "batched_rows": s.batched_rows,
            "inference_threads": self.config.effective_inference_threads(),
            "in_flight": self._in_flight,
            "workers": self._workers.describe() if self._workers else {"worker_mode": "thread"},
            "cpu_emulation": _cpu_emulation(),
        }

    def _emulation_note(self) -> str | None:
        if self._profile is None:
            return None
        cpu = _cpu_emulation()
        return emulation_note(self.config.effective_worker_mode(), cpu["label"] if cpu else None)

    @property
    def endpoint_path(self) -> str:
        return self._endpoint_path


# --- helpers ----------------------------------------------------------------------------------

_RUNTIME_STATUS = {
    "ValidationError": 400,
    "ModelNotReadyException": 429,
    "ServiceUnavailable": 503,
    "InternalFailure": 500,
}


class _FirstUse:
    """Decode, predict and encode the request that caused a load, in the loader thread right
    after the load (see ModelCache.acquire); keeps the outcome or the error for the loop."""

    __slots__ = ("_accept", "_body", "_content_type", "_encoded", "_error", "_model_us", "ran", "rows")

    def __init__(self, body: bytes, content_type: str, accept: str | None) -> None:
        self._body, self._content_type, self._accept = body, content_type, accept
        self._encoded: Encoded | None = None
        self._error: Exception | None = None
        self._model_us = 0.0
        self.ran = False
        self.rows = 0

    def __call__(self, backend: Backend, runner: Runner) -> None:
        t0 = time.perf_counter()
        try:
            batch = backend.decode(self._body, self._content_type, runner)
            output = runner.predict(batch)
            self.rows = len(output) if getattr(output, "ndim", 1) else 1
            self._encoded = backend.encode(output, self._accept)
        except Exception as exc:  # the request's error (bad payload, predict failed), not the load's
            self._error = exc
        self._model_us = (time.perf_counter() - t0) * 1e6
        self.ran = True

    def result(self) -> tuple[Encoded, float]:
        """(encoded answer, model microseconds), or raises the request's error."""
        if self._error is not None:
            raise self._error
        assert self._encoded is not None
        return self._encoded, self._model_us


def _expire(fut: asyncio.Future[Any], target: str) -> None:
    if not fut.done():
        fut.set_exception(InvocationTimeoutError(
            f"Your invocation timed out while waiting for a response from model {target!r}"
        ))


# Header names as the ASGI app sends them (bytes, lower-case), all from mmeperf.protocol.
_CACHE_HEADER = HEADER_CACHE.encode()
_WAIT_HEADER = HEADER_WAIT_US.encode()
_LOAD_HEADER = HEADER_LOAD_US.encode()
_MODEL_LATENCY_HEADER = HEADER_MODEL_LATENCY_US.encode()
_INSTANCE_HEADER = HEADER_INSTANCE.encode()
_ERROR_TYPE_HEADER = HEADER_ERROR_TYPE.encode()
_REQUEST_ID_HEADER = HEADER_REQUEST_ID.encode()
_VARIANT_HEADER = HEADER_INVOKED_VARIANT.encode()
_CACHE_VALUES = {True: CacheState.HIT.value.encode(), False: CacheState.MISS.value.encode()}
#: The attribution headers every cache hit carries, before its instance and model latency.
_HIT_HEADERS: Headers = [(_CACHE_HEADER, _CACHE_VALUES[True]), (_WAIT_HEADER, b"0"), (_LOAD_HEADER, b"0")]


def _cpu_emulation() -> dict[str, Any] | None:
    from mmeperf.endpoints.local import cpu

    allowance = cpu.current()
    return allowance.as_dict() if allowance is not None else None


def _optimize(runner: Runner) -> Runner:
    from mmeperf.endpoints.local.fastpath import compile_runner

    return compile_runner(runner)


def _warm_backends(repository: ModelRepository) -> dict[str, int]:
    """Import the repository's backends; the stored size of every model by target."""
    from mmeperf.plugins import get_backend

    entries = repository.list()
    for name in sorted({e.backend for e in entries if e.backend}):
        try:
            get_backend(name)
        except Exception as exc:  # a model of that backend will fail to load and say why
            log.warning("Backend %r is not usable: %s", name, exc)
    # Resolve each listed target once now (name checks, manifest lookup), not on its first miss.
    for entry in entries[:_PRERESOLVE]:
        try:
            repository.get(entry.target)
        except MmeperfError:
            continue  # refused or gone: its first request says why
    return {e.target: e.bytes for e in entries}


#: Targets resolved at startup (a few milliseconds per thousand).
_PRERESOLVE = 4096


def _validate_target(target: str) -> str:
    from mmeperf.repository import validate_model_name

    return validate_model_name(target)


def _resolve_backend(entry: ModelEntry, folder: Path) -> Backend:
    """The backend for an artifact: the manifest's, else the one whose files it has."""
    from mmeperf.backends import get_backend
    from mmeperf.repository import detect_backend

    name = detect_backend(folder, hint=entry.backend)
    if name is None:
        files = sorted(p.name for p in folder.rglob("*") if p.is_file())[:10]
        raise ModelLoadError(
            f"Model {entry.target!r}: no backend recognizes its files {files}; "
            "add it with mmeperf so the manifest names its backend"
        )
    try:
        return get_backend(name)
    except PluginError as exc:
        raise ModelLoadError(f"Model {entry.target!r} needs the {name!r} backend: {exc}") from exc


def _classify(exc: Exception, target: str | None, repository: str) -> tuple[int, str, str]:
    """(container-side status, SageMaker error code, message) for an exception."""
    if isinstance(exc, ModelNotFoundError):
        # SageMaker joins TargetModel to the model's S3 prefix literally and finds nothing.
        return 404, "ValidationError", (
            f"Failed to download model data(bucket: {repository}, key: {target}). Please ensure "
            "that there is an object located at the URL and that the role passed to CreateModel "
            "has permissions to download the model."
        )
    if isinstance(exc, InvalidModelNameError):
        return 400, "ValidationError", str(exc)
    if isinstance(exc, PayloadError):  # includes UnsupportedContentTypeError (415)
        return exc.http_status, "ModelError", str(exc)
    if isinstance(exc, InsufficientMemoryError):
        return 507, "ModelError", str(exc)
    if isinstance(exc, CorruptArtifactError | ModelLoadError | RepositoryError):
        return 500, "ModelError", f"Model {target!r} failed to load: {exc}"
    if isinstance(exc, ModelNotReadyError | ServiceUnavailableError):
        return exc.http_status, exc.error_code, str(exc)
    if isinstance(exc, InvocationTimeoutError):
        return 504, "ModelError", str(exc)
    if isinstance(exc, MmeperfError) and exc.error_code == "ModelError":
        return 500, "ModelError", f"Model {target!r} failed: {exc}"
    if isinstance(exc, MmeperfError) and 400 <= exc.http_status < 500:
        return exc.http_status, exc.error_code, str(exc)
    return 500, "InternalFailure", f"An internal failure occurred: {type(exc).__name__}"
