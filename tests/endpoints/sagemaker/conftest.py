"""Fixtures for the SageMaker target: moto's server on 127.0.0.1 and a tiny XGBoost repository.

The server is moto's real HTTP server (not its in-process mock); boto3 reaches it only through
the standard ``AWS_ENDPOINT_URL`` variable, exactly as a user's environment would point it.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
STATES = ("CA", "NY", "TX")


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _isolate_from_real_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL",
                "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "AWS_ENDPOINT_URL_S3", "AWS_ROLE_ARN",
                "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(var, raising=False)
    # No shared config or credentials files, and no instance metadata lookups.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An environment with no AWS credentials, region or endpoint at all."""
    _isolate_from_real_aws(monkeypatch, tmp_path)


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Fake credentials, a region, and every AWS service at the (freshly reset) moto server."""
    _isolate_from_real_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    request = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
    return moto_url


@pytest.fixture(scope="session")
def boosters() -> dict[str, Any]:
    """Three 5-tree XGBoost models on 4 features, one per 'state' (trained in milliseconds)."""
    np = pytest.importorskip("numpy")
    xgb = pytest.importorskip("xgboost")
    rng = np.random.default_rng(7)
    out: dict[str, Any] = {}
    for i, state in enumerate(STATES):
        x = rng.normal(size=(64, 4))
        y = (x[:, i % 4] > 0).astype(int)
        out[state] = xgb.train(
            {"objective": "binary:logistic", "max_depth": 2, "nthread": 1},
            xgb.DMatrix(x, label=y), num_boost_round=5,
        )
    return out


@pytest.fixture
def repository(tmp_path: Path, boosters: dict[str, Any]) -> Any:
    """A SageMaker-layout repository with churn-xgb-{CA,NY,TX}.tar.gz."""
    from mmeperf.repository import ModelRepository

    repo = ModelRepository(tmp_path / "models")
    for state, booster in boosters.items():
        repo.add_model(f"churn-xgb-{state}", booster, backend="xgboost")
    return repo


@pytest.fixture
def boto(aws: str) -> Any:
    """``boto(service)``: a plain boto3 client from the environment, to check what the code did."""
    import boto3

    session = boto3.Session(region_name=REGION)
    return lambda service: session.client(service)
