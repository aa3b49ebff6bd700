"""The ``sagemaker`` endpoint: a model repository deployed to a real SageMaker multi-model endpoint.

Uploads the repository to S3, creates the Model (``Mode=MultiModel``), endpoint config and
endpoint with boto3, invokes with ``TargetModel``, reads CloudWatch, sets autoscaling, and
deletes everything it created (also after a half-finished deploy). Nothing touches AWS at import.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from mmeperf.cloud.autoscaling import (
    AutoscalingPolicy,
    HighAvailabilityWarning,
    apply_autoscaling,
    autoscaling_resources,
    remove_autoscaling,
    resource_id,
)
from mmeperf.cloud.aws import AwsClients, client_error_code, is_not_found, translate_errors
from mmeperf.endpoints.base import (
    HEADER_CACHE,
    HEADER_MODEL_LATENCY_US,
    HEADER_WAIT_US,
    Endpoint,
    EndpointInfo,
    InvokeResult,
)
from mmeperf.errors import (
    ConfigurationError,
    EndpointError,
    EndpointNotReadyError,
    MmeperfError,
)
from mmeperf.instances import DEFAULT_CATALOG, InstanceCatalog

if TYPE_CHECKING:
    from typing import Self

    import boto3
    import pandas as pd

    from mmeperf.metrics import ServerMetrics
    from mmeperf.repository import ModelRepository

__all__ = ["CleanupPlan", "HighAvailabilityWarning", "SageMakerEndpoint"]

# SageMaker's rule for model, endpoint-config and endpoint names.
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
#: Tag on the Model when mmeperf uploaded its artifacts (cleanup deletes only such prefixes).
UPLOADED_TAG = "mmeperf:uploaded-artifacts"
_READY, _IN_PROGRESS = "InService", frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})

# HTTP status of each SageMaker runtime error code, for the rare answer that lacks one.
_STATUS_OF_CODE = {
    "ValidationError": 400,
    "ModelError": 424,
    "ModelNotReadyException": 429,
    "ThrottlingException": 400,
    "ServiceUnavailable": 503,
    "InternalFailure": 500,
    "InternalDependencyException": 530,
}


class CleanupPlan(BaseModel):
    """Exactly what :meth:`SageMakerEndpoint.delete` would remove (a dry run)."""

    endpoint_name: str
    """The endpoint the plan is for."""
    scaling_policies: list[str] = Field(default_factory=list)
    """application-autoscaling policies on the endpoint's variants."""
    scalable_targets: list[str] = Field(default_factory=list)
    """Registered scalable targets (``endpoint/{name}/variant/{variant}``)."""
    endpoint: str | None = None
    """The endpoint, when it exists."""
    endpoint_configs: list[str] = Field(default_factory=list)
    """Endpoint configs: the endpoint's and the one named like it."""
    models: list[str] = Field(default_factory=list)
    """Models the configs serve, and the one named like the endpoint."""
    dashboards: list[str] = Field(default_factory=list)
    """CloudWatch dashboards mmeperf created for this endpoint."""
    s3_objects: list[str] = Field(default_factory=list)
    """``s3://`` objects under the uploaded prefix (only with ``delete_artifacts``)."""
    kept_artifacts: list[str] = Field(default_factory=list)
    """Artifact prefixes that stay: not asked to delete, or not uploaded by mmeperf."""

    @property
    def empty(self) -> bool:
        return not (
            self.scaling_policies or self.scalable_targets or self.endpoint or self.endpoint_configs
            or self.models or self.dashboards or self.s3_objects
        )

    def lines(self) -> list[str]:
        """One human-readable line per resource."""
        out = [f"scaling policy   {p}" for p in self.scaling_policies]
        out += [f"scalable target  {t}" for t in self.scalable_targets]
        out += [f"endpoint         {self.endpoint}"] if self.endpoint else []
        out += [f"endpoint config  {c}" for c in self.endpoint_configs]
        out += [f"model            {m}" for m in self.models]
        out += [f"dashboard        {d}" for d in self.dashboards]
        out += [f"s3 object        {o}" for o in self.s3_objects]
        return out


def _split_s3(url: str) -> tuple[str, str]:
    if not url.startswith("s3://"):
        raise ConfigurationError(f"Expected an s3:// URL, received {url!r}")
    bucket, _, key = url[5:].partition("/")
    return bucket, key


def _header_us(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(name)
    try:
        return float(raw) / 1e6 if raw is not None else None
    except ValueError:
        return None


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
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigurationError(
                f"Invalid endpoint name {name!r}: expected 1-63 letters, digits and hyphens, "
                "starting with a letter or digit"
            )
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
                # No silent retries: each invoke is exactly one request, counted once.
                "sagemaker-runtime": {
                    "retries": {"total_max_attempts": 1, "mode": "standard"},
                    "max_pool_connections": max_connections,
                    "read_timeout": read_timeout_s,
                    "connect_timeout": 10,
                    "tcp_keepalive": True,
                },
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

    def _exists(self, describe: Callable[[], Any]) -> Any | None:
        from botocore.exceptions import ClientError

        try:
            return describe()
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise

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

    def _default_bucket(self) -> str:
        s3 = self.client("s3")
        bucket = f"sagemaker-{self.region}-{self._aws.account_id()}"
        if self._exists(lambda: s3.head_bucket(Bucket=bucket)) is None:
            self._say(f"creating bucket s3://{bucket}")
            kwargs: dict[str, Any] = {"Bucket": bucket}
            if self.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
            s3.create_bucket(**kwargs)
        return bucket

    def upload(self, repository: ModelRepository) -> str:
        """Copy the repository's artifacts to ``s3://bucket/prefix/``; returns that URL.

        Reads through the repository's fsspec layer and writes with the S3 client of this
        endpoint (same credentials and endpoint URL as the rest). An object whose stored sha256
        matches is not sent again, so re-deploying is cheap.
        """
        from mmeperf.repository.manifest import MANIFEST_NAME
        from mmeperf.repository.names import key_under_root

        if repository.layout != "sagemaker":
            raise ConfigurationError(
                f"A SageMaker multi-model endpoint loads one archive per model; the repository at "
                f"{repository.url!r} has layout {repository.layout!r}. Build it with layout='sagemaker' "
                "(for Triton models add them with arcname_prefix=<name>)"
            )
        entries = repository.list()
        if not entries:
            raise ConfigurationError(f"The repository at {repository.url!r} has no models to deploy")
        with translate_errors(f"Uploading {repository.url!r} to S3"):
            bucket = self.bucket or self._default_bucket()
            self.bucket = bucket
            s3 = self.client("s3")
            keys: list[tuple[str, str | None, int | None]] = [
                (entry.key, entry.sha256, entry.bytes) for entry in entries
            ]
            if repository.has_manifest:
                keys.append((MANIFEST_NAME, None, None))
            for i, (key, sha256, size) in enumerate(keys, start=1):
                s3_key = self.prefix + key
                head = self._exists(lambda k=s3_key: s3.head_object(Bucket=bucket, Key=k))  # type: ignore[misc]
                if (
                    head is not None and sha256 is not None
                    and head.get("Metadata", {}).get("sha256") == sha256
                    and head.get("ContentLength") == size
                ):
                    self._say(f"unchanged {i}/{len(keys)} s3://{bucket}/{s3_key}")
                    continue
                extra = {"Metadata": {"sha256": sha256}} if sha256 else {}
                with repository.fs.open(key_under_root(repository.root, key), "rb") as fh:
                    s3.upload_fileobj(fh, bucket, s3_key, ExtraArgs=extra)
                self._say(f"uploaded {i}/{len(keys)} s3://{bucket}/{s3_key}")
        return f"s3://{bucket}/{self.prefix}"

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
        sm = self.client("sagemaker")
        with translate_errors(f"Checking for an existing deployment named {self.name!r}"):
            leftovers = [
                kind for kind, describe in (
                    ("endpoint", lambda: sm.describe_endpoint(EndpointName=self.name)),
                    ("endpoint config", lambda: sm.describe_endpoint_config(EndpointConfigName=self.name)),
                    ("model", lambda: sm.describe_model(ModelName=self.name)),
                )
                if self._exists(describe) is not None
            ]
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
            self._create(image, data_url, uploaded, created)
        except BaseException as exc:
            if self.cleanup_on_failure and created:
                self._say(f"deploy failed ({type(exc).__name__}); removing {', '.join(created)}")
                try:
                    self._delete_resources(self.cleanup_plan(only=created))
                except MmeperfError as cleanup_exc:
                    exc.add_note(
                        f"Cleaning up after the failure also failed ({cleanup_exc}); "
                        f"run: mmeperf cleanup --name {self.name}"
                    )
            raise
        return self

    def _create(self, image: str, data_url: str, uploaded: bool, created: list[str]) -> None:
        sm = self.client("sagemaker")
        tags = [{"Key": k, "Value": v} for k, v in {"created-by": "mmeperf", **self.tags}.items()]
        model_tags = tags + ([{"Key": UPLOADED_TAG, "Value": data_url}] if uploaded else [])
        with translate_errors(f"Creating model {self.name!r}"):
            container: dict[str, Any] = {"Image": image, "Mode": "MultiModel", "ModelDataUrl": data_url}
            if self.environment:
                container["Environment"] = self.environment
            sm.create_model(
                ModelName=self.name, ExecutionRoleArn=self.role, PrimaryContainer=container, Tags=model_tags
            )
            created.append("model")
            self._say(f"created model {self.name} ({image}, {data_url})")
        with translate_errors(f"Creating endpoint config {self.name!r}"):
            sm.create_endpoint_config(
                EndpointConfigName=self.name,
                ProductionVariants=[
                    {
                        "VariantName": self.variant_name,
                        "ModelName": self.name,
                        "InstanceType": self.instance_type,
                        "InitialInstanceCount": self.instance_count,
                        "InitialVariantWeight": 1.0,
                    }
                ],
                Tags=tags,
            )
            created.append("endpoint-config")
            self._say(f"created endpoint config {self.name} ({self.instance_count} x {self.instance_type})")
        with translate_errors(f"Creating endpoint {self.name!r}"):
            sm.create_endpoint(EndpointName=self.name, EndpointConfigName=self.name, Tags=tags)
            created.append("endpoint")
        self.wait_until_in_service()
        self.deployed_at = datetime.now(UTC)
        if self.autoscaling is not None:
            created.append("autoscaling")
            self.apply_autoscaling(self.autoscaling)

    def wait_until_in_service(self) -> None:
        """Poll the endpoint until InService; EndpointError with SageMaker's FailureReason if it fails."""
        sm = self.client("sagemaker")
        started = time.monotonic()
        while True:
            with translate_errors(f"Reading the status of endpoint {self.name!r}"):
                described = sm.describe_endpoint(EndpointName=self.name)
            status = described.get("EndpointStatus", "Unknown")
            elapsed = time.monotonic() - started
            self._say(f"endpoint {self.name}: {status} after {elapsed:.0f} s")
            if status == _READY:
                return
            if status not in _IN_PROGRESS:
                reason = described.get("FailureReason") or "SageMaker gave no reason"
                raise EndpointError(f"Endpoint {self.name!r} is {status}: {reason}")
            if elapsed >= self.wait_timeout_s:
                raise EndpointNotReadyError(
                    f"Endpoint {self.name!r} is still {status} after {elapsed:.0f} s "
                    f"(wait_timeout_s={self.wait_timeout_s:g})"
                )
            time.sleep(min(self.poll_interval_s, max(self.wait_timeout_s - elapsed, 0.0)))

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
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            ParamValidationError,
            ReadTimeoutError,
        )

        runtime = self.client("sagemaker-runtime")
        kwargs: dict[str, Any] = {
            "EndpointName": self.name,
            "TargetModel": target_model,
            "Body": body,
            "ContentType": content_type,
        }
        if accept:
            kwargs["Accept"] = accept
        started = time.perf_counter()
        try:
            response = runtime.invoke_endpoint(**kwargs)
            data = response["Body"].read()
        except ClientError as exc:
            latency = time.perf_counter() - started
            code = client_error_code(exc) or "InternalFailure"
            meta = exc.response.get("ResponseMetadata", {})
            status = int(meta.get("HTTPStatusCode") or _STATUS_OF_CODE.get(code, 500))
            return InvokeResult(
                status=status,
                body=b"",
                content_type="",
                latency_s=latency,
                error_code=code,
                error_message=str(exc.response.get("Error", {}).get("Message") or exc),
                headers=dict(meta.get("HTTPHeaders", {})),
            )
        except ParamValidationError as exc:
            return InvokeResult(
                status=400, body=b"", content_type="", latency_s=time.perf_counter() - started,
                error_code="ValidationError", error_message=str(exc),
            )
        except (ReadTimeoutError, ConnectTimeoutError) as exc:
            return InvokeResult(
                status=0, body=b"", content_type="", latency_s=time.perf_counter() - started,
                error_code="Timeout", error_message=str(exc),
            )
        except BotoCoreError as exc:
            # No HTTP answer at all (connection refused or reset): status 0, like Locust.
            return InvokeResult(
                status=0, body=b"", content_type="", latency_s=time.perf_counter() - started,
                error_code="ConnectionError", error_message=str(exc),
            )
        latency = time.perf_counter() - started
        meta = response.get("ResponseMetadata", {})
        headers = {str(k).lower(): str(v) for k, v in meta.get("HTTPHeaders", {}).items()}
        cache = headers.get(HEADER_CACHE)
        return InvokeResult(
            status=int(meta.get("HTTPStatusCode", 200)),
            body=data,
            content_type=str(response.get("ContentType", "")),
            latency_s=latency,
            cache_hit=(cache == "hit") if cache in ("hit", "miss") else None,
            model_loading_wait_s=_header_us(headers, HEADER_WAIT_US),
            model_latency_s=_header_us(headers, HEADER_MODEL_LATENCY_US),
            headers=headers,
        )

    # --- metrics and info --------------------------------------------------------------------

    def _created_at(self) -> datetime:
        if self.deployed_at is not None:
            return self.deployed_at
        with translate_errors(f"Describing endpoint {self.name!r}"):
            described = self.client("sagemaker").describe_endpoint(EndpointName=self.name)
        created = described["CreationTime"]
        return created if isinstance(created, datetime) else datetime.fromtimestamp(float(created), UTC)

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
        kinds = set(only) if only is not None else {"model", "endpoint-config", "endpoint", "autoscaling", "dashboard", "artifacts"}
        want_artifacts = self.delete_artifacts if delete_artifacts is None else delete_artifacts
        sm = self.client("sagemaker")
        plan = CleanupPlan(endpoint_name=self.name)
        with translate_errors(f"Planning the cleanup of {self.name!r}"):
            endpoint = self._exists(lambda: sm.describe_endpoint(EndpointName=self.name))
            config_names = [self.name]
            variants = [self.variant_name]
            if endpoint is not None:
                if "endpoint" in kinds:
                    plan.endpoint = self.name
                if endpoint.get("EndpointConfigName"):
                    config_names.insert(0, endpoint["EndpointConfigName"])
                variants += [v["VariantName"] for v in endpoint.get("ProductionVariants", [])]
            model_names: list[str] = []
            for config_name in dict.fromkeys(config_names):
                config = self._exists(lambda c=config_name: sm.describe_endpoint_config(EndpointConfigName=c))  # type: ignore[misc]
                if config is None:
                    continue
                # Only the config this deployment owns; an endpoint may point at a shared one.
                if "endpoint-config" in kinds:
                    plan.endpoint_configs.append(config_name)
                model_names += [v["ModelName"] for v in config.get("ProductionVariants", [])]
            model_names.append(self.name)
            data_urls: list[tuple[str, bool]] = []
            for model_name in dict.fromkeys(model_names):
                model = self._exists(lambda m=model_name: sm.describe_model(ModelName=m))  # type: ignore[misc]
                if model is None:
                    continue
                if "model" in kinds:
                    plan.models.append(model_name)
                url = model.get("PrimaryContainer", {}).get("ModelDataUrl")
                if url:
                    tags = sm.list_tags(ResourceArn=model["ModelArn"]).get("Tags", [])
                    uploaded = any(t["Key"] == UPLOADED_TAG and t["Value"] == url for t in tags)
                    data_urls.append((url, uploaded))
            if "autoscaling" in kinds:
                scaling = self.client("application-autoscaling")
                for variant in dict.fromkeys(variants):
                    policies, registered = autoscaling_resources(scaling, self.name, variant_name=variant)
                    plan.scaling_policies += policies
                    if registered:
                        plan.scalable_targets.append(resource_id(self.name, variant))
            if "dashboard" in kinds:
                plan.dashboards = self._own_dashboards()
            if "artifacts" in kinds:
                for url, uploaded in data_urls:
                    if want_artifacts and uploaded:
                        plan.s3_objects += self._s3_objects(url)
                    else:
                        why = "not asked to delete artifacts" if not want_artifacts else "not uploaded by mmeperf"
                        plan.kept_artifacts.append(f"{url} ({why})")
        return plan

    def _own_dashboards(self) -> list[str]:
        from mmeperf.cloud.dashboard import default_dashboard_name

        cloudwatch = self.client("cloudwatch")
        own = default_dashboard_name([self.name])
        names: list[str] = []
        paginator = cloudwatch.get_paginator("list_dashboards")
        for page in paginator.paginate(DashboardNamePrefix="mmeperf-"):
            for entry in page.get("DashboardEntries", []):
                dashboard = str(entry["DashboardName"])
                if dashboard == own or self.name in dashboard.removeprefix("mmeperf-").split("--"):
                    names.append(dashboard)
        return names

    def _s3_objects(self, url: str) -> list[str]:
        bucket, prefix = _split_s3(url)
        s3 = self.client("s3")
        if self._exists(lambda: s3.head_bucket(Bucket=bucket)) is None:
            return []
        found: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            found += [f"s3://{bucket}/{obj['Key']}" for obj in page.get("Contents", [])]
        return found

    def delete(self, *, delete_artifacts: bool | None = None) -> None:
        """Remove autoscaling, endpoint, endpoint configs, models, dashboards (and artifacts).

        Idempotent: what is already gone is skipped. ``delete_artifacts`` (default: the
        constructor's) also deletes the S3 objects mmeperf uploaded for this endpoint.
        """
        self._delete_resources(self.cleanup_plan(delete_artifacts=delete_artifacts))

    def _delete_resources(self, plan: CleanupPlan) -> None:
        from botocore.exceptions import ClientError

        def gone(call: Callable[[], Any], what: str) -> None:
            try:
                call()
                self._say(f"deleted {what}")
            except ClientError as exc:
                if not is_not_found(exc):
                    raise

        with translate_errors(f"Cleaning up {self.name!r}"):
            if plan.scaling_policies or plan.scalable_targets:
                scaling = self.client("application-autoscaling")
                for target in plan.scalable_targets or [resource_id(self.name, self.variant_name)]:
                    variant = target.rsplit("/", 1)[-1]
                    for removed in remove_autoscaling(scaling, self.name, variant_name=variant):
                        self._say(f"deleted {removed}")
            sm = self.client("sagemaker")
            if plan.endpoint:
                gone(lambda: sm.delete_endpoint(EndpointName=plan.endpoint), f"endpoint {plan.endpoint}")
            for config in plan.endpoint_configs:
                gone(lambda c=config: sm.delete_endpoint_config(EndpointConfigName=c), f"endpoint config {config}")  # type: ignore[misc]
            for model in plan.models:
                gone(lambda m=model: sm.delete_model(ModelName=m), f"model {model}")  # type: ignore[misc]
            if plan.dashboards:
                cloudwatch = self.client("cloudwatch")
                gone(lambda: cloudwatch.delete_dashboards(DashboardNames=plan.dashboards), f"dashboards {plan.dashboards}")
            if plan.s3_objects:
                s3 = self.client("s3")
                by_bucket: dict[str, list[str]] = {}
                for url in plan.s3_objects:
                    bucket, key = _split_s3(url)
                    by_bucket.setdefault(bucket, []).append(key)
                for bucket, keys in by_bucket.items():
                    for start in range(0, len(keys), 1000):  # DeleteObjects takes 1000 keys at most
                        chunk = keys[start:start + 1000]
                        answer = s3.delete_objects(
                            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
                        )
                        if answer.get("Errors"):
                            raise EndpointError(f"S3 refused to delete some artifacts: {answer['Errors'][:3]}")
                    self._say(f"deleted {len(keys)} objects in s3://{bucket}")

