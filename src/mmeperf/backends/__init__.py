"""Model frameworks and formats. Each backend lives in its own module, imported on first use."""

from mmeperf._plugins import get_backend
from mmeperf.backends.base import Backend, Encoded, Runner

__all__ = ["Backend", "Encoded", "Runner", "get_backend"]
