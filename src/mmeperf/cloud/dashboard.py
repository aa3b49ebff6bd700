"""The reference's CloudWatch dashboard for one or two multi-model endpoints.

Four widgets per endpoint, period 60 s, dimensions EndpointName + VariantName: a latest-values
strip; invocations and errors with ModelCacheHit; the MME latency breakdown stacked in
microseconds; instance metrics with LoadedModelCount on a second axis. :func:`dashboard_body`
is what ``put_dashboard`` takes; :func:`cloudformation_template` is the same dashboard as an
``AWS::CloudWatch::Dashboard`` stack with the endpoint names as parameters.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mmeperf.cloud.aws import translate_errors
from mmeperf.cloud.cloudwatch import INSTANCE_NAMESPACE, INVOCATION_NAMESPACE
from mmeperf.errors import ConfigurationError

__all__ = [
    "DASHBOARD_PERIOD_S",
    "cloudformation_template",
    "dashboard_body",
    "default_dashboard_name",
    "endpoint_dashboards",
    "put_dashboard",
]

DASHBOARD_PERIOD_S = 60
_STRIP = ("Invocations", "ModelLatency", "OverheadLatency", "ModelLoadingWaitTime", "ModelLoadingTime", "ModelUnloadingTime", "LoadedModelCount")
_LATENCY_STACK = ("ModelLoadingTime", "ModelDownloadingTime", "ModelLoadingWaitTime", "ModelLatency", "OverheadLatency", "ModelUnloadingTime")
_INSTANCE = ("CPUUtilization", "MemoryUtilization", "DiskUtilization")
_SUMMED = frozenset({"Invocations", "Invocation4XXErrors", "Invocation5XXErrors"})


def default_dashboard_name(endpoints: Sequence[str]) -> str:
    """``mmeperf-{a}`` or ``mmeperf-{a}--{b}`` (cleanup finds dashboards by this name)."""
    return "mmeperf-" + "--".join(endpoints)


def endpoint_dashboards(cloudwatch: Any, endpoint_name: str) -> list[str]:
    """The dashboards mmeperf made that show ``endpoint_name`` (alone or beside another)."""
    own = default_dashboard_name([endpoint_name])
    names: list[str] = []
    paginator = cloudwatch.get_paginator("list_dashboards")
    for page in paginator.paginate(DashboardNamePrefix="mmeperf-"):
        for entry in page.get("DashboardEntries", []):
            dashboard = str(entry["DashboardName"])
            if dashboard == own or endpoint_name in dashboard.removeprefix("mmeperf-").split("--"):
                names.append(dashboard)
    return names


def _metric(namespace: str, name: str, endpoint: str, variant: str, **options: Any) -> list[Any]:
    stat = "Sum" if name in _SUMMED else "Average"
    return [namespace, name, "EndpointName", endpoint, "VariantName", variant, {"stat": stat, **options}]


def _widgets(endpoint: str, variant: str, region: str, y: int, title: str) -> list[dict[str, Any]]:
    def props(title_: str, metrics: list[list[Any]], **extra: Any) -> dict[str, Any]:
        return {
            "title": f"{title}: {title_}",
            "metrics": metrics,
            "region": region,
            "period": DASHBOARD_PERIOD_S,
            **extra,
        }

    strip = props(
        "latest values",
        [_metric(INVOCATION_NAMESPACE, m, endpoint, variant) for m in _STRIP],
        view="singleValue",
        setPeriodToTimeRange=False,
    )
    invocations = props(
        "invocations and errors",
        [
            _metric(INVOCATION_NAMESPACE, "Invocations", endpoint, variant),
            _metric(INVOCATION_NAMESPACE, "Invocation4XXErrors", endpoint, variant),
            _metric(INVOCATION_NAMESPACE, "Invocation5XXErrors", endpoint, variant),
            _metric(INVOCATION_NAMESPACE, "ModelCacheHit", endpoint, variant, yAxis="right"),
        ],
        view="timeSeries",
        stacked=False,
        yAxis={"left": {"label": "count", "showUnits": False}, "right": {"label": "cache hit ratio", "min": 0, "max": 1, "showUnits": False}},
    )
    latency = props(
        "MME latency breakdown (microseconds)",
        [_metric(INVOCATION_NAMESPACE, m, endpoint, variant) for m in _LATENCY_STACK],
        view="timeSeries",
        stacked=True,
        yAxis={"left": {"label": "microseconds", "showUnits": False}},
    )
    instance = props(
        "instance",
        [
            *(_metric(INSTANCE_NAMESPACE, m, endpoint, variant) for m in _INSTANCE),
            _metric(INVOCATION_NAMESPACE, "LoadedModelCount", endpoint, variant, yAxis="right"),
        ],
        view="timeSeries",
        stacked=False,
        yAxis={"left": {"label": "percent", "showUnits": False}, "right": {"label": "models loaded", "showUnits": False}},
    )
    return [
        {"type": "metric", "x": 0, "y": y, "width": 24, "height": 3, "properties": strip},
        {"type": "metric", "x": 0, "y": y + 3, "width": 8, "height": 6, "properties": invocations},
        {"type": "metric", "x": 8, "y": y + 3, "width": 8, "height": 6, "properties": latency},
        {"type": "metric", "x": 16, "y": y + 3, "width": 8, "height": 6, "properties": instance},
    ]


def _check(endpoints: Sequence[str]) -> None:
    if not 1 <= len(endpoints) <= 2:
        raise ConfigurationError(f"A dashboard shows one or two endpoints; received {len(endpoints)}")


def dashboard_body(endpoints: Sequence[str], *, region: str, variant_name: str = "AllTraffic") -> dict[str, Any]:
    """The dashboard for one or two endpoints: four widgets each, stacked top to bottom."""
    _check(endpoints)
    widgets: list[dict[str, Any]] = []
    for i, endpoint in enumerate(endpoints):
        widgets += _widgets(endpoint, variant_name, region, y=i * 9, title=endpoint)
    return {"start": "-PT3H", "periodOverride": "inherit", "widgets": widgets}


def put_dashboard(
    cloudwatch: Any,
    endpoints: Sequence[str],
    *,
    region: str,
    name: str | None = None,
    variant_name: str = "AllTraffic",
) -> str:
    """Create or replace the dashboard; returns its name. Raises ConfigurationError if rejected."""
    dashboard_name = name or default_dashboard_name(endpoints)
    body = dashboard_body(endpoints, region=region, variant_name=variant_name)
    with translate_errors(f"Creating CloudWatch dashboard {dashboard_name!r}"):
        answer = cloudwatch.put_dashboard(DashboardName=dashboard_name, DashboardBody=json.dumps(body))
    problems = answer.get("DashboardValidationMessages") or []
    if problems:
        raise ConfigurationError(f"CloudWatch rejected dashboard {dashboard_name!r}: {problems}")
    return dashboard_name


def cloudformation_template(*, endpoints: int = 2, variant_name: str = "AllTraffic") -> str:
    """YAML for an ``AWS::CloudWatch::Dashboard`` stack; parameters EndpointName1 (and 2).

    The body is the same as :func:`dashboard_body`'s, with ``${EndpointNameN}`` and
    ``${AWS::Region}`` substituted by CloudFormation (``Fn::Sub``).
    """
    import yaml

    names = [f"EndpointName{i + 1}" for i in range(endpoints)]
    _check(names)
    body = dashboard_body([f"${{{n}}}" for n in names], region="${AWS::Region}", variant_name=variant_name)
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "mmeperf: CloudWatch dashboard for SageMaker multi-model endpoints (invocations, MME latency breakdown, instance metrics).",
        "Parameters": {
            n: {
                "Type": "String",
                "Description": f"Name of SageMaker endpoint {i + 1} (not its ARN)",
                "AllowedPattern": "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$",
            }
            for i, n in enumerate(names)
        },
        "Resources": {
            "MMEDashboard": {
                "Type": "AWS::CloudWatch::Dashboard",
                "Properties": {"DashboardBody": {"Fn::Sub": json.dumps(body, indent=1)}},
            }
        },
        "Outputs": {
            "DashboardName": {"Description": "The dashboard's name", "Value": {"Ref": "MMEDashboard"}}
        },
    }
    return yaml.safe_dump(template, sort_keys=False, width=120)
