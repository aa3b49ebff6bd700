"""The one exception tree of mmeperf.

Every error says what was expected and what was received. Errors that a server turns into an
HTTP answer carry that status in ``http_status`` (4xx for the caller's mistakes, 5xx for ours)
and a SageMaker-style ``error_code``::

    MmeperfError
    ├── ConfigurationError          a bad option, profile or spec (ValueError)
    ├── PluginError
    │   ├── UnknownPluginError      no plugin of that name; lists the known ones (LookupError)
    │   ├── PluginNotImplementedError  a registered name whose implementation has not landed yet
    │   └── MissingDependencyError  an optional package is missing; says the pip command (ImportError)
    ├── RepositoryError
    │   ├── ModelNotFoundError      no such model in the repository (404)
    │   ├── InvalidModelNameError   a name that is empty, too long or escapes the repository (400)
    │   ├── UnsafeArchiveError      a tar member escapes its folder, is a link/device, or too big (400)
    │   │   └── ArchiveTooLargeError  an archive expands beyond its byte limit (400)
    │   ├── CorruptArtifactError    checksum mismatch or unreadable artifact
    │   └── ModelExistsError        add() without overwrite on an existing name (409)
    ├── BackendError
    │   ├── PayloadError            a malformed request body (400)
    │   │   └── UnsupportedContentTypeError  a content type the backend cannot decode (415)
    │   │       └── UnsupportedAcceptError   an accept type the backend cannot encode (406)
    │   ├── ModelLoadError          the artifact could not be loaded into a runner
    │   └── PredictionError         the runner failed on a well-formed batch
    ├── EndpointError
    │   ├── EndpointNotReadyError   the endpoint did not become ready in time
    │   ├── InvocationError         an invoke failed; carries the HTTP status and error code
    │   ├── InsufficientMemoryError a model cannot fit the memory budget (507)
    │   ├── CloudAccessError        no credentials/region, or access denied by the cloud (403)
    │   ├── CapacityError           the cloud refused for capacity or quota (ResourceLimitExceeded)
    │   ├── ServiceUnavailableError too many requests in progress on the local MME (503)
    │   ├── ModelNotReadyError      the model is still loading after the request's wait limit (429)
    │   ├── PayloadTooLargeError    a request body over the configured maximum (413)
    │   ├── BodyReadTimeoutError    the request body did not arrive in time (408)
    │   ├── InvocationTimeoutError  a loaded model took longer than the invocation limit (504)
    │   ├── ClientDisconnectedError the client went away before its request was read (499)
    │   └── WorkerDiedError         a model's worker process died (killed, crashed, out of memory)
    ├── ExportError
    │   └── ParityError             an exported artifact does not match its source within tolerance
    └── LoadTestError               the load generator failed to start or run
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

__all__ = [
    "ArchiveTooLargeError",
    "BackendError",
    "BodyReadTimeoutError",
    "CapacityError",
    "ClientDisconnectedError",
    "CloudAccessError",
    "ConfigurationError",
    "CorruptArtifactError",
    "EndpointError",
    "EndpointNotReadyError",
    "ExportError",
    "InsufficientMemoryError",
    "InvalidModelNameError",
    "InvocationError",
    "InvocationTimeoutError",
    "LoadTestError",
    "MissingDependencyError",
    "MmeperfError",
    "ModelExistsError",
    "ModelLoadError",
    "ModelNotFoundError",
    "ModelNotReadyError",
    "ParityError",
    "PayloadError",
    "PayloadTooLargeError",
    "PluginError",
    "PluginNotImplementedError",
    "PredictionError",
    "RepositoryError",
    "ServiceUnavailableError",
    "UnknownPluginError",
    "UnsafeArchiveError",
    "UnsupportedAcceptError",
    "UnsupportedContentTypeError",
    "WorkerDiedError",
]


class MmeperfError(Exception):
    """Root of every error mmeperf raises on purpose."""

    #: HTTP status a server answers with when this error reaches it.
    http_status: ClassVar[int] = 500
    #: SageMaker-style error code for the response body / ``x-amzn-ErrorType``.
    error_code: ClassVar[str] = "InternalFailure"


class ConfigurationError(MmeperfError, ValueError):
    """A bad option, profile or spec given by the user."""

    http_status = 400
    error_code = "ValidationError"


# --- plugins -------------------------------------------------------------------------------


class PluginError(MmeperfError):
    """A plugin could not be found or loaded."""


class UnknownPluginError(PluginError, LookupError):
    """No plugin of that name is registered in the group."""

    def __init__(self, group: str, name: str, known: Iterable[str]) -> None:
        self.group, self.name, self.known = group, name, sorted(known)
        super().__init__(
            f"Unknown {group} plugin {name!r}; expected one of: {', '.join(self.known) or '(none)'}"
        )


class PluginNotImplementedError(PluginError, NotImplementedError):
    """A registered name whose implementation is not in this version yet."""


class MissingDependencyError(PluginError, ImportError):
    """An optional dependency is missing; the message says the exact pip command."""

    def __init__(
        self, what: str, package: str, extra: str | None, *, distribution: str = "mmeperf"
    ) -> None:
        # ``distribution``: the package whose ``extra`` installs it (a third-party plugin's own);
        # without an extra, the fix is the missing package itself.
        self.what, self.package, self.extra = what, package, extra
        self.distribution = distribution
        install = f"'{distribution}[{extra}]'" if extra else package
        super().__init__(f"{what} needs {package}. Install it with: pip install {install}")


# --- repository ----------------------------------------------------------------------------


class RepositoryError(MmeperfError):
    """A model repository could not be read or written."""


class ModelNotFoundError(RepositoryError, KeyError):
    """The repository has no model of that name."""

    http_status = 404
    error_code = "ValidationError"

    def __str__(self) -> str:  # KeyError quotes its message; keep ours readable
        return str(self.args[0]) if self.args else ""


class InvalidModelNameError(RepositoryError, ValueError):
    """A model name that is empty, too long, or would escape the repository."""

    http_status = 400
    error_code = "ValidationError"


class UnsafeArchiveError(RepositoryError, ValueError):
    """An archive member escapes its folder, is a link or device, or the archive is too large."""

    http_status = 400
    error_code = "ValidationError"


class CorruptArtifactError(RepositoryError):
    """An artifact's bytes do not match the manifest, or it cannot be opened."""

    http_status = 424
    error_code = "ModelError"


class ModelExistsError(RepositoryError):
    """A model of that name is already in the repository."""

    http_status = 409
    error_code = "ValidationError"


# --- backends ------------------------------------------------------------------------------


class BackendError(MmeperfError):
    """A backend failed to save, load, decode or predict."""


class PayloadError(BackendError, ValueError):
    """A request body the backend cannot decode: wrong column count, non-numeric, empty."""

    http_status = 400
    error_code = "ValidationError"


class UnsupportedContentTypeError(PayloadError):
    """A content type (415) or accept type the backend does not speak."""

    http_status = 415

    def __init__(self, received: str, accepted: Iterable[str], *, what: str = "content type") -> None:
        self.received, self.accepted = received, list(accepted)
        super().__init__(
            f"Unsupported {what} {received!r}; expected one of: {', '.join(self.accepted)}"
        )


class UnsupportedAcceptError(UnsupportedContentTypeError):
    """An ``Accept`` type the backend cannot encode predictions as (406 Not Acceptable)."""

    http_status = 406

    def __init__(self, received: str, accepted: Iterable[str], *, what: str = "accept type") -> None:
        super().__init__(received, accepted, what=what)


class ModelLoadError(BackendError):
    """An artifact could not be loaded into a runner (corrupt, wrong format, pickle refused)."""

    http_status = 424
    error_code = "ModelError"


class PredictionError(BackendError):
    """The runner failed on a well-formed batch."""

    http_status = 424
    error_code = "ModelError"


# --- endpoints -----------------------------------------------------------------------------


class EndpointError(MmeperfError):
    """An endpoint could not be deployed, reached or torn down."""


class EndpointNotReadyError(EndpointError):
    """The endpoint did not become ready in time."""

    http_status = 503
    error_code = "ServiceUnavailable"


class InvocationError(EndpointError):
    """An invocation failed. ``status`` and ``code`` are what the endpoint answered."""

    def __init__(self, message: str, *, status: int, code: str) -> None:
        self.status, self.code = status, code
        super().__init__(message)


class InsufficientMemoryError(EndpointError):
    """A model does not fit in the endpoint's memory budget even with every idle model unloaded."""

    http_status = 507
    error_code = "InsufficientMemory"


class CloudAccessError(EndpointError):
    """The cloud cannot be reached as asked: no credentials, no region, or access denied."""

    http_status = 403
    error_code = "AccessDenied"


class CapacityError(EndpointError):
    """The cloud refused for capacity or quota (ResourceLimitExceeded, InsufficientCapacity)."""

    http_status = 503
    error_code = "ResourceLimitExceeded"


# --- exporters and load ----------------------------------------------------------------------


class ExportError(MmeperfError):
    """A model could not be exported to the target format."""

    http_status = 400
    error_code = "ValidationError"


class ParityError(ExportError):
    """An exported artifact's outputs differ from the source beyond the tolerance."""


class LoadTestError(MmeperfError):
    """The load generator failed to start or to finish its run."""


# --- the local MME's own answers (declared here so the tree above is the whole tree) ----------


class ServiceUnavailableError(EndpointError):
    """Too many requests in progress (503, retried by AWS SDKs)."""

    http_status = 503
    error_code = "ServiceUnavailable"


class ModelNotReadyError(EndpointError):
    """The model is still downloading or loading after the request's wait limit (429)."""

    http_status = 429
    error_code = "ModelNotReadyException"


class PayloadTooLargeError(EndpointError):
    """A request body over the configured maximum (413)."""

    http_status = 413
    error_code = "ValidationError"


class BodyReadTimeoutError(EndpointError):
    """The client did not send the rest of the request body in time (408)."""

    http_status = 408
    error_code = "ValidationError"


class InvocationTimeoutError(EndpointError):
    """A loaded model did not answer within the invocation time limit (504, like SageMaker's)."""

    http_status = 504
    error_code = "ModelError"


class ClientDisconnectedError(EndpointError):
    """The client closed the connection before its request was read; nobody gets an answer.

    The status is nginx's 499 (client closed request); it is never sent, only counted.
    """

    http_status = 499
    error_code = "ClientDisconnected"


class WorkerDiedError(EndpointError):
    """A model's worker process died while requests were in flight to it (process workers).

    ``reason`` says how (killed by a signal, the exit status, the last line it wrote). Like
    Multi Model Server's "Worker died." answer (500), SageMaker wraps it as a ModelError; the
    model is marked unloaded and the next request loads it again.
    """

    http_status = 500
    error_code = "ModelError"

    def __init__(self, message: str, *, reason: str = "", exit_code: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message
        self.exit_code = exit_code


class ArchiveTooLargeError(UnsafeArchiveError):
    """An archive expands beyond its byte limit (a bomb, or a model no memory budget could hold)."""
