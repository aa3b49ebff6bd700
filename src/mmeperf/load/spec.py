"""The run spec: what the library hands the Locust processes (as a JSON file) for one benchmark.

Shared by both sides and free of Locust imports: the library writes it, the packaged locustfile
reads it from the path in ``MMEPERF_RUN_SPEC``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mmeperf.load.profile import LoadProfile
from mmeperf.protocol import DEFAULT_ENDPOINT_NAME

__all__ = ["ENV_SPEC", "AwsAuth", "EndpointSpec", "RunSpec", "UserKind"]

#: Environment variable holding the path of the run spec JSON.
ENV_SPEC = "MMEPERF_RUN_SPEC"

UserKind = Literal["http", "boto3", "endpoint"]


class AwsAuth(BaseModel):
    """Credentials to SigV4-sign requests (http user) or build the boto3 client."""

    model_config = ConfigDict(extra="forbid")

    region: str
    access_key: str | None = None
    """None: the default credential chain inside the Locust process."""
    secret_key: str | None = None
    session_token: str | None = None
    service: str = "sagemaker"
    """SigV4 service name of the runtime API."""


class EndpointSpec(BaseModel):
    """How a Locust process re-creates an endpoint plugin to call its ``invoke``."""

    model_config = ConfigDict(extra="forbid")

    target: str
    """A registered endpoint plugin name or ``module:Class``."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of the class (JSON)."""
    factory: str | None = None
    """Optional classmethod to call instead of the constructor (e.g. ``attach``)."""


class RunSpec(BaseModel):
    """Everything a Locust process needs for one run."""

    model_config = ConfigDict(extra="forbid")

    profile: LoadProfile
    user: UserKind = "http"
    runtime_url: str | None = None
    """Base URL of the SageMaker runtime API (http and boto3 users)."""
    endpoint_name: str = DEFAULT_ENDPOINT_NAME
    """The ``{name}`` in ``/endpoints/{name}/invocations`` (EndpointName for boto3)."""
    auth: AwsAuth | None = None
    """Sign requests with SigV4 (http) / credentials for boto3; None sends unsigned requests."""
    boto3_retries: int = 0
    """Retries the boto3 client may make (0 keeps client and server counts equal)."""
    endpoint: EndpointSpec | None = None
    """The endpoint plugin to invoke (user 'endpoint')."""
    requests_path: str
    """The request table file (mmeperf.load.traffic.RequestTable)."""
    out_dir: str
    t0: float
    """Wall-clock origin of every ``elapsed_s`` column (the library's start of the run)."""
    workers: int = 0
    processes: int = 1
    """Processes that generate load (workers, or 1 without workers)."""
    csv_prefix: str
    """Locust's own CSVs: ``<instance>*<backend>*<n_models>`` as the GPU reference names them."""
    labels: dict[str, Any] = Field(default_factory=dict)
    """instance_type, platform, max_models_loaded: repeated in summary_results.csv."""
    lag_s: float = 2.0
    """How long the master waits for a second's reports before writing its history row."""
    owner_pid: int | None = None
    """The process that started the run: every Locust process ends when it is gone."""
    trace_path: str | None = None
    """The trace replay's schedule file (mmeperf.load.trace.Trace), for a ``trace`` shape."""
    run_info: dict[str, Any] = Field(default_factory=dict)
    """More run.json sections the master writes as given (e.g. ``trace``)."""

    def write(self, path: Path) -> Path:
        path.write_text(self.model_dump_json(indent=1), encoding="utf-8")
        return path

    @classmethod
    def read(cls, path: str | Path) -> RunSpec:
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))
