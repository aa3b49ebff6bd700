"""The instances of a multi-instance local MME: each one a whole single-instance server process
(``python -m mmeperf.endpoints.local``: its own cache, budget, threads and counters), started,
routed to, drained and stopped by the front (:mod:`.front`), which runs this on its event loop.

Requests are forwarded over the shared keep-alive transport (:mod:`mmeperf.endpoints._http`) from
a thread pool; answers are read by :func:`mmeperf.protocol.parse_answer` (the one parser) for the
router's bookkeeping and passed on unchanged but for ``x-mmeperf-instance``, which names the
instance (``<host>:<pid>``, the value the instance itself writes). Metrics are the instances' own
``ServerMetrics`` aggregated as CloudWatch aggregates an endpoint variant's (:class:`FleetMetrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mmeperf.cloud.autoscaling import AutoscalingPolicy
from mmeperf.endpoints._http import NO_ANSWER, HttpClient, HttpResponse
from mmeperf.endpoints.local.autoscaling import Autoscaler, LocalAutoscaling, Timeline
from mmeperf.endpoints.local.config import ServerConfig
from mmeperf.endpoints.local.router import Router, RoutingConfig
from mmeperf.errors import ConfigurationError, EndpointNotReadyError
from mmeperf.metrics import LATENCY_FIELDS, LatencyStat, ServerMetrics
from mmeperf.protocol import HEADER_ERROR_TYPE, HEADER_INSTANCE, CacheState, parse_answer

__all__ = ["Fleet", "FleetConfig", "FleetMetrics", "Instance", "InstanceState", "aggregate"]

log = logging.getLogger("mmeperf.fleet")

#: Request headers not passed on (the forwarding connection has its own).
_HOP_BY_HOP = frozenset({"host", "content-length", "connection", "keep-alive", "transfer-encoding",
                         "expect", "te", "upgrade", "proxy-connection"})
#: Answer headers the front writes itself (uvicorn adds Date; the length is the body's).
_NOT_RETURNED = _HOP_BY_HOP | {"date", "server", HEADER_INSTANCE}

#: What a model listing can fail with (the instance went away, or answered nonsense).
_SYNC_ERRORS: tuple[type[BaseException], ...] = (*NO_ANSWER, ValueError, KeyError)

# An instance dies with the front (Linux): PR_SET_PDEATHSIG survives exec. Spawned from the
# event loop's thread, which lives as long as the front.
_BOOTSTRAP = (
    "import os, signal, sys, runpy\n"
    "if sys.platform.startswith('linux'):\n"
    "    import ctypes\n"
    "    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\n"
    "    if os.getppid() != int(os.environ['MMEPERF_FRONT_PID']): sys.exit(0)\n"
    "sys.argv[0] = 'mmeperf-instance'\n"
    "runpy.run_module('mmeperf.endpoints.local', run_name='__main__', alter_sys=True)\n"
)


class FleetConfig(BaseModel):
    """Every option of a multi-instance local MME."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    server: ServerConfig
    """Each instance's options (passed through whole); ``host``/``port`` are the front's."""
    instance_count: int = Field(default=1, ge=1)
    """Instances started with the endpoint (the variant's InitialInstanceCount)."""
    routing: RoutingConfig = RoutingConfig()
    autoscaling: LocalAutoscaling | None = None
    """Target tracking on InvocationsPerInstance (None: a fixed instance count)."""
    scaling_log: str | None = None
    """JSON lines file the scaling timeline is appended to as it happens."""
    model_sync_s: float = Field(default=1.0, gt=0)
    """How often the front reads each instance's model listing (instances unload by LRU)."""
    forward_threads: int = Field(default=64, ge=1)
    """Threads forwarding requests (each keeps a connection to each instance)."""
    instance_start_timeout_s: float = Field(default=120.0, gt=0)
    """Longest an instance may take to start before it counts as failed."""
    request_timeout_s: float = Field(default=70.0, gt=0)
    """Longest the front waits for an instance's answer."""
    drain_timeout_s: float = Field(default=60.0, ge=0)
    """Longest a removed instance's requests in flight get before it is stopped anyway."""

    @classmethod
    def from_options(
        cls,
        server: ServerConfig,
        *,
        instance_count: int = 1,
        autoscaling: AutoscalingPolicy | LocalAutoscaling | Mapping[str, Any] | None = None,
        fleet_options: Mapping[str, Any] | None = None,
    ) -> FleetConfig:
        """The config from ``LocalEndpoint``'s options: a bare ``AutoscalingPolicy`` is
        evaluated AWS's way (one-minute datapoints); ``fleet_options`` sets any other field."""
        if isinstance(autoscaling, AutoscalingPolicy):
            autoscaling = LocalAutoscaling(policy=autoscaling)
        try:
            return cls.model_validate({"server": server, "instance_count": instance_count,
                                       "autoscaling": autoscaling, **(fleet_options or {})})
        except ValueError as exc:
            raise ConfigurationError(f"Invalid multi-instance options: {exc}") from exc

    def instance_config(self) -> ServerConfig:
        """An instance's config: the same options, on a free loopback port."""
        return type(self.server)(**{**self.server.model_dump(), "host": "127.0.0.1", "port": 0}).check()


class FleetMetrics(ServerMetrics):
    """The variant's metrics as CloudWatch aggregates them across instances: counts and latency
    sums are Sums (including instances already removed), ``loaded_model_count`` is the Sum of
    LoadedModelCount (its Average is ``loaded_model_count_average``), utilizations are Averages
    over the instances in service. ``ServerMetrics.model_validate`` reads it as the aggregate."""

    instance_count: int = 0
    """Instances in service."""
    loaded_model_count_average: float | None = None
    """LoadedModelCount, Average across the instances in service."""
    invocations_per_instance: float = 0.0
    """InvocationsPerInstance, Sum since start (each request adds 1/instances in service)."""
    instances: dict[str, ServerMetrics] = Field(default_factory=dict)
    """Each instance in service or draining, by ``<host>:<pid>``."""
    retired: dict[str, ServerMetrics] = Field(default_factory=dict)
    """The last snapshot of each removed instance (its counts stay in the Sums)."""
    routes: dict[str, int] = Field(default_factory=dict)
    """Routing decisions by kind (affinity, hot_spread, new_model, random)."""
    front_invocations: int = 0
    """Invocations the front answered itself (no instance in service, body over the limit, an
    instance that did not answer); counted in the Sums too."""


def _sum_latency(stats: list[LatencyStat]) -> LatencyStat:
    return LatencyStat(count=sum(s.count for s in stats), sum_us=sum(s.sum_us for s in stats),
                       max_us=max((s.max_us for s in stats), default=0.0))


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def aggregate(
    live: Mapping[str, ServerMetrics],
    retired: Mapping[str, ServerMetrics] | None = None,
    *,
    front: ServerMetrics | None = None,
    **extra: Any,
) -> FleetMetrics:
    """CloudWatch's view of several instances (see :class:`FleetMetrics`)."""
    retired = dict(retired or {})
    counted = [*live.values(), *retired.values(), *([front] if front is not None else [])]
    live_list = list(live.values())
    budgets = [m.memory_budget_bytes for m in live_list if m.memory_budget_bytes is not None]
    loaded = sum(m.loaded_model_count for m in live_list)
    values: dict[str, Any] = {
        "timestamp": time.time(),
        "invocations": sum(m.invocations for m in counted),
        "invocation_4xx_errors": sum(m.invocation_4xx_errors for m in counted),
        "invocation_5xx_errors": sum(m.invocation_5xx_errors for m in counted),
        "model_cache_hits": sum(m.model_cache_hits for m in counted),
        "model_cache_lookups": sum(m.model_cache_lookups for m in counted),
        "model_loads": sum(m.model_loads for m in counted),
        "model_unloads": sum(m.model_unloads for m in counted),
        "loaded_model_count": loaded,
        "cpu_utilization": _mean([m.cpu_utilization for m in live_list]),
        "memory_utilization": _mean([m.memory_utilization for m in live_list]),
        "disk_utilization": _mean([m.disk_utilization for m in live_list]),
        "memory_budget_bytes": sum(budgets) if budgets else None,
        "memory_used_bytes": sum(m.memory_used_bytes or 0 for m in live_list),
        "loaded_model_count_average": loaded / len(live_list) if live_list else None,
        "instances": dict(live),
        "retired": retired,
        **extra,
    }
    for field in LATENCY_FIELDS.values():
        values[field] = _sum_latency([getattr(m, field) for m in counted])
    return FleetMetrics(**values)


class InstanceState(StrEnum):
    PENDING = "pending"
    IN_SERVICE = "in_service"
    DRAINING = "draining"
    STOPPED = "stopped"
    FAILED = "failed"


class Instance:
    """One instance: a server process on a loopback port."""

    def __init__(self, config: ServerConfig, ordinal: int, work_dir: Path, *, request_timeout_s: float) -> None:
        self.config = config
        self.ordinal = ordinal
        self.state = InstanceState.PENDING
        self.inflight = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self._work = work_dir / f"instance-{ordinal}"
        self._work.mkdir(parents=True, exist_ok=True)
        self._ready = self._work / "ready.json"
        self._log_path = self._work / "server.log"
        self._request_timeout_s = request_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.client: HttpClient | None = None
        self.port: int | None = None
        self.started_at = time.time()
        self.in_service_at: float | None = None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def instance_id(self) -> str:
        """``<host>:<pid>``: what ``x-mmeperf-instance`` says (the instance's own value)."""
        return f"{self.config.host}:{self.pid}"

    def spawn(self) -> None:
        """Start the process (returns at once; :meth:`wait_ready` waits for it)."""
        cmd = [sys.executable, "-c", _BOOTSTRAP, "--config", self.config.model_dump_json(),
               "--ready-file", str(self._ready)]
        with self._log_path.open("wb") as log_file:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the front, which stops instances in order
                env={**os.environ, "MMEPERF_FRONT_PID": str(os.getpid())},
            )

    async def wait_ready(self, timeout_s: float, pool: ThreadPoolExecutor) -> None:
        """Wait for the ready file and a 200 on ``/ping``; EndpointNotReadyError otherwise."""
        assert self.proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.client is None:
            if self.proc.poll() is not None:
                raise EndpointNotReadyError(
                    f"Instance {self.instance_id} exited with status {self.proc.returncode} before it "
                    f"was ready:\n{self.log_tail()}")
            if self._ready.exists():
                self.port = int(json.loads(self._ready.read_text())["port"])
                self.client = HttpClient("127.0.0.1", self.port, timeout_s=self._request_timeout_s)
            elif loop.time() > deadline:
                raise EndpointNotReadyError(
                    f"Instance {self.instance_id} did not start within {timeout_s:g} s:\n{self.log_tail()}")
            else:
                await asyncio.sleep(0.02)
        client = self.client
        while True:
            try:
                status = (await loop.run_in_executor(pool, lambda: client.request("GET", "/ping", timeout=5))).status
                if status == 200:
                    return
            except NO_ANSWER:
                pass
            if loop.time() > deadline:
                raise EndpointNotReadyError(f"Instance {self.instance_id} did not answer /ping within {timeout_s:g} s")
            await asyncio.sleep(0.05)

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self._log_path.read_bytes()[-n:].decode("utf-8", "replace") or "(no output)"
        except OSError:
            return "(no output)"

    def begin(self) -> None:
        self.inflight += 1
        self.idle.clear()

    def end(self) -> None:
        self.inflight -= 1
        if self.inflight == 0:
            self.idle.set()

    def stop(self, grace_s: float) -> None:
        """SIGTERM (the server finishes what it has), SIGKILL after ``grace_s``. Blocking."""
        if self.client is not None:
            self.client.close()
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass


class Fleet:
    """The instances of one endpoint, the router in front of them and (optionally) the
    autoscaler that changes their number. Lives on one event loop (the front's)."""

    def __init__(self, config: FleetConfig) -> None:
        self.config = config
        self.router = Router(config.routing)
        self.timeline = Timeline(config.scaling_log)
        self.instances: dict[str, Instance] = {}
        self.retired: dict[str, ServerMetrics] = {}
        self._instance_config = config.instance_config()
        self._work = Path(tempfile.mkdtemp(prefix="mmeperf-fleet-", dir=config.server.cache_dir))
        self._pool = ThreadPoolExecutor(max_workers=config.forward_threads, thread_name_prefix="mmeperf-forward")
        self._ordinal = 0
        self._ipi = 0.0  # InvocationsPerInstance accumulated since the autoscaler's last datapoint
        self._ipi_total = 0.0
        self._front = _FrontCounters()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._autoscaler: Autoscaler | None = None
        self._closing = False

    # --- capacity -----------------------------------------------------------------------------

    def _live(self, *states: InstanceState) -> list[Instance]:
        return [i for i in self.instances.values() if i.state in states]

    @property
    def in_service(self) -> int:
        return len(self._live(InstanceState.IN_SERVICE))

    @property
    def desired(self) -> int:
        """Instances in service or starting (the variant's desired count)."""
        return len(self._live(InstanceState.IN_SERVICE, InstanceState.PENDING))

    @property
    def busy(self) -> bool:
        """A scaling activity is in progress (an instance starting or draining)."""
        return bool(self._live(InstanceState.PENDING, InstanceState.DRAINING))

    def take_invocations_per_instance(self) -> float:
        value, self._ipi = self._ipi, 0.0
        return value

    async def start(self) -> None:
        """Start ``instance_count`` instances at once and return when all serve (the first
        failure stops the others and raises), then start the autoscaler and the model sync."""
        starting = [self._spawn("initial instance") for _ in range(self.config.instance_count)]
        results = await asyncio.gather(*(self._bring_up(i) for i in starting), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self.stop()
            raise failures[0]
        self._background(self._sync_models())
        if self.config.autoscaling is not None:
            self._autoscaler = Autoscaler(self, self.config.autoscaling)
            self._autoscaler.start()

    def _spawn(self, cause: str) -> Instance:
        instance = Instance(self._instance_config, self._ordinal, self._work,
                            request_timeout_s=self.config.request_timeout_s)
        self._ordinal += 1
        instance.spawn()
        self.instances[instance.instance_id] = instance
        self.timeline.add("instance_pending", cause, instance=instance.instance_id,
                          in_service=self.in_service)
        return instance

    async def _bring_up(self, instance: Instance) -> None:
        try:
            await instance.wait_ready(self.config.instance_start_timeout_s, self._pool)
        except Exception as exc:
            instance.state = InstanceState.FAILED
            self.timeline.add("instance_failed", str(exc).splitlines()[0], instance=instance.instance_id,
                              in_service=self.in_service)
            await asyncio.get_running_loop().run_in_executor(None, instance.stop, 1.0)
            self.instances.pop(instance.instance_id, None)
            raise
        if self._closing or instance.state is not InstanceState.PENDING:
            return
        instance.state = InstanceState.IN_SERVICE
        instance.in_service_at = time.time()
        self.router.add_instance(instance.instance_id)
        self.timeline.add("instance_in_service", f"started cold in {instance.in_service_at - instance.started_at:.2f} s",
                          instance=instance.instance_id, in_service=self.in_service)

    async def scale_to(self, desired: int, cause: str) -> None:
        """Add instances (started cold) or drain and remove some until ``desired`` serve."""
        if desired > self.desired:
            new = [self._spawn(cause) for _ in range(desired - self.desired)]
            await asyncio.gather(*(self._bring_up(i) for i in new), return_exceptions=True)
        while self.desired > desired and self.in_service:
            await self._remove_one(cause)

    async def _remove_one(self, cause: str) -> None:
        """Drain one instance in service (a starting one is left to finish starting)."""
        candidates = self._live(InstanceState.IN_SERVICE)
        if not candidates:
            return
        # The newest of the least busy: it holds the fewest warm models the longest.
        victim = min(candidates, key=lambda i: (i.inflight, -i.ordinal))
        await self.drain(victim, cause)

    async def drain(self, instance: Instance, cause: str) -> None:
        """Stop routing to ``instance``, let its requests finish, keep its last counts, stop it."""
        self.router.remove_instance(instance.instance_id)
        instance.state = InstanceState.DRAINING
        self.timeline.add("instance_draining", cause, instance=instance.instance_id, in_service=self.in_service)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(instance.idle.wait(), self.config.drain_timeout_s)
        snapshot = await self._snapshot(instance)
        if snapshot is not None:
            self.retired[instance.instance_id] = snapshot
        grace = self.config.server.graceful_shutdown_s + 5
        await asyncio.get_running_loop().run_in_executor(None, instance.stop, grace)
        instance.state = InstanceState.STOPPED
        self.instances.pop(instance.instance_id, None)
        self.timeline.add("instance_stopped", cause, instance=instance.instance_id, in_service=self.in_service)

    async def stop(self) -> None:
        """Stop the autoscaler and every instance (by PID: SIGTERM, then SIGKILL)."""
        self._closing = True
        if self._autoscaler is not None:
            await self._autoscaler.stop()
        for task in list(self._tasks):
            task.cancel()
        grace = self.config.server.graceful_shutdown_s + 5
        instances = list(self.instances.values())
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(None, i.stop, grace) for i in instances),
                             return_exceptions=True)
        self.instances.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)
        import shutil

        shutil.rmtree(self._work, ignore_errors=True)

    def _background(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sync_models(self) -> None:
        """Read each instance's listing: the router learns what LRU unloaded."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.config.model_sync_s)
            for instance in self._live(InstanceState.IN_SERVICE):
                client = instance.client
                if client is None:
                    continue
                try:
                    models = await loop.run_in_executor(self._pool, _list_models, client)
                except _SYNC_ERRORS:
                    continue
                self.router.sync_models(instance.instance_id, models)

    # --- requests ---------------------------------------------------------------------------

    async def forward(self, model: str, path: str, body: bytes, headers: dict[str, str]) -> HttpResponse:
        """Route one runtime invocation for ``model`` and return the instance's answer (or the
        front's own error when no instance can take it)."""
        route = self.router.choose(model)
        if route is None:
            return self._front.reply(503, "ServiceUnavailable", "No instance of the endpoint is in service.")
        self._ipi += 1.0 / max(1, self.in_service)
        self._ipi_total += 1.0 / max(1, self.in_service)
        instance = self.instances[route.instance_id]
        client = instance.client
        assert client is not None
        instance.begin()
        started = time.perf_counter()
        try:
            answer = await asyncio.get_running_loop().run_in_executor(
                self._pool, lambda: client.request("POST", path, body, headers))
        except NO_ANSWER as exc:
            self.router.forget(route.instance_id, model)
            return self._front.reply(500, "InternalFailure", f"Instance {route.instance_id} did not answer: {exc}")
        finally:
            instance.end()
            self.router.finish(route.instance_id, model)
        result = parse_answer(answer.status, answer.headers, b"", time.perf_counter() - started)
        if result.cache is CacheState.UNKNOWN and not result.ok:
            self.router.forget(route.instance_id, model)  # refused before the model was reached
        out = {k: v for k, v in answer.headers.items() if k not in _NOT_RETURNED}
        out[HEADER_INSTANCE] = route.instance_id
        return HttpResponse(answer.status, out, answer.body)

    def count_front_reply(self, status: int) -> None:
        """An invocation the front answered without an instance (counted as one)."""
        self._front.count(status)

    # --- metrics ----------------------------------------------------------------------------

    async def _snapshot(self, instance: Instance) -> ServerMetrics | None:
        client = instance.client
        if client is None:
            return None
        try:
            answer = await asyncio.get_running_loop().run_in_executor(
                self._pool, lambda: client.request("GET", "/mmeperf/metrics", timeout=10))
        except NO_ANSWER:
            return None
        if answer.status != 200:
            return None
        return ServerMetrics.model_validate_json(answer.body)

    async def metrics(self) -> FleetMetrics:
        """Every live instance's snapshot, aggregated (removed instances keep their counts)."""
        live = [i for i in self.instances.values()
                if i.state in (InstanceState.IN_SERVICE, InstanceState.DRAINING)]
        snaps = await asyncio.gather(*(self._snapshot(i) for i in live))
        current = {i.instance_id: s for i, s in zip(live, snaps, strict=True) if s is not None}
        return aggregate(
            current, self.retired, front=self._front.snapshot(),
            instance_count=self.in_service, invocations_per_instance=self._ipi_total,
            routes={str(k): v for k, v in self.router.routes.items()},
            front_invocations=self._front.invocations,
        )

    def status(self) -> dict[str, Any]:
        """The fleet's own view: instances, what each holds, routing and scaling settings."""
        return {
            "endpoint_name": self.config.server.endpoint_name,
            "instance_count": self.in_service,
            "desired_instance_count": self.desired,
            "routing": self.config.routing.model_dump(mode="json"),
            "autoscaling": None if self.config.autoscaling is None else self.config.autoscaling.model_dump(mode="json"),
            "instances": [
                {
                    "instance": i.instance_id, "ordinal": i.ordinal, "pid": i.pid, "port": i.port,
                    "state": str(i.state), "inflight": i.inflight,
                    "models": sorted(v.models) if (v := self.router.view(i.instance_id)) else [],
                    "started_at": i.started_at, "in_service_at": i.in_service_at,
                }
                for i in sorted(self.instances.values(), key=lambda i: i.ordinal)
            ],
            "retired": sorted(self.retired),
            "routes": {str(k): v for k, v in self.router.routes.items()},
        }

    def loaded_models(self) -> dict[str, list[str]]:
        """Model -> instances holding it, as the router knows it."""
        held: dict[str, list[str]] = {}
        for instance_id in self.router.instance_ids:
            view = self.router.view(instance_id)
            for model in sorted(view.models if view else ()):
                held.setdefault(model, []).append(instance_id)
        return held


def _list_models(client: HttpClient) -> list[str]:
    names: list[str] = []
    token: str | None = None
    while True:
        answer = client.request("GET", "/models" + (f"?next_page_token={token}" if token else ""), timeout=10)
        if answer.status != 200:
            raise ValueError(f"GET /models answered {answer.status}")
        doc = json.loads(answer.body)
        names.extend(m["modelName"] for m in doc["models"])
        token = doc.get("nextPageToken")
        if not token:
            return names


class _FrontCounters:
    """Invocations the front answers itself (never reaching an instance)."""

    def __init__(self) -> None:
        self.invocations = 0
        self.errors_4xx = 0
        self.errors_5xx = 0

    def count(self, status: int) -> None:
        self.invocations += 1
        if 400 <= status < 500:
            self.errors_4xx += 1
        elif status >= 500:
            self.errors_5xx += 1

    def reply(self, status: int, code: str, message: str) -> HttpResponse:
        self.count(status)
        return HttpResponse(status, {"content-type": "application/json", HEADER_ERROR_TYPE: code},
                            json.dumps({"Message": message}).encode())

    def snapshot(self) -> ServerMetrics:
        return ServerMetrics(timestamp=time.time(), invocations=self.invocations,
                             invocation_4xx_errors=self.errors_4xx, invocation_5xx_errors=self.errors_5xx)
