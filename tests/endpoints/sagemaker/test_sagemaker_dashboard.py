"""The reference dashboard (put into moto's CloudWatch), its CloudFormation twin, image URIs."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from mmeperf.cloud.dashboard import cloudformation_template, dashboard_body, put_dashboard
from mmeperf.cloud.images import container_for_backend, image_uri
from mmeperf.errors import ConfigurationError


def _by_title(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {w["properties"]["title"]: w["properties"] for w in body["widgets"]}


def test_four_widgets_per_endpoint_as_the_reference_has_them() -> None:
    body = dashboard_body(["a-c5-xl", "a-c5-2xl"], region="us-west-2")
    assert len(body["widgets"]) == 8
    widgets = _by_title(body)
    strip = widgets["a-c5-xl: latest values"]
    assert strip["view"] == "singleValue" and strip["period"] == 60
    assert [m[1] for m in strip["metrics"]] == [
        "Invocations", "ModelLatency", "OverheadLatency", "ModelLoadingWaitTime",
        "ModelLoadingTime", "ModelUnloadingTime", "LoadedModelCount",
    ]
    invocations = widgets["a-c5-2xl: invocations and errors"]
    assert [m[1] for m in invocations["metrics"]][-1] == "ModelCacheHit"
    assert invocations["metrics"][0][-1]["stat"] == "Sum"
    latency = widgets["a-c5-2xl: MME latency breakdown (microseconds)"]
    assert latency["stacked"] is True and len(latency["metrics"]) == 6
    instance = widgets["a-c5-xl: instance"]
    assert instance["metrics"][0][:6] == [
        "/aws/sagemaker/Endpoints", "CPUUtilization", "EndpointName", "a-c5-xl", "VariantName", "AllTraffic",
    ]
    assert instance["metrics"][-1][1] == "LoadedModelCount" and instance["metrics"][-1][-1]["yAxis"] == "right"
    assert all(w["properties"]["region"] == "us-west-2" for w in body["widgets"])
    with pytest.raises(ConfigurationError, match="one or two"):
        dashboard_body(["a", "b", "c"], region="us-west-2")


def test_put_dashboard_round_trips_through_cloudwatch(aws: str, boto: Any) -> None:
    cw = boto("cloudwatch")
    name = put_dashboard(cw, ["one", "two"], region="us-east-1")
    assert name == "mmeperf-one--two"
    stored = json.loads(cw.get_dashboard(DashboardName=name)["DashboardBody"])
    assert stored == dashboard_body(["one", "two"], region="us-east-1")


def test_cloudformation_template_is_the_same_dashboard() -> None:
    text = cloudformation_template(endpoints=2)
    template = yaml.safe_load(text)
    assert list(template["Parameters"]) == ["EndpointName1", "EndpointName2"]
    resource = template["Resources"]["MMEDashboard"]
    assert resource["Type"] == "AWS::CloudWatch::Dashboard"
    body = json.loads(resource["Properties"]["DashboardBody"]["Fn::Sub"])
    assert body == dashboard_body(["${EndpointName1}", "${EndpointName2}"], region="${AWS::Region}")
    assert list(yaml.safe_load(cloudformation_template(endpoints=1))["Parameters"]) == ["EndpointName1"]


def test_cloudformation_template_passes_cfn_lint() -> None:
    api = pytest.importorskip("cfnlint.api")
    matches = api.lint(cloudformation_template(endpoints=2), config=api.ManualArgs(regions=["us-east-1"]))
    assert [str(m) for m in matches] == []


def test_image_uris_from_the_table() -> None:
    assert image_uri("xgboost", "us-east-1") == "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
    assert image_uri("xgboost", "eu-west-1", version="1.5-1").endswith("141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:1.5-1"[-60:])
    assert image_uri("triton", "us-west-2").startswith("301217895009.dkr.ecr.us-west-2.amazonaws.com/sagemaker-tritonserver:")
    assert container_for_backend("xgboost") == "xgboost"
    assert container_for_backend("onnx") == container_for_backend("tensorrt") == "triton"
    with pytest.raises(ConfigurationError, match="--image-uri"):
        image_uri("xgboost", "mars-north-1")
    with pytest.raises(ConfigurationError, match="--image-uri"):
        container_for_backend(None)
