"""The wire API against the real boto3 client and raw HTTP: answers, error shapes, traversal."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.config import Config
from prometheus_client.parser import text_string_to_metric_families

from mmeperf.endpoints.local import LocalEndpoint
from mmeperf.protocol import HEADER_CACHE, HEADER_MODEL_LATENCY_US, HEADER_WAIT_US, CacheState

from .conftest import Churn, csv_body, parse_csv_predictions, wait_until


def runtime_client(url: str) -> Any:
    return boto3.client(
        "sagemaker-runtime", endpoint_url=url, region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1}),
    )


@pytest.fixture(scope="module")
def served(churn: Churn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalEndpoint, Path]]:
    """The churn models plus a corrupt one, as a plain prefix of archives (no manifest), with a
    valid model placed just outside the repository to catch traversal."""
    root = tmp_path_factory.mktemp("wire")
    repo = root / "repo"
    repo.mkdir()
    for archive in Path(churn.url).glob("*.tar.gz"):
        shutil.copy(archive, repo / archive.name)
    (repo / "broken.tar.gz").write_bytes(b"this is not a gzip archive")
    shutil.copy(repo / "churn-xgb-CA.tar.gz", root / "secret.tar.gz")
    # Compiled after 2 uses (not FAST_PATH_AFTER_USES), so a few requests per model show it.
    with LocalEndpoint(max_payload="64KiB", server_options={"fast_path_after_uses": 2}).deploy(str(repo)) as ep:
        yield ep, root


def test_boto3_gets_xgboost_predictions_from_all_51_models(churn: Churn, served: Any) -> None:
    ep, _ = served
    client = runtime_client(ep.url)
    assert len(churn.states) == 51
    for state in churn.states:
        rows = churn.rows(state, 3)
        for body, expected in ((csv_body(rows[:1]), churn.expected(state, rows[:1])),
                               (csv_body(rows), churn.expected(state, rows))):
            # The XGBoost container answers JSON unless asked for CSV (handler_service.py).
            out = client.invoke_endpoint(EndpointName="local-mme", TargetModel=churn.target(state),
                                         Body=body, ContentType="text/csv", Accept="text/csv")
            assert out["ContentType"] == "text/csv"
            assert out["InvokedProductionVariant"] == "AllTraffic"
            assert out["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
            got = parse_csv_predictions(out["Body"].read())
            np.testing.assert_array_equal(got, expected)
    assert sorted(ep.loaded_models()) == sorted(churn.target(s) for s in churn.states)
    # After their loads, every churn model is served by compiled trees (verified bit-exact).
    wait_until(lambda: all(m["runner"] == "CompiledXGBoostRunner" for m in ep.status()["models"]),
               "every model runs compiled")


def test_json_accept_and_attribution_headers(churn: Churn, served: Any) -> None:
    ep, _ = served
    rows = churn.rows("NY", 2)
    first = ep.invoke(churn.target("NY"), csv_body(rows), accept="application/json")
    assert first.ok, first.error_message
    assert first.content_type == "application/json"
    np.testing.assert_array_equal(np.array(json.loads(first.body), np.float32), churn.expected("NY", rows))
    again = ep.invoke(churn.target("NY"), csv_body(rows))
    assert again.cache is CacheState.HIT and again.model_loading_wait_s == 0
    assert again.model_latency_s is not None and again.model_latency_s > 0
    assert {HEADER_CACHE, HEADER_WAIT_US, HEADER_MODEL_LATENCY_US} <= set(again.headers)


def test_unknown_target_is_a_validation_error(served: Any) -> None:
    ep, _ = served
    client = runtime_client(ep.url)
    with pytest.raises(client.exceptions.ValidationError) as info:
        client.invoke_endpoint(EndpointName="local-mme", TargetModel="no-such-model.tar.gz",
                               Body=b"1,2", ContentType="text/csv")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "no-such-model.tar.gz" in str(info.value)


def test_wrong_endpoint_name_is_a_validation_error(served: Any) -> None:
    client = runtime_client(served[0].url)
    with pytest.raises(client.exceptions.ValidationError, match="other-endpoint"):
        client.invoke_endpoint(EndpointName="other-endpoint", TargetModel="churn-xgb-CA.tar.gz",
                               Body=b"1", ContentType="text/csv")


def test_corrupt_artifact_is_a_model_error_and_others_keep_serving(churn: Churn, served: Any) -> None:
    ep, _ = served
    client = runtime_client(ep.url)
    with pytest.raises(client.exceptions.ModelError) as info:
        client.invoke_endpoint(EndpointName="local-mme", TargetModel="broken.tar.gz",
                               Body=b"1", ContentType="text/csv")
    response = info.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert "broken.tar.gz" in response["Error"]["Message"]
    assert response["OriginalStatusCode"] == 500
    assert "broken.tar.gz" in response["OriginalMessage"]
    assert response["LogStreamArn"].startswith("arn:aws:logs:")
    rows = churn.rows("TX", 1)
    out = client.invoke_endpoint(EndpointName="local-mme", TargetModel=churn.target("TX"),
                                 Body=csv_body(rows), ContentType="text/csv")
    np.testing.assert_array_equal(parse_csv_predictions(out["Body"].read()), churn.expected("TX", rows))


def test_bad_payload_is_a_model_error_wrapping_the_containers_400(churn: Churn, served: Any) -> None:
    ep, _ = served
    client = runtime_client(ep.url)
    before = ep.metrics()
    with pytest.raises(client.exceptions.ModelError) as info:
        client.invoke_endpoint(EndpointName="local-mme", TargetModel=churn.target("CA"),
                               Body=b",".join([b"1"] * 18), ContentType="text/csv")  # wider than the model
    assert info.value.response["OriginalStatusCode"] == 400
    assert "17" in info.value.response["OriginalMessage"]
    with pytest.raises(client.exceptions.ModelError) as info:
        client.invoke_endpoint(EndpointName="local-mme", TargetModel=churn.target("CA"),
                               Body=b"1", ContentType="image/png")
    assert info.value.response["OriginalStatusCode"] == 415
    after = ep.metrics()
    assert after.invocations - before.invocations == 2
    assert after.invocation_4xx_errors - before.invocation_4xx_errors == 2


@pytest.mark.parametrize("target", [
    "../secret.tar.gz",
    "%2e%2e/secret.tar.gz",
    "%2E%2E%2Fsecret.tar.gz",
    "..%2fsecret.tar.gz",
    "%252e%252e%252fsecret.tar.gz",
    "repo/../../secret.tar.gz",
    "./../secret.tar.gz",
    "..\\secret.tar.gz",
])
def test_traversal_in_target_is_refused(served: Any, target: str) -> None:
    ep, _ = served
    client = runtime_client(ep.url)
    with pytest.raises(client.exceptions.ValidationError) as info:
        client.invoke_endpoint(EndpointName="local-mme", TargetModel=target, Body=b"1", ContentType="text/csv")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert all("secret" not in name for name in ep.loaded_models())


def test_absolute_target_is_refused(served: Any) -> None:
    ep, root = served
    result = ep.invoke(str(root / "secret.tar.gz"), b"1")
    assert (result.status, result.error_code) == (400, "ValidationError")
    # The container API finds no such model (MMS: 404 for a name it does not hold) and refuses
    # the url, as MMS refuses relative paths.
    status, _, _ = ep._request("GET", "/models/..%2Fsecret.tar.gz")
    assert status == 404
    status, _, body = ep._request("POST", "/models", json.dumps(
        {"model_name": "secret", "url": "../secret.tar.gz"}).encode(), {"Content-Type": "application/json"})
    assert status == 404 and json.loads(body)["message"] == "Relative path is not allowed in url: ../secret.tar.gz"
    status, _, body = ep._request("POST", "/models", json.dumps(
        {"model_name": "secret", "url": str(root / "secret.tar.gz")}).encode(), {"Content-Type": "application/json"})
    assert status == 404 and json.loads(body)["message"].startswith("Model not found in model store: ")
    assert all("secret" not in name for name in ep.loaded_models())


def test_payload_over_the_limit_is_413(churn: Churn, served: Any) -> None:
    ep, _ = served
    result = ep.invoke(churn.target("CA"), b"1," * 40_000)
    assert result.status == 413 and result.error_code == "ValidationError"
    client = runtime_client(ep.url)
    with pytest.raises(client.exceptions.ValidationError):
        client.invoke_endpoint(EndpointName="local-mme", TargetModel=churn.target("CA"),
                               Body=b"1," * 40_000, ContentType="text/csv")
    # The connection still serves the next request.
    assert ep.invoke(churn.target("CA"), csv_body(churn.rows("CA", 1))).ok


def test_container_contract(churn: Churn, served: Any) -> None:
    ep, _ = served
    req = ep._request
    assert req("GET", "/ping")[0] == 200
    target = churn.target("WY")
    if target in ep.loaded_models():
        assert req("DELETE", f"/models/{target}")[0] == 200
    assert req("GET", f"/models/{target}")[0] == 404
    assert req("POST", f"/models/{target}/invoke", csv_body(churn.rows("WY", 1)),
               {"Content-Type": "text/csv"})[0] == 404
    as_json = {"Content-Type": "application/json"}
    assert req("POST", "/models", json.dumps({"model_name": target, "url": target}).encode(), as_json)[0] == 200
    # MMS checks the url before the name (no url: 400), then answers 409 for a second load.
    assert req("POST", "/models", json.dumps({"model_name": target}).encode(), as_json)[0] == 400
    assert req("POST", "/models", json.dumps({"model_name": target, "url": target}).encode(), as_json)[0] == 409
    status, _, body = req("GET", f"/models/{target}")
    assert status == 200 and json.loads(body)["modelName"] == target
    rows = churn.rows("WY", 2)
    status, _, body = req("POST", f"/models/{target}/invoke", csv_body(rows), {"Content-Type": "text/csv"})
    assert status == 200
    np.testing.assert_array_equal(parse_csv_predictions(body), churn.expected("WY", rows))
    status, _, body = req("POST", "/invocations", csv_body(rows),
                          {"Content-Type": "text/csv", "X-Amzn-SageMaker-Target-Model": target})
    assert status == 200
    status, _, body = req("POST", f"/models/{target}/invoke", b",".join([b"1"] * 18), {"Content-Type": "text/csv"})
    assert status == 400 and "17" in json.loads(body)["message"]
    listing = json.loads(req("GET", "/models?limit=2")[2])
    assert len(listing["models"]) == 2 and "nextPageToken" in listing
    assert target in ep.loaded_models()
    assert req("DELETE", f"/models/{target}")[0] == 200
    assert req("DELETE", f"/models/{target}")[0] == 404
    assert target not in ep.loaded_models()
    assert req("POST", "/models", b"not json")[0] == 400
    assert req("GET", "/nothing-here")[0] == 404


def test_prometheus_metrics_carry_cloudwatch_names(churn: Churn, served: Any) -> None:
    ep, _ = served
    assert ep.invoke(churn.target("CA"), csv_body(churn.rows("CA", 1))).ok
    status, headers, body = ep._request("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    for name in ("invocations", "invocation_4xx_errors", "invocation_5xx_errors", "model_cache_hit",
                 "loaded_model_count", "model_latency_microseconds", "overhead_latency_microseconds",
                 "model_loading_wait_time_microseconds", "model_downloading_time_microseconds",
                 "model_loading_time_microseconds", "model_unloading_time_microseconds",
                 "cpu_utilization_percent", "memory_utilization_percent", "disk_utilization_percent"):
        assert name in families, name
    snapshot = ep.metrics()
    loaded = families["loaded_model_count"].samples[0].value
    assert loaded == snapshot.loaded_model_count == len(ep.loaded_models())
    assert snapshot.invocations >= 1 and snapshot.model_latency.count >= 1
    assert snapshot.cpu_utilization is not None and snapshot.memory_utilization is not None
