"""The Endpoint contract: somewhere models are served.

Like an httpx transport, an endpoint has one call that matters, :meth:`Endpoint.invoke`, with a
typed request and result. Around it: ``deploy`` a repository, read ``metrics``, list
``loaded_models``, and ``delete`` what was created. Endpoints are context managers: leaving the
``with`` block tears the endpoint down, also on errors and Ctrl-C.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel

from mmeperf._deps import require
from mmeperf.metrics import ServerMetrics

if TYPE_CHECKING:
    from typing import Self

    from mmeperf.repository import ModelRepository

__all__ = [
    "HEADER_CACHE",
    "HEADER_LOAD_US",
    "HEADER_MODEL_LATENCY_US",
    "HEADER_WAIT_US",
    "Endpoint",
    "EndpointInfo",
    "InvokeResult",
]

# Response headers by which the local MME attributes each request cold or warm (CloudWatch has
# no per-request MME metrics; we do). Lower-case: HTTP header names are case-insensitive.
#: "hit" if the target model was loaded when the request arrived, else "miss".
HEADER_CACHE = "x-mmeperf-cache"
#: Microseconds the request waited for its model to be downloaded and loaded (0 on a hit).
HEADER_WAIT_US = "x-mmeperf-model-loading-wait-us"
#: Microseconds the load took, when this request's miss triggered or joined a load.
HEADER_LOAD_US = "x-mmeperf-model-loading-us"
#: Microseconds spent in the model's predict for this request's batch.
HEADER_MODEL_LATENCY_US = "x-mmeperf-model-latency-us"


@dataclass(slots=True)
class InvokeResult:
    """What one invocation returned, successful or not (errors are results, not exceptions).

    ``status`` is the HTTP status a SageMaker client would see. The MME attribution fields come
    from the local MME's response headers (None where an endpoint does not say).
    """

    status: int
    body: bytes
    content_type: str
    latency_s: float
    """Client-side wall time from send to the last byte of the body."""
    error_code: str | None = None
    """SageMaker error code (ValidationError, ModelError, ...) when the call failed."""
    error_message: str | None = None
    cache_hit: bool | None = None
    """Whether the target model was already loaded when the request arrived."""
    model_loading_wait_s: float | None = None
    """Time the request waited for its model to be downloaded and loaded."""
    model_latency_s: float | None = None
    """Time spent in the model's predict."""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class EndpointInfo(BaseModel):
    """What a report says about an endpoint."""

    kind: str
    """Plugin name: local, sagemaker, triton, memory."""
    name: str
    """Endpoint name."""
    instance_type: str | None = None
    """SageMaker instance type, real or emulated."""
    instance_count: int = 1
    emulated: bool = False
    """True when a local server emulates ``instance_type`` on this machine."""
    emulation_note: str | None = None
    """How the emulation differs from the real instance (shown in reports)."""
    runtime_url: str | None = None
    """Base URL that speaks the SageMaker runtime API (``/endpoints/{name}/invocations``)."""
    region: str | None = None
    memory_budget_bytes: int | None = None


class Endpoint(ABC):
    """Somewhere models are served. Subclass, set ``kind``, implement the abstract methods."""

    #: Plugin name, e.g. ``"local"``.
    kind: ClassVar[str]
    #: Modules the endpoint imports lazily (boto3, tritonclient); checked on lookup.
    requires: ClassVar[tuple[str, ...]] = ()
    #: The pip extra that installs ``requires``.
    extra: ClassVar[str | None] = None
    #: How often a benchmark should sample ``metrics()``: once a second for a local server,
    #: once a period for CloudWatch-backed endpoints (each read costs API calls).
    metrics_interval_s: ClassVar[float] = 1.0

    @classmethod
    def check_dependencies(cls) -> None:
        """Raise MissingDependencyError, naming ``pip install 'mmeperf[extra]'``, if one is missing."""
        for module in cls.requires:
            require(module, what=f"The {cls.kind!r} endpoint", extra=cls.extra or cls.kind)

    @abstractmethod
    def deploy(self, repository: ModelRepository) -> Self:
        """Serve ``repository`` (start, upload, create...); return self once ready to invoke."""

    @abstractmethod
    def invoke(
        self,
        target_model: str,
        body: bytes,
        *,
        content_type: str = "text/csv",
        accept: str | None = None,
    ) -> InvokeResult:
        """Send one request to ``target_model`` (e.g. ``churn-xgb-CA.tar.gz``)."""

    @abstractmethod
    def metrics(self) -> ServerMetrics:
        """A cumulative snapshot of the server's metrics now."""

    @abstractmethod
    def loaded_models(self) -> list[str]:
        """Target names of the models in memory now."""

    @abstractmethod
    def info(self) -> EndpointInfo:
        """Name, instance type, URL and emulation notes for reports."""

    @abstractmethod
    def delete(self) -> None:
        """Tear down everything ``deploy`` created. Idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.delete()
