"""The CLI against moto's server, reached only through AWS_ENDPOINT_URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from mmeperf.cli import app

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


def _run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_deploy_dashboard_cleanup(aws: str, boto: Any, repository: Any, tmp_path: Path) -> None:
    deployed = _run(
        "deploy", "sagemaker", "--repository", repository.url, "--name", "cli-c5-xl",
        "--instance-type", "ml.c5.xlarge", "--role", ROLE, "--poll-interval", "0", "--autoscale",
    )
    assert deployed.exit_code == 0, deployed.output
    assert "cli-c5-xl InService" in deployed.output
    sm = boto("sagemaker")
    assert sm.describe_endpoint(EndpointName="cli-c5-xl")["EndpointStatus"] == "InService"

    template = tmp_path / "dashboard.yaml"
    shown = _run("dashboard", "--endpoint", "cli-c5-xl", "--endpoint", "other", "--cloudformation", str(template))
    assert shown.exit_code == 0, shown.output
    assert yaml.safe_load(template.read_text())["Resources"]["MMEDashboard"]["Type"] == "AWS::CloudWatch::Dashboard"
    dashboards = {d["DashboardName"] for d in boto("cloudwatch").list_dashboards()["DashboardEntries"]}
    assert dashboards == {"mmeperf-cli-c5-xl", "mmeperf-cli-c5-xl--other"}

    dry = _run("cleanup", "--name", "cli-c5-xl", "--dry-run", "--delete-artifacts")
    assert dry.exit_code == 0, dry.output
    for line in ("endpoint         cli-c5-xl", "endpoint config  cli-c5-xl", "model            cli-c5-xl",
                 "scalable target  endpoint/cli-c5-xl/variant/AllTraffic", "churn-xgb-CA.tar.gz"):
        assert line in dry.output
    assert sm.describe_endpoint(EndpointName="cli-c5-xl")  # still there

    done = _run("cleanup", "--name", "cli-c5-xl", "--delete-artifacts")
    assert done.exit_code == 0, done.output
    assert sm.list_endpoints()["Endpoints"] == [] and sm.list_models()["Models"] == []
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []
    assert boto("cloudwatch").list_dashboards()["DashboardEntries"] == []
    assert boto("application-autoscaling").describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []
    again = _run("cleanup", "--name", "cli-c5-xl")
    assert again.exit_code == 0 and "nothing to delete" in again.output


def test_bad_input_is_one_line_and_exit_2(aws: str, repository: Any) -> None:
    result = _run(
        "deploy", "sagemaker", "--repository", repository.url, "--name", "x",
        "--instance-type", "ml.x9.huge", "--role", ROLE,
    )
    assert result.exit_code == 2
    assert "Unknown instance type 'ml.x9.huge'" in result.output
    missing_role = _run("deploy", "sagemaker", "--repository", repository.url, "--name", "x", "--instance-type", "ml.c5.xlarge")
    assert missing_role.exit_code == 2 and "--role" in missing_role.output
