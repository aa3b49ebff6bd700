"""Where models are served: the embedded local MME, SageMaker, Triton (plugins)."""

from mmeperf._plugins import get_endpoint_class
from mmeperf.endpoints.base import Endpoint, EndpointInfo, InvokeResult

__all__ = ["Endpoint", "EndpointInfo", "InvokeResult", "get_endpoint_class"]
