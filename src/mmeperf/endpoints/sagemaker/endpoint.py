"""``SageMakerEndpoint``: a model repository deployed to a real SageMaker multi-model endpoint.

The class is the one public face; the work is in the package's modules: :mod:`.artifacts` (S3
upload), :mod:`.control` (model, config, endpoint, waiting, cleanup), :mod:`.runtime` (invoke),
and :mod:`mmeperf.cloud` (CloudWatch metrics, dashboards, autoscaling). Nothing touches AWS at
import.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mmeperf.cloud.autoscaling import AutoscalingPolicy, HighAvailabilityWarning, apply_autoscaling
from mmeperf.cloud.aws import AwsClients
from mmeperf.endpoints.base import Endpoint, EndpointInfo, InvokeResult
from mmeperf.endpoints.sagemaker.artifacts import upload_repository
from mmeperf.endpoints.sagemaker.control import CleanupPlan, ControlPlane, check_name
from mmeperf.endpoints.sagemaker.runtime import invoke_endpoint, runtime_client_config
from mmeperf.errors import ConfigurationError, EndpointError, MmeperfError
from mmeperf.instances import DEFAULT_CATALOG, InstanceCatalog

if TYPE_CHECKING:
    from typing import Self

    import boto3
    import pandas as pd

    from mmeperf.metrics import ServerMetrics
    from mmeperf.repository import ModelRepository

__all__ = ["SageMakerEndpoint"]


class SageMakerEndpoint(Endpoint):
    """A SageMaker multi-model endpoint, deployed from a repository or attached by name.

    Example::

        ep = SageMakerEndpoint(name="churn-c5-2xl", instance_type="ml.c5.2xlarge",
                               role="arn:aws:iam::123456789012:role/SageMakerRole")
        with ep.deploy(ModelRepository("./models")):
            ep.invoke("churn-xgb-CA.tar.gz", b"1,2,3", content_type="text/csv")

    Invocations are never retried by botocore (``total_max_attempts=1``): a throttled or failed
    request is one failure in the counts, as a load test must see it.
    """

    kind = "sagemaker"
    requires = ("boto3",)
    extra = "aws"
    #: CloudWatch aggregates MME metrics per minute: reading more often only costs API calls.
    metrics_interval_s = 60.0

    def __init__(
        self,
        *,
        name: str,
        instance_type: str | None = None,
        instance_count: int = 1,
        role: str | None = None,
        image_uri: str | None = None,
        bucket: str | None = None,
        prefix: str | None = None,
        region: str | None = None,
        variant_name: str = "AllTraffic",
        environment: Mapping[str, str] | None = None,
        autoscaling: AutoscalingPolicy | None = None,
        production: bool = False,
        allow_unknown_instance_type: bool = False,
        catalog: InstanceCatalog = DEFAULT_CATALOG,
        tags: Mapping[str, str] | None = None,
        wait_timeout_s: float = 1800.0,
        poll_interval_s: float = 15.0,
        progress: Callable[[str], None] | None = None,
        cleanup_on_failure: bool = True,
        delete_artifacts: bool = False,
        max_connections: int = 64,
        read_timeout_s: float = 70.0,
        session: boto3.Session | None = None,
        clients: Mapping[str, Any] | None = None,
        endpoint_urls: Mapping[str, str] | None = None,
    ) -> None:
        """``endpoint_urls`` overrides a service's URL (``{"sagemaker-runtime": "http://..."}``);
        otherwise boto3 reads ``AWS_ENDPOINT_URL[_SERVICE]``. ``clients`` injects ready clients.
        ``environment`` is passed to the container (MME needs none; e.g. Triton tuning variables).
        """
        check_name(name)
        if instance_count < 1:
            raise ConfigurationError(f"instance_count must be at least 1; received {instance_count}")
        if instance_type is not None and instance_type not in catalog and not allow_unknown_instance_type:
            raise ConfigurationError(
                f"Unknown instance type {instance_type!r}; expected one of: {', '.join(catalog.names())} "
                "(allow_unknown_instance_type=True / --allow-unknown-instance-type to use it anyway)"
            )
        if prefix is not None and (prefix.startswith("/") or ".." in prefix.split("/")):
            raise ConfigurationError(f"Invalid S3 prefix {prefix!r}: expected a relative key prefix")
        self.name = name
        self.instance_type = instance_type
        self.instance_count = instance_count
        self.role = role
        self.image_uri = image_uri
        self.bucket = bucket
        self.prefix = (prefix.strip("/") + "/") if prefix else f"mmeperf/{name}/"
        self.variant_name = variant_name
        self.environment = dict(environment or {})
        self.autoscaling = autoscaling
        self.production = production
        self.tags = dict(tags or {})
        self.wait_timeout_s = wait_timeout_s
        self.poll_interval_s = poll_interval_s
        self.progress = progress
        self.cleanup_on_failure = cleanup_on_failure
        self.delete_artifacts = delete_artifacts
        self.model_data_url: str | None = None
        self.deployed_at: datetime | None = None
        self._aws = AwsClients(
            session=session,
            region=region,
            endpoint_urls=dict(endpoint_urls or {}),
            client_config={
                "sagemaker-runtime": runtime_client_config(
                    max_connections=max_connections, read_timeout_s=read_timeout_s
                ),
                # Control-plane calls may retry throttling: they are not what is measured.
                "sagemaker": {"retries": {"max_attempts": 8, "mode": "standard"}},
            },
        )
        for service, client in (clients or {}).items():
            self._aws.set_client(service, client)

    # --- helpers -----------------------------------------------------------------------------

    @property
    def region(self) -> str:
        return self._aws.region

    def client(self, service: str) -> Any:
        """The boto3 client this endpoint uses for ``service`` (shared, thread-safe)."""
        return self._aws.client(service)

    def _say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)

    @property
    def _control(self) -> ControlPlane:
        return ControlPlane(self._aws, self.name, variant_name=self.variant_name, say=self._say)

    # --- deploy ------------------------------------------------------------------------------

    def _resolve_image(self, repository: ModelRepository) -> str:
        if self.image_uri:
            return self.image_uri
        from mmeperf.cloud.images import container_for_backend, image_uri

        backends = {entry.backend for entry in repository.list()}
        containers = {container_for_backend(b) for b in backends}
        if len(containers) != 1:
            raise ConfigurationError(
                f"One multi-model endpoint serves one container; the repository mixes backends "
                f"{sorted(str(b) for b in backends)}. Split it, or pass --image-uri"
            )
        return image_uri(containers.pop(), self.region)

    def upload(self, repository: ModelRepository) -> str:
        """Copy the repository's artifacts to ``s3://bucket/prefix/``; returns that URL.

        Reads through the repository's fsspec layer and writes with the S3 client of this
        endpoint (same credentials and endpoint URL as the rest). An object whose stored sha256
        matches is not sent again, so re-deploying is cheap.
        """
        self.bucket, url = upload_repository(
            self._aws, repository, bucket=self.bucket, prefix=self.prefix, say=self._say
        )
        return url

    def _model_data_url(self, repository: ModelRepository) -> tuple[str, bool]:
        """(ModelDataUrl, whether mmeperf uploaded it). An S3 repository is used in place."""
        if repository.url.startswith("s3://") and self.bucket is None and repository.layout == "sagemaker":
            return repository.url.rstrip("/") + "/", False
        return self.upload(repository), True

    def deploy(self, repository: ModelRepository) -> Self:
        """Upload, create the model, config and endpoint, wait until InService, set autoscaling.

        On any failure, what this call created is removed again (``cleanup_on_failure``) and
        the error is raised: ConfigurationError, CloudAccessError, CapacityError, EndpointError,
        or EndpointNotReadyError after ``wait_timeout_s``.
        """
        if self.instance_type is None:
            raise ConfigurationError("Deploying to SageMaker needs an instance type (--instance-type)")
        if not self.role:
            raise ConfigurationError(
                "Deploying to SageMaker needs an execution role that can read the S3 prefix (--role ARN)"
            )
        if self.production and self.instance_count < 2 and (self.autoscaling is None or self.autoscaling.min_capacity < 2):
            warnings.warn(
                f"Production endpoint {self.name!r} has {self.instance_count} instance: deploy at least "
                "two, so SageMaker spreads them across Availability Zones",
                HighAvailabilityWarning,
                stacklevel=2,
            )
        control = self._control
        leftovers = control.existing()
        if leftovers:
            raise ConfigurationError(
                f"A SageMaker {', '.join(leftovers)} named {self.name!r} already exists; choose another "
                f"name or remove it first: mmeperf cleanup --name {self.name}"
            )
        image = self._resolve_image(repository)
        data_url, uploaded = self._model_data_url(repository)
        self.model_data_url = data_url
        created: list[str] = []
        try:
            control.create(
                image=image, data_url=data_url, uploaded=uploaded, role=self.role,
                instance_type=self.instance_type, instance_count=self.instance_count,
                environment=self.environment, tags=self.tags, created=created,
            )
            self.wait_until_in_service()
            self.deployed_at = datetime.now(UTC)
            if self.autoscaling is not None:
                created.append("autoscaling")
                self.apply_autoscaling(self.autoscaling)
        except BaseException as exc:
            if self.cleanup_on_failure and created:
                self._say(f"deploy failed ({type(exc).__name__}); removing {', '.join(created)}")
                try:
                    control.delete(self.cleanup_plan(only=created))
                except MmeperfError as cleanup_exc:
                    exc.add_note(
                        f"Cleaning up after the failure also failed ({cleanup_exc}); "
                        f"run: mmeperf cleanup --name {self.name}"
                    )
            raise
        return self

    def wait_until_in_service(self) -> None:
        """Poll the endpoint until InService; EndpointError with SageMaker's FailureReason if it fails."""
        self._control.wait_until_in_service(timeout_s=self.wait_timeout_s, poll_interval_s=self.poll_interval_s)

    @classmethod
    def attach(cls, name: str, **options: Any) -> SageMakerEndpoint:
        """An endpoint object for an existing endpoint (to invoke, read metrics, clean up)."""
        return cls(name=name, **options)

    # --- invoke ------------------------------------------------------------------------------

    def invoke(
        self,
        target_model: str,
        body: bytes,
        *,
        content_type: str = "text/csv",
        accept: str | None = None,
    ) -> InvokeResult:
        """One ``invoke_endpoint`` with TargetModel; failures are results with status and code."""
        return invoke_endpoint(
            self.client("sagemaker-runtime"), self.name, target_model, body,
            content_type=content_type, accept=accept,
        )

    # --- metrics and info --------------------------------------------------------------------

    def _created_at(self) -> datetime:
        if self.deployed_at is not None:
            return self.deployed_at
        return self._control.created_at()

    def server_metrics(
        self,
        *,
        start: datetime | float,
        end: datetime | float | None = None,
        period_s: int = 60,
        run_start: datetime | float | None = None,
    ) -> pd.DataFrame:
        """CloudWatch's metrics for [start, end) as server_metrics.csv rows (one per period)."""
        from mmeperf.cloud.cloudwatch import server_metrics_frame

        return server_metrics_frame(
            self.client("cloudwatch"),
            endpoint_name=self.name,
            variant_name=self.variant_name,
            start=start,
            end=end if end is not None else datetime.now(UTC),
            period_s=period_s,
            run_start=run_start,
        )

    def metrics(self) -> ServerMetrics:
        """CloudWatch's totals since the endpoint was created (published about a minute late)."""
        from mmeperf.cloud.cloudwatch import cumulative_metrics

        start = self._created_at().replace(second=0, microsecond=0)
        end = max(datetime.now(UTC), start + timedelta(minutes=1))
        return cumulative_metrics(
            self.client("cloudwatch"), endpoint_name=self.name, variant_name=self.variant_name, start=start, end=end
        )

    def loaded_models(self) -> list[str]:
        """SageMaker does not say which models an MME holds; read LoadedModelCount instead."""
        raise EndpointError(
            "SageMaker does not list the models a multi-model endpoint has loaded; "
            "metrics().loaded_model_count (CloudWatch LoadedModelCount) gives how many"
        )

    def info(self) -> EndpointInfo:
        runtime = self.client("sagemaker-runtime")
        return EndpointInfo(
            kind=self.kind,
            name=self.name,
            instance_type=self.instance_type,
            instance_count=self.instance_count,
            runtime_url=str(runtime.meta.endpoint_url).rstrip("/"),
            region=self.region,
        )

    # --- dashboard and autoscaling -----------------------------------------------------------

    def create_dashboard(self, *, other: Iterable[str] = (), name: str | None = None) -> str:
        """Put the reference dashboard for this endpoint (and one ``other``); returns its name."""
        from mmeperf.cloud.dashboard import put_dashboard

        return put_dashboard(
            self.client("cloudwatch"), [self.name, *other], region=self.region, name=name, variant_name=self.variant_name
        )

    def apply_autoscaling(self, policy: AutoscalingPolicy | None = None) -> str:
        """Register the variant and attach the target-tracking policy; returns the policy name."""
        chosen = policy or self.autoscaling or AutoscalingPolicy()
        self.autoscaling = chosen
        return apply_autoscaling(
            self.client("application-autoscaling"), self.name, chosen,
            variant_name=self.variant_name, production=self.production,
        )

    # --- cleanup -----------------------------------------------------------------------------

    def cleanup_plan(self, *, delete_artifacts: bool | None = None, only: Iterable[str] | None = None) -> CleanupPlan:
        """What :meth:`delete` would remove now, found by describing what exists (a dry run).

        ``only`` limits the plan to kinds (``model``, ``endpoint-config``, ``endpoint``,
        ``autoscaling``): deploy uses it to remove exactly what it created.
        """
        want_artifacts = self.delete_artifacts if delete_artifacts is None else delete_artifacts
        return self._control.cleanup_plan(delete_artifacts=want_artifacts, only=only)

    def delete(self, *, delete_artifacts: bool | None = None) -> None:
        """Remove autoscaling, endpoint, endpoint configs, models, dashboards (and artifacts).

        Idempotent: what is already gone is skipped. ``delete_artifacts`` (default: the
        constructor's) also deletes the S3 objects mmeperf uploaded for this endpoint.
        """
        self._control.delete(self.cleanup_plan(delete_artifacts=delete_artifacts))
