"""boto3 sessions and clients, and botocore errors translated into mmeperf's typed errors.

Credentials and region come from boto3's usual chain; endpoint URLs from the standard
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>`` variables, which boto3 itself honours.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from mmeperf._deps import require
from mmeperf.errors import (
    CapacityError,
    CloudAccessError,
    ConfigurationError,
    EndpointError,
)

if TYPE_CHECKING:
    import boto3

__all__ = [
    "CAPACITY_ERROR_CODES",
    "NOT_FOUND_MARKERS",
    "AwsClients",
    "client_error_code",
    "describe_or_none",
    "is_not_found",
    "translate_errors",
]

#: Error codes by which AWS says "no capacity or quota left" (typed as CapacityError).
CAPACITY_ERROR_CODES = frozenset(
    {"ResourceLimitExceeded", "InsufficientCapacity", "InsufficientInstanceCapacity", "LimitExceededException"}
)
_ACCESS_ERROR_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
    }
)
#: Message fragments by which SageMaker and application-autoscaling say "no such resource"
#: (SageMaker answers ValidationException "Could not find ..." rather than a 404 code).
NOT_FOUND_MARKERS = ("could not find", "does not exist", "not found", "no scalable target", "no scaling policy")

P = ParamSpec("P")
R = TypeVar("R")


def client_error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError, else None."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def is_not_found(exc: BaseException) -> bool:
    """True when a ClientError says the resource does not exist (so deleting it is done)."""
    code = client_error_code(exc) or ""
    if code in {"NoSuchKey", "NoSuchBucket", "ResourceNotFound", "ResourceNotFoundException", "ObjectNotFoundException", "404"}:
        return True
    message = str(getattr(exc, "response", {}).get("Error", {}).get("Message", "")).lower()
    return any(marker in message for marker in NOT_FOUND_MARKERS)


def describe_or_none(describe: Callable[[], Any]) -> Any | None:
    """What ``describe()`` returns, or None when AWS says the resource does not exist."""
    from botocore.exceptions import ClientError

    try:
        return describe()
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Re-raise botocore errors met while doing ``action`` as mmeperf's typed errors.

    Missing credentials or region -> CloudAccessError; capacity or quota -> CapacityError;
    denied -> CloudAccessError; a rejected parameter -> ConfigurationError; anything else from
    AWS -> EndpointError. The botocore exception is kept as ``__cause__``.
    """
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    try:
        yield
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise CloudAccessError(
            f"{action}: no AWS credentials found. Configure them the usual boto3 way "
            "(AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/credentials, an instance role)"
        ) from exc
    except NoRegionError as exc:
        raise CloudAccessError(
            f"{action}: no AWS region configured. Pass --region, or set AWS_DEFAULT_REGION or a profile region"
        ) from exc
    except ClientError as exc:
        code = client_error_code(exc) or "Unknown"
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if code in CAPACITY_ERROR_CODES:
            raise CapacityError(
                f"{action}: AWS refused for capacity or quota ({code}): {message}. "
                "Ask for a quota increase (Service Quotas) or choose another instance type or region"
            ) from exc
        if code in _ACCESS_ERROR_CODES:
            raise CloudAccessError(f"{action}: access denied ({code}): {message}") from exc
        if code in {"ValidationException", "ValidationError", "InvalidParameterValue"}:
            raise ConfigurationError(f"{action}: AWS rejected the request ({code}): {message}") from exc
        raise EndpointError(f"{action}: AWS answered {code}: {message}") from exc
    except BotoCoreError as exc:
        raise EndpointError(f"{action}: {exc}") from exc


def translated(action: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator form of :func:`translate_errors`."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            with translate_errors(action):
                return fn(*args, **kwargs)

        return inner

    return wrap


class AwsClients:
    """One boto3 session and its clients, created on first use and shared between threads.

    ``endpoint_urls`` maps a service name (``sagemaker-runtime``, ``s3``...) to an endpoint URL
    that overrides the environment's; otherwise boto3 reads ``AWS_ENDPOINT_URL[_SERVICE]``.
    ``client_config`` adds per-service ``botocore.config.Config`` keyword arguments.
    """

    def __init__(
        self,
        *,
        session: boto3.Session | None = None,
        region: str | None = None,
        endpoint_urls: dict[str, str] | None = None,
        client_config: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self._session = session
        self._region = region
        self._endpoint_urls = dict(endpoint_urls or {})
        self._client_config = dict(client_config or {})
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def session(self) -> boto3.Session:
        if self._session is None:
            boto3 = require("boto3", what="The 'sagemaker' endpoint", extra="aws")
            self._session = boto3.Session(region_name=self._region)
        return self._session

    @property
    def region(self) -> str:
        """The region from the argument or boto3's chain; CloudAccessError when there is none."""
        region = self._region or self.session.region_name
        if not region:
            raise CloudAccessError(
                "No AWS region configured. Pass --region, or set AWS_DEFAULT_REGION or a profile region"
            )
        return region

    def set_client(self, service: str, client: Any) -> None:
        """Inject a ready client (tests, or a caller with its own configuration)."""
        with self._lock:
            self._clients[service] = client

    def client(self, service: str) -> Any:
        """The shared client for ``service``; checks credentials once, before the first call."""
        existing = self._clients.get(service)
        if existing is not None:
            return existing
        with self._lock:
            existing = self._clients.get(service)
            if existing is not None:
                return existing
            from botocore.config import Config

            session = self.session
            region = self.region
            if session.get_credentials() is None:
                raise CloudAccessError(
                    "No AWS credentials found. Configure them the usual boto3 way "
                    "(AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/credentials, an instance role)"
                )
            kwargs: dict[str, Any] = {"region_name": region}
            if service in self._endpoint_urls:
                kwargs["endpoint_url"] = self._endpoint_urls[service]
            if service in self._client_config:
                kwargs["config"] = Config(**self._client_config[service])
            client = session.client(service, **kwargs)  # type: ignore[call-overload]
            self._clients[service] = client
            return client

    def account_id(self) -> str:
        """The caller's account (STS GetCallerIdentity)."""
        with translate_errors("Reading the AWS account id"):
            return str(self.client("sts").get_caller_identity()["Account"])
