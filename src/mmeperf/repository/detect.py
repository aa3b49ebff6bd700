"""Tell which backend an unpacked artifact folder belongs to, for repositories without a manifest.

Asks each registered backend class whether it claims the folder (by file names only); only the
light plugin classes are imported, never their frameworks.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

from mmeperf._types import PathLike
from mmeperf.errors import PluginError
from mmeperf.plugins import BACKENDS, available, get_backend_class

__all__ = ["detect_backend"]


def detect_backend(directory: PathLike, *, hint: str | None = None) -> str | None:
    """The backend name for the artifact in ``directory``, or None when no backend claims it.

    ``hint`` (a manifest's ``backend``) wins when given. Otherwise every registered backend's
    ``artifact_patterns`` are matched against the folder's file names; a backend matching an
    exact file name wins over one matching only a wildcard; when none matches, the first
    backend whose ``claims`` accepts the folder; plugins that fail to import are skipped, so
    one broken plugin cannot hide the others.
    """
    if hint:
        return hint
    folder = Path(directory)
    if not folder.is_dir():
        return None
    try:
        names = [p.name for p in folder.rglob("*") if p.is_file()]
    except OSError:
        return None
    best: tuple[int, str] | None = None
    for name in sorted(available(BACKENDS)):
        try:
            cls = get_backend_class(name)
        except PluginError:
            continue
        score = _claim_strength(cls.artifact_patterns, names)
        # An exact file name (model.onnx, xgboost-model) beats a wildcard (*.json) that another
        # backend's side files (signature.json) could match; ties go to name order.
        if score and (best is None or score > best[0]):
            best = (score, name)
    return best[1] if best else _claimed_otherwise(folder)


def _claimed_otherwise(folder: Path) -> str | None:
    """The first backend whose own ``claims`` takes the folder when no file name matched
    (XGBoost: one model file of any name, as its SageMaker container loads)."""
    for name in sorted(available(BACKENDS)):
        try:
            claims = getattr(get_backend_class(name), "claims", None)
            if claims is not None and claims(folder):
                return name
        except PluginError:
            continue
    return None


def _claim_strength(patterns: tuple[str, ...], names: list[str]) -> int:
    """2: a file matches an exact pattern; 1: only a wildcard matches; 0: no match."""
    strength = 0
    for pattern in patterns:
        if any(fnmatch.fnmatch(n, pattern) for n in names):
            strength = max(strength, 1 if any(c in pattern for c in "*?[") else 2)
    return strength
