"""The ``sagemaker`` endpoint: a model repository deployed to a real SageMaker multi-model endpoint.

:class:`SageMakerEndpoint` is the public class. Behind it: ``artifacts`` (the repository's archives
in S3), ``control`` (model, endpoint config, endpoint, waiting, cleanup), ``runtime`` (the signed
``invoke_endpoint`` with TargetModel); CloudWatch, dashboards and autoscaling are
:mod:`mmeperf.cloud`'s. Nothing touches AWS at import.
"""

from mmeperf.cloud.autoscaling import HighAvailabilityWarning
from mmeperf.endpoints.sagemaker.control import UPLOADED_TAG, CleanupPlan
from mmeperf.endpoints.sagemaker.endpoint import SageMakerEndpoint

__all__ = ["UPLOADED_TAG", "CleanupPlan", "HighAvailabilityWarning", "SageMakerEndpoint"]
