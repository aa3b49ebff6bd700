"""Search instance types x counts for an MME workload: simulate each, check the constraints, rank by cost.

:class:`Planner` maps each catalog instance type onto a simulated instance (vCPUs as concurrent
inferences, the local MME's memory rule from :mod:`mmeperf.instances` as the cache budget) and
returns a :class:`Plan`: the candidates that meet the constraints ranked by cost, and every
rejection with its reason.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mmeperf._types import PathLike
from mmeperf.errors import ConfigurationError
from mmeperf.instances import DEFAULT_CATALOG, PRICES_AS_OF, InstanceCatalog, InstanceProfile
from mmeperf.load.profile import LoadProfile
from mmeperf.load.traffic import Traffic, zipf_weights
from mmeperf.planner._runfolder import BenchmarkResult
from mmeperf.planner.calibration import Calibration
from mmeperf.planner.result import SimulationResult
from mmeperf.planner.simulation import InstanceConfig, ModelSpec, Simulation, popularity_of

__all__ = [
    "ASSUMPTIONS",
    "Candidate",
    "Constraints",
    "Plan",
    "Planner",
    "Workload",
    "measured_summary",
    "relative_error",
    "replica_name",
]

#: What every plan assumes, printed with it.
#: Said with every plan whose calibration run was not an emulated instance (worker processes).
THREAD_MODE_LOADS = (
    "WARNING Loads: the calibration run's server loaded models in its own threads (no instance profile: "
    "milliseconds per load). SageMaker's containers (Multi Model Server) and the local MME with an "
    "instance profile start a worker process per model, seconds per load: with cache misses these "
    "predictions are optimistic. Calibrate from a run against an emulated instance (mmeperf serve "
    "--instance-profile TYPE, LocalEndpoint(instance_profile=...), or a churn demo run)."
)

#: Said with every plan that predicts cache misses from a calibration whose run measured no load.
NO_LOADS_MEASURED = (
    "WARNING Loads: the calibration run measured no model load (every model stayed loaded, or its loads "
    "came before the run's window), so these predictions take loads to cost nothing. Calibrate from a "
    "run whose cache unloaded and loaded models while it was measured (a smaller instance or memory budget)."
)

ASSUMPTIONS: tuple[str, ...] = (
    "CPU: service times are the calibration host's, per request; every instance type is assumed to "
    "have the same per-core speed, and an instance serves at most its vCPUs inferences at once "
    "(more requests queue). A type with faster or slower cores is off by that ratio.",
    "Memory: the model-cache budget and the per-model overhead are the local MME's emulation rule "
    "for the instance type (mmeperf.instances: memory x usable fraction - base overhead; each loaded "
    "model charged its own bytes + the per-model overhead).",
    "Routing over N instances: to an instance that holds the model, the least busy one; when every "
    "holder has as many requests in progress as it has vCPUs, to the least busy instance (the hot "
    "model is loaded there too), as SageMaker's MME routing does.",
    "Load, download and unload times are the calibration's means (constants), the same on every type.",
    "GPU types are not predicted: the calibration measured CPU service times.",
)

PopularitySpec = Literal["calibrated", "uniform"] | float | Sequence[float]


class Constraints(BaseModel):
    """What a candidate must meet. ``None``: no constraint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    p99_ms: float | None = Field(default=None, gt=0)
    """Client-side 99th percentile latency budget, all requests (cold ones included)."""
    min_rps: float | None = Field(default=None, ge=0)
    """Successful requests per second the candidate must sustain."""
    max_failure_rate: float = Field(default=0.01, ge=0, le=1)
    """Share of requests that may fail (timeouts, 503s, ModelNotReady)."""
    max_cost_per_hour: float | None = Field(default=None, ge=0)
    """USD per hour for all instances together."""


@dataclass(frozen=True)
class Workload:
    """The models of a plan: names, request shares, the calibrated model each one copies, bytes."""

    names: list[str]
    weights: list[float]
    base: list[str]
    """The calibrated model whose service time (and size) each model takes."""
    own_bytes: list[int | None]
    """Each model's own bytes without any per-model overhead (None: unknown)."""

    def __len__(self) -> int:
        return len(self.names)

    @property
    def popularity(self) -> list[float]:
        total = float(sum(self.weights))
        return [w / total for w in self.weights]


@dataclass
class Candidate:
    """One instance type x count, its prediction, cost, and why it was rejected (if it was)."""

    instance_type: str
    instance_count: int
    vcpus: int
    memory_budget_bytes: int
    per_model_overhead_bytes: int
    models_that_fit: int | None
    """Models one instance holds at once (at the workload's mean model size)."""
    price_per_hour_usd: float
    predicted: dict[str, Any] | None = None
    """The simulation's summary (None: not simulated, see reasons)."""
    reasons: list[str] = field(default_factory=list)
    """Why it fails the constraints (empty: it meets them)."""
    result: SimulationResult | None = field(default=None, repr=False, compare=False)

    @property
    def feasible(self) -> bool:
        return not self.reasons

    @property
    def label(self) -> str:
        return f"{self.instance_count} x {self.instance_type}"

    @property
    def cost_per_hour_usd(self) -> float:
        return self.price_per_hour_usd * self.instance_count

    @property
    def cost_per_million_usd(self) -> float | None:
        ok = (self.predicted or {}).get("ok_rps")
        if not ok:
            return None
        return self.cost_per_hour_usd / (float(ok) * 3600.0) * 1e6

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance_type": self.instance_type, "instance_count": self.instance_count, "vcpus": self.vcpus,
            "memory_budget_bytes": self.memory_budget_bytes,
            "per_model_overhead_bytes": self.per_model_overhead_bytes,
            "models_that_fit": self.models_that_fit, "price_per_hour_usd": self.price_per_hour_usd,
            "cost_per_hour_usd": self.cost_per_hour_usd, "cost_per_million_usd": self.cost_per_million_usd,
            "feasible": self.feasible, "reasons": list(self.reasons), "predicted": self.predicted,
        }


@dataclass
class Plan:
    """Candidates ranked: those meeting the constraints first, by cost per hour then per million."""

    candidates: list[Candidate]
    constraints: Constraints
    profile: LoadProfile
    workload: Workload
    seed: int
    calibration_runs: list[str]
    assumptions: list[str] = field(default_factory=lambda: list(ASSUMPTIONS))
    prices_as_of: str = PRICES_AS_OF

    @property
    def feasible(self) -> list[Candidate]:
        return [c for c in self.candidates if c.feasible]

    @property
    def rejected(self) -> list[Candidate]:
        return [c for c in self.candidates if not c.feasible]

    @property
    def best(self) -> Candidate | None:
        feasible = self.feasible
        return feasible[0] if feasible else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "predicted": True,
            "calibration_runs": self.calibration_runs,
            "constraints": self.constraints.model_dump(mode="json"),
            "model_count": len(self.workload),
            "profile": self.profile.model_dump(mode="json", exclude={"traffic"}),
            "seed": self.seed,
            "prices_as_of": self.prices_as_of,
            "assumptions": self.assumptions,
            "best": None if self.best is None else self.best.label,
            "candidates": [c.to_dict() for c in self.candidates],
        }

    def save(self, path: PathLike) -> Path:
        p = Path(path)
        p.write_text(json.dumps(self.to_dict(), indent=1, default=_json_default), encoding="utf-8")
        return p


def _json_default(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _rank_key(c: Candidate) -> tuple[int, float, float, str, int]:
    per_million = c.cost_per_million_usd
    return (0 if c.feasible else 1, c.cost_per_hour_usd, math.inf if per_million is None else per_million,
            c.instance_type, c.instance_count)


def replica_name(base: str, k: int) -> str:
    """The ``k``-th copy of model ``base`` (``churn-xgb-CA.tar.gz`` -> ``churn-xgb-CA-r2.tar.gz``)."""
    if k == 0:
        return base
    stem, suffix = (base[: -len(".tar.gz")], ".tar.gz") if base.endswith(".tar.gz") else (base, "")
    return f"{stem}-r{k}{suffix}"


class Planner:
    """Predict MME instance types x counts from a :class:`Calibration` and search them under constraints.

    ``model_bytes``: every model's own size in bytes (overrides the calibration's figures).
    ``seed``: of every simulation (the same seed, the same plan). ``warm_start``: simulate
    endpoints in service (caches holding the most requested models that fit), not fresh ones.
    """

    def __init__(
        self,
        calibration: Calibration,
        *,
        catalog: InstanceCatalog = DEFAULT_CATALOG,
        model_bytes: int | None = None,
        seed: int = 0,
        warm_start: bool = False,
    ) -> None:
        self.calibration = calibration
        self.catalog = catalog
        self.model_bytes = model_bytes
        self.seed = seed
        self.warm_start = warm_start

    # --- the workload ---------------------------------------------------------------------

    @property
    def _process_workers(self) -> bool:
        """The calibration's models each ran in a worker process: their memory is measured whole."""
        return self.calibration.host.worker_mode == "process"

    def _added_overhead(self, instance: InstanceProfile) -> int:
        """Bytes charged per model on ``instance`` beyond its own (none from worker-process figures)."""
        return 0 if self._process_workers else instance.per_model_overhead_bytes

    def _calibration_overhead(self) -> int:
        """Per-model overhead included in the calibration's memory figures (an emulated profile's
        in thread mode; none with worker processes, whose measured memory is the whole charge)."""
        host = self.calibration.host
        if self._process_workers:
            return 0
        if host.emulated and host.instance_type and host.instance_type in self.catalog:
            return self.catalog.get(host.instance_type).per_model_overhead_bytes
        return 0

    def _own_bytes(self, base: str) -> int | None:
        if self.model_bytes is not None:
            return self.model_bytes
        charged = self.calibration.memory_of(base)
        return None if charged is None else max(charged - self._calibration_overhead(), 0)

    def workload(
        self, models: int | None = None, *, popularity: PopularitySpec = "calibrated",
        traffic: Traffic | None = None,
    ) -> Workload:
        """The plan's models.

        ``models=None``: the models ``traffic`` names (if it names any), else the calibrated ones.
        ``models=N``: the calibrated models copied round-robin to N (``replica_name``), each copy
        with its original's service time and size. ``popularity``: ``"calibrated"`` (the
        calibration run's request shares, repeated over the copies), ``"uniform"``, a Zipf
        exponent, or explicit weights (one per model).
        """
        cal = self.calibration
        if models is None and traffic is not None and (traffic.models or traffic.model_column):
            names, traffic_shares = popularity_of(traffic)
            bases = [n if n in cal.models else self._any_model() for n in names]
            return Workload(names, traffic_shares, bases, [self._own_bytes(b) for b in bases])
        calibrated = sorted(cal.models) or ["model"]
        n = len(calibrated) if models is None else int(models)
        if n < 1:
            raise ConfigurationError(f"models must be >= 1, received {n}")
        bases = [calibrated[i % len(calibrated)] for i in range(n)]
        names = [replica_name(b, i // len(calibrated)) for i, b in enumerate(bases)]
        weights: list[float]
        if isinstance(popularity, str):
            if popularity == "uniform":
                weights = [1.0] * n
            elif popularity == "calibrated":
                shares = cal.popularity()
                weights = [shares.get(b, 0.0) for b in bases] if shares else [1.0] * n
                if sum(weights) <= 0:
                    weights = [1.0] * n
            else:
                raise ConfigurationError(
                    f"Expected popularity 'calibrated', 'uniform', a Zipf exponent or weights, received {popularity!r}"
                )
        elif isinstance(popularity, int | float):
            if popularity <= 0:
                raise ConfigurationError(f"A Zipf exponent must be > 0, received {popularity}")
            weights = zipf_weights(n, float(popularity))
        else:
            weights = [float(w) for w in popularity]
            if len(weights) != n or any(w < 0 for w in weights) or sum(weights) <= 0:
                raise ConfigurationError(f"Expected {n} weights >= 0 with a positive sum, received {len(weights)}")
        return Workload(names, weights, bases, [self._own_bytes(b) for b in bases])

    def _any_model(self) -> str:
        return next(iter(sorted(self.calibration.models)), "model")

    # --- one candidate --------------------------------------------------------------------

    def instance_config(self, instance: InstanceProfile, *, vcpus: int | None = None) -> InstanceConfig:
        """The simulated instance of a catalog type: its vCPUs (or ``vcpus``) and its cache budget."""
        return InstanceConfig(vcpus=vcpus or instance.vcpus, memory_budget_bytes=instance.memory_budget_bytes,
                              name=instance.name)

    def specs(self, workload: Workload, instance: InstanceProfile) -> list[ModelSpec]:
        """The simulated models on ``instance``: own bytes + the type's per-model overhead (from a
        worker-process calibration: each worker's measured memory, as the emulation charges it)."""
        cal = self.calibration
        overhead = self._added_overhead(instance)
        specs = []
        for name, base, own in zip(workload.names, workload.base, workload.own_bytes, strict=True):
            if own is None:
                raise ConfigurationError(
                    f"The calibration has no memory figure for {base!r}: give model_bytes (the model's own "
                    "size), or calibrate with model sizes (calibrate(run_dir, model_bytes=...))"
                )
            specs.append(ModelSpec(
                name=name, service_time=cal.service_time_of(base), memory_bytes=own + overhead,
                load_time=cal.load_time, download_time=cal.download_time, unload_time=cal.unload_time,
            ))
        return specs

    def simulate(
        self, profile: LoadProfile, instance: InstanceProfile | str, count: int = 1, *,
        workload: Workload | None = None, vcpus: int | None = None,
    ) -> SimulationResult:
        """One candidate's predicted run (``vcpus`` overrides the type's, e.g. this host's cores)."""
        inst = self.catalog.get(instance) if isinstance(instance, str) else instance
        work = workload or self.workload(traffic=profile.traffic)
        config = self.instance_config(inst, vcpus=vcpus)
        return Simulation(
            profile, self.specs(work, inst), instance=config, instances=count, weights=work.weights,
            overhead=self.calibration.overhead_latency, replicate_at_inflight=config.vcpus, seed=self.seed,
            warm_start=self.warm_start,
        ).run()

    def evaluate(
        self, profile: LoadProfile, instance: InstanceProfile | str, count: int, *,
        constraints: Constraints, workload: Workload,
    ) -> Candidate:
        """Simulate one candidate and check it against the constraints."""
        inst = self.catalog.get(instance) if isinstance(instance, str) else instance
        sizes = [b for b in workload.own_bytes if b is not None]
        overhead = self._added_overhead(inst)
        charged = [b + overhead for b in sizes]
        fit = None if not charged else int(inst.memory_budget_bytes // max(float(np.mean(charged)), 1.0))
        cand = Candidate(
            instance_type=inst.name, instance_count=count, vcpus=inst.vcpus,
            memory_budget_bytes=inst.memory_budget_bytes, per_model_overhead_bytes=overhead,
            models_that_fit=None if fit is None else min(fit, len(workload)), price_per_hour_usd=inst.price_per_hour_usd,
        )
        if inst.gpus:
            cand.reasons.append(f"GPU type ({inst.gpus} x {inst.gpu_model}): the calibration measured CPU "
                                "service times, so it is not predicted")
            return cand
        if constraints.max_cost_per_hour is not None and cand.cost_per_hour_usd > constraints.max_cost_per_hour:
            cand.reasons.append(f"cost ${cand.cost_per_hour_usd:.3f}/h > max ${constraints.max_cost_per_hour:.3f}/h")
        if charged and max(charged) > inst.memory_budget_bytes:
            cand.reasons.append(
                f"a model needs {max(charged)} bytes with the per-model overhead, more than the cache budget "
                f"({inst.memory_budget_bytes} bytes)"
            )
            return cand
        result = self.simulate(profile, inst, count, workload=workload)
        cand.result = result
        cand.predicted = result.summary()
        cand.reasons.extend(self._violations(cand.predicted, constraints))
        return cand

    @staticmethod
    def _violations(predicted: dict[str, Any], constraints: Constraints) -> list[str]:
        reasons: list[str] = []
        requests = int(predicted.get("requests") or 0)
        failures = int(predicted.get("failures") or 0)
        p99 = predicted.get("p99_ms")
        ok_rps = predicted.get("ok_rps") or 0.0
        if requests == 0:
            reasons.append("no request completed")
            return reasons
        if constraints.p99_ms is not None and (p99 is None or p99 > constraints.p99_ms):
            reasons.append(f"p99 {p99:.1f} ms > budget {constraints.p99_ms:g} ms" if p99 is not None
                           else "no p99 (no requests)")
        if constraints.min_rps is not None and ok_rps < constraints.min_rps:
            reasons.append(f"throughput {ok_rps:.1f} req/s < min {constraints.min_rps:g} req/s")
        rate = failures / requests
        if rate > constraints.max_failure_rate:
            by = ", ".join(f"{k} {v}" for k, v in sorted((predicted.get("failures_by_reason") or {}).items()))
            reasons.append(f"failures {100 * rate:.2f}% > max {100 * constraints.max_failure_rate:g}% ({by})")
        return reasons

    # --- the search -----------------------------------------------------------------------

    def search(
        self,
        profile: LoadProfile,
        *,
        constraints: Constraints | None = None,
        instance_types: Sequence[str] | None = None,
        counts: Sequence[int] = (1, 2, 3, 4, 5),
        models: int | None = None,
        popularity: PopularitySpec = "calibrated",
        workload: Workload | None = None,
    ) -> Plan:
        """Evaluate ``instance_types`` (default: every CPU type of the catalog) x ``counts``.

        The models: ``workload`` if given, else :meth:`workload` of ``models``, ``popularity``
        and the profile's traffic.
        """
        constraints = constraints or Constraints()
        names = list(instance_types) if instance_types else [p.name for p in self.catalog if not p.gpus]
        if not names:
            raise ConfigurationError("No instance types to evaluate")
        if not counts or any(int(c) < 1 for c in counts):
            raise ConfigurationError(f"counts must be >= 1, received {list(counts)}")
        types = [self.catalog.get(n) for n in names]
        if workload is None:
            workload = self.workload(models, popularity=popularity, traffic=profile.traffic)
        candidates = [
            self.evaluate(profile, inst, int(count), constraints=constraints, workload=workload)
            for inst in types for count in sorted(set(counts))
        ]
        candidates.sort(key=_rank_key)
        plan = Plan(candidates=candidates, constraints=constraints, profile=profile, workload=workload,
                    seed=self.seed, calibration_runs=list(self.calibration.runs))
        if not self.calibration.host.emulated:
            plan.assumptions.append(THREAD_MODE_LOADS)
        if self.calibration.load_time is None and any(
            c.predicted is not None and (c.predicted.get("hit_ratio") or 1.0) < 1.0 for c in candidates
        ):
            plan.assumptions.append(NO_LOADS_MEASURED)
        return plan


def measured_summary(result: BenchmarkResult) -> dict[str, Any]:
    """A real run's figures under the keys of :meth:`SimulationResult.summary` (predicted False)."""
    import pandas as pd

    sm = result.server_metrics
    hit: float | None = None
    if len(sm) and "ModelCacheHit" in sm and "Invocations" in sm:
        h = pd.to_numeric(sm["ModelCacheHit"], errors="coerce")
        w = pd.to_numeric(sm["Invocations"], errors="coerce").fillna(0)
        mask = h.notna() & (w > 0)
        if mask.any():
            hit = float((h[mask] * w[mask]).sum() / w[mask].sum())
    requests = result.total_requests
    return {
        "predicted": False, "requests": requests, "failures": result.total_failures,
        "rps": result.rps, "ok_rps": result.ok_rps, "p50_ms": result.p50_ms, "p99_ms": result.p99_ms,
        "hit_ratio": hit,
    }


def relative_error(predicted: float | None, measured: float | None) -> float | None:
    """(predicted - measured) / measured; None when either is missing or measured is 0."""
    if predicted is None or measured is None or measured == 0:
        return None
    return (float(predicted) - float(measured)) / float(measured)

