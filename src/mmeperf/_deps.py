"""Import optional dependencies with an error that says the exact fix."""

from __future__ import annotations

import importlib
from types import ModuleType

from mmeperf.errors import MissingDependencyError


def require(module: str, *, what: str, extra: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise MissingDependencyError naming ``pip install 'mmeperf[extra]'``.

    ``what`` names the feature ("The 'onnx' backend"); ``package`` the distribution the user
    lacks when it differs from the module name (onnxruntime, tritonclient, ...).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(what, package or module.split(".")[0], extra) from exc
