"""mmeperf: measure how to host many ML models cost-effectively.

Five concepts: a :class:`Backend` (one model format), an :class:`Exporter` (one format to
another, with proof of parity), a :class:`ModelRepository` (models in storage, in a layout a
server understands), an :class:`Endpoint` (where models are served) and a :class:`LoadProfile`
(the traffic). A :class:`Benchmark` drives a profile at an endpoint and returns a
:class:`BenchmarkResult`.

Names are imported on first use, so ``import mmeperf`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mmeperf.errors import MmeperfError

__version__ = "0.1.0"

if TYPE_CHECKING:
    from mmeperf.backends import get_backend
    from mmeperf.backends.base import Backend, Runner
    from mmeperf.endpoints.base import Endpoint, EndpointInfo, InvokeResult
    from mmeperf.exporters.base import Exporter, ExportResult
    from mmeperf.instances import InstanceProfile
    from mmeperf.load.benchmark import Benchmark
    from mmeperf.load.profile import LoadProfile
    from mmeperf.load.result import BenchmarkResult
    from mmeperf.metrics import ServerMetrics
    from mmeperf.plugins import get_endpoint_class
    from mmeperf.repository import ModelRepository

_LAZY: dict[str, str] = {
    "Backend": "mmeperf.backends.base",
    "Benchmark": "mmeperf.load.benchmark",
    "BenchmarkResult": "mmeperf.load.result",
    "Endpoint": "mmeperf.endpoints.base",
    "EndpointInfo": "mmeperf.endpoints.base",
    "ExportResult": "mmeperf.exporters.base",
    "Exporter": "mmeperf.exporters.base",
    "InstanceProfile": "mmeperf.instances",
    "InvokeResult": "mmeperf.endpoints.base",
    "LoadProfile": "mmeperf.load.profile",
    "ModelRepository": "mmeperf.repository",
    "Runner": "mmeperf.backends.base",
    "ServerMetrics": "mmeperf.metrics",
    "get_backend": "mmeperf.backends",
    "get_endpoint_class": "mmeperf.plugins",
}

__all__ = [
    "Backend",
    "Benchmark",
    "BenchmarkResult",
    "Endpoint",
    "EndpointInfo",
    "ExportResult",
    "Exporter",
    "InstanceProfile",
    "InvokeResult",
    "LoadProfile",
    "MmeperfError",
    "ModelRepository",
    "Runner",
    "ServerMetrics",
    "__version__",
    "get_backend",
    "get_endpoint_class",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mmeperf' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
