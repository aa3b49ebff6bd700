"""The container side of the local MME as Multi Model Server answers it under SageMaker's MME
contract: register (``POST /models``), list, describe, scale, unregister, ping, and MMS's errors.

Status lines, bodies and messages follow MMS 1.1.2 (what the SageMaker XGBoost container pins)
and the inference toolkit; the few deliberate differences are in docs/local-mme.md.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from mmeperf.backends.codecs import loads_bounded
from mmeperf.endpoints.local.replies import Reply, mms_error, mms_json, model_not_found
from mmeperf.errors import (
    InsufficientMemoryError,
    InvalidModelNameError,
    ModelNotFoundError,
    ModelNotReadyError,
    RepositoryError,
)

if TYPE_CHECKING:
    from mmeperf.endpoints.local.cache import CachedModel
    from mmeperf.endpoints.local.service import MMEService
    from mmeperf.repository import ModelRepository

__all__ = [
    "ContainerAPI",
    "RegisterRequest",
    "java_int",
    "page",
    "repository_candidates",
]

log = logging.getLogger("mmeperf.serve")

#: MMS's list page size: the default and the most one page holds.
MAX_LIMIT = 100
#: Where the SageMaker platform (and the containers' own tests) put a model's files.
CONTAINER_MODEL_DIRS = ("/opt/ml/models/", "/opt/ml/model/")
_RUNTIMES = frozenset({"python", "python2", "python3"})
_JAVA_INT = re.compile(r"[+-]?[0-9]+")
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


# --- parameters -------------------------------------------------------------------------------


def java_int(text: object, default: int) -> int:
    """``Integer.parseInt`` as MMS uses it: an optional sign and digits within 32 bits, else
    ``default`` (no spaces, no underscores, no overflow)."""
    if isinstance(text, bool):
        return default
    if isinstance(text, int):
        return text if _INT_MIN <= text <= _INT_MAX else default
    if isinstance(text, float) and text.is_integer():
        return java_int(int(text), default)
    if not isinstance(text, str) or not _JAVA_INT.fullmatch(text):
        return default
    value = int(text)
    return value if _INT_MIN <= value <= _INT_MAX else default


def _java_bool(value: object, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.lower() == "true"  # Boolean.parseBoolean


def page(names: list[str], *, limit: str | None, token: str | None) -> tuple[list[str], str | None]:
    """One page of the sorted ``names`` and the token of the next page (None: the last page).

    MMS's rules: ``limit`` defaults to 100 and anything above 100 or below 0 is 100; a negative
    or unreadable token is 0; the token is set whenever ``token + limit <= len(names)``, so a
    listing that ends exactly at a page boundary takes one more (empty) page. One deliberate
    difference: ``limit=0`` is 100 too, where MMS answers an empty page that points at itself
    (a client following tokens would never stop).
    """
    size = java_int(limit, MAX_LIMIT)
    if size > MAX_LIMIT or size <= 0:
        size = MAX_LIMIT
    start = max(java_int(token, 0), 0)
    last = start + size
    if last > len(names):
        return names[start:], None
    return names[start:last], str(last)


@dataclass(frozen=True, slots=True)
class RegisterRequest:
    """``POST /models``'s fields that matter here (MMS's RegisterModelRequest)."""

    url: str | None
    model_name: str | None = None
    runtime: str | None = None
    initial_workers: int = 1
    """MMS's default under SageMaker MME (``default_workers_per_model=1``)."""
    synchronous: bool = True

    @classmethod
    def parse(cls, content_type: str | None, body: bytes, query: Mapping[str, list[str]]) -> RegisterRequest:
        """From a JSON body when the Content-Type is ``application/json`` (query ignored),
        else from the query string only (a body is then ignored), as MMS reads it.

        Raises ValueError for a JSON body that is not an object.
        """
        mime = (content_type or "").split(";", 1)[0].strip().lower()
        fields: dict[str, Any]
        if mime == "application/json":
            # Depth-bounded: a 1,000-deep body is a 400, not a RecursionError (PayloadError is a
            # ValueError).
            doc = loads_bounded(body.decode("utf-8", "replace"), what="a JSON object") if body.strip() else {}
            if not isinstance(doc, dict):
                raise ValueError(f"Expected a JSON object, received {type(doc).__name__}")
            fields = doc
        else:
            fields = {key: values[0] for key, values in query.items() if values}
        get = fields.get
        url, name, runtime = get("url"), get("model_name"), get("runtime")
        return cls(
            url=None if url is None else str(url),
            model_name=None if name is None else str(name),
            runtime=None if runtime is None else str(runtime),
            initial_workers=java_int(get("initial_workers"), 1),
            synchronous=_java_bool(get("synchronous"), True),
        )


def repository_candidates(url: str, repository: ModelRepository) -> list[str]:
    """What a ``POST /models`` url may name in the repository, most specific first.

    The model store is ``/`` under SageMaker, so a url is a path: the platform's
    ``/opt/ml/models/<name>/model``, ``/opt/ml/model/<name>`` (the containers' tests), a path
    inside the repository folder, the repository URL plus a key, or a key such as
    ``churn-xgb-CA.tar.gz`` or ``/churn-xgb-CA``. Each candidate is still a model name the
    repository checks (no traversal, no links out); anything else names nothing.
    """
    text = unquote(url) if url.startswith("file://") else url
    text = text.removeprefix("file://")
    out: list[str] = []
    roots = [repository.url.rstrip("/") + "/"]
    if repository.is_local:
        roots.append(posixpath.normpath(repository.root) + "/")
    for root in roots:
        if text.startswith(root):
            out.append(text[len(root):])
    for base in CONTAINER_MODEL_DIRS:
        if text.startswith(base):
            rest = text[len(base):].rstrip("/")
            out.append(rest.removesuffix("/model"))
            out.append(rest)
    out.append(text.lstrip("/"))
    seen: set[str] = set()
    return [c for c in out if c and not (c in seen or seen.add(c))]  # type: ignore[func-returns-value]


# --- the API ----------------------------------------------------------------------------------


class ContainerAPI:
    """The MMS management API over one :class:`MMEService`'s cache and repository."""

    def __init__(self, service: MMEService) -> None:
        self._service = service
        self._background: set[asyncio.Future[Any]] = set()

    async def register(self, request: RegisterRequest) -> Reply:
        """``POST /models``: the checks and answers of MMS's ManagementRequestHandler, in its order."""
        url = request.url
        if url is None:
            return mms_error(400, "BadRequestException", "Parameter url is required.")
        if request.runtime is not None and request.runtime not in _RUNTIMES:
            return mms_error(400, "BadRequestException", f"Invalid RuntimeType value: {request.runtime}")
        if ".." in url:
            return mms_error(404, "ModelNotFoundException", f"Relative path is not allowed in url: {url}")
        service = self._service
        try:
            source = await asyncio.get_running_loop().run_in_executor(
                service.load_pool, self._resolve, url
            )
        except RepositoryError:  # also a link out of the repository (CorruptArtifactError)
            source = None
        if source is None:
            return mms_error(404, "ModelNotFoundException", f"Model not found in model store: {url}")
        name = request.model_name
        if not name:
            return mms_error(400, "InvalidModelException", "Model name is not defined.")
        cache = service.cache
        if cache.get_loaded(name) is not None or name in cache.loading():
            return mms_error(409, "ConflictStatusException", f"Model {name} is already registered.")
        fut = cache.begin_load(name, source=source, url=url)
        if request.initial_workers > 0 and not request.synchronous:
            self._background.add(fut)
            fut.add_done_callback(self._background_done)
            return mms_json(202, {"status": "Processing worker updates..."})
        try:
            await asyncio.shield(fut)
        except Exception as exc:
            status = 507 if isinstance(exc, InsufficientMemoryError | ModelNotReadyError) else 500
            log.warning("Model %r (url %r) failed to load: %s", name, url, exc)
            return mms_error(status, "InternalServerException", "Failed to start workers")
        if request.initial_workers <= 0:
            return mms_json(200, {"status": f'Model "{name}" registered'})
        return mms_json(200, {"status": "Workers scaled"})

    def _background_done(self, fut: asyncio.Future[Any]) -> None:
        self._background.discard(fut)
        if not fut.cancelled() and fut.exception() is not None:
            log.warning("A model registered with synchronous=false failed to load: %s", fut.exception())

    def _resolve(self, url: str) -> str | None:
        """In a loader thread: the repository target ``url`` names, or None."""
        repository = self._service.repository
        for candidate in repository_candidates(url, repository):
            try:
                return repository.get(candidate).target
            except (ModelNotFoundError, InvalidModelNameError):
                continue  # the next reading of the url; a link out still refuses the whole url
        return None

    def list_models(self, query: Mapping[str, list[str]]) -> Reply:
        """``GET /models?limit=&next_page_token=``: models sorted by name, ``modelName`` and
        ``modelUrl`` only; ``nextPageToken`` only when there may be more."""
        loaded = {m.target: m for m in self._service.cache.loaded()}
        names, token = page(sorted(loaded), limit=_first(query, "limit"), token=_first(query, "next_page_token"))
        payload: dict[str, Any] = {}
        if token is not None:
            payload["nextPageToken"] = token
        payload["models"] = [{"modelName": n, "modelUrl": self.model_url(loaded[n])} for n in names]
        return mms_json(200, payload)

    def describe(self, name: str) -> Reply:
        """``GET /models/{name}``: MMS's DescribeModelResponse (one object, nulls omitted)."""
        model = self._service.cache.get_loaded(name)
        if model is None:
            return model_not_found(name)
        started = datetime.fromtimestamp(model.loaded_at, UTC)
        return mms_json(200, {
            "modelName": name,
            "modelUrl": self.model_url(model),
            "runtime": "python",
            "minWorkers": 1,
            "maxWorkers": 1,
            "batchSize": 1,
            "maxBatchDelay": 100,
            "loadedAtStartup": False,
            "workers": [{
                "id": model.worker_id,
                "startTime": started.strftime("%Y-%m-%dT%H:%M:%S.") + f"{started.microsecond // 1000:03d}Z",
                "status": "READY",
                "gpu": False,
                "memoryUsage": model.charged_bytes,
            }],
        })

    def scale(self, name: str, query: Mapping[str, list[str]]) -> Reply:
        """``PUT /models/{name}``: one in-process worker per model, so scaling only answers."""
        min_workers = java_int(_first(query, "min_worker"), 1)
        max_workers = java_int(_first(query, "max_worker"), min_workers)
        if max_workers < min_workers:
            return mms_error(400, "BadRequestException", "max_worker cannot be less than min_worker.")
        if self._service.cache.get_loaded(name) is None:
            return model_not_found(name)
        if not _java_bool(_first(query, "synchronous"), False):
            return mms_json(202, {"status": "Processing worker updates..."})
        return mms_json(200, {"status": "Workers scaled"})

    async def unregister(self, name: str) -> Reply:
        """``DELETE /models/{name}``: once its in-flight requests finish."""
        service = self._service
        try:
            found = await service.cache.unload(name, wait_s=service.config.invocation_timeout_s)
        except ModelNotReadyError:
            return mms_error(408, "RequestTimeoutException", f"Timed out while cleaning resources: {name}")
        if not found:
            return model_not_found(name)
        return mms_json(200, {"status": f'Model "{name}" unregistered'})

    def model_url(self, model: CachedModel) -> str:
        """The url it was registered with, else where its artifact is (a path that exists)."""
        if model.url is not None:
            return model.url
        repository = self._service.repository
        base = repository.root if repository.is_local else repository.url
        return base.rstrip("/") + "/" + model.source


def _first(query: Mapping[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None
