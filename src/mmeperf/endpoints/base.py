"""The Endpoint contract: somewhere models are served.

Like an httpx transport, an endpoint has one call that matters, :meth:`Endpoint.invoke`, with a
typed request and result (:class:`~mmeperf.protocol.InvokeResult`, re-exported here). Around
it: ``deploy`` a repository, read ``metrics``, list ``loaded_models``, and ``delete`` what was
created. Endpoints are context managers: leaving the
``with`` block tears the endpoint down, also on errors and Ctrl-C.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel

from mmeperf._deps import require
from mmeperf.metrics import ServerMetrics
from mmeperf.protocol import InvokeResult

if TYPE_CHECKING:
    from typing import Self

    from mmeperf.repository import ModelRepository

__all__ = ["Endpoint", "EndpointInfo", "InvokeResult"]


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
