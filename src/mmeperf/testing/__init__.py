"""Test kits that ship with mmeperf, for plugin authors: subclass one class, get the contract tested.

Test servers with known behaviour (``python -m mmeperf.testing.servers``) live here too.

``from mmeperf.testing import BackendConformance`` imports pytest (the kit is pytest tests);
importing ``mmeperf.testing`` alone does not.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmeperf.testing.backend import BackendConformance

__all__ = ["BackendConformance"]

_LAZY = {"BackendConformance": "mmeperf.testing.backend"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mmeperf.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
