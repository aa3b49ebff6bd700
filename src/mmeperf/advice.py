"""The hosting decision tree of the reference talk (AIM408), as a typed function.

Live traffic or batch; large payloads or long processing -> asynchronous inference; one model ->
a real-time endpoint, many models of one framework -> a multi-model endpoint, several frameworks
-> a multi-container endpoint; then right-size by load testing, autoscale fluctuating traffic, and
run production on at least two instances across Availability Zones. Every answer says why.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

__all__ = [
    "ASYNC_PAYLOAD_LIMIT_MB",
    "ASYNC_PROCESSING_LIMIT_S",
    "Advice",
    "Hosting",
    "Step",
    "Workload",
    "advise",
]

#: Real-time endpoints accept payloads up to 6 MB ...
ASYNC_PAYLOAD_LIMIT_MB = 6.0
#: ... and answer within 60 seconds; beyond either, asynchronous inference.
ASYNC_PROCESSING_LIMIT_S = 60.0


class Hosting(StrEnum):
    """Where the models should run."""

    BATCH_TRANSFORM = "batch-transform"
    ASYNC_INFERENCE = "asynchronous-inference"
    REAL_TIME_ENDPOINT = "real-time-endpoint"
    MULTI_MODEL_ENDPOINT = "multi-model-endpoint"
    MULTI_CONTAINER_ENDPOINT = "multi-container-endpoint"


class Workload(BaseModel):
    """What a team knows about its models and traffic before measuring anything."""

    live_traffic: bool = True
    """Predictions are requested online, one request at a time (False: scheduled batch jobs)."""
    payload_mb: float = Field(default=0.01, ge=0)
    """Largest request payload, in MB."""
    processing_seconds: float = Field(default=0.1, ge=0)
    """Longest time one prediction takes, in seconds."""
    n_models: int = Field(default=1, ge=1)
    """How many models must be served."""
    frameworks: int = Field(default=1, ge=1)
    """How many different frameworks/containers those models need."""
    fluctuating_traffic: bool = False
    """Traffic varies over the day (autoscaling pays)."""
    production: bool = True
    """The endpoint serves production traffic (high availability matters)."""


class Step(BaseModel):
    """One recommendation and the reason for it."""

    title: str
    why: str


class Advice(BaseModel):
    """The hosting option and the steps that follow it, each with its reason."""

    hosting: Hosting
    why: str
    steps: list[Step]

    def render(self) -> str:
        """Plain text, one line per step."""
        lines = [f"Host on: {self.hosting.value}", f"  because {self.why}"]
        lines += [f"- {s.title}: {s.why}" for s in self.steps]
        return "\n".join(lines)


def advise(workload: Workload) -> Advice:
    """Walk the decision tree for ``workload``."""
    w = workload
    if not w.live_traffic:
        return Advice(
            hosting=Hosting.BATCH_TRANSFORM,
            why="predictions are not needed online, so nothing has to stay running between jobs; "
            "batch transform pays only while a job runs.",
            steps=[],
        )
    if w.payload_mb > ASYNC_PAYLOAD_LIMIT_MB or w.processing_seconds > ASYNC_PROCESSING_LIMIT_S:
        reasons = []
        if w.payload_mb > ASYNC_PAYLOAD_LIMIT_MB:
            reasons.append(f"payloads of {w.payload_mb:g} MB exceed the {ASYNC_PAYLOAD_LIMIT_MB:g} MB real-time limit")
        if w.processing_seconds > ASYNC_PROCESSING_LIMIT_S:
            reasons.append(
                f"processing of {w.processing_seconds:g} s exceeds the {ASYNC_PROCESSING_LIMIT_S:g} s real-time timeout"
            )
        return Advice(
            hosting=Hosting.ASYNC_INFERENCE,
            why=" and ".join(reasons) + "; asynchronous inference queues requests and writes results to S3.",
            steps=_scaling_steps(w),
        )
    if w.n_models == 1:
        hosting, why = (
            Hosting.REAL_TIME_ENDPOINT,
            "one model with live traffic fits one real-time endpoint.",
        )
    elif w.frameworks == 1:
        hosting, why = (
            Hosting.MULTI_MODEL_ENDPOINT,
            f"{w.n_models} models share one framework, so one container can load them on demand "
            f"and share instances instead of paying for {w.n_models} endpoints.",
        )
    else:
        hosting, why = (
            Hosting.MULTI_CONTAINER_ENDPOINT,
            f"{w.n_models} models need {w.frameworks} different frameworks; a multi-container "
            "endpoint hosts up to 15 containers behind one endpoint.",
        )
    return Advice(hosting=hosting, why=why, steps=_scaling_steps(w))


def _scaling_steps(w: Workload) -> list[Step]:
    steps = [
        Step(
            title="Load test to right-size",
            why="the instance type and count that meet your latency budget with zero failures "
            "can only be measured (mmeperf bench / mmeperf demo churn); a too-small instance "
            "thrashes its model cache or saturates its CPU.",
        )
    ]
    if w.fluctuating_traffic:
        steps.append(
            Step(
                title="Add autoscaling",
                why="traffic fluctuates, so target tracking on InvocationsPerInstance adds "
                "instances at peaks and removes them when idle instead of paying for the peak all day.",
            )
        )
    if w.production:
        steps.append(
            Step(
                title="Run at least two instances",
                why="SageMaker spreads the instances of an endpoint across Availability Zones, so "
                "one instance or zone failing does not take the endpoint down.",
            )
        )
    return steps
