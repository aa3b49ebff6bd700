"""The SageMaker invoke path (boto3 sagemaker-runtime, signed) against the local MME.

moto's invoke_endpoint answers a canned body, so the data plane is checked here: the same
``SageMakerEndpoint.invoke`` a benchmark uses on AWS, pointed at ``mmeperf.endpoints.local``
through ``endpoint_url``, must return the models' own predictions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from mmeperf.endpoints.sagemaker import SageMakerEndpoint
from mmeperf.protocol import CacheState

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def local_mme(repository: Any) -> Iterator[Any]:
    local = pytest.importorskip("mmeperf.endpoints.local")
    with local.LocalEndpoint(endpoint_name="churn-local").deploy(repository) as endpoint:
        yield endpoint


@pytest.fixture
def fake_credentials(no_aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def _floats(body: bytes) -> list[float]:
    """The answer in the XGBoost container's default type (a JSON array) or as CSV."""
    text = body.decode().strip()
    if text.startswith("["):
        return [float(v) for v in json.loads(text)]
    return [float(v) for v in text.replace(",", "\n").split() if v.strip()]


def test_sagemaker_invoke_gets_the_models_predictions(fake_credentials: None, local_mme: Any, boosters: dict[str, Any]) -> None:
    np = pytest.importorskip("numpy")
    xgb = pytest.importorskip("xgboost")
    info = local_mme.info()
    endpoint = SageMakerEndpoint(name=info.name, endpoint_urls={"sagemaker-runtime": info.runtime_url})
    rows = np.random.default_rng(3).normal(size=(3, 4))
    for state, booster in boosters.items():
        expected = booster.predict(xgb.DMatrix(rows))
        for i, row in enumerate(rows):
            body = ",".join(f"{v:.17g}" for v in row).encode()
            result = endpoint.invoke(f"churn-xgb-{state}.tar.gz", body, content_type="text/csv")
            assert result.ok, (result.status, result.error_code, result.error_message)
            assert _floats(result.body) == pytest.approx([float(expected[i])], rel=1e-5)
            if i == 0:
                assert result.cache is CacheState.MISS
            else:
                assert result.cache is CacheState.HIT


def test_sagemaker_invoke_reports_local_errors_as_results(fake_credentials: None, local_mme: Any) -> None:
    info = local_mme.info()
    endpoint = SageMakerEndpoint(name=info.name, endpoint_urls={"sagemaker-runtime": info.runtime_url})
    missing = endpoint.invoke("churn-xgb-ZZ.tar.gz", b"1,2,3,4")
    assert not missing.ok and 400 <= missing.status < 500
    assert missing.error_code == "ValidationError"
    malformed = endpoint.invoke("churn-xgb-CA.tar.gz", b"not,numbers")
    assert not malformed.ok and malformed.status in (400, 424)


def test_signed_fast_path_benchmarks_a_sagemaker_endpoint(
    fake_credentials: None, local_mme: Any, tmp_path: Any
) -> None:
    """The load runner's SigV4-signed HTTP user against a SageMakerEndpoint, checked on the local MME."""
    from mmeperf.load import Benchmark, LoadProfile, Traffic
    from mmeperf.load.spec import AwsAuth

    info = local_mme.info()
    endpoint = SageMakerEndpoint(name=info.name, endpoint_urls={"sagemaker-runtime": info.runtime_url})
    assert endpoint.info().runtime_url == info.runtime_url
    traffic = Traffic(
        models=["churn-xgb-CA.tar.gz", "churn-xgb-NY.tar.gz"], payloads=["0.1,0.2,0.3,0.4"], content_type="text/csv"
    )
    profile = LoadProfile.constant(users=4, spawn_rate=50, duration="3s", traffic=traffic, wait={"min": 0, "max": 0.01})
    before = local_mme.metrics()
    result = Benchmark(
        endpoint,
        profile,
        auth=AwsAuth(region="us-east-1", access_key="testing", secret_key="testing"),
        sample_metrics=False,  # CloudWatch is not there; the local MME's own counters are the check
    ).run(tmp_path / "run")
    after = local_mme.metrics()
    assert result.total_requests > 20 and result.total_failures == 0
    assert after.invocations - before.invocations == result.total_requests
