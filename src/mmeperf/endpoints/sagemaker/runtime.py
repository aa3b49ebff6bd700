"""The SageMaker runtime call: one signed ``invoke_endpoint`` with ``TargetModel`` through boto3,
its answer (or failure) as an :class:`~mmeperf.endpoints.base.InvokeResult`, never retried.

boto3 signs and pools the connections itself, so this path does not use the shared HTTP
transport of the local and Triton endpoints.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from mmeperf.cloud.aws import client_error_code
from mmeperf.endpoints.base import (
    HEADER_CACHE,
    HEADER_MODEL_LATENCY_US,
    HEADER_WAIT_US,
    InvokeResult,
)

__all__ = ["RUNTIME_CLIENT_CONFIG", "invoke_endpoint", "runtime_client_config"]

# HTTP status of each SageMaker runtime error code, for the rare answer that lacks one.
_STATUS_OF_CODE = {
    "ValidationError": 400,
    "ModelError": 424,
    "ModelNotReadyException": 429,
    "ThrottlingException": 400,
    "ServiceUnavailable": 503,
    "InternalFailure": 500,
    "InternalDependencyException": 530,
}

#: botocore settings of the runtime client: no silent retries, so each invoke is one request.
RUNTIME_CLIENT_CONFIG: dict[str, Any] = {
    "retries": {"total_max_attempts": 1, "mode": "standard"},
    "connect_timeout": 10,
    "tcp_keepalive": True,
}


def runtime_client_config(*, max_connections: int, read_timeout_s: float) -> dict[str, Any]:
    """The runtime client's botocore config for a connection pool and read timeout."""
    return {**RUNTIME_CLIENT_CONFIG, "max_pool_connections": max_connections, "read_timeout": read_timeout_s}


def _header_us(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(name)
    try:
        return float(raw) / 1e6 if raw is not None else None
    except ValueError:
        return None


def invoke_endpoint(
    runtime: Any,
    endpoint_name: str,
    target_model: str,
    body: bytes,
    *,
    content_type: str = "text/csv",
    accept: str | None = None,
) -> InvokeResult:
    """One ``invoke_endpoint`` with TargetModel; failures are results with status and code."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectTimeoutError,
        ParamValidationError,
        ReadTimeoutError,
    )

    kwargs: dict[str, Any] = {
        "EndpointName": endpoint_name,
        "TargetModel": target_model,
        "Body": body,
        "ContentType": content_type,
    }
    if accept:
        kwargs["Accept"] = accept
    started = time.perf_counter()
    try:
        response = runtime.invoke_endpoint(**kwargs)
        data = response["Body"].read()
    except ClientError as exc:
        latency = time.perf_counter() - started
        code = client_error_code(exc) or "InternalFailure"
        meta = exc.response.get("ResponseMetadata", {})
        status = int(meta.get("HTTPStatusCode") or _STATUS_OF_CODE.get(code, 500))
        return InvokeResult(
            status=status,
            body=b"",
            content_type="",
            latency_s=latency,
            error_code=code,
            error_message=str(exc.response.get("Error", {}).get("Message") or exc),
            headers=dict(meta.get("HTTPHeaders", {})),
        )
    except ParamValidationError as exc:
        return InvokeResult(
            status=400, body=b"", content_type="", latency_s=time.perf_counter() - started,
            error_code="ValidationError", error_message=str(exc),
        )
    except (ReadTimeoutError, ConnectTimeoutError) as exc:
        return InvokeResult(
            status=0, body=b"", content_type="", latency_s=time.perf_counter() - started,
            error_code="Timeout", error_message=str(exc),
        )
    except BotoCoreError as exc:
        # No HTTP answer at all (connection refused or reset): status 0, like Locust.
        return InvokeResult(
            status=0, body=b"", content_type="", latency_s=time.perf_counter() - started,
            error_code="ConnectionError", error_message=str(exc),
        )
    latency = time.perf_counter() - started
    meta = response.get("ResponseMetadata", {})
    headers = {str(k).lower(): str(v) for k, v in meta.get("HTTPHeaders", {}).items()}
    cache = headers.get(HEADER_CACHE)
    return InvokeResult(
        status=int(meta.get("HTTPStatusCode", 200)),
        body=data,
        content_type=str(response.get("ContentType", "")),
        latency_s=latency,
        cache_hit=(cache == "hit") if cache in ("hit", "miss") else None,
        model_loading_wait_s=_header_us(headers, HEADER_WAIT_US),
        model_latency_s=_header_us(headers, HEADER_MODEL_LATENCY_US),
        headers=headers,
    )
