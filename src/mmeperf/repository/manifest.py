"""The repository manifest (``mmeperf-manifest.json``) and the records it holds.

One JSON file at the repository root lists every model mmeperf wrote: name, target, key,
backend, bytes, sha256, created. Repositories written by other tools simply have none.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mmeperf._types import Layout
from mmeperf.errors import RepositoryError

__all__ = ["MANIFEST_NAME", "MANIFEST_VERSION", "Manifest", "ModelEntry", "VerifyReport"]

#: File name of the manifest at the repository root; never listed as a model.
MANIFEST_NAME = "mmeperf-manifest.json"
#: Format version written into the manifest; readers refuse newer major versions.
MANIFEST_VERSION = 1


class ModelEntry(BaseModel):
    """One model in a repository."""

    model_config = ConfigDict(frozen=True)

    name: str
    """Model name, e.g. ``churn-xgb-CA``."""
    target: str
    """What a client puts in TargetModel: ``churn-xgb-CA.tar.gz`` (sagemaker) or ``churn-xgb-CA`` (triton)."""
    key: str
    """Path relative to the repository root: ``churn-xgb-CA.tar.gz`` or ``churn-xgb-CA/``."""
    backend: str | None = None
    """Backend plugin name, None when unknown (a repository written by another tool)."""
    bytes: int = Field(ge=0)
    """Stored size: the archive (sagemaker) or the sum of the folder's files (triton)."""
    sha256: str | None = None
    """Hex digest of the stored archive (sagemaker) or of the folder listing (triton, see docs);
    None when unknown until ``verify`` computes it."""
    created: datetime | None = None
    """When the artifact was written (UTC), None when the storage does not say."""


class VerifyReport(BaseModel):
    """What ``ModelRepository.verify`` found."""

    model_config = ConfigDict(frozen=True)

    checked: int
    """Number of models checked."""
    problems: dict[str, str] = Field(default_factory=dict)
    """Model name -> reason: ``sha256 mismatch``, ``missing``, ``unreadable archive: ...``."""

    @property
    def ok(self) -> bool:
        """Whether every checked model is intact."""
        return not self.problems

    def __str__(self) -> str:
        if self.ok:
            return f"{self.checked} models checked, all intact"
        lines = [f"{self.checked} models checked, {len(self.problems)} with problems:"]
        lines += [f"  {name}: {why}" for name, why in sorted(self.problems.items())]
        return "\n".join(lines)


class Manifest(BaseModel):
    """The manifest file's content."""

    format: str = "mmeperf-manifest"
    """Marks the file as ours."""
    version: int = MANIFEST_VERSION
    """Format version."""
    layout: Layout
    """Layout the repository was written in."""
    models: list[ModelEntry] = Field(default_factory=list)
    """Every model added through mmeperf, sorted by name."""

    def to_bytes(self) -> bytes:
        """Stable, human-readable JSON (sorted models, two-space indent)."""
        data = self.model_dump(mode="json")
        data["models"] = sorted(data["models"], key=lambda m: m["name"])
        return (json.dumps(data, indent=2, sort_keys=False) + "\n").encode()

    @classmethod
    def from_bytes(cls, raw: bytes, *, where: str) -> Manifest:
        """Parse a manifest, raising RepositoryError that says what is wrong and where."""
        try:
            data: Any = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RepositoryError(f"Manifest {where} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != "mmeperf-manifest":
            raise RepositoryError(
                f"Manifest {where} is not an mmeperf manifest (expected \"format\": \"mmeperf-manifest\")"
            )
        version = data.get("version")
        if not isinstance(version, int) or version > MANIFEST_VERSION:
            raise RepositoryError(
                f"Manifest {where} has version {version!r}; this mmeperf reads up to {MANIFEST_VERSION}"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise RepositoryError(f"Manifest {where} is malformed: {exc}") from exc
