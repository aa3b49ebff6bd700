"""Autoscaling of a SageMaker endpoint variant with application-autoscaling.

Registers ``endpoint/{name}/variant/{variant}`` as a scalable target (desired instance count)
and attaches a target-tracking policy on SageMakerVariantInvocationsPerInstance; removes both.
"""

from __future__ import annotations

import warnings
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mmeperf.cloud.aws import is_not_found, translate_errors

__all__ = [
    "SCALABLE_DIMENSION",
    "SERVICE_NAMESPACE",
    "AutoscalingPolicy",
    "HighAvailabilityWarning",
    "apply_autoscaling",
    "autoscaling_resources",
    "remove_autoscaling",
    "resource_id",
]

SERVICE_NAMESPACE = "sagemaker"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"


class HighAvailabilityWarning(UserWarning):
    """A production endpoint with fewer than two instances (no spread across Availability Zones)."""


class AutoscalingPolicy(BaseModel):
    """Target tracking on invocations per instance; defaults are the churn reference's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_capacity: int = Field(default=2, ge=1)
    """Fewest instances; two or more spread the endpoint across Availability Zones."""
    max_capacity: int = Field(default=5, ge=1)
    """Most instances."""
    target_invocations_per_instance: float = Field(default=4000.0, gt=0)
    """SageMakerVariantInvocationsPerInstance to hold (invocations per instance per minute)."""
    scale_in_cooldown_s: int = Field(default=600, ge=0)
    """Seconds after a scale-in before another scale-in."""
    scale_out_cooldown_s: int = Field(default=300, ge=0)
    """Seconds after a scale-out before another scale-out."""
    disable_scale_in: bool = False
    """Only ever add instances."""
    policy_name: str | None = None
    """Policy name; default ``mmeperf-{endpoint}-invocations``."""

    @model_validator(mode="after")
    def _min_le_max(self) -> AutoscalingPolicy:
        if self.min_capacity > self.max_capacity:
            raise ValueError(f"min_capacity {self.min_capacity} is above max_capacity {self.max_capacity}")
        return self


def resource_id(endpoint_name: str, variant_name: str = "AllTraffic") -> str:
    """application-autoscaling's id of an endpoint variant."""
    return f"endpoint/{endpoint_name}/variant/{variant_name}"


def apply_autoscaling(
    client: Any,
    endpoint_name: str,
    policy: AutoscalingPolicy,
    *,
    variant_name: str = "AllTraffic",
    production: bool = False,
) -> str:
    """Register the scalable target and put the policy; returns the policy's name."""
    if production and policy.min_capacity < 2:
        warnings.warn(
            f"Endpoint {endpoint_name!r} may scale in to {policy.min_capacity} instance: a production "
            "endpoint should keep at least two, spread across Availability Zones",
            HighAvailabilityWarning,
            stacklevel=2,
        )
    rid = resource_id(endpoint_name, variant_name)
    name = policy.policy_name or f"mmeperf-{endpoint_name}-invocations"
    with translate_errors(f"Registering autoscaling for {rid}"):
        client.register_scalable_target(
            ServiceNamespace=SERVICE_NAMESPACE,
            ResourceId=rid,
            ScalableDimension=SCALABLE_DIMENSION,
            MinCapacity=policy.min_capacity,
            MaxCapacity=policy.max_capacity,
        )
        client.put_scaling_policy(
            PolicyName=name,
            ServiceNamespace=SERVICE_NAMESPACE,
            ResourceId=rid,
            ScalableDimension=SCALABLE_DIMENSION,
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": policy.target_invocations_per_instance,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                },
                "ScaleInCooldown": policy.scale_in_cooldown_s,
                "ScaleOutCooldown": policy.scale_out_cooldown_s,
                "DisableScaleIn": policy.disable_scale_in,
            },
        )
    return name


def autoscaling_resources(client: Any, endpoint_name: str, *, variant_name: str = "AllTraffic") -> tuple[list[str], bool]:
    """(policy names, whether a scalable target is registered) for the variant."""
    rid = resource_id(endpoint_name, variant_name)
    with translate_errors(f"Reading autoscaling of {rid}"):
        policies = client.describe_scaling_policies(
            ServiceNamespace=SERVICE_NAMESPACE, ResourceId=rid, ScalableDimension=SCALABLE_DIMENSION
        ).get("ScalingPolicies", [])
        targets = client.describe_scalable_targets(
            ServiceNamespace=SERVICE_NAMESPACE, ResourceIds=[rid], ScalableDimension=SCALABLE_DIMENSION
        ).get("ScalableTargets", [])
    # describe_scaling_policies filters by prefix on some implementations: keep exact matches.
    names = [p["PolicyName"] for p in policies if p.get("ResourceId") == rid]
    return names, any(t.get("ResourceId") == rid for t in targets)


def remove_autoscaling(client: Any, endpoint_name: str, *, variant_name: str = "AllTraffic") -> list[str]:
    """Delete the variant's scaling policies and deregister its target. Idempotent.

    Returns what was removed (``policy:NAME``, ``scalable-target:ID``).
    """
    from botocore.exceptions import ClientError

    rid = resource_id(endpoint_name, variant_name)
    policies, registered = autoscaling_resources(client, endpoint_name, variant_name=variant_name)
    removed: list[str] = []
    with translate_errors(f"Removing autoscaling of {rid}"):
        for name in policies:
            try:
                client.delete_scaling_policy(
                    PolicyName=name, ServiceNamespace=SERVICE_NAMESPACE, ResourceId=rid, ScalableDimension=SCALABLE_DIMENSION
                )
                removed.append(f"policy:{name}")
            except ClientError as exc:
                if not is_not_found(exc):
                    raise
        if registered:
            try:
                client.deregister_scalable_target(
                    ServiceNamespace=SERVICE_NAMESPACE, ResourceId=rid, ScalableDimension=SCALABLE_DIMENSION
                )
                removed.append(f"scalable-target:{rid}")
            except ClientError as exc:
                if not is_not_found(exc):
                    raise
    return removed
