"""The Exporter contract: turn a source model into an artifact of a target backend, with proof.

An export writes the artifact, then loads it through the target backend and compares its outputs
with the source's on several random inputs (:class:`ParityReport`), and records the artifact's
size and load time. Bad input (an example of the wrong shape, an unsupported op, a missing extra)
fails before anything is written.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, Field

__all__ = ["ExportResult", "Exporter", "ParityReport"]


class ParityReport(BaseModel):
    """How closely an artifact reproduces its source."""

    n_inputs: int
    """Random inputs compared."""
    max_abs_error: float
    max_rel_error: float
    atol: float
    """Tolerance on the absolute error for this format."""
    rtol: float
    """Tolerance on the relative error for this format."""

    @property
    def passed(self) -> bool:
        return self.max_abs_error <= self.atol or self.max_rel_error <= self.rtol


class ExportResult(BaseModel):
    """An artifact written by an exporter."""

    backend: str
    """Target backend plugin name."""
    directory: Path
    """Folder holding the artifact files (what a repository packages)."""
    artifact: Path
    """The main artifact file."""
    size_bytes: int
    load_time_s: float
    """Time to load the artifact through the target backend."""
    parity: ParityReport
    details: dict[str, Any] = Field(default_factory=dict)
    """Format-specific facts: trace or script, ONNX opset, TensorRT profile and precision."""


class Exporter(ABC):
    """Turns a ``source`` model into a ``target`` backend's artifact."""

    #: What it reads, e.g. ``"torch"`` or ``"onnx"``.
    source: ClassVar[str]
    #: Backend plugin name it writes, e.g. ``"onnx"``.
    target: ClassVar[str]

    @abstractmethod
    def export(self, model: Any, example_input: Any, directory: Path, **options: Any) -> ExportResult:
        """Export ``model`` into ``directory``, check parity, and describe the result."""
