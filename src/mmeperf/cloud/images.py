"""Container image URIs for SageMaker multi-model endpoints: XGBoost for CPU, Triton for GPU.

From the SageMaker Python SDK's image-URI tables when it is importable; otherwise from the small
table below (SageMaker docs, "Docker Registry Paths and Example Code"); otherwise the user's
``--image-uri``. Regions missing from the table need ``--image-uri``.
"""

from __future__ import annotations

import importlib
from typing import Any

from mmeperf.errors import ConfigurationError

__all__ = [
    "TRITON_ACCOUNTS",
    "TRITON_DEFAULT_TAG",
    "XGBOOST_ACCOUNTS",
    "XGBOOST_DEFAULT_VERSION",
    "container_for_backend",
    "image_uri",
]

#: SageMaker XGBoost container version (its tag); supports multi-model endpoints.
XGBOOST_DEFAULT_VERSION = "1.7-1"
#: ``sagemaker-xgboost`` registry accounts for versions 0.90-1 .. 1.7-1 (the SDK's xgboost.json).
XGBOOST_ACCOUNTS: dict[str, str] = {
    "us-east-1": "683313688378",
    "us-east-2": "257758044811",
    "us-west-1": "746614075791",
    "us-west-2": "246618743249",
    "ca-central-1": "341280168497",
    "eu-west-1": "141502667606",
    "eu-west-2": "764974769150",
    "eu-west-3": "659782779980",
    "eu-central-1": "492215442770",
    "eu-north-1": "662702820516",
    "ap-south-1": "720646828776",
    "ap-northeast-1": "354813040037",
    "ap-northeast-2": "366743142698",
    "ap-southeast-1": "121021644041",
    "ap-southeast-2": "783357654285",
    "sa-east-1": "737474898029",
}
#: Triton container tag used when none is given (any published ``sagemaker-tritonserver`` tag works).
TRITON_DEFAULT_TAG = "23.02-py3"
#: ``sagemaker-tritonserver`` registry accounts (SageMaker Triton examples).
TRITON_ACCOUNTS: dict[str, str] = {
    "us-east-1": "785573368785",
    "us-east-2": "007439368137",
    "us-west-1": "710691900526",
    "us-west-2": "301217895009",
    "ca-central-1": "464438896020",
    "eu-west-1": "802834080501",
    "eu-west-2": "205493899709",
    "eu-west-3": "254080097072",
    "eu-central-1": "746233611703",
    "eu-north-1": "601324751636",
    "ap-south-1": "763008648453",
    "ap-northeast-1": "941853720454",
    "ap-northeast-2": "151534178276",
    "ap-southeast-1": "324986816169",
    "ap-southeast-2": "355873309152",
    "sa-east-1": "756306329178",
}

# Backends served by SageMaker's XGBoost container; every other format goes to Triton.
_XGBOOST_BACKENDS = frozenset({"xgboost"})


def container_for_backend(backend: str | None) -> str:
    """``"xgboost"`` or ``"triton"``: which SageMaker container serves models of ``backend``."""
    if backend is None:
        raise ConfigurationError(
            "The repository does not say which backend its models use; pass --image-uri"
        )
    return "xgboost" if backend in _XGBOOST_BACKENDS else "triton"


def _from_sdk(framework: str, region: str, version: str) -> str | None:
    """The SageMaker SDK's answer when the v2 API is importable (3.x removed it), else None."""
    for module in ("sagemaker.image_uris", "sagemaker.core.image_uris"):
        try:
            retrieve: Any = importlib.import_module(module).retrieve
        except (ImportError, AttributeError):
            continue
        try:
            return str(retrieve(framework=framework, region=region, version=version))
        except Exception:  # the SDK raises ValueError for unknown versions/regions; use our table
            return None
    return None


def image_uri(container: str, region: str, *, version: str | None = None) -> str:
    """Image URI of ``container`` (``"xgboost"`` or ``"triton"``) in ``region``.

    Raises ConfigurationError naming ``--image-uri`` when the region is not in the table.
    """
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    if container == "xgboost":
        tag = version or XGBOOST_DEFAULT_VERSION
        found = _from_sdk("xgboost", region, tag)
        if found:
            return found
        accounts, repo = XGBOOST_ACCOUNTS, "sagemaker-xgboost"
    elif container == "triton":
        tag = version or TRITON_DEFAULT_TAG
        accounts, repo = TRITON_ACCOUNTS, "sagemaker-tritonserver"
    else:
        raise ConfigurationError(f"Unknown container {container!r}; expected one of: xgboost, triton")
    account = accounts.get(region)
    if account is None:
        raise ConfigurationError(
            f"No built-in {container} image for region {region!r} (known: {', '.join(sorted(accounts))}); "
            "pass --image-uri (see the SageMaker docs, 'Docker Registry Paths and Example Code')"
        )
    return f"{account}.dkr.ecr.{region}.{domain}/{repo}:{tag}"
