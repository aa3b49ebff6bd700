"""SageMakerEndpoint against moto's server: deploy, dashboard, autoscaling, cleanup, failures."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest

from mmeperf.cloud.autoscaling import AutoscalingPolicy, HighAvailabilityWarning
from mmeperf.endpoints.sagemaker import SageMakerEndpoint
from mmeperf.errors import (
    CapacityError,
    CloudAccessError,
    ConfigurationError,
    EndpointError,
    EndpointNotReadyError,
)

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
TARGETS = {"churn-xgb-CA.tar.gz", "churn-xgb-NY.tar.gz", "churn-xgb-TX.tar.gz"}


def _endpoint(name: str = "churn-c5-2xl", **options: Any) -> SageMakerEndpoint:
    options.setdefault("instance_type", "ml.c5.2xlarge")
    options.setdefault("role", ROLE)
    options.setdefault("bucket", "mmeperf-test-models")
    options.setdefault("poll_interval_s", 0.01)
    return SageMakerEndpoint(name=name, **options)


def _make_bucket(boto: Any, name: str = "mmeperf-test-models") -> None:
    boto("s3").create_bucket(Bucket=name)


def _names(boto: Any) -> dict[str, list[str]]:
    sm = boto("sagemaker")
    return {
        "endpoints": [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]],
        "configs": [c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]],
        "models": [m["ModelName"] for m in sm.list_models()["Models"]],
    }


def _inject(
    client: Any, operation: str, parsed: dict[str, Any], status: int, *, between: tuple[str, str] | None = None
) -> None:
    """Make ``client`` answer ``operation`` with ``parsed`` instead of calling the server.

    Used only to provoke what moto cannot (a quota refusal, a Failed endpoint); everything the
    tests check afterwards is read back from the real moto server. With ``between=(A, B)`` the
    answer is given only after operation A succeeded and before operation B is called.
    """
    from botocore.awsrequest import AWSResponse

    active = [between is None]

    def answer(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        return (AWSResponse("http://injected", status, {}, None), parsed) if active[0] else None

    def switch(on: bool) -> Any:
        def handler(**_: Any) -> None:
            active[0] = on
        return handler

    if between is not None:
        client.meta.events.register(f"after-call.sagemaker.{between[0]}", switch(True))
        client.meta.events.register(f"before-call.sagemaker.{between[1]}", switch(False))
    client.meta.events.register(f"before-call.sagemaker.{operation}", answer)


def test_deploy_dashboard_autoscaling_then_cleanup_leaves_nothing(aws: str, boto: Any, repository: Any) -> None:
    _make_bucket(boto)
    seen: list[str] = []
    ep = _endpoint(progress=seen.append, autoscaling=AutoscalingPolicy())
    assert ep.deploy(repository) is ep

    sm = boto("sagemaker")
    described = sm.describe_endpoint(EndpointName="churn-c5-2xl")
    assert described["EndpointStatus"] == "InService"
    config = sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    (variant,) = config["ProductionVariants"]
    assert (variant["VariantName"], variant["InstanceType"], variant["InitialInstanceCount"]) == (
        "AllTraffic", "ml.c5.2xlarge", 1,
    )
    model = sm.describe_model(ModelName=variant["ModelName"])
    container = model["PrimaryContainer"]
    assert container["Mode"] == "MultiModel"
    assert container["ModelDataUrl"] == "s3://mmeperf-test-models/mmeperf/churn-c5-2xl/"
    assert container["Image"] == "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
    assert model["ExecutionRoleArn"] == ROLE
    assert any("InService" in line for line in seen)

    keys = {o["Key"] for o in boto("s3").list_objects_v2(Bucket="mmeperf-test-models")["Contents"]}
    assert {f"mmeperf/churn-c5-2xl/{t}" for t in TARGETS} <= keys
    for entry in repository.list():  # uploaded bytes are the repository's bytes
        body = boto("s3").get_object(Bucket="mmeperf-test-models", Key=f"mmeperf/churn-c5-2xl/{entry.key}")["Body"].read()
        assert len(body) == entry.bytes

    scaling = boto("application-autoscaling")
    (target,) = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert target["ResourceId"] == "endpoint/churn-c5-2xl/variant/AllTraffic"
    assert target["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 5)
    (policy,) = scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 4000.0
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"
    assert (tracking["ScaleInCooldown"], tracking["ScaleOutCooldown"]) == (600, 300)

    dashboard = ep.create_dashboard()
    body = json.loads(boto("cloudwatch").get_dashboard(DashboardName=dashboard)["DashboardBody"])
    assert len(body["widgets"]) == 4

    plan = ep.cleanup_plan(delete_artifacts=True)
    assert plan.endpoint == "churn-c5-2xl"
    assert plan.endpoint_configs == ["churn-c5-2xl"] and plan.models == ["churn-c5-2xl"]
    assert plan.scalable_targets == ["endpoint/churn-c5-2xl/variant/AllTraffic"]
    assert plan.scaling_policies == ["mmeperf-churn-c5-2xl-invocations"]
    assert plan.dashboards == ["mmeperf-churn-c5-2xl"]
    assert {o.rsplit("/", 1)[-1] for o in plan.s3_objects} >= TARGETS
    assert _names(boto)["endpoints"] == ["churn-c5-2xl"]  # a plan deletes nothing

    ep.delete(delete_artifacts=True)
    assert _names(boto) == {"endpoints": [], "configs": [], "models": []}
    assert scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []
    assert scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"] == []
    assert boto("cloudwatch").list_dashboards()["DashboardEntries"] == []
    assert boto("s3").list_objects_v2(Bucket="mmeperf-test-models").get("KeyCount", 0) == 0
    ep.delete(delete_artifacts=True)  # idempotent
    assert ep.cleanup_plan(delete_artifacts=True).empty


def test_artifacts_stay_unless_asked_and_context_manager_deletes(aws: str, boto: Any, repository: Any) -> None:
    _make_bucket(boto)
    with _endpoint("churn-c5-xl", instance_type="ml.c5.xlarge").deploy(repository) as ep:
        plan = ep.cleanup_plan()
        assert plan.s3_objects == [] and plan.kept_artifacts
    assert _names(boto) == {"endpoints": [], "configs": [], "models": []}
    keys = {o["Key"] for o in boto("s3").list_objects_v2(Bucket="mmeperf-test-models")["Contents"]}
    assert {f"mmeperf/churn-c5-xl/{t}" for t in TARGETS} <= keys


def test_default_bucket_is_created_and_redeploy_skips_unchanged_uploads(aws: str, boto: Any, repository: Any) -> None:
    seen: list[str] = []
    ep = SageMakerEndpoint(name="again", instance_type="ml.c5.xlarge", role=ROLE, poll_interval_s=0.01, progress=seen.append)
    ep.deploy(repository)
    bucket = "sagemaker-us-east-1-123456789012"
    assert ep.model_data_url == f"s3://{bucket}/mmeperf/again/"
    assert sum("uploaded" in line for line in seen) == len(TARGETS) + 1  # models + manifest
    ep.delete()
    seen.clear()
    ep.deploy(repository)
    assert sum(line.startswith("unchanged") for line in seen) == len(TARGETS)
    ep.delete(delete_artifacts=True)
    assert boto("s3").list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_failed_create_endpoint_removes_the_model_and_config(aws: str, boto: Any, repository: Any) -> None:
    _make_bucket(boto)
    ep = _endpoint("quota")
    _inject(
        ep.client("sagemaker"), "CreateEndpoint",
        {"Error": {"Code": "ResourceLimitExceeded", "Message": "account-level service limit 'ml.c5.2xlarge for endpoint usage' is 0"},
         "ResponseMetadata": {"HTTPStatusCode": 400}},
        400,
    )
    with pytest.raises(CapacityError, match="quota"):
        ep.deploy(repository)
    assert _names(boto) == {"endpoints": [], "configs": [], "models": []}


def test_failed_endpoint_raises_its_reason_and_is_removed(aws: str, boto: Any, repository: Any) -> None:
    _make_bucket(boto)
    ep = _endpoint("broken")
    _inject(
        ep.client("sagemaker"), "DescribeEndpoint",
        {"EndpointName": "broken", "EndpointConfigName": "broken", "EndpointStatus": "Failed",
         "FailureReason": "The primary container did not pass the ping health check",
         "ResponseMetadata": {"HTTPStatusCode": 200}},
        200,
        between=("CreateEndpoint", "DeleteEndpoint"),
    )
    with pytest.raises(EndpointError, match="ping health check"):
        ep.deploy(repository)
    assert _names(boto) == {"endpoints": [], "configs": [], "models": []}


def test_existing_deployment_is_refused_and_left_alone(aws: str, boto: Any, repository: Any) -> None:
    _make_bucket(boto)
    first = _endpoint("taken").deploy(repository)
    with pytest.raises(ConfigurationError, match="mmeperf cleanup --name taken"):
        _endpoint("taken").deploy(repository)
    assert _names(boto)["endpoints"] == ["taken"]
    first.delete()


def test_bad_options_are_typed_errors(aws: str) -> None:
    with pytest.raises(ConfigurationError, match=r"Unknown instance type 'ml\.x9\.huge'"):
        _endpoint(instance_type="ml.x9.huge")
    assert _endpoint(instance_type="ml.x9.huge", allow_unknown_instance_type=True).instance_type == "ml.x9.huge"
    with pytest.raises(ConfigurationError, match="Invalid endpoint name"):
        _endpoint("bad_name!")
    with pytest.raises(ConfigurationError, match="instance_count"):
        _endpoint(instance_count=0)
    with pytest.raises(ConfigurationError, match="--role"):
        _endpoint(role=None).deploy(None)  # type: ignore[arg-type]


def test_missing_credentials_and_region_are_typed(no_aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CloudAccessError, match="region"):
        _endpoint().client("sagemaker")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with pytest.raises(CloudAccessError, match="credentials"):
        _endpoint().invoke("churn-xgb-CA.tar.gz", b"1,2,3,4")


def test_production_endpoint_with_one_instance_warns(aws: str, boto: Any, repository: Any) -> None:
    _make_bucket(boto)
    with pytest.warns(HighAvailabilityWarning, match="at least"):
        ep = _endpoint("prod", production=True).deploy(repository)
    ep.delete()
    with warnings.catch_warnings():
        warnings.simplefilter("error", HighAvailabilityWarning)
        _endpoint("prod2", production=True, instance_count=2).deploy(repository).delete()


def test_info_points_at_the_runtime_url(aws: str) -> None:
    info = _endpoint().info()
    assert (info.kind, info.name, info.instance_type, info.region) == ("sagemaker", "churn-c5-2xl", "ml.c5.2xlarge", "us-east-1")
    assert info.runtime_url == aws  # AWS_ENDPOINT_URL is honoured
    with pytest.raises(EndpointError, match="LoadedModelCount"):
        _endpoint().loaded_models()


def test_endpoint_stuck_creating_times_out_and_is_removed(aws: str, boto: Any, repository: Any) -> None:
    _make_bucket(boto)
    ep = _endpoint("stuck", wait_timeout_s=0.05)
    _inject(
        ep.client("sagemaker"), "DescribeEndpoint",
        {"EndpointName": "stuck", "EndpointConfigName": "stuck", "EndpointStatus": "Creating",
         "ResponseMetadata": {"HTTPStatusCode": 200}},
        200,
        between=("CreateEndpoint", "DeleteEndpoint"),
    )
    with pytest.raises(EndpointNotReadyError, match="still Creating"):
        ep.deploy(repository)
    assert _names(boto) == {"endpoints": [], "configs": [], "models": []}


def test_triton_layout_and_empty_repositories_are_refused(aws: str, boto: Any, tmp_path: Any) -> None:
    from mmeperf.repository import ModelRepository

    _make_bucket(boto)
    with pytest.raises(ConfigurationError, match="layout='sagemaker'"):
        _endpoint("tri", image_uri="x").deploy(ModelRepository(tmp_path / "triton", layout="triton"))
    with pytest.raises(ConfigurationError, match="no models"):
        _endpoint("empty", image_uri="x").deploy(ModelRepository(tmp_path / "empty"))
    assert _names(boto) == {"endpoints": [], "configs": [], "models": []}
