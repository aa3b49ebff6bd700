"""Tell which backend an unpacked artifact folder belongs to, for repositories without a manifest.

Asks each registered backend class whether it claims the folder (by file names only); only the
light plugin classes are imported, never their frameworks.
"""

from __future__ import annotations

from pathlib import Path

from mmeperf._plugins import BACKENDS, get_backend_class, known_plugins
from mmeperf._types import PathLike
from mmeperf.errors import PluginError

__all__ = ["detect_backend"]


def detect_backend(directory: PathLike, *, hint: str | None = None) -> str | None:
    """The backend name for the artifact in ``directory``, or None when no backend claims it.

    ``hint`` (a manifest's ``backend``) wins when given. Otherwise every registered backend is
    asked, in name order, and the first that claims the folder is returned; plugins that fail to
    import are skipped, so one broken plugin cannot hide the others.
    """
    if hint:
        return hint
    folder = Path(directory)
    if not folder.is_dir():
        return None
    for name in sorted(known_plugins(BACKENDS)):
        try:
            cls = get_backend_class(name)
        except PluginError:
            continue
        try:
            if cls.claims(folder):
                return name
        except OSError:
            continue
    return None
