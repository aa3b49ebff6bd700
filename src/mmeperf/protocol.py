"""The SageMaker runtime wire protocol, owned here alone: how an ``InvokeEndpoint`` request is
built, and how every answer to it is read into one :class:`InvokeResult`.

The request is ``POST /endpoints/{EndpointName}/invocations`` with the target model, content
type and accept in headers (botocore's ``sagemaker-runtime`` 2017-05-13 model). An answer is read
the way botocore's rest-json parser reads it (so a raw HTTP client and boto3 agree on every
error), plus the local MME's attribution headers, with one vocabulary for cache state
(:class:`CacheState`). The local server takes its header names from here too.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import quote

__all__ = [
    "DEFAULT_ENDPOINT_NAME",
    "HEADER_ACCEPT",
    "HEADER_CACHE",
    "HEADER_CONTENT_TYPE",
    "HEADER_CUSTOM_ATTRIBUTES",
    "HEADER_ERROR_TYPE",
    "HEADER_INSTANCE",
    "HEADER_INVOKED_VARIANT",
    "HEADER_LOAD_US",
    "HEADER_MODEL_LATENCY_US",
    "HEADER_REQUEST_ID",
    "HEADER_TARGET_MODEL",
    "HEADER_WAIT_US",
    "STATUS_OF_ERROR",
    "CacheState",
    "InvokeResult",
    "boto3_invoke_kwargs",
    "error_code_of",
    "invocation_path",
    "invoke_boto3",
    "lower_headers",
    "parse_answer",
    "request_headers",
    "result_from_client_error",
    "unanswered",
]

#: The endpoint name ``mmeperf serve``, ``LocalEndpoint`` and ``MemoryEndpoint`` answer to, and
#: the one ``mmeperf bench`` and ``Benchmark`` send to when not told otherwise.
DEFAULT_ENDPOINT_NAME = "local-mme"

# --- request headers (spelled as botocore sends them) ---------------------------------------

HEADER_TARGET_MODEL = "X-Amzn-SageMaker-Target-Model"
HEADER_CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
HEADER_CONTENT_TYPE = "Content-Type"
HEADER_ACCEPT = "Accept"

# --- response headers, lower-case (names are case-insensitive; answers are read lower-cased) --

#: The SageMaker error code of a failed call, e.g. ``ValidationError`` (may carry ``:<uri>``).
HEADER_ERROR_TYPE = "x-amzn-errortype"
HEADER_REQUEST_ID = "x-amzn-requestid"
HEADER_INVOKED_VARIANT = "x-amzn-invoked-production-variant"
# The local MME's attribution of each request (CloudWatch has no per-request MME metrics):
#: ``hit`` if the target model was loaded when the request arrived, else ``miss``.
HEADER_CACHE = "x-mmeperf-cache"
#: Microseconds the request waited for its model to be downloaded and loaded (0 on a hit).
HEADER_WAIT_US = "x-mmeperf-model-loading-wait-us"
#: Microseconds the load took, when this request's miss triggered or joined a load.
HEADER_LOAD_US = "x-mmeperf-model-loading-us"
#: Microseconds spent in the model's predict for this request's batch.
HEADER_MODEL_LATENCY_US = "x-mmeperf-model-latency-us"
#: Which server instance answered (``<host>:<pid>`` for the local MME).
HEADER_INSTANCE = "x-mmeperf-instance"

#: HTTP status of each SageMaker runtime error shape (botocore's service model), for an answer
#: that names its code but lacks a status.
STATUS_OF_ERROR: dict[str, int] = {
    "ValidationError": 400,
    "ModelError": 424,
    "ModelNotReadyException": 429,
    "ThrottlingException": 400,
    "InternalFailure": 500,
    "ServiceUnavailable": 503,
    "InternalDependencyException": 530,
}


class CacheState(StrEnum):
    """Whether the target model was in memory when the request arrived: the one vocabulary of
    cache state, from the server's header to the load side's warm/cold attribution."""

    HIT = "hit"
    MISS = "miss"
    UNKNOWN = "unknown"
    """The endpoint does not say (SageMaker, Triton, no answer)."""

    @classmethod
    def parse(cls, value: object) -> CacheState:
        """The state a header value names (``hit``/``miss``, any case); else UNKNOWN."""
        if isinstance(value, str):
            text = value.strip().lower()
            if text == "hit":
                return cls.HIT
            if text == "miss":
                return cls.MISS
        return cls.UNKNOWN

    @property
    def latency_kind(self) -> str:
        """How a run's results file the request's latency: ``warm`` (hit), ``cold`` (miss) or
        ``unknown``."""
        return _LATENCY_KIND[self]


_LATENCY_KIND = {CacheState.HIT: "warm", CacheState.MISS: "cold", CacheState.UNKNOWN: "unknown"}


@dataclass(slots=True)
class InvokeResult:
    """What one invocation returned, successful or not (errors are results, not exceptions).

    ``status`` is the HTTP status a SageMaker client would see (0: no answer at all). The
    attribution fields come from the local MME's response headers (UNKNOWN/None where an
    endpoint does not say).
    """

    status: int
    body: bytes
    content_type: str
    latency_s: float
    """Client-side wall time from send to the last byte of the body."""
    error_code: str | None = None
    """SageMaker error code (ValidationError, ModelError, ...) when the call failed; read as
    botocore reads it (see :func:`error_code_of`)."""
    error_message: str | None = None
    original_status_code: int | None = None
    """ModelError only: the status the model container answered with."""
    original_message: str | None = None
    """ModelError only: the container's own message."""
    cache: CacheState = CacheState.UNKNOWN
    """Whether the target model was already loaded when the request arrived."""
    model_loading_wait_s: float | None = None
    """Time the request waited for its model to be downloaded and loaded."""
    model_loading_s: float | None = None
    """Time the load this request triggered or joined took."""
    model_latency_s: float | None = None
    """Time spent in the model's predict."""
    instance: str | None = None
    """The server instance that answered, when the endpoint says."""
    headers: dict[str, str] = field(default_factory=dict)
    """Response headers, lower-case names."""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


# --- building a request -----------------------------------------------------------------------


def invocation_path(endpoint_name: str) -> str:
    """``/endpoints/{EndpointName}/invocations``, the name percent-encoded as botocore does."""
    return f"/endpoints/{quote(endpoint_name, safe='')}/invocations"


def request_headers(
    target_model: str,
    *,
    content_type: str = "text/csv",
    accept: str | None = None,
    custom_attributes: str | None = None,
) -> dict[str, str]:
    """The headers of an InvokeEndpoint request with ``TargetModel`` (sent verbatim: SageMaker
    joins it to the model prefix literally)."""
    headers = {HEADER_CONTENT_TYPE: content_type, HEADER_TARGET_MODEL: target_model}
    if accept:
        headers[HEADER_ACCEPT] = accept
    if custom_attributes is not None:
        headers[HEADER_CUSTOM_ATTRIBUTES] = custom_attributes
    return headers


def boto3_invoke_kwargs(
    endpoint_name: str,
    target_model: str,
    body: bytes,
    *,
    content_type: str = "text/csv",
    accept: str | None = None,
    custom_attributes: str | None = None,
) -> dict[str, Any]:
    """The same request as keyword arguments of boto3's ``invoke_endpoint``."""
    kwargs: dict[str, Any] = {
        "EndpointName": endpoint_name,
        "TargetModel": target_model,
        "Body": body,
        "ContentType": content_type,
    }
    if accept:
        kwargs["Accept"] = accept
    if custom_attributes is not None:
        kwargs["CustomAttributes"] = custom_attributes
    return kwargs


# --- reading an answer ------------------------------------------------------------------------


def lower_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header pairs as a dict with lower-case names (the last of repeated names wins)."""
    return {str(k).lower(): str(v) for k, v in pairs}


def _short_code(code: str) -> str:
    # "ValidationError:http://internal.amazon.com/..." and "com.amazon...#ValidationError"
    return code.split(":", 1)[0].rsplit("#", 1)[-1]


def error_code_of(status: int, headers: Mapping[str, str], doc: Mapping[str, Any] | None) -> str:
    """The error code of a failed answer, by botocore's rest-json rule: the ``x-amzn-ErrorType``
    header, else the body's ``code``/``Code``, else its ``__type``, else the status as text
    (``"404"``)."""
    header = headers.get(HEADER_ERROR_TYPE)
    if header:
        return _short_code(header)
    if doc is not None:
        for key in ("code", "Code", "__type"):
            value = doc.get(key)
            if value is not None and value != "":
                return _short_code(str(value))
    return str(status)


def _json_object(body: bytes) -> dict[str, Any] | None:
    if not body:
        return None
    try:
        doc = json.loads(body)
    except ValueError:  # also UnicodeDecodeError
        return None
    return doc if isinstance(doc, dict) else None


def _is_generic(body: bytes) -> bool:
    stripped = body.strip()
    return not stripped or stripped.startswith(b"<html>")


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return None


def _seconds_from_us(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value) / 1e6
    except ValueError:
        return None


def _attributed(result: InvokeResult, headers: Mapping[str, str]) -> InvokeResult:
    result.cache = CacheState.parse(headers.get(HEADER_CACHE))
    result.model_loading_wait_s = _seconds_from_us(headers.get(HEADER_WAIT_US))
    result.model_loading_s = _seconds_from_us(headers.get(HEADER_LOAD_US))
    result.model_latency_s = _seconds_from_us(headers.get(HEADER_MODEL_LATENCY_US))
    result.instance = headers.get(HEADER_INSTANCE)
    return result


def parse_answer(status: int, headers: Mapping[str, str], body: bytes, latency_s: float) -> InvokeResult:
    """The one parser of a runtime answer read off the wire (``headers``: lower-case names).

    A failure's code follows :func:`error_code_of`; its message is the JSON body's
    ``message``/``Message``, else the body as text; a ModelError's ``OriginalStatusCode`` and
    ``OriginalMessage`` are kept. A 5xx with an empty or HTML body (a proxy's page) is, as for
    botocore, its status as code and the reason phrase as message. Attribution headers are read
    on every answer.
    """
    result = InvokeResult(
        status=status, body=body, content_type=headers.get("content-type", ""), latency_s=latency_s,
        headers=dict(headers),
    )
    if status >= 500 and _is_generic(body):
        result.error_code = str(status)
        result.error_message = http.client.responses.get(status) or None
    elif not 200 <= status < 300:
        doc = _json_object(body)
        result.error_code = error_code_of(status, headers, doc)
        if doc is not None:
            message = doc.get("message", doc.get("Message"))
            result.error_message = None if message is None else str(message)
            result.original_status_code = _int(doc.get("OriginalStatusCode"))
            original = doc.get("OriginalMessage")
            result.original_message = None if original is None else str(original)
        elif body:
            result.error_message = body.decode("utf-8", "replace")
    return _attributed(result, headers)


def result_from_client_error(response: Mapping[str, Any], latency_s: float) -> InvokeResult:
    """The same result from a botocore ``ClientError.response`` (the answer botocore parsed
    by the rule :func:`parse_answer` follows; its body is not kept)."""
    error = response.get("Error") or {}
    meta = response.get("ResponseMetadata") or {}
    headers = lower_headers((meta.get("HTTPHeaders") or {}).items())
    code = error.get("Code")
    code = None if code is None or code == "" else _short_code(str(code))
    status = _int(meta.get("HTTPStatusCode")) or STATUS_OF_ERROR.get(code or "", 500)
    original = response.get("OriginalMessage")
    result = InvokeResult(
        status=status, body=b"", content_type=headers.get("content-type", ""), latency_s=latency_s,
        error_code=code or str(status),
        error_message=str(error.get("Message") or "") or None,
        original_status_code=_int(response.get("OriginalStatusCode")),
        original_message=None if original is None else str(original),
        headers=headers,
    )
    return _attributed(result, headers)


def unanswered(error_code: str, message: str, latency_s: float, *, status: int = 0) -> InvokeResult:
    """A call that got no answer (status 0, as Locust counts it) or was refused before sending."""
    return InvokeResult(status=status, body=b"", content_type="", latency_s=latency_s,
                        error_code=error_code, error_message=message)


def invoke_boto3(
    runtime: Any,
    endpoint_name: str,
    target_model: str,
    body: bytes,
    *,
    content_type: str = "text/csv",
    accept: str | None = None,
    custom_attributes: str | None = None,
) -> InvokeResult:
    """One ``invoke_endpoint`` through a boto3 ``sagemaker-runtime`` client; every outcome is a
    result: an error answer as :func:`result_from_client_error` reads it, a request botocore
    refused to send as a 400 ValidationError, no answer as status 0."""
    from botocore.exceptions import (  # lazily: the Locust processes import botocore after Locust
        BotoCoreError,
        ClientError,
        ConnectTimeoutError,
        ParamValidationError,
        ReadTimeoutError,
    )

    kwargs = boto3_invoke_kwargs(endpoint_name, target_model, body, content_type=content_type,
                                 accept=accept, custom_attributes=custom_attributes)
    started = time.perf_counter()
    try:
        response = runtime.invoke_endpoint(**kwargs)
        data = response["Body"].read()
    except ClientError as exc:
        return result_from_client_error(exc.response, time.perf_counter() - started)
    except ParamValidationError as exc:
        return unanswered("ValidationError", str(exc), time.perf_counter() - started, status=400)
    except (ReadTimeoutError, ConnectTimeoutError) as exc:
        return unanswered("Timeout", str(exc), time.perf_counter() - started)
    except BotoCoreError as exc:  # refused or reset: no HTTP answer at all
        return unanswered("ConnectionError", str(exc), time.perf_counter() - started)
    latency = time.perf_counter() - started
    meta = response.get("ResponseMetadata") or {}
    headers = lower_headers((meta.get("HTTPHeaders") or {}).items())
    return parse_answer(_int(meta.get("HTTPStatusCode")) or 200, headers, data, latency)
