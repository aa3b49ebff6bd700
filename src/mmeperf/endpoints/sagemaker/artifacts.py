"""A repository's archives in S3 for a SageMaker MME: upload (skipping unchanged objects), the
default bucket, and listing / deleting the objects under an uploaded prefix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mmeperf.cloud.aws import describe_or_none, translate_errors
from mmeperf.errors import ConfigurationError, EndpointError

if TYPE_CHECKING:
    from mmeperf.cloud.aws import AwsClients
    from mmeperf.repository import ModelRepository

__all__ = ["default_bucket", "delete_objects", "list_objects", "split_s3", "upload_repository"]

Say = Callable[[str], None]


def split_s3(url: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    if not url.startswith("s3://"):
        raise ConfigurationError(f"Expected an s3:// URL, received {url!r}")
    bucket, _, key = url[5:].partition("/")
    return bucket, key


def default_bucket(aws: AwsClients, say: Say) -> str:
    """SageMaker's default bucket ``sagemaker-{region}-{account}``, created when missing."""
    s3 = aws.client("s3")
    bucket = f"sagemaker-{aws.region}-{aws.account_id()}"
    if describe_or_none(lambda: s3.head_bucket(Bucket=bucket)) is None:
        say(f"creating bucket s3://{bucket}")
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if aws.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": aws.region}
        s3.create_bucket(**kwargs)
    return bucket


def upload_repository(
    aws: AwsClients, repository: ModelRepository, *, bucket: str | None, prefix: str, say: Say
) -> tuple[str, str]:
    """Copy the repository's archives (and manifest) to ``s3://bucket/prefix``; returns the
    bucket (``bucket``, else the default one) and that URL.

    Reads through the repository's fsspec layer. An object whose stored sha256 and size match is
    not sent again, so re-deploying is cheap.
    """
    from mmeperf.repository.manifest import MANIFEST_NAME
    from mmeperf.repository.names import key_under_root

    if repository.layout != "sagemaker":
        raise ConfigurationError(
            f"A SageMaker multi-model endpoint loads one archive per model; the repository at "
            f"{repository.url!r} has layout {repository.layout!r}. Build it with layout='sagemaker' "
            "(for Triton models add them with arcname_prefix=<name>)"
        )
    entries = repository.list()
    if not entries:
        raise ConfigurationError(f"The repository at {repository.url!r} has no models to deploy")
    with translate_errors(f"Uploading {repository.url!r} to S3"):
        bucket = bucket or default_bucket(aws, say)
        s3 = aws.client("s3")
        keys: list[tuple[str, str | None, int | None]] = [
            (entry.key, entry.sha256, entry.bytes) for entry in entries
        ]
        if repository.has_manifest:
            keys.append((MANIFEST_NAME, None, None))
        for i, (key, sha256, size) in enumerate(keys, start=1):
            s3_key = prefix + key
            head = describe_or_none(lambda k=s3_key: s3.head_object(Bucket=bucket, Key=k))  # type: ignore[misc]
            if (
                head is not None and sha256 is not None
                and head.get("Metadata", {}).get("sha256") == sha256
                and head.get("ContentLength") == size
            ):
                say(f"unchanged {i}/{len(keys)} s3://{bucket}/{s3_key}")
                continue
            extra = {"Metadata": {"sha256": sha256}} if sha256 else {}
            with repository.fs.open(key_under_root(repository.root, key), "rb") as fh:
                s3.upload_fileobj(fh, bucket, s3_key, ExtraArgs=extra)
            say(f"uploaded {i}/{len(keys)} s3://{bucket}/{s3_key}")
    return bucket, f"s3://{bucket}/{prefix}"


def list_objects(s3: Any, url: str) -> list[str]:
    """``s3://`` URLs of every object under ``url`` (none when the bucket is gone)."""
    bucket, prefix = split_s3(url)
    if describe_or_none(lambda: s3.head_bucket(Bucket=bucket)) is None:
        return []
    found: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found += [f"s3://{bucket}/{obj['Key']}" for obj in page.get("Contents", [])]
    return found


def delete_objects(s3: Any, urls: list[str], say: Say) -> None:
    """Delete ``s3://`` objects, 1000 per call (DeleteObjects' limit); EndpointError on refusals."""
    by_bucket: dict[str, list[str]] = {}
    for url in urls:
        bucket, key = split_s3(url)
        by_bucket.setdefault(bucket, []).append(key)
    for bucket, keys in by_bucket.items():
        for start in range(0, len(keys), 1000):
            chunk = keys[start:start + 1000]
            answer = s3.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
            )
            if answer.get("Errors"):
                raise EndpointError(f"S3 refused to delete some artifacts: {answer['Errors'][:3]}")
        say(f"deleted {len(keys)} objects in s3://{bucket}")
