"""Where models are served: the embedded local MME, SageMaker, Triton (plugins)."""

from mmeperf.endpoints.base import Endpoint, EndpointInfo, InvokeResult
from mmeperf.plugins import get_endpoint_class

__all__ = ["Endpoint", "EndpointInfo", "InvokeResult", "get_endpoint_class"]
