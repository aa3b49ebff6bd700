"""The ``triton`` endpoint: a Triton Inference Server driven over its HTTP (KServe v2) API.

``endpoint`` (:class:`TritonEndpoint`), ``kserve`` (the v2 request/response codec with the binary
tensor extension), ``control`` (the model-repository API: index, load, unload) and ``prometheus``
(Triton's metrics as :class:`~mmeperf.metrics.ServerMetrics`). The transport is shared with the
local endpoint (:mod:`mmeperf.endpoints._http`).
"""

from mmeperf.endpoints.triton.endpoint import TritonEndpoint
from mmeperf.endpoints.triton.kserve import ModelMetadata
from mmeperf.endpoints.triton.prometheus import parse_triton_metrics

__all__ = ["ModelMetadata", "TritonEndpoint", "parse_triton_metrics"]
