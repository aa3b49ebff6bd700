"""The load side: LoadProfile, traffic, and the Benchmark runner that drives Locust subprocesses.

Importing this package never imports Locust or gevent; only the shipped locustfile does, in the
Locust processes the runner starts.
"""

from __future__ import annotations

from mmeperf.load.benchmark import Benchmark, BenchmarkHandle, Progress
from mmeperf.load.profile import (
    ConstantShape,
    ErrorRateStop,
    LatencyStop,
    LoadProfile,
    OpenLoopShape,
    Phase,
    PhasesShape,
    PlateauStop,
    RateStage,
    StepsShape,
    StopConditions,
    TraceShape,
    WaitTime,
)
from mmeperf.load.spec import AwsAuth, EndpointSpec
from mmeperf.load.traffic import RequestTable, Traffic

__all__ = [
    "AwsAuth",
    "Benchmark",
    "BenchmarkHandle",
    "ConstantShape",
    "EndpointSpec",
    "ErrorRateStop",
    "LatencyStop",
    "LoadProfile",
    "OpenLoopShape",
    "Phase",
    "PhasesShape",
    "PlateauStop",
    "Progress",
    "RateStage",
    "RequestTable",
    "StepsShape",
    "StopConditions",
    "TraceShape",
    "Traffic",
    "WaitTime",
]
