"""ModelRepository on S3 through s3fs, against moto's S3 server on 127.0.0.1 (real HTTP, real boto)."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mmeperf.repository import ModelRepository

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

BUCKET = "mmeperf-models"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=url, region_name="us-east-1", **CREDENTIALS).create_bucket(Bucket=BUCKET)
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def storage_options(s3_endpoint: str) -> dict[str, Any]:
    return {
        "key": CREDENTIALS["aws_access_key_id"],
        "secret": CREDENTIALS["aws_secret_access_key"],
        "client_kwargs": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"},
    }


def test_s3_round_trip(storage_options: dict[str, Any], s3_endpoint: str, model_dir: Path, tmp_path: Path) -> None:
    repo = ModelRepository(f"s3://{BUCKET}/churn", storage_options=storage_options)
    repo.add("churn-xgb-CA", model_dir)
    repo.copies("churn-xgb-CA", 2)
    assert repo.names() == ["churn-xgb-CA", "churn-xgb-CA-v0", "churn-xgb-CA-v1"]

    # The objects are where a SageMaker Model with ModelDataUrl=s3://bucket/churn/ looks.
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **CREDENTIALS)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="churn/")["Contents"])
    assert keys == [
        "churn/churn-xgb-CA-v0.tar.gz", "churn/churn-xgb-CA-v1.tar.gz", "churn/churn-xgb-CA.tar.gz",
        "churn/mmeperf-manifest.json",
    ]
    folder = repo.fetch("churn-xgb-CA-v1.tar.gz", tmp_path / "cache")
    assert (folder / "xgboost-model").read_bytes() == (model_dir / "xgboost-model").read_bytes()

    # Corrupt one object behind the repository's back: verify names it.
    body = bytearray(s3.get_object(Bucket=BUCKET, Key="churn/churn-xgb-CA-v0.tar.gz")["Body"].read())
    body[-5] ^= 0xFF
    s3.put_object(Bucket=BUCKET, Key="churn/churn-xgb-CA-v0.tar.gz", Body=bytes(body))
    fresh = ModelRepository(f"s3://{BUCKET}/churn", storage_options=storage_options)
    assert fresh.verify().problems == {"churn-xgb-CA-v0": "sha256 mismatch"}


def test_s3_prefix_written_by_another_tool(storage_options: dict[str, Any], s3_endpoint: str, model_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(model_dir / "xgboost-model", arcname="xgboost-model")
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **CREDENTIALS)
    for state in ("NY", "TX"):
        s3.upload_file(str(archive), BUCKET, f"plain/churn-xgb-{state}.tar.gz")
    repo = ModelRepository(f"s3://{BUCKET}/plain", storage_options=storage_options, create=False)
    assert not repo.has_manifest
    assert [(e.name, e.backend, e.bytes) for e in repo] == [
        ("churn-xgb-NY", None, archive.stat().st_size),
        ("churn-xgb-TX", None, archive.stat().st_size),
    ]
    folder = repo.fetch("churn-xgb-TX.tar.gz", tmp_path / "cache")
    assert repo.detect_backend(folder) == "xgboost"
    assert repo.verify().ok
