"""The SageMaker control plane of one multi-model endpoint: create the Model (``Mode=MultiModel``),
endpoint config and endpoint; wait until InService; plan and carry out the cleanup of everything
mmeperf created (autoscaling, dashboards and uploaded artifacts through :mod:`mmeperf.cloud`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from mmeperf.cloud.autoscaling import autoscaling_resources, remove_autoscaling, resource_id
from mmeperf.cloud.aws import describe_or_none, is_not_found, translate_errors
from mmeperf.endpoints.sagemaker.artifacts import delete_objects, list_objects
from mmeperf.errors import ConfigurationError, EndpointError, EndpointNotReadyError

if TYPE_CHECKING:
    from mmeperf.cloud.aws import AwsClients

__all__ = ["ALL_KINDS", "UPLOADED_TAG", "CleanupPlan", "ControlPlane", "check_name"]

# SageMaker's rule for model, endpoint-config and endpoint names.
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
#: Tag on the Model when mmeperf uploaded its artifacts (cleanup deletes only such prefixes).
UPLOADED_TAG = "mmeperf:uploaded-artifacts"
_READY, _IN_PROGRESS = "InService", frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})
#: What a cleanup plan may cover.
ALL_KINDS = frozenset({"model", "endpoint-config", "endpoint", "autoscaling", "dashboard", "artifacts"})


def check_name(name: object) -> str:
    """``name`` if SageMaker accepts it for a model, endpoint config and endpoint."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigurationError(
            f"Invalid endpoint name {name!r}: expected 1-63 letters, digits and hyphens, "
            "starting with a letter or digit"
        )
    return name


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


class ControlPlane:
    """The control-plane calls for the endpoint ``name`` (and its model and config of that name)."""

    def __init__(self, aws: AwsClients, name: str, *, variant_name: str, say: Callable[[str], None]) -> None:
        self.aws, self.name, self.variant_name, self.say = aws, name, variant_name, say

    def existing(self) -> list[str]:
        """Kinds of resource named like this endpoint that exist already."""
        sm = self.aws.client("sagemaker")
        with translate_errors(f"Checking for an existing deployment named {self.name!r}"):
            return [
                kind for kind, describe in (
                    ("endpoint", lambda: sm.describe_endpoint(EndpointName=self.name)),
                    ("endpoint config", lambda: sm.describe_endpoint_config(EndpointConfigName=self.name)),
                    ("model", lambda: sm.describe_model(ModelName=self.name)),
                )
                if describe_or_none(describe) is not None
            ]

    def create(
        self,
        *,
        image: str,
        data_url: str,
        uploaded: bool,
        role: str,
        instance_type: str,
        instance_count: int,
        environment: Mapping[str, str],
        tags: Mapping[str, str],
        created: list[str],
    ) -> None:
        """Create the model, endpoint config and endpoint, appending each kind to ``created``."""
        sm = self.aws.client("sagemaker")
        tag_list = [{"Key": k, "Value": v} for k, v in {"created-by": "mmeperf", **tags}.items()]
        model_tags = tag_list + ([{"Key": UPLOADED_TAG, "Value": data_url}] if uploaded else [])
        with translate_errors(f"Creating model {self.name!r}"):
            container: dict[str, Any] = {"Image": image, "Mode": "MultiModel", "ModelDataUrl": data_url}
            if environment:
                container["Environment"] = dict(environment)
            sm.create_model(
                ModelName=self.name, ExecutionRoleArn=role, PrimaryContainer=container, Tags=model_tags
            )
            created.append("model")
            self.say(f"created model {self.name} ({image}, {data_url})")
        with translate_errors(f"Creating endpoint config {self.name!r}"):
            sm.create_endpoint_config(
                EndpointConfigName=self.name,
                ProductionVariants=[
                    {
                        "VariantName": self.variant_name,
                        "ModelName": self.name,
                        "InstanceType": instance_type,
                        "InitialInstanceCount": instance_count,
                        "InitialVariantWeight": 1.0,
                    }
                ],
                Tags=tag_list,
            )
            created.append("endpoint-config")
            self.say(f"created endpoint config {self.name} ({instance_count} x {instance_type})")
        with translate_errors(f"Creating endpoint {self.name!r}"):
            sm.create_endpoint(EndpointName=self.name, EndpointConfigName=self.name, Tags=tag_list)
            created.append("endpoint")

    def wait_until_in_service(self, *, timeout_s: float, poll_interval_s: float) -> None:
        """Poll the endpoint until InService; EndpointError with SageMaker's FailureReason if it fails."""
        sm = self.aws.client("sagemaker")
        started = time.monotonic()
        while True:
            with translate_errors(f"Reading the status of endpoint {self.name!r}"):
                described = sm.describe_endpoint(EndpointName=self.name)
            status = described.get("EndpointStatus", "Unknown")
            elapsed = time.monotonic() - started
            self.say(f"endpoint {self.name}: {status} after {elapsed:.0f} s")
            if status == _READY:
                return
            if status not in _IN_PROGRESS:
                reason = described.get("FailureReason") or "SageMaker gave no reason"
                raise EndpointError(f"Endpoint {self.name!r} is {status}: {reason}")
            if elapsed >= timeout_s:
                raise EndpointNotReadyError(
                    f"Endpoint {self.name!r} is still {status} after {elapsed:.0f} s "
                    f"(wait_timeout_s={timeout_s:g})"
                )
            time.sleep(min(poll_interval_s, max(timeout_s - elapsed, 0.0)))

    def created_at(self) -> datetime:
        """When SageMaker created the endpoint."""
        with translate_errors(f"Describing endpoint {self.name!r}"):
            described = self.aws.client("sagemaker").describe_endpoint(EndpointName=self.name)
        created = described["CreationTime"]
        return created if isinstance(created, datetime) else datetime.fromtimestamp(float(created), UTC)

    def cleanup_plan(self, *, delete_artifacts: bool, only: Iterable[str] | None = None) -> CleanupPlan:
        """What exists now and would be deleted (``only`` limits the kinds, see :data:`ALL_KINDS`)."""
        from mmeperf.cloud.dashboard import endpoint_dashboards

        kinds = set(only) if only is not None else set(ALL_KINDS)
        sm = self.aws.client("sagemaker")
        plan = CleanupPlan(endpoint_name=self.name)
        with translate_errors(f"Planning the cleanup of {self.name!r}"):
            endpoint = describe_or_none(lambda: sm.describe_endpoint(EndpointName=self.name))
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
                config = describe_or_none(lambda c=config_name: sm.describe_endpoint_config(EndpointConfigName=c))  # type: ignore[misc]
                if config is None:
                    continue
                # Only the config this deployment owns; an endpoint may point at a shared one.
                if "endpoint-config" in kinds:
                    plan.endpoint_configs.append(config_name)
                model_names += [v["ModelName"] for v in config.get("ProductionVariants", [])]
            model_names.append(self.name)
            data_urls: list[tuple[str, bool]] = []
            for model_name in dict.fromkeys(model_names):
                model = describe_or_none(lambda m=model_name: sm.describe_model(ModelName=m))  # type: ignore[misc]
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
                scaling = self.aws.client("application-autoscaling")
                for variant in dict.fromkeys(variants):
                    policies, registered = autoscaling_resources(scaling, self.name, variant_name=variant)
                    plan.scaling_policies += policies
                    if registered:
                        plan.scalable_targets.append(resource_id(self.name, variant))
            if "dashboard" in kinds:
                plan.dashboards = endpoint_dashboards(self.aws.client("cloudwatch"), self.name)
            if "artifacts" in kinds:
                for url, uploaded in data_urls:
                    if delete_artifacts and uploaded:
                        plan.s3_objects += list_objects(self.aws.client("s3"), url)
                    else:
                        why = "not asked to delete artifacts" if not delete_artifacts else "not uploaded by mmeperf"
                        plan.kept_artifacts.append(f"{url} ({why})")
        return plan

    def delete(self, plan: CleanupPlan) -> None:
        """Delete what ``plan`` lists, in dependency order; what is already gone is skipped."""
        from botocore.exceptions import ClientError

        def gone(call: Callable[[], Any], what: str) -> None:
            try:
                call()
                self.say(f"deleted {what}")
            except ClientError as exc:
                if not is_not_found(exc):
                    raise

        with translate_errors(f"Cleaning up {self.name!r}"):
            if plan.scaling_policies or plan.scalable_targets:
                scaling = self.aws.client("application-autoscaling")
                for target in plan.scalable_targets or [resource_id(self.name, self.variant_name)]:
                    variant = target.rsplit("/", 1)[-1]
                    for removed in remove_autoscaling(scaling, self.name, variant_name=variant):
                        self.say(f"deleted {removed}")
            sm = self.aws.client("sagemaker")
            if plan.endpoint:
                gone(lambda: sm.delete_endpoint(EndpointName=plan.endpoint), f"endpoint {plan.endpoint}")
            for config in plan.endpoint_configs:
                gone(lambda c=config: sm.delete_endpoint_config(EndpointConfigName=c), f"endpoint config {config}")  # type: ignore[misc]
            for model in plan.models:
                gone(lambda m=model: sm.delete_model(ModelName=m), f"model {model}")  # type: ignore[misc]
            if plan.dashboards:
                cloudwatch = self.aws.client("cloudwatch")
                gone(lambda: cloudwatch.delete_dashboards(DashboardNames=plan.dashboards), f"dashboards {plan.dashboards}")
            if plan.s3_objects:
                delete_objects(self.aws.client("s3"), plan.s3_objects, self.say)
