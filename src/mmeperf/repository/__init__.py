"""Model repositories: model artifacts in storage (local, S3, any fsspec URL) in a server's layout.

:class:`ModelRepository` adds, lists, fetches and verifies models in a layout
(:class:`SageMakerLayout` or :class:`TritonLayout`); the helpers pack and unpack archives safely
and validate the names clients send as TargetModel. Triton configs live in :mod:`.triton`.
"""

from __future__ import annotations

from mmeperf.repository.archive import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_MEMBERS,
    ArchiveSummary,
    check_archive,
    pack,
    safe_extract,
)
from mmeperf.repository.detect import detect_backend
from mmeperf.repository.layouts import Layout, SageMakerLayout, TritonLayout
from mmeperf.repository.manifest import MANIFEST_NAME, ModelEntry, VerifyReport
from mmeperf.repository.names import validate_model_name
from mmeperf.repository.repository import ModelRepository

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_MEMBERS",
    "MANIFEST_NAME",
    "ArchiveSummary",
    "Layout",
    "ModelEntry",
    "ModelRepository",
    "SageMakerLayout",
    "TritonLayout",
    "VerifyReport",
    "check_archive",
    "detect_backend",
    "pack",
    "safe_extract",
    "validate_model_name",
]
