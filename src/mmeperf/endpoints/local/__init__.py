"""The embedded local multi-model endpoint: SageMaker's wire API, a byte-budget LRU model cache,
per-model batching and CloudWatch-named metrics, served by ``mmeperf serve``.

``LocalEndpoint`` (plugin name ``local``) runs the server as a subprocess; the server's parts
live in ``config``, ``cache``, ``batching``, ``service``, ``app``, ``counters`` and ``server``.
"""

from mmeperf.endpoints.local.config import ServerConfig
from mmeperf.endpoints.local.endpoint import LocalEndpoint

__all__ = ["LocalEndpoint", "ServerConfig"]
