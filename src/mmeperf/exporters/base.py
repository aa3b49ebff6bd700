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
    """How closely an artifact reproduces its source, element by element.

    An element passes when ``|candidate - reference| <= atol + rtol * |reference|`` (numpy's
    ``allclose`` rule); the artifact passes when every element of every compared output does.
    """

    n_inputs: int
    """Random inputs compared."""
    max_abs_error: float
    """Largest ``|candidate - reference|`` over all elements."""
    max_rel_error: float
    """Largest ``|candidate - reference| / |reference|`` over elements with a non-zero
    reference (inf when an element with a zero reference differs)."""
    atol: float
    """Absolute part of the per-element tolerance for this format."""
    rtol: float
    """Relative part of the per-element tolerance (times ``|reference|``) for this format."""
    worst_ratio: float = 0.0
    """Largest ``|candidate - reference| / (atol + rtol * |reference|)``: passes when <= 1."""
    n_elements: int = 0
    """Output elements compared, over all inputs."""
    n_mismatched: int = 0
    """Elements beyond ``atol + rtol * |reference|``."""
    worst_reference: float | None = None
    """The reference value at the element with the worst ratio (None when nothing differs)."""
    worst_candidate: float | None = None
    """The artifact's value at that element."""

    @property
    def passed(self) -> bool:
        return self.n_mismatched == 0 and self.worst_ratio <= 1.0

    def describe(self) -> str:
        """One sentence for an error message: how many elements failed and the worst one."""
        if self.worst_reference is None or self.worst_candidate is None:
            where = "non-finite outputs"
        else:
            where = (
                f"worst element {self.worst_candidate:.6g} vs {self.worst_reference:.6g}, "
                f"{self.worst_ratio:.3g}x its allowance"
            )
        return (
            f"{self.n_mismatched} of {self.n_elements} elements exceed "
            f"atol {self.atol:g} + rtol {self.rtol:g} * |reference| ({where}; max abs error "
            f"{self.max_abs_error:.3g}, max rel error {self.max_rel_error:.3g})"
        )


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
