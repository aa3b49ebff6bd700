"""A seeded discrete-event simulation (SimPy) of MME instances under a LoadProfile's traffic.

One instance: a front end that answers 503 beyond ``max_concurrent_requests``; a cache of models
under a byte budget with LRU unloads of idle models (a model with a request queued, in service
or waiting for its load is never unloaded) and single-flight loads run by ``load_concurrency``
loaders, each load's room reserved as soon as it is asked for (before it waits for a loader); per-model worker queues (``workers_per_model``) and ``vcpus`` concurrent inferences.
N instances are routed as SageMaker routes an MME: to an instance that holds (or is loading) the
target model, the least busy of them; a model no instance holds goes to the least busy instance,
and so does a hot model whose holders are all busy (``replicate_at_inflight``).

With a :class:`HostModel` the simulation also mirrors where the local MME (thread mode) and its
load client spend CPU on one host: the client is one thread (Locust's gevent loop) that spends
``client_cpu_s`` per request, half to send and half to read the answer; the server is one
process whose Python threads share one GIL, i.e. at most ``server_cores`` of CPU, processor-shared
between the event loop (a single FIFO server: HTTP, decode, the inline compiled predict, encode,
``request_cpu_s`` per request) and the loader threads (``load_cpu_s`` per load: read, parse, the
first request's predict, the fast path's compile). A load's duration is then its CPU work
stretched by what else the server runs; a finished load frees its loader thread at once and puts
the model in service when the event loop comes to it, behind the requests queued there (the
local MME completes a load in a coroutine on its loop: until then the model's room is reserved,
not loaded, and its requests miss). A load's CPU on the request's path is at most what the
measured unloaded cold latency leaves room for; the rest runs beside it, on a core of its own
(``HostModel.unloaded_cold_latency``). A request's latency holds the queues at both ends.
A shared host's CPU is not a constant either: every CPU stage runs ``speed_ratio`` (or the
``speed_trace`` at the time) times its calibrated CPU, and work a thread starts after sleeping
runs ``idle_slowdown`` times longer (both measured by :mod:`mmeperf.planner.hostspeed`).
Latency is timed as the client times it (``HostModel.stamped``): by default from the request's
bytes handed to the kernel to the answer's kernel receive stamp (:mod:`mmeperf.load.rxstamp`),
so the client's queue delays the next send, not the latency; with user-space timing the read's
queue is in the latency too.

The same seed gives the same result: every random draw comes from numpy streams spawned from
the seed, and SimPy orders simultaneous events by scheduling order.
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from simpy import Environment
from simpy.events import Event, Timeout

from mmeperf.endpoints.local.config import FAST_PATH_AFTER_USES
from mmeperf.errors import ConfigurationError
from mmeperf.load.profile import LoadProfile, OpenLoopShape
from mmeperf.load.traffic import Traffic
from mmeperf.planner.calibration import Calibration, Distribution, Source
from mmeperf.planner.result import Records, SimulationResult

__all__ = ["HostModel", "InstanceConfig", "ModelSpec", "Simulation", "SimulationResult", "popularity_of"]

# Status codes a simulated request can end with (0: client timeout, as Locust records it).
OK, TIMEOUT, NOT_READY, UNAVAILABLE, CANCELLED = 200, 0, 429, 503, -1
_ERROR_CODES = {TIMEOUT: "Timeout", NOT_READY: "ModelNotReadyException", UNAVAILABLE: "ServiceUnavailable",
                CANCELLED: "CancelledAtStop"}
_BLOCK = 2048


class InstanceConfig(BaseModel):
    """One simulated MME instance. Defaults are the local MME's own (``ServerConfig``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vcpus: int = Field(ge=1)
    """Inferences that run at once (the instance's vCPUs, or the local MME's inference threads)."""
    memory_budget_bytes: int | None = Field(default=None, ge=0)
    """Bytes loaded models may hold; None: no limit (nothing is ever unloaded)."""
    workers_per_model: int | None = Field(default=None, ge=1)
    """Requests of one model served at once (MMS workers per model); None: no per-model limit."""
    load_concurrency: int = Field(default=4, ge=1)
    """Loads that run at once (the local MME's ``loader_threads`` default)."""
    max_concurrent_requests: int = Field(default=4096, ge=1)
    """Requests in progress beyond which the instance answers 503 (the local MME's default)."""
    model_load_wait_s: float = Field(default=60.0, gt=0)
    """Longest a request waits for its model's load before a 429 (the local MME's default)."""
    name: str | None = None
    """Instance type, for labels."""


@dataclass(frozen=True)
class ModelSpec:
    """A simulated model: its service time, size, and load costs."""

    name: str
    service_time: Distribution
    memory_bytes: int
    load_time: Distribution | None = None
    download_time: Distribution | None = None
    unload_time: Distribution | None = None


@dataclass(frozen=True)
class HostModel:
    """CPU stages of the local MME (thread mode) and its load client on one host (seconds of CPU).

    See the module docstring; :meth:`from_calibration` reads the measured figures.
    """

    request_cpu_s: float
    """Server CPU per answered request outside loads (event loop, inline predict, pool predicts)."""
    load_cpu_s: float
    """Server CPU per model load (loader thread: read, parse, first use, compile)."""
    client_cpu_s: float = 0.0
    """Client CPU per request (one client thread)."""
    compile_cpu_s: float = 0.0
    """Server CPU to compile a model's fast path (one compile thread), after ``compile_after_uses``."""
    compile_after_uses: int = FAST_PATH_AFTER_USES
    uncompiled_request_cpu_s: float | None = None
    """Server CPU per answered request of a model whose fast path is not compiled yet (XGBoost's
    own predict); None: ``request_cpu_s`` for every request."""
    """Requests a loaded model serves before its fast path is compiled (ServerConfig.fast_path_after_uses)."""
    unloaded_latency: Distribution | None = None
    """Client-seen latency of a warm request with nothing else in flight (one user): what it holds
    beyond ``client_cpu_s + request_cpu_s`` (loopback, wake-ups on a shared host) is a pure delay,
    paid by requests that find the event loop asleep (a busy loop needs no wake-up)."""
    server_cores: float = 1.0
    """CPU the server's threads can use at once (1: one GIL; CPU-bound Python is serialised)."""
    cpu_share: float = 1.0
    """Share of a core a runnable thread gets (other jobs on the host): CPU work runs 1/share longer
    (evenly, a fluid approximation; used when ``stalls`` is None)."""
    stalls: Distribution | None = None
    """Wall time beyond its CPU that a thread lost while running ``stall_probe_s`` of CPU on this
    host (descheduled for other jobs): a CPU job of w seconds meets one such stall with
    probability min(w / stall_probe_s, 1), so short jobs mostly run clean and a few wait whole
    time slices, and the thread holds its queue while it waits."""
    stall_probe_s: float = 0.002
    unloaded_cold_latency: Distribution | None = None
    """Client-seen latency of a cold request with nothing else running (Calibration's). Its mean
    beyond the unloaded warm latency's mean and the first request's uncompiled predict is the
    room a load has on the request's path: ``load_cpu_s`` up to that runs there, and what it
    leaves is a load's pure delay (reading the disk cache, hand-offs between threads), paid by
    every load. A ``load_cpu_s`` beyond that room runs beside the request on a core of its own
    (the server's CPU per cold request exceeds its cold latency: work after the answer, or
    outside the GIL, as in load-heavy runs whose server used more than one core)."""
    fetch_cpu_s: float = 0.0
    """Server CPU to extract a model's archive into the disk cache, paid by its first load (a
    model already on the disk loads from its folder)."""
    speed_ratio: float = 1.0
    """CPU work takes this many times the figures above: the host's hot speed beside the run
    predicted over its hot speed beside the calibration (:class:`~mmeperf.planner.hostspeed.HostSpeedProbe`,
    reference work CPU now / then); the pure delays are kept as measured."""
    speed_trace: tuple[tuple[float, float], ...] = ()
    """The speed ratio over the run: (seconds from its start, ratio from then on), sorted; before
    the first point and without any, ``speed_ratio``
    (:meth:`~mmeperf.planner.hostspeed.HostSpeedProbe.speed_trace` beside a real run)."""
    idle_slowdown: tuple[tuple[float, float], ...] = ()
    """How much more CPU work takes when the thread doing it (the client; a server process) slept
    before it (this host's measured curve, :mod:`mmeperf.planner.hostspeed`): (seconds asleep,
    factor) points, interpolated, the last factor beyond them; empty: no slowdown. The CPU
    figures above are hot (measured with their threads busy)."""
    wake_delay: tuple[tuple[float, float], ...] = ()
    """Pure delay (seconds) a request pays when it finds the whole server idle, by how long it was
    idle: waking its threads on a host whose cores went idle (this host's measured curve,
    :func:`~mmeperf.planner.calibrate.idle_latency_curve`): (seconds idle, seconds) points,
    interpolated, the last beyond them; empty: none beyond ``unloaded_latency``."""
    stamped: bool = True
    """Latencies as mmeperf times them by default: from the send's bytes handed to the kernel to
    the answer's kernel receive stamp (the client's queues before the send and after the answer
    are outside them). False: timed in user space, from before the send's work to the answer read."""

    def __post_init__(self) -> None:
        figures = (self.request_cpu_s, self.load_cpu_s, self.client_cpu_s, self.compile_cpu_s)
        if (min(figures) < 0 or self.speed_ratio <= 0 or any(r <= 0 for _, r in self.speed_trace)
                or self.server_cores <= 0 or self.compile_after_uses < 1 or not 0 < self.cpu_share <= 1):
            raise ConfigurationError(f"HostModel figures must be >= 0 (server_cores > 0): {self}")

    @classmethod
    def from_calibration(cls, calibration: Calibration) -> HostModel:
        """The calibration's measured request, load and client CPU (ConfigurationError if absent)."""
        missing = [n for n in ("request_cpu_s", "load_cpu_s") if getattr(calibration, n) is None]
        if missing:
            raise ConfigurationError(
                f"The calibration lacks {missing}: calibrate with a warm run (calibrate(..., warm_run=...))"
            )
        assert calibration.request_cpu_s is not None and calibration.load_cpu_s is not None
        client, compile_ = calibration.client_cpu_s, calibration.compile_cpu_s
        return cls(request_cpu_s=calibration.request_cpu_s.value, load_cpu_s=calibration.load_cpu_s.value,
                   client_cpu_s=0.0 if client is None else client.value,
                   compile_cpu_s=0.0 if compile_ is None else compile_.value,
                   unloaded_latency=calibration.unloaded_latency,
                   unloaded_cold_latency=calibration.unloaded_cold_latency,
                   cpu_share=1.0 if calibration.cpu_share is None else max(calibration.cpu_share.value, 1e-3),
                   stalls=calibration.cpu_stalls,
                   stall_probe_s=calibration.stall_probe_s or 0.002,
                   stamped=calibration.latency_timing != "user",
                   uncompiled_request_cpu_s=(None if calibration.uncompiled_request_cpu_s is None
                                             else calibration.uncompiled_request_cpu_s.value),
                   fetch_cpu_s=0.0 if calibration.fetch_cpu_s is None else calibration.fetch_cpu_s.value,
                   idle_slowdown=(() if calibration.idle_slowdown is None
                                  else tuple(calibration.idle_slowdown.points)),
                   wake_delay=() if calibration.wake_delay is None else tuple(calibration.wake_delay.points))


def _ignore(_arg: Any) -> None:
    """The callback of work nothing waits for."""


class _Shared:
    """A processor-sharing CPU: ``n`` jobs each progress at min(1, capacity / n) CPU-seconds per second."""

    __slots__ = ("capacity", "idle_since", "jobs", "last", "share", "sim", "version")

    def __init__(self, sim: Simulation, capacity: float, share: float = 1.0) -> None:
        self.sim, self.capacity, self.share = sim, capacity, share
        self.jobs: list[list[Any]] = []  # [remaining cpu s, callback, argument]
        self.last = 0.0
        self.version = 0
        self.idle_since = -math.inf  # when its last job finished (HostModel.idle_slowdown)

    def _rate(self) -> float:
        return min(1.0, self.capacity / len(self.jobs)) * self.share

    def _advance(self) -> None:
        now = self.sim.env.now
        if self.jobs and now > self.last:
            done = (now - self.last) * self._rate()
            for job in self.jobs:
                job[0] -= done
        self.last = now

    def add(self, work: float, fn: Callable[[Any], None], arg: Any, kind: str = "") -> None:
        self._advance()
        factor = 1.0 if self.jobs else self.sim._woken(self.idle_since)
        self.jobs.append([self.sim._slowed(kind, work, factor), fn, arg])
        self._schedule()

    def _schedule(self) -> None:
        self.version += 1
        if self.jobs:
            head = min(job[0] for job in self.jobs)
            self.sim._at(max(head, 0.0) / self._rate(), self._fire, self.version)

    def _fire(self, ev: Event) -> None:
        if ev.value != self.version:
            return  # the job set changed since this was scheduled
        self._advance()
        finished = [job for job in self.jobs if job[0] <= 1e-12]
        self.jobs = [job for job in self.jobs if job[0] > 1e-12]
        if not self.jobs:
            self.idle_since = self.sim.env.now  # a job its callbacks add starts on a busy CPU
        self._schedule()
        for job in finished:
            job[1](job[2])


class _Fifo:
    """One thread serving jobs in order; its CPU comes from ``cpu`` (a _Shared) or is its own."""

    __slots__ = ("busy", "cpu", "idle_since", "kind", "queue", "share", "sim")

    def __init__(self, sim: Simulation, cpu: _Shared | None, share: float = 1.0, kind: str = "") -> None:
        self.sim, self.cpu, self.share, self.kind = sim, cpu, share, kind
        self.queue: deque[tuple[float, Callable[[Any], None], Any]] = deque()
        self.busy = False
        self.idle_since = -math.inf  # on its own CPU: when it last went idle

    def add(self, work: float, fn: Callable[[Any], None], arg: Any) -> None:
        self.queue.append((work, fn, arg))
        if not self.busy:
            self._next()

    def _next(self) -> None:
        if not self.queue:
            if self.busy:
                self.idle_since = self.sim.env.now
            self.busy = False
            return
        work = self.queue[0][0]
        if self.cpu is None:
            factor = 1.0 if self.busy else self.sim._woken(self.idle_since)
            self.busy = True
            work = self.sim._slowed(self.kind, work, factor)
            self.sim._at(work / self.share + self.sim._stall(work), self._done_event, None)
            return
        self.busy = True
        stall = self.sim._stall(work)
        if stall > 0:
            self.sim._at(stall, self._stalled, work)
        else:
            self.cpu.add(work, self._done, None, self.kind)

    def _stalled(self, ev: Event) -> None:
        assert self.cpu is not None
        self.cpu.add(cast(float, ev.value), self._done, None, self.kind)

    def _done_event(self, _ev: Event) -> None:
        self._done(None)

    def _done(self, _arg: Any) -> None:
        _work, fn, arg = self.queue.popleft()
        self._next()
        fn(arg)


def popularity_of(traffic: Traffic) -> tuple[list[str], list[float]]:
    """Models and their request shares as the load runner would draw them."""
    if traffic.model_column:
        table = traffic.build()
        assert table.row_models is not None
        counts = np.bincount(np.asarray(table.row_models), minlength=len(table.models)).astype(float)
        return list(table.models), (counts / counts.sum()).tolist()
    if not traffic.models:
        raise ConfigurationError("The traffic names no models: give models=[...] or a model_column")
    weights = traffic.model_weights() or [1.0] * len(traffic.models)
    total = float(sum(weights))
    return list(traffic.models), [w / total for w in weights]


class _Draws:
    """Draws of one distribution, generated in vectorised blocks."""

    __slots__ = ("buf", "dist", "i", "rng")

    def __init__(self, dist: Distribution, rng: np.random.Generator) -> None:
        self.dist, self.rng = dist, rng
        self.buf: list[float] = []
        self.i = 0

    def next(self) -> float:
        if self.i >= len(self.buf):
            self.buf = self.dist.sample(self.rng, _BLOCK).tolist()
            self.i = 0
        v = self.buf[self.i]
        self.i += 1
        return v


class _Req:
    __slots__ = ("cold", "done", "idle_s", "inst", "model", "sent", "service_s", "stage", "user", "wait_s", "wake")

    def __init__(self, model: int, sent: float, stage: int, user: _User | None) -> None:
        self.model = model
        self.sent = sent
        self.stage = stage
        self.user = user
        self.cold = False
        self.done = False  # the client has its answer (or gave up)
        self.service_s = 0.0
        self.inst: _Instance | None = None
        self.wait_s = 0.0
        self.wake = False  # it found the server's event loop asleep (host model)
        self.idle_s = 0.0  # how long the whole server had been idle when it arrived (host model)


class _User:
    __slots__ = ("alive",)

    def __init__(self) -> None:
        self.alive = True


class _Instance:
    def __init__(self, sim: Simulation, index: int, n_models: int) -> None:
        cfg = sim.instance
        self.sim = sim
        self.index = index
        self.status = [0] * n_models  # 0 absent, 1 loading, 2 loaded
        self.holders = [0] * n_models  # requests waiting for, queued at or in service by the model
        self.busy = [0] * n_models  # per-model workers taken
        self.backlog: list[deque[_Req] | None] = [None] * n_models
        self.waiters: list[list[_Req] | None] = [None] * n_models
        self.lru: OrderedDict[int, None] = OrderedDict()
        self.on_disk: set[int] = set()
        self.used = 0
        self.budget = cfg.memory_budget_bytes
        self.wpm = cfg.workers_per_model
        self.cpu_free = cfg.vcpus
        self.cpu_queue: deque[_Req] = deque()
        self.room_queue: deque[int] = deque()  # loads waiting for room in the budget
        self.load_queue: deque[int] = deque()  # loads with their room reserved, waiting for a loader
        self.loader_free = cfg.load_concurrency
        self.inflight = 0
        self.loaded = 0
        host = sim.host
        share = 1.0 if host is None or host.stalls is not None else host.cpu_share
        self.cpu = _Shared(sim, host.server_cores, share) if host is not None else None
        self.loop = _Fifo(sim, self.cpu, kind="request") if host is not None else None
        self.compiler = _Fifo(sim, self.cpu, kind="compile") if host is not None else None
        # A load's CPU beyond its room on the request's path (HostModel.unloaded_cold_latency):
        # on a core of its own where the instance has one beside the server's, else shared.
        beside_cpu = None if host is None or cfg.vcpus > host.server_cores else self.cpu
        self.beside = _Fifo(sim, beside_cpu, share, kind="load") if host is not None else None
        self.uses = [0] * n_models  # requests served since the model's load (host model)
        self.compiled = [False] * n_models  # its fast path compiled since its load (host model)
        self.load_started: dict[int, float] = {}
        self.load_cpu: dict[int, float] = {}  # a load's CPU seconds (host model)


class Simulation:
    """Simulate ``instances`` MME instances under ``profile`` with models from a calibration.

    ``models``: the simulated models (see :meth:`from_calibration`); ``weights``: each one's share
    of the requests (default: the profile's traffic). ``overhead``: per-request front-end time
    added to every answer. ``replicate_at_inflight``: route a model's request to the least busy
    instance when every instance holding it has at least this many requests in progress.
    ``host``: simulate the host's CPU stages (see :class:`HostModel`) in place of per-model
    service times and ``overhead``. ``warm_start``: begin as an endpoint in service, each
    instance holding the most requested models that fit (spread over the instances in turn),
    every model on disk; else every cache starts empty, as a fresh endpoint's.
    """

    def __init__(
        self,
        profile: LoadProfile,
        models: Sequence[ModelSpec],
        *,
        instance: InstanceConfig,
        instances: int = 1,
        weights: Sequence[float] | None = None,
        overhead: Distribution | None = None,
        replicate_at_inflight: int | None = None,
        seed: int = 0,
        host: HostModel | None = None,
        warm_start: bool = False,
    ) -> None:
        if instances < 1:
            raise ConfigurationError(f"instances must be >= 1, received {instances}")
        if not models:
            raise ConfigurationError("The simulation needs at least one model")
        self.profile = profile
        self.models = list(models)
        self.instance = instance
        self.instance_count = instances
        self.overhead = overhead
        self.replicate_at_inflight = replicate_at_inflight
        self.seed = seed
        self.host = host
        self.warm_start = warm_start
        if weights is None:
            names, shares = popularity_of(profile.traffic)
            by_name = dict(zip(names, shares, strict=True))
            missing = [m.name for m in self.models if m.name not in by_name]
            if missing:
                raise ConfigurationError(f"The profile's traffic does not target {missing[:5]}")
            weights = [by_name[m.name] for m in self.models]
        if len(weights) != len(self.models) or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ConfigurationError("weights must be >= 0, one per model, with a positive sum")
        self.weights = [float(w) for w in weights]
        budget = instance.memory_budget_bytes
        if budget is not None:
            too_big = [m.name for m in self.models if m.memory_bytes > budget]
            if too_big:
                raise ConfigurationError(
                    f"{len(too_big)} models are larger than the memory budget ({budget} bytes), e.g. {too_big[0]!r}"
                )

    @classmethod
    def from_calibration(
        cls,
        calibration: Calibration,
        profile: LoadProfile,
        *,
        instance: InstanceConfig,
        instances: int = 1,
        model_names: Sequence[str] | None = None,
        weights: Sequence[float] | None = None,
        model_bytes: int | None = None,
        **kwargs: Any,
    ) -> Simulation:
        """Models named by the profile's traffic (or ``model_names``), calibrated one by one.

        A model the calibration does not know takes the all-model service time and memory
        (replicating calibrated models to any model count). ``model_bytes`` overrides every size.
        """
        if model_names is None:
            model_names, shares = popularity_of(profile.traffic)
            weights = shares if weights is None else weights
        specs: list[ModelSpec] = []
        for name in model_names:
            size = model_bytes if model_bytes is not None else calibration.memory_of(name)
            if size is None:
                if instance.memory_budget_bytes is not None:
                    raise ConfigurationError(
                        f"The calibration has no memory figure for {name!r}: give model_bytes, or "
                        "calibrate with model sizes (calibrate(run_dir, model_bytes=...))"
                    )
                size = 0
            specs.append(ModelSpec(
                name=name, service_time=calibration.service_time_of(name), memory_bytes=int(size),
                load_time=calibration.load_time, download_time=calibration.download_time,
                unload_time=calibration.unload_time,
            ))
        kwargs.setdefault("overhead", calibration.overhead_latency)
        return cls(profile, specs, instance=instance, instances=instances, weights=weights, **kwargs)

    # --- running --------------------------------------------------------------------------

    def run(self) -> SimulationResult:
        """Simulate the whole profile; the result is labelled predicted."""
        self.env = env = Environment()
        seq = np.random.SeedSequence(self.seed)
        streams = [np.random.default_rng(s) for s in seq.spawn(4 + 4 * len(self.models))]
        self._choice_rng, self._think_rng, self._arrival_rng, overhead_rng = streams[:4]
        zero = Distribution.constant(0.0, source=_NO_SOURCE)
        self._service = [_Draws(m.service_time, streams[4 + 4 * i]) for i, m in enumerate(self.models)]
        self._load = [_Draws(m.load_time or zero, streams[5 + 4 * i]) for i, m in enumerate(self.models)]
        self._download = [_Draws(m.download_time or zero, streams[6 + 4 * i]) for i, m in enumerate(self.models)]
        self._unload = [_Draws(m.unload_time or zero, streams[7 + 4 * i]) for i, m in enumerate(self.models)]
        self._overhead = _Draws(self.overhead or zero, overhead_rng)
        self._bytes = [m.memory_bytes for m in self.models]
        cum = np.cumsum(np.asarray(self.weights, dtype=np.float64))
        self._cum = cum / cum[-1]
        self._choices: list[int] = []
        self._ci = 0
        self._thinks: list[float] = []
        self._ti = 0
        self.instances_ = [_Instance(self, i, len(self.models)) for i in range(self.instance_count)]
        self.rec = Records()
        if self.warm_start:
            self._fill_caches()
        self.plans = self.profile.stages()
        self.end_s = self.plans[-1].end_s if self.plans else 0.0
        self.timeout_s = self.profile.request_timeout
        self._deadlines: deque[tuple[float, _Req]] = deque()
        self._load_deadlines: deque[tuple[float, _Req]] = deque()
        self._watch_armed = False
        self._watch_resolution = 0.01
        self._open = self.profile.open_loop_shape
        self._pending_open: deque[float] = deque()
        self._open_inflight = 0
        self._all: list[_Req] = []
        self._users: list[_User] = []
        self.compiles = 0
        host = self.host
        share = 1.0 if host is None or host.stalls is not None else host.cpu_share
        self._slowdowns: dict[str, list[float]] = {}
        self._speed = 1.0 if host is None else host.speed_ratio
        trace = sorted(host.speed_trace) if host is not None else []
        self._speed_times = [t for t, _ in trace]
        self._speed_values = [r for _, r in trace]
        self._idle_points: tuple[list[float], list[float]] | None = None
        if host is not None and host.idle_slowdown:
            self._idle_points = _curve(host.idle_slowdown)
        self._client = _Fifo(self, None, share, "client") if host is not None else None
        self._stalls: _Draws | None = None
        if host is not None and host.stalls is not None:
            rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(1 << 20,)))
            self._stalls = _Draws(host.stalls, rng)
            self._stall_u = _Draws(Distribution(kind="empirical", quantiles={0.0: 0.0, 100.0: 1.0}, source=_NO_SOURCE),
                                   np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(1 << 21,))))
            self._stall_probe = host.stall_probe_s
        self._delay = None
        if host is not None and host.unloaded_latency is not None:
            self._delay = _Draws(host.unloaded_latency, streams[3])  # the overhead stream: unused here
            # The unloaded latency already holds the server's CPU as this host ran it (stalls
            # included, on average 1/cpu_share of it) and, timed in user space, the client's: the
            # rest is the pure delay. Stamped, the simulated latency starts after the client's
            # send work, so what of it the real timer holds (the send call) stays in the delay.
            client_in_latency = 0.0 if host.stamped else host.client_cpu_s
            self._delay_less = (client_in_latency + host.request_cpu_s) / host.cpu_share
        self._wake_points: tuple[list[float], list[float]] | None = None
        if host is not None and host.wake_delay:
            self._wake_points = _curve(host.wake_delay)
        self._load_delay = None
        self._load_path_cpu = 0.0 if host is None else host.load_cpu_s  # a load's CPU on the request's path
        self._load_beside_cpu = 0.0  # and beside it
        if host is not None and host.unloaded_cold_latency is not None:
            self._load_delay = _Draws(host.unloaded_cold_latency,
                                      np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(1 << 22,))))
            warm = host.unloaded_latency.mean if host.unloaded_latency is not None else 0.0
            # The cold request's answer runs uncompiled (its model's first use): not load work.
            first = (host.request_cpu_s if host.uncompiled_request_cpu_s is None
                     else host.uncompiled_request_cpu_s) - host.request_cpu_s
            room = (host.unloaded_cold_latency.mean - warm) * host.cpu_share - first
            self._load_path_cpu = min(host.load_cpu_s, max(room, 0.0))
            self._load_beside_cpu = host.load_cpu_s - self._load_path_cpu
            self._load_delay_less = warm + (first + self._load_path_cpu) / host.cpu_share
        if self._open is not None:
            self._start_open(self._open)
        else:
            self._start_closed()
        horizon = self.end_s + self.profile.stop_timeout
        env.run(until=horizon)
        for req in self._unfinished():
            self._client_fail(req, CANCELLED, at=horizon)
        return self._result()

    def _fill_caches(self) -> None:
        """Warm start: the most requested models first, each on the next instance with room."""
        insts = self.instances_
        for inst in insts:
            inst.on_disk.update(range(len(self.models)))
        k = 0
        for m in sorted(range(len(self.models)), key=lambda i: -self.weights[i]):
            for step in range(len(insts)):
                inst = insts[(k + step) % len(insts)]
                if inst.budget is None or inst.used + self._bytes[m] <= inst.budget:
                    inst.status[m] = 2
                    inst.lru[m] = None
                    inst.used += self._bytes[m]
                    inst.loaded += 1
                    k += step + 1
                    break
        for inst in insts:  # least requested first: the first unloaded
            inst.lru = OrderedDict((m, None) for m in sorted(inst.lru, key=lambda i: self.weights[i]))
            self.rec.loaded_count(0.0, inst.index, inst.loaded)

    # --- scheduling helpers ---------------------------------------------------------------

    def _stall(self, work: float) -> float:
        """Seconds a thread running ``work`` of CPU is descheduled (host model with stalls)."""
        if self._stalls is None or work <= 0:
            return 0.0
        if self._stall_u.next() >= work / self._stall_probe:
            return 0.0
        return self._stalls.next()

    def _woken(self, idle_since: float) -> float:
        """The CPU factor of work a thread (the client, a server process) starts after sleeping
        since ``idle_since``: HostModel.idle_slowdown at that many seconds (1 without it)."""
        points = self._idle_points
        idle_s = self.env.now - idle_since
        if points is None or idle_s <= 0:
            return 1.0
        return float(np.interp(idle_s, points[0], points[1]))

    def _slowed(self, kind: str, work: float, factor: float) -> float:
        """``work`` times ``factor``, counted in :meth:`mean_slowdown`."""
        stat = self._slowdowns.get(kind)
        if stat is None:
            stat = self._slowdowns[kind] = [0.0, 0.0]
        stat[0] += work
        stat[1] += work * factor
        trace = self._speed_times
        if trace:
            k = bisect.bisect_right(trace, self.env.now) - 1
            return work * factor * (self._speed_values[k] if k >= 0 else self._speed)
        return work * factor * self._speed

    def mean_slowdown(self, kind: str) -> float | None:
        """The CPU-weighted mean idle slowdown the run applied to ``kind`` of work ("request": the
        event loop's, "client", "compile", "load"); None when it ran none."""
        stat = self._slowdowns.get(kind)
        return None if stat is None or stat[0] <= 0 else stat[1] / stat[0]

    def _at(self, delay: float, fn: Callable[[Event], None], value: Any = None) -> None:
        Timeout(self.env, delay, value).callbacks.append(fn)  # type: ignore[union-attr]

    def _stage_of(self, t: float) -> int:
        index = 0
        for plan in self.plans:
            if t >= plan.start_s:
                index = plan.index
        return index

    def _next_model(self) -> int:
        if self._ci >= len(self._choices):
            u = self._choice_rng.random(_BLOCK)
            self._choices = np.minimum(np.searchsorted(self._cum, u, side="right"), len(self._cum) - 1).tolist()
            self._ci = 0
        m = self._choices[self._ci]
        self._ci += 1
        return m

    def _next_think(self) -> float:
        if self._ti >= len(self._thinks):
            w = self.profile.wait
            self._thinks = (w.min + (w.max - w.min) * self._think_rng.random(_BLOCK)).tolist()
            self._ti = 0
        v = self._thinks[self._ti]
        self._ti += 1
        return v

    # --- traffic: closed loop -------------------------------------------------------------

    def _start_closed(self) -> None:
        points: list[tuple[float, int]] = []
        current = 0
        for plan in self.plans:
            if plan.phase is not None:
                phase = plan.phase
                target = phase.initial_users
                points.extend(_ramp(plan.start_s, current, target, plan.spawn_rate, plan.end_s))
                current = target
                if phase.spawn_rate > 0:
                    step = 60.0 / phase.spawn_rate
                    k = 1
                    while plan.start_s + k * step < plan.end_s:
                        current += 1
                        points.append((plan.start_s + k * step, current))
                        k += 1
            else:
                points.extend(_ramp(plan.start_s, current, plan.users, plan.spawn_rate, plan.end_s))
                current = plan.users
        for t, target in points:
            self._at(t, self._set_users, target)

    def _set_users(self, ev: Event) -> None:
        target = cast(int, ev.value)
        alive = self._users
        while len(alive) < target:
            user = _User()
            alive.append(user)
            self._user_send(user)
        while len(alive) > target:
            alive.pop().alive = False

    def _user_send(self, user: _User) -> None:
        now = self.env.now
        if not user.alive or now >= self.end_s:
            return
        req = _Req(self._next_model(), now, self._stage_of(now), user)
        self._send(req)

    def _user_next(self, ev: Event) -> None:
        self._user_send(cast(_User, ev.value))

    # --- traffic: open loop ---------------------------------------------------------------

    def _start_open(self, shape: OpenLoopShape) -> None:
        times: list[float] = []
        for plan in self.plans:
            assert plan.rate is not None
            if shape.arrivals == "poisson":
                t = plan.start_s
                while True:
                    gaps = self._arrival_rng.exponential(1.0 / plan.rate, _BLOCK)
                    ts = t + np.cumsum(gaps)
                    keep = ts[ts < plan.end_s]
                    times.extend(keep.tolist())
                    if keep.size < ts.size:
                        break
                    t = float(ts[-1])
            else:
                n = math.floor(plan.duration_s * plan.rate + 1e-9)
                times.extend((plan.start_s + np.arange(n) / plan.rate).tolist())
        self._arrivals = times
        self._ai = 0
        if times:
            self._at(times[0], self._arrive)

    def _arrive(self, ev: Event) -> None:
        assert self._open is not None
        scheduled = self._arrivals[self._ai]
        self._ai += 1
        if self._ai < len(self._arrivals):
            self._at(self._arrivals[self._ai] - self.env.now, self._arrive)
        if self._open_inflight >= self._open.concurrency:
            self._pending_open.append(scheduled)
            return
        self._open_send(scheduled)

    def _open_send(self, scheduled: float) -> None:
        assert self._open is not None
        self._open_inflight += 1
        req = _Req(self._next_model(), scheduled, self._stage_of(scheduled), None)
        if self.env.now - scheduled > self._open.late_after:
            self.rec.late += 1
        self._send(req)

    def _open_slot_free(self) -> None:
        if self._pending_open and self.env.now < self.end_s + self.profile.stop_timeout:
            # Handed to the oldest waiting send as a new event (the slot stays taken meanwhile):
            # a direct call would recurse once per waiting send when each fails at once (503s).
            self._at(0.0, self._open_handover, self._pending_open.popleft())
        else:
            self._open_inflight -= 1

    def _open_handover(self, ev: Event) -> None:
        self._open_inflight -= 1
        self._open_send(cast(float, ev.value))

    # --- the client's side of an answer ---------------------------------------------------

    def _client_ok(self, req: _Req, overhead: float) -> None:
        """The answer leaves the server now and reaches the client ``overhead`` later."""
        req.done = True
        done = self.env.now + overhead
        self.rec.add(done, req.model, req.cold, OK, req.stage, req.sent, done - req.sent)
        self._after_answer(req, overhead)

    def _client_fail(self, req: _Req, status: int, *, at: float | None = None) -> None:
        req.done = True
        t = self.env.now if at is None else at
        self.rec.add(t, req.model, req.cold, status, req.stage, req.sent, t - req.sent)
        self._after_answer(req, 0.0)

    def _after_answer(self, req: _Req, delay: float) -> None:
        if req.user is not None:
            self._at(delay + self._next_think(), self._user_next, req.user)
        elif self._open is not None:
            self._open_slot_free()

    # --- deadlines (client timeout, load wait) --------------------------------------------

    def _arm(self) -> None:
        if self._watch_armed:
            return
        heads = [d[0][0] for d in (self._deadlines, self._load_deadlines) if d]
        if not heads:
            return
        self._watch_armed = True
        self._at(max(min(heads) - self.env.now, self._watch_resolution), self._watch)

    def _watch(self, _ev: Event) -> None:
        self._watch_armed = False
        now = self.env.now
        dl = self._deadlines
        while dl and (dl[0][1].done or dl[0][0] <= now):
            t, req = dl.popleft()
            if not req.done:
                self._client_fail(req, TIMEOUT, at=t)
        ld = self._load_deadlines
        while ld and (ld[0][1].done or ld[0][1].cold or ld[0][0] <= now):
            t, req = ld.popleft()
            if not req.done and not req.cold and req.inst is not None:
                # Still waiting for its model's load: a 429, and it stops holding the model.
                inst = req.inst
                waiters = inst.waiters[req.model]
                if waiters is not None and req in waiters:
                    waiters.remove(req)
                self._release(inst, req.model)
                inst.inflight -= 1
                self.rec.server(t, inst.index, 0.0, NOT_READY)
                self._client_fail(req, NOT_READY, at=t)
        self._arm()

    # --- the server -----------------------------------------------------------------------

    def _route(self, m: int) -> _Instance:
        insts = self.instances_
        if len(insts) == 1:
            return insts[0]
        best: _Instance | None = None
        for inst in insts:
            if inst.status[m] and (best is None or inst.inflight < best.inflight):
                best = inst
        limit = self.replicate_at_inflight
        if best is not None and (limit is None or best.inflight < limit):
            return best
        return min(insts, key=lambda i: i.inflight)

    def _send(self, req: _Req) -> None:
        self._all.append(req)
        if self.timeout_s > 0:
            self._deadlines.append((req.sent + self.timeout_s, req))
            self._arm()
        if self._client is not None:
            assert self.host is not None
            self._client.add(self.host.client_cpu_s / 2, self._reach_server, req)
        else:
            self._reach_server(req)

    def _reach_server(self, req: _Req) -> None:
        if req.done:  # timed out before the client sent it
            return
        if req.user is not None and self.host is not None and self.host.stamped:
            req.sent = self.env.now  # closed loop: the timer starts as the bytes go out
        m = req.model
        inst = self._route(m)
        if inst.inflight >= self.instance.max_concurrent_requests:
            self.rec.server(self.env.now, inst.index, 0.0, UNAVAILABLE)
            self._client_fail(req, UNAVAILABLE)
            return
        req.inst = inst
        if inst.cpu is not None and not inst.cpu.jobs:
            req.idle_s = self.env.now - inst.cpu.idle_since  # the whole server is asleep
        inst.inflight += 1
        inst.holders[m] += 1
        status = inst.status[m]
        self.rec.lookup(self.env.now, inst.index, status == 2)
        if status == 2:
            inst.lru.move_to_end(m)
            self._dispatch(inst, req)
            return
        req.wait_s = self.env.now
        self._load_deadlines.append((self.env.now + self.instance.model_load_wait_s, req))
        self._arm()
        if status == 1:
            waiters = inst.waiters[m]
            assert waiters is not None
            waiters.append(req)
            return
        inst.status[m] = 1
        inst.waiters[m] = [req]
        inst.room_queue.append(m)
        self._try_loads(inst)

    def _dispatch(self, inst: _Instance, req: _Req) -> None:
        m = req.model
        if inst.loop is not None:
            host = self.host
            assert host is not None
            slow = host.uncompiled_request_cpu_s
            req.service_s = host.request_cpu_s if slow is None or inst.compiled[m] else slow
            req.wake = not inst.loop.busy
            inst.loop.add(req.service_s, self._loop_done, req)
            return
        if inst.wpm is not None and inst.busy[m] >= inst.wpm:
            backlog = inst.backlog[m]
            if backlog is None:
                backlog = inst.backlog[m] = deque()
            backlog.append(req)
            return
        inst.busy[m] += 1
        if inst.cpu_free > 0:
            inst.cpu_free -= 1
            self._serve(req)
        else:
            inst.cpu_queue.append(req)

    def _serve(self, req: _Req) -> None:
        req.service_s = self._service[req.model].next()
        self._at(req.service_s, self._served, req)

    def _served(self, ev: Event) -> None:
        req = cast(_Req, ev.value)
        inst = req.inst
        assert inst is not None
        m = req.model
        now = self.env.now
        inst.busy[m] -= 1
        if inst.cpu_queue:
            self._serve(inst.cpu_queue.popleft())
        else:
            inst.cpu_free += 1
        backlog = inst.backlog[m]
        if backlog:
            self._dispatch(inst, backlog.popleft())
        inst.inflight -= 1
        self._release(inst, m)
        self.rec.server(now, inst.index, req.service_s, OK)
        if not req.done:
            self._client_ok(req, self._overhead.next())

    def _loop_done(self, req: _Req) -> None:
        """The event loop answered ``req``: the client reads the answer (host model)."""
        inst = req.inst
        assert inst is not None and self._client is not None and self.host is not None
        inst.inflight -= 1
        m = req.model
        self._release(inst, m)
        self.rec.server(self.env.now, inst.index, req.service_s, OK)
        host = self.host
        inst.uses[m] += 1
        if inst.uses[m] == host.compile_after_uses and host.compile_cpu_s > 0 and inst.status[m] == 2:
            assert inst.compiler is not None
            self.compiles += 1
            inst.compiler.add(host.compile_cpu_s, self._compiled, (inst, m))
        if req.done:
            return
        delay = 0.0
        if self._delay is not None and req.wake:
            # Only a request that found the loop asleep pays the unloaded path's wake-ups.
            delay = max(self._delay.next() - self._delay_less, 0.0)
        if self._wake_points is not None and req.idle_s > 0:
            # One that found the whole server asleep also pays for how long it slept (once).
            delay += float(np.interp(req.idle_s, self._wake_points[0], self._wake_points[1]))
            req.idle_s = 0.0
        if delay > 0:
            self._at(delay, self._client_receives, req)
        else:
            self._client_receives_now(req)

    def _compiled(self, value: Any) -> None:
        inst, m = cast(tuple[_Instance, int], value)
        assert self.host is not None  # compiles happen in the host model only
        if inst.status[m] == 2 and inst.uses[m] >= self.host.compile_after_uses:
            inst.compiled[m] = True  # still loaded (an unload resets uses)

    def _client_receives(self, ev: Event) -> None:
        req = cast(_Req, ev.value)
        if not req.done:
            self._client_receives_now(req)

    def _client_receives_now(self, req: _Req) -> None:
        """The answer is in the client's kernel: stamped, it is timed now; the read comes after."""
        assert self._client is not None and self.host is not None
        if self.host.stamped:
            req.done = True
            self.rec.add(self.env.now, req.model, req.cold, OK, req.stage, req.sent, self.env.now - req.sent)
            self._client.add(self.host.client_cpu_s / 2, self._read_then_next, req)
        else:
            self._client.add(self.host.client_cpu_s / 2, self._client_read, req)

    def _read_then_next(self, req: _Req) -> None:
        self._after_answer(req, 0.0)

    def _client_read(self, req: _Req) -> None:
        if not req.done:
            self._client_ok(req, 0.0)

    def _release(self, inst: _Instance, m: int) -> None:
        inst.holders[m] -= 1
        if inst.holders[m] == 0 and inst.room_queue:
            self._try_loads(inst)

    def _try_loads(self, inst: _Instance) -> None:
        # Room is reserved (idle models unloaded) as soon as a load is asked for, in order, as the
        # local MME reserves before its load waits for a loader thread; then loaders take them.
        while inst.room_queue:
            m = inst.room_queue[0]
            need = self._bytes[m]
            if inst.budget is not None and inst.used + need > inst.budget and not self._evict(inst, need):
                break  # waits for a model to become idle
            inst.room_queue.popleft()
            inst.used += need
            inst.load_queue.append(m)
        while inst.loader_free > 0 and inst.load_queue:
            m = inst.load_queue.popleft()
            inst.loader_free -= 1
            if inst.cpu is not None:
                assert self.host is not None
                inst.load_started[m] = self.env.now
                load_cpu = self._load_path_cpu
                if m not in inst.on_disk:  # its first load: the archive is extracted first
                    load_cpu += self.host.fetch_cpu_s
                inst.load_cpu[m] = load_cpu
                stall = self._stall(load_cpu)
                if self._load_delay is not None:
                    stall += max(self._load_delay.next() - self._load_delay_less, 0.0)
                if stall > 0:
                    self._at(stall, self._load_after_stall, (inst, m))
                else:
                    inst.cpu.add(load_cpu, self._loader_done, (inst, m), "load")
                continue
            download = 0.0 if m in inst.on_disk else self._download[m].next()
            load = self._load[m].next()
            self.rec.load(self.env.now + download + load, inst.index, download, load, m not in inst.on_disk)
            self._at(download + load, self._loaded, (inst, m))

    def _evict(self, inst: _Instance, need: int) -> bool:
        assert inst.budget is not None
        for m in list(inst.lru):
            if inst.used + need <= inst.budget:
                break
            if inst.holders[m] == 0:
                del inst.lru[m]
                inst.status[m] = 0
                inst.uses[m] = 0
                inst.compiled[m] = False
                inst.used -= self._bytes[m]
                inst.loaded -= 1
                self.rec.unload(self.env.now, inst.index, self._unload[m].next(), inst.loaded)
        return inst.used + need <= inst.budget

    def _load_after_stall(self, ev: Event) -> None:
        inst, m = cast(tuple[_Instance, int], ev.value)
        assert inst.cpu is not None and self.host is not None
        inst.cpu.add(inst.load_cpu[m], self._loader_done, ev.value, "load")

    def _loaded(self, ev: Event) -> None:
        """Without the host model: a load (its drawn time) is done and in service at once."""
        inst, _m = cast(tuple[_Instance, int], ev.value)
        inst.loader_free += 1
        self._on_loaded(ev.value)

    def _loader_done(self, value: Any) -> None:
        """Host model: a loader thread finished a load. The thread is free now; the model is in
        service once the event loop comes to the load's completion, behind what it has queued
        (the local MME finishes a load in a coroutine on its loop)."""
        inst, m = cast(tuple[_Instance, int], value)
        assert inst.loop is not None
        started = inst.load_started.pop(m)
        self.rec.load(self.env.now, inst.index, 0.0, self.env.now - started, m not in inst.on_disk)
        inst.loader_free += 1
        self._try_loads(inst)
        inst.loop.add(0.0, self._on_loaded, value)

    def _on_loaded(self, value: Any) -> None:
        inst, m = cast(tuple[_Instance, int], value)
        now = self.env.now
        inst.status[m] = 2
        inst.on_disk.add(m)
        inst.lru[m] = None
        inst.loaded += 1
        self.rec.loaded_count(now, inst.index, inst.loaded)
        waiters, inst.waiters[m] = inst.waiters[m], None
        for req in waiters or ():
            req.cold = True
            req.wait_s = now - req.wait_s
            self._dispatch(inst, req)
        if self._load_beside_cpu > 0 and inst.beside is not None:
            inst.beside.add(self._load_beside_cpu, _ignore, None)
        self._try_loads(inst)

    def _unfinished(self) -> list[_Req]:
        return [r for r in self._all if not r.done]

    # --- result ---------------------------------------------------------------------------

    def _result(self) -> SimulationResult:
        return SimulationResult(
            profile=self.profile,
            instance=self.instance,
            instance_count=self.instance_count,
            model_names=[m.name for m in self.models],
            seed=self.seed,
            plans=self.plans,
            duration_s=self.end_s,
            records=self.rec,
            requests_sent=len(self._all),
        )


def _curve(points: Sequence[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """(x, y) points sorted by x, as np.interp takes them."""
    ordered = sorted(points)
    return [x for x, _ in ordered], [y for _, y in ordered]


def _ramp(start: float, current: int, target: int, rate: float, end: float) -> list[tuple[float, int]]:
    """Change points that move the user count from ``current`` to ``target`` at ``rate`` per second."""
    if target <= current:
        return [(start, target)]
    points = []
    for k in range(1, target - current + 1):
        t = start + (k - 1) / rate
        if t >= end:
            break
        points.append((t, current + k))
    return points


_NO_SOURCE = Source(measurement="none: a zero the simulation uses where nothing was given")
