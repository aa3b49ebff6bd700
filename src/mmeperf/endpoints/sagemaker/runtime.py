"""The SageMaker runtime call: one signed ``invoke_endpoint`` with ``TargetModel`` through boto3,
its answer (or failure) as an :class:`~mmeperf.protocol.InvokeResult`, never retried.

boto3 signs and pools the connections itself, so this path does not use the shared HTTP
transport of the local and Triton endpoints; :mod:`mmeperf.protocol` builds the call and reads
the answer, as it does for every other client.
"""

from __future__ import annotations

from typing import Any

from mmeperf.protocol import InvokeResult, invoke_boto3

__all__ = ["RUNTIME_CLIENT_CONFIG", "invoke_endpoint", "runtime_client_config"]

#: botocore settings of the runtime client: no silent retries, so each invoke is one request.
RUNTIME_CLIENT_CONFIG: dict[str, Any] = {
    "retries": {"total_max_attempts": 1, "mode": "standard"},
    "connect_timeout": 10,
    "tcp_keepalive": True,
}


def runtime_client_config(*, max_connections: int, read_timeout_s: float) -> dict[str, Any]:
    """The runtime client's botocore config for a connection pool and read timeout."""
    return {**RUNTIME_CLIENT_CONFIG, "max_pool_connections": max_connections, "read_timeout": read_timeout_s}


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
    return invoke_boto3(runtime, endpoint_name, target_model, body, content_type=content_type, accept=accept)
