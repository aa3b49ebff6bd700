"""The Backend contract: one model framework or format.

A backend writes a native model as artifact files (``save``), loads an artifact folder into a
:class:`Runner` (``load``), and turns request bodies into batches and predictions into response
bodies (``decode`` / ``encode``, with working defaults for CSV, JSON and NPY). A runner's one
required method is ``predict``. That is the whole surface a plugin author implements; the
conformance suite in :mod:`mmeperf.testing` checks it.
"""

from __future__ import annotations

import fnmatch
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from mmeperf._deps import require
from mmeperf._types import Array, Batch
from mmeperf.backends import codecs
from mmeperf.backends.codecs import Encoded

__all__ = ["Backend", "Encoded", "Runner"]


class Runner(ABC):
    """A model loaded in memory, ready to predict."""

    @abstractmethod
    def predict(self, batch: Batch) -> Array:
        """Predict a batch (rows on the first axis); return one output row per input row."""

    @property
    def memory_bytes(self) -> int:
        """Estimate of the memory this runner holds (charged against the cache budget)."""
        return 0

    @property
    def n_features(self) -> int | None:
        """Columns a tabular model expects, when known (used to validate payloads)."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook with a do-nothing default
        """Release what the runner holds (GPU memory, sessions). Called on unload."""


class Backend(ABC):
    """One model framework or format. Subclass, set ``name``, implement save and load."""

    #: Plugin name (the entry-point name), e.g. ``"xgboost"``.
    name: ClassVar[str]
    #: Modules ``load``/``save`` import (lazily, so discovery stays light); checked on lookup.
    requires: ClassVar[tuple[str, ...]] = ()
    #: The pip extra that installs ``requires``, for the error message that names the fix.
    extra: ClassVar[str | None] = None
    #: Request content types ``decode`` accepts.
    content_types: ClassVar[tuple[str, ...]] = ("text/csv", "application/json", "application/x-npy")
    #: Response types ``encode`` produces; the first is the default.
    accept_types: ClassVar[tuple[str, ...]] = ("application/json", "text/csv", "application/x-npy")
    #: Whether rows of concurrent requests may be stacked into one ``predict`` call.
    supports_batching: ClassVar[bool] = True
    #: Glob patterns of files that mark an artifact folder as this backend's, so repositories
    #: written by other tools (no manifest) can be served: e.g. ``("xgboost-model", "*.ubj")``.
    artifact_patterns: ClassVar[tuple[str, ...]] = ()
    #: Triton's ``platform`` or ``backend`` for config.pbtxt, when Triton can serve it.
    triton_platform: ClassVar[str | None] = None

    @abstractmethod
    def save(self, model: Any, directory: Path) -> Path:
        """Write ``model`` (a native object of this framework) into ``directory``.

        Returns the main artifact file. Raises ConfigurationError for objects it cannot save.
        """

    @abstractmethod
    def load(self, directory: Path, *, allow_pickle: bool = False) -> Runner:
        """Load the artifact in ``directory`` (an unpacked model folder).

        Raises ModelLoadError when the files are missing, corrupt or of another format; refuses
        pickle-based formats unless ``allow_pickle``.
        """

    def decode(self, body: bytes, content_type: str, runner: Runner | None = None) -> Batch:
        """Turn a request body into a batch. Raises PayloadError (4xx) on malformed input."""
        n_features = runner.n_features if runner is not None else None
        return codecs.decode(
            body, content_type, accepted=self.content_types, n_features=n_features
        )

    def encode(self, predictions: Array, accept: str | None = None) -> Encoded:
        """Turn predictions into a response body of type ``accept`` (default: first accept type)."""
        return codecs.encode(predictions, accept, accepted=self.accept_types)

    @classmethod
    def check_dependencies(cls) -> None:
        """Raise MissingDependencyError, naming ``pip install 'mmeperf[extra]'``, if one is missing."""
        for module in cls.requires:
            require(module, what=f"The {cls.name!r} backend", extra=cls.extra or cls.name)

    @classmethod
    def claims(cls, directory: Path) -> bool:
        """Whether the unpacked folder holds an artifact of this backend (by file name only)."""
        names = [p.name for p in directory.rglob("*") if p.is_file()]
        return any(fnmatch.fnmatch(n, pat) for n in names for pat in cls.artifact_patterns)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
