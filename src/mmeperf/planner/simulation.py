"""A seeded discrete-event simulation (SimPy) of MME instances under a LoadProfile's traffic.

One instance: a front end that answers 503 beyond ``max_concurrent_requests``; a cache of models
under a byte budget with LRU unloads of idle models (a model with a request queued, in service
or waiting for its load is never unloaded) and single-flight loads run by ``load_concurrency``
loaders; per-model worker queues (``workers_per_model``) and ``vcpus`` concurrent inferences.
N instances are routed as SageMaker routes an MME: to an instance that holds (or is loading) the
target model, the least busy of them; a model no instance holds goes to the least busy instance,
and so does a hot model whose holders are all busy (``replicate_at_inflight``).

The same seed gives the same result: every random draw comes from numpy streams spawned from
the seed, and SimPy orders simultaneous events by scheduling order.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from simpy import Environment
from simpy.events import Event, Timeout

from mmeperf.errors import ConfigurationError
from mmeperf.load.profile import LoadProfile, OpenLoopShape
from mmeperf.load.traffic import Traffic
from mmeperf.planner.calibration import Calibration, Distribution, Source
from mmeperf.planner.result import Records, SimulationResult

__all__ = ["InstanceConfig", "ModelSpec", "Simulation", "SimulationResult", "popularity_of"]

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
    __slots__ = ("cold", "done", "inst", "model", "sent", "service_s", "stage", "user", "wait_s")

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
        self.load_queue: deque[int] = deque()
        self.loader_free = cfg.load_concurrency
        self.inflight = 0
        self.loaded = 0


class Simulation:
    """Simulate ``instances`` MME instances under ``profile`` with models from a calibration.

    ``models``: the simulated models (see :meth:`from_calibration`); ``weights``: each one's share
    of the requests (default: the profile's traffic). ``overhead``: per-request front-end time
    added to every answer. ``replicate_at_inflight``: route a model's request to the least busy
    instance when every instance holding it has at least this many requests in progress.
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
        if self._open is not None:
            self._start_open(self._open)
        else:
            self._start_closed()
        horizon = self.end_s + self.profile.stop_timeout
        env.run(until=horizon)
        for req in self._unfinished():
            self._client_fail(req, CANCELLED, at=horizon)
        return self._result()

    # --- scheduling helpers ---------------------------------------------------------------

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
        self._open_inflight -= 1
        if self._pending_open and self.env.now < self.end_s + self.profile.stop_timeout:
            self._open_send(self._pending_open.popleft())

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
        m = req.model
        inst = self._route(m)
        if inst.inflight >= self.instance.max_concurrent_requests:
            self.rec.server(self.env.now, inst.index, 0.0, UNAVAILABLE)
            self._client_fail(req, UNAVAILABLE)
            return
        req.inst = inst
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
        inst.load_queue.append(m)
        self._try_loads(inst)

    def _dispatch(self, inst: _Instance, req: _Req) -> None:
        m = req.model
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

    def _release(self, inst: _Instance, m: int) -> None:
        inst.holders[m] -= 1
        if inst.holders[m] == 0 and inst.load_queue:
            self._try_loads(inst)

    def _try_loads(self, inst: _Instance) -> None:
        while inst.loader_free > 0 and inst.load_queue:
            m = inst.load_queue[0]
            need = self._bytes[m]
            if inst.budget is not None and inst.used + need > inst.budget and not self._evict(inst, need):
                return  # waits for a model to become idle
            inst.load_queue.popleft()
            inst.used += need
            inst.loader_free -= 1
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
                inst.used -= self._bytes[m]
                inst.loaded -= 1
                self.rec.unload(self.env.now, inst.index, self._unload[m].next(), inst.loaded)
        return inst.used + need <= inst.budget

    def _loaded(self, ev: Event) -> None:
        inst, m = cast(tuple[_Instance, int], ev.value)
        now = self.env.now
        inst.loader_free += 1
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
