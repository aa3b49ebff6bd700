"""Configuration of the embedded local MME (``mmeperf serve``, ``LocalEndpoint``, ``MemoryEndpoint``).

One pydantic model holds every option; the ``effective_*`` methods apply an instance profile's
emulation rule (memory budget, per-model overhead, inference threads) from :mod:`mmeperf.instances`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field

from mmeperf.errors import ConfigurationError
from mmeperf.instances import DEFAULT_CATALOG, InstanceProfile
from mmeperf.protocol import DEFAULT_ENDPOINT_NAME
from mmeperf.units import parse_size

#: Requests a loaded model serves with XGBoost's own predict before its trees are compiled: the
#: ski-rental rule (compile once the uses have cost what compiling costs, 2-competitive with the
#: best choice in hindsight). Measured on a 2-core host: a compile costs ~19 ms of CPU (9.2 ms
#: in the server: unmarshal, verification, timing; ~10 ms in the compiler process) and saves
#: ~0.15 ms per one-row request (XGBoost's ~155 us against a few us compiled): 19 / 0.15 ~ 127.
#: Under cache churn (300 req/s over 51 churn models, 20 fit) compiling after 2 uses raised p50
#: to 3.6 ms and p99 to 17.4 ms against 2.2 / 11.6 ms without the fast path; after 64 uses,
#: 2.3 / 10.6 ms (one run of each).
FAST_PATH_AFTER_USES = 128

__all__ = [
    "DEFAULT_JOB_QUEUE_SIZE",
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "DEFAULT_WORKERS_PER_MODEL",
    "EMULATION_NOTE",
    "JOB_QUEUE_SIZE_ENV",
    "WORKERS_ENV",
    "ServerConfig",
    "ServerOptions",
    "emulation_note",
]

#: SageMaker's InvokeEndpoint limit on the request body: 6 MB (6291456 bytes in its API model).
DEFAULT_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024

#: What reports say about emulating an instance type on this machine (the general rule; a running
#: server states what applied to it with :func:`emulation_note` in ``/mmeperf/status``).
EMULATION_NOTE = (
    "Memory emulated: the model cache is limited to the instance's memory less a base overhead; in "
    "process mode each loaded model runs in its own worker process, as SageMaker's CPU containers "
    "run Multi Model Server, and is charged its workers' measured memory (USS), in thread mode a "
    "fixed per-model overhead. CPU emulated where the host allows it: the server's processes run "
    "inside the instance's vCPUs x a scale (cgroup quota, else affinity to whole cores, else not "
    "at all); the offered load is scaled by the same factor. What applied to a run is in its "
    "server's /mmeperf/status (cpu_emulation)."
)


def emulation_note(worker_mode: str, cpu_label: str | None) -> str:
    """What one running server emulates and how: its worker mode and its CPU allowance's label
    (:meth:`~mmeperf.endpoints.local.cpu.CpuAllowance.label`)."""
    if worker_mode == "process":
        models = ("models run in worker processes, one set per loaded model as Multi Model Server "
                  "runs them; each is charged its workers' measured memory (USS) and a load costs "
                  "a real process start")
    else:
        models = ("models run in the server's threads (a load is an in-process call) and each is "
                  "charged a fixed per-model overhead")
    cpu = cpu_label or "CPU not emulated"
    if cpu.startswith("CPU not emulated"):
        cpu += ": latency and throughput are this host's, not the instance's"
    return f"Memory emulated (the instance's memory less a base overhead); {models}. {cpu}."


#: Workers per model, as SageMaker sets them: the inference toolkit's SAGEMAKER_MODEL_SERVER_WORKERS
#: (sagemaker-inference-toolkit parameters.py L21 -> default_workers_per_model, model_server.py
#: L161), then the XGBoost container's SAGEMAKER_NUM_MODEL_WORKERS (serving_mms.py L98).
WORKERS_ENV = ("SAGEMAKER_MODEL_SERVER_WORKERS", "SAGEMAKER_NUM_MODEL_WORKERS")
#: The XGBoost container's per-model job queue (serving_mms.py L99 -> MMS job_queue_size).
JOB_QUEUE_SIZE_ENV = "SAGEMAKER_MODEL_JOB_QUEUE_SIZE"
#: One worker per model in multi-model mode (sagemaker-inference-toolkit etc/mme-mms.properties L4;
#: serving_mms.py L36).
DEFAULT_WORKERS_PER_MODEL = 1
#: Multi Model Server's default job queue per model (ConfigManager.java L258; serving_mms.py L37).
DEFAULT_JOB_QUEUE_SIZE = 100


def _env_int(*names: str) -> int | None:
    for name in names:
        raw = os.environ.get(name, "").strip()
        if raw.isdigit() and int(raw) >= 1:
            return int(raw)
    return None


class ServerOptions(TypedDict, total=False):
    """The keyword options both local endpoints take (``LocalEndpoint`` adds host, port, workers
    and timeouts); :meth:`ServerConfig.from_options` turns them into the config."""

    memory_budget: int | str | None
    """Model-cache budget, bytes or a size like ``"512MiB"``."""
    instance_profile: str | None
    per_model_overhead: int | str | None
    endpoint_name: str
    max_payload: int | str
    allow_pickle: bool
    cache_dir: str | None
    server_options: Mapping[str, Any] | None
    """Any other :class:`ServerConfig` field by name (e.g. ``fast_path=False``)."""


class ServerConfig(BaseModel):
    """Every option of the local MME server."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    repository: str
    """URL or path of the model repository (ours, or a plain prefix of ``<name>.tar.gz``)."""
    host: str = "127.0.0.1"
    """Interface to bind; loopback unless told otherwise."""
    port: int = Field(default=8080, ge=0, le=65535)
    """TCP port; 0 picks a free one (the server reports it in its ready file)."""
    endpoint_name: str = DEFAULT_ENDPOINT_NAME
    """Name in ``/endpoints/{EndpointName}/invocations``; other names get ValidationError."""
    variant_name: str = "AllTraffic"
    """Production variant named in ``x-Amzn-Invoked-Production-Variant``."""
    memory_budget_bytes: int | None = Field(default=None, ge=0)
    """Bytes the loaded models may hold (model bytes plus per-model overhead); None: no limit."""
    per_model_overhead_bytes: int | None = Field(default=None, ge=0)
    """Bytes charged per loaded model on top of its own (None: the profile's, else 0)."""
    instance_profile: str | None = None
    """SageMaker instance type to emulate (memory only), e.g. ``ml.c5.xlarge``."""
    workers: int = Field(default=1, ge=1)
    """Server processes; only 1 is supported (see docs/local-mme.md)."""
    max_payload_bytes: int = Field(default=DEFAULT_MAX_PAYLOAD_BYTES, ge=1)
    """Largest request body accepted; larger ones get 413."""
    allow_pickle: bool = False
    """Let backends load pickle-based artifacts (only for repositories you trust)."""
    cache_dir: str | None = None
    """Disk cache for downloaded artifacts; None: a temporary folder removed on exit."""
    invocation_timeout_s: float = Field(default=60.0, gt=0)
    """Longest a model may take to answer once loaded (SageMaker's limit is 60 s)."""
    model_load_wait_s: float = Field(default=60.0, gt=0)
    """Longest a request waits for its model to download and load before ModelNotReadyException."""
    max_batch_size: int = Field(default=64, ge=1)
    """Most rows stacked into one predict call for concurrent requests to one model."""
    max_batch_wait_s: float = Field(default=0.0, ge=0)
    """Extra time a batch waits to fill up (0: batch only what queued during the previous predict)."""
    max_concurrent_requests: int = Field(default=4096, ge=1)
    """Requests in progress beyond which the server answers ServiceUnavailable (503)."""
    fast_path: bool = True
    """Serve small batches of XGBoost models through compiled trees verified bit-exact."""
    fast_path_after_uses: int = Field(default=FAST_PATH_AFTER_USES, ge=1)
    """Requests a loaded model serves (with XGBoost's predict) before its trees are compiled
    (see FAST_PATH_AFTER_USES: a model evicted sooner never pays for a compile)."""
    inline_fast_path: bool = True
    """Run compiled predictions of a few rows (bounded worst case, ~25 us) on the event loop."""
    disk_cache_bytes: int | None = Field(default=4 * 1024**3, ge=0)
    """Bytes of extracted artifacts kept on disk; beyond it the least recently used folders of
    models not in memory are removed (0: remove on unload; None: keep all until shutdown)."""
    inference_threads: int | None = Field(default=None, ge=1)
    """Threads that run predict (None: min(instance vCPUs, host cores), or host cores)."""
    loader_threads: int = Field(default=4, ge=1)
    """Threads that download and load models (loads never run on the event loop)."""
    graceful_shutdown_s: float = Field(default=10.0, ge=0)
    """Time in-flight requests get to finish on SIGTERM."""
    worker_mode: Literal["process", "thread"] | None = None
    """"process": each loaded model runs in its own worker process(es), as SageMaker's CPU
    containers (Multi Model Server) run them, so loads and per-model memory are measured;
    "thread": models predict in this process's threads (fastest). None: "process" with an
    instance profile, else "thread"."""
    workers_per_model: int | None = Field(default=None, ge=1)
    """Worker processes per loaded model (None: $SAGEMAKER_MODEL_SERVER_WORKERS, else 1)."""
    job_queue_size: int | None = Field(default=None, ge=1)
    """Requests queued per model in process mode before 503 (None: $SAGEMAKER_MODEL_JOB_QUEUE_SIZE,
    else Multi Model Server's 100)."""
    cpu_emulation: Literal["auto", "quota", "affinity", "none"] | None = None
    """CPU allowance of the server's processes: "quota" (a cgroup CPU quota; "auto" is the same),
    "affinity" (whole cores), "none"; each falls back to the next where the host refuses it.
    None: "auto" with an instance profile, else "none"."""
    cpu_scale: float | None = Field(default=None, gt=0)
    """Emulated CPUs per instance vCPU (None: what fits the instance on this host, at most 1)."""
    header_read_timeout_s: float = Field(default=30.0, gt=0)
    """Time a client gets to send a request's headers once it started it (then 400, closed)."""
    body_read_timeout_s: float = Field(default=30.0, gt=0)
    """Time a client gets to send a request's whole body after its headers, its first byte
    included (then 400 ValidationError, 408 on the container API; the connection is closed)."""
    keep_alive_timeout_s: float = Field(default=75.0, gt=0)
    """Time an idle connection stays open, before its first request or between requests
    (longer than SDK idle pools, so clients rarely meet closed sockets)."""

    @classmethod
    def from_options(
        cls,
        *,
        repository: str = ".",
        memory_budget: int | str | None = None,
        per_model_overhead: int | str | None = None,
        max_payload: int | str = DEFAULT_MAX_PAYLOAD_BYTES,
        server_options: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> ServerConfig:
        """The config from the endpoints' keyword options (sizes as bytes or ``"512MiB"``),
        checked, so a bad option fails before anything starts."""
        values: dict[str, Any] = {
            "repository": repository,
            "memory_budget_bytes": None if memory_budget is None else parse_size(memory_budget),
            "per_model_overhead_bytes": None if per_model_overhead is None else parse_size(per_model_overhead),
            "max_payload_bytes": parse_size(max_payload),
            **fields,
            **(server_options or {}),  # server_options win, as they always have
        }
        return cls(**values).check()

    def with_repository(self, repository: str) -> ServerConfig:
        """The same options serving ``repository``."""
        return type(self)(**{**self.model_dump(), "repository": repository}).check()

    def profile(self) -> InstanceProfile | None:
        """The emulated instance profile, if any (ConfigurationError for unknown names)."""
        if self.instance_profile is None:
            return None
        return DEFAULT_CATALOG.get(self.instance_profile)

    def effective_budget(self) -> int | None:
        """The model-cache budget: the explicit one, else the profile's, else None (no limit)."""
        if self.memory_budget_bytes is not None:
            return self.memory_budget_bytes
        profile = self.profile()
        return profile.memory_budget_bytes if profile is not None else None

    def effective_overhead(self) -> int:
        """Bytes charged per loaded model beyond its own (process workers: 0, their memory is measured)."""
        if self.per_model_overhead_bytes is not None:
            return self.per_model_overhead_bytes
        if self.effective_worker_mode() == "process":
            return 0
        profile = self.profile()
        return profile.per_model_overhead_bytes if profile is not None else 0

    def effective_inference_threads(self) -> int:
        """Threads of the inference pool (CPU is not emulated: never more than host cores)."""
        if self.inference_threads is not None:
            return self.inference_threads
        cores = os.cpu_count() or 1
        profile = self.profile()
        return max(1, min(profile.vcpus, cores) if profile is not None else cores)

    def effective_worker_mode(self) -> Literal["process", "thread"]:
        if self.worker_mode is not None:
            return self.worker_mode
        return "process" if self.instance_profile is not None else "thread"

    def effective_workers_per_model(self) -> int:
        return self.workers_per_model or _env_int(*WORKERS_ENV) or DEFAULT_WORKERS_PER_MODEL

    def effective_job_queue_size(self) -> int:
        return self.job_queue_size or _env_int(JOB_QUEUE_SIZE_ENV) or DEFAULT_JOB_QUEUE_SIZE

    def cpu_request(self) -> tuple[Literal["auto", "quota", "affinity", "none"], float | None, float]:
        """(mechanism, CPUs of the allowance or None, scale): the profile's vCPUs x scale."""
        from mmeperf.endpoints.local.cpu import default_scale, host_cpus

        profile = self.profile()
        mechanism = self.cpu_emulation or ("auto" if profile is not None else "none")
        if profile is not None:
            scale = self.cpu_scale or default_scale(profile.vcpus)
            return mechanism, profile.vcpus * scale, scale
        scale = self.cpu_scale or 1.0
        return mechanism, (None if mechanism == "none" else host_cpus() * scale), scale

    def check(self) -> ServerConfig:
        """Validate combinations pydantic cannot; returns self."""
        self.profile()
        if self.workers != 1:
            raise ConfigurationError(
                f"Expected --workers 1, received {self.workers}: the local MME is one process "
                "whose inference threads already use every core (XGBoost, ONNX Runtime and "
                "torch release the GIL while predicting); several processes would each need "
                "their own cache and budget, which is not how one SageMaker instance behaves"
            )
        return self
