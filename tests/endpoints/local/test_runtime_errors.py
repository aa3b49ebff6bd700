"""Every SageMaker runtime error shape the local MME answers, seen three ways that must agree:
the real boto3 client (its exception class, status and modeled members), the raw answer read by
mmeperf.protocol, and mmeperf.protocol's boto3 route. The shapes follow botocore's
sagemaker-runtime model: ValidationError 400, ModelError 424 (OriginalStatusCode,
OriginalMessage), ModelNotReadyException 429, InternalFailure 500, ServiceUnavailable 503."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from mmeperf.endpoints.local.config import ServerConfig
from mmeperf.protocol import (
    DEFAULT_ENDPOINT_NAME,
    CacheState,
    InvokeResult,
    invoke_boto3,
    parse_answer,
)
from mmeperf.repository import ModelRepository

from .conftest import Churn, Gates, ThreadServer, csv_body, wait_until

TARGET = "churn-xgb-CA.tar.gz"


@pytest.fixture
def server(gates: Gates, gated_repo: ModelRepository) -> Iterator[ThreadServer]:
    config = ServerConfig(repository=gated_repo.url, model_load_wait_s=0.3, max_concurrent_requests=1)
    with ThreadServer(config, gated_repo) as srv:
        yield srv


def _client(url: str) -> Any:
    return boto3.client("sagemaker-runtime", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x",
                        config=Config(retries={"total_max_attempts": 1}))


def _three_ways(srv: ThreadServer, target: str, body: bytes, code: str, status: int) -> InvokeResult:
    """Send the same request raw, through boto3 and through protocol.invoke_boto3; check that
    all three read the same shape, and return the raw one."""
    client = _client(srv.url)
    raw_status, raw_headers, raw_body = srv.invoke(target, body)
    raw = parse_answer(raw_status, raw_headers, raw_body, 0.0)
    with pytest.raises(getattr(client.exceptions, code)) as info:
        client.invoke_endpoint(EndpointName=DEFAULT_ENDPOINT_NAME, TargetModel=target, Body=body,
                               ContentType="text/csv")
    response = info.value.response
    via_boto3 = invoke_boto3(client, DEFAULT_ENDPOINT_NAME, target, body)
    assert (raw.status, raw.error_code) == (status, code), raw
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert response["Error"]["Code"] == code
    assert raw.error_message and response["Error"]["Message"] == raw.error_message
    assert response.get("OriginalStatusCode") == raw.original_status_code
    assert response.get("OriginalMessage") == raw.original_message
    assert (via_boto3.status, via_boto3.error_code, via_boto3.error_message) == (status, code, raw.error_message)
    assert (via_boto3.original_status_code, via_boto3.original_message) == (
        raw.original_status_code, raw.original_message)
    assert raw.headers["x-amzn-requestid"]
    return raw


def test_validation_error_400_for_an_unknown_target(server: ThreadServer) -> None:
    raw = _three_ways(server, "no-such-model.tar.gz", b"1", "ValidationError", 400)
    assert "no-such-model.tar.gz" in (raw.error_message or "")
    assert raw.original_status_code is None and raw.cache is CacheState.UNKNOWN


def test_validation_error_400_for_a_target_without_its_suffix(churn: Churn, server: ThreadServer) -> None:
    # TargetModel is joined to the prefix literally: "churn-xgb-CA" names no object.
    _three_ways(server, TARGET.removesuffix(".tar.gz"), csv_body(churn.rows("CA", 1)), "ValidationError", 400)


def test_model_error_424_carries_the_containers_status_and_message(churn: Churn, server: ThreadServer) -> None:
    assert server.invoke(TARGET, csv_body(churn.rows("CA", 1)))[0] == 200
    wide = ",".join(["1"] * 20).encode()  # wider than the 17-feature model (short rows are missing values)
    raw = _three_ways(server, TARGET, wide, "ModelError", 424)
    assert raw.original_status_code == 400 and raw.original_message and "17" in raw.original_message
    assert raw.original_message in (raw.error_message or "")
    assert raw.cache is CacheState.HIT  # the request reached its loaded model: attributed too


def test_model_not_ready_429_while_the_model_loads(churn: Churn, gates: Gates, server: ThreadServer) -> None:
    gates.load.clear()
    raw = _three_ways(server, TARGET, csv_body(churn.rows("CA", 1)), "ModelNotReadyException", 429)
    assert TARGET in (raw.error_message or "")
    gates.load.set()


def test_service_unavailable_503_when_over_the_concurrency_limit(
    churn: Churn, gates: Gates, server: ThreadServer
) -> None:
    body = csv_body(churn.rows("CA", 1))
    assert server.invoke(TARGET, body)[0] == 200
    wait_until(lambda: server.service.cache.get_loaded(TARGET) is not None, "CA loaded")
    gates.predict.clear()
    gates.in_predict.clear()
    held = threading.Thread(target=server.invoke, args=(TARGET, body))
    held.start()
    try:
        assert gates.in_predict.wait(20)
        _three_ways(server, TARGET, body, "ServiceUnavailable", 503)
    finally:
        gates.predict.set()
        held.join(timeout=30)


def test_internal_failure_500_on_an_unexpected_server_error(
    churn: Churn, server: ThreadServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(target: str) -> None:
        raise RuntimeError("a bug in the server")

    monkeypatch.setattr(server.service.cache, "try_hit", broken)
    raw = _three_ways(server, TARGET, csv_body(churn.rows("CA", 1)), "InternalFailure", 500)
    assert "RuntimeError" in (raw.error_message or "")


def test_success_is_attributed_the_same_raw_and_through_boto3(churn: Churn, server: ThreadServer) -> None:
    body = csv_body(churn.rows("CA", 2))
    first = invoke_boto3(_client(server.url), DEFAULT_ENDPOINT_NAME, TARGET, body)
    assert first.ok and first.cache is CacheState.MISS and first.model_loading_s is not None
    status, headers, data = server.invoke(TARGET, body)
    again = parse_answer(status, headers, data, 0.0)
    assert again.ok and again.cache is CacheState.HIT and again.model_loading_wait_s == 0
    assert again.body == first.body and again.instance == first.instance == server.service.instance
    assert again.model_latency_s is not None and again.model_latency_s > 0
