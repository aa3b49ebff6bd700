"""Calibration: what a run measured, in the form a simulation consumes, each number with its source.

Built from a run folder by :func:`mmeperf.planner.calibrate`, saved as YAML or JSON a user can read and
edit. Nothing is invented: a figure the run did not measure is absent (None), and a figure
derived from measurements says how in its ``source``.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mmeperf._files import read_mapping
from mmeperf._types import PathLike
from mmeperf.errors import ConfigurationError

__all__ = [
    "Calibration",
    "Distribution",
    "HostFacts",
    "IdleSlowdown",
    "Measured",
    "ModelCalibration",
    "Source",
    "WakeDelay",
]

SCHEMA_VERSION = 1
#: Quantiles kept of an empirical distribution (percent); 0 and 100 are the exact min and max.
QUANTILES: tuple[float, ...] = (
    0.0, 1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 97.5, 99.0, 99.5,
    99.9, 100.0,
)
_Z90 = 1.2815515655446004  # standard normal quantile of 0.9


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Source(_Model):
    """Where a number came from."""

    run: str | None = None
    """The run folder it was measured in (None: given by the user or a cited default)."""
    measurement: str
    """The file and field, e.g. ``server_metrics.csv ModelLoadingTime (weighted by ModelLoads)``."""
    note: str | None = None
    """How it was derived, and what it leaves out."""


class Measured(_Model):
    """One measured (or cited) number."""

    value: float
    unit: str
    """``s``, ``bytes``, ``cpu_s`` ..."""
    samples: int | None = None
    """How many observations it summarises (None: unknown)."""
    source: Source


class Distribution(_Model):
    """A distribution of durations in seconds: empirical quantiles, a lognormal, or a constant.

    ``empirical``: ``quantiles`` maps percent (0..100, 0 and 100 included) to seconds and is
    sampled by linear interpolation of the inverse CDF. ``lognormal``: ``median_s`` and ``sigma``.
    ``exponential``: mean ``mean_s`` (textbook queues). ``constant``: always ``mean_s`` (used where
    only a mean was measured).
    """

    kind: Literal["empirical", "lognormal", "exponential", "constant"]
    quantiles: dict[float, float] | None = None
    """Percent -> seconds (empirical)."""
    median_s: float | None = Field(default=None, gt=0)
    sigma: float | None = Field(default=None, ge=0)
    mean_s: float | None = Field(default=None, ge=0)
    """The measured mean (every kind; a constant's value)."""
    samples: int | None = None
    """Observations behind it (None: unknown)."""
    source: Source

    @model_validator(mode="after")
    def _complete(self) -> Distribution:
        if self.kind == "empirical":
            q = self.quantiles or {}
            if 0.0 not in q or 100.0 not in q:
                raise ValueError("empirical quantiles must include percent 0 and 100")
            values = [q[p] for p in sorted(q)]
            if any(b < a for a, b in itertools.pairwise(values)) or values[0] < 0:
                raise ValueError("empirical quantiles must be >= 0 and non-decreasing")
        elif self.kind == "lognormal":
            if self.median_s is None or self.sigma is None:
                raise ValueError("a lognormal needs median_s and sigma")
        elif self.mean_s is None:
            raise ValueError(f"a{'n' if self.kind == 'exponential' else ''} {self.kind} needs mean_s")
        return self

    # --- constructors ---------------------------------------------------------------------

    @classmethod
    def constant(cls, seconds: float, *, source: Source, samples: int | None = None) -> Distribution:
        return cls(kind="constant", mean_s=seconds, samples=samples, source=source)

    @classmethod
    def exponential(cls, mean_s: float, *, source: Source) -> Distribution:
        return cls(kind="exponential", mean_s=mean_s, source=source)

    @classmethod
    def from_quantiles(
        cls, quantiles: Mapping[float, float], *, source: Source, mean_s: float | None = None,
        samples: int | None = None,
    ) -> Distribution:
        return cls(kind="empirical", quantiles={float(p): float(v) for p, v in quantiles.items()},
                   mean_s=mean_s, samples=samples, source=source)

    # --- reading --------------------------------------------------------------------------

    @property
    def mean(self) -> float:
        """The mean in seconds (measured if known, else from the shape)."""
        if self.mean_s is not None:
            return self.mean_s
        if self.kind == "lognormal":
            assert self.median_s is not None and self.sigma is not None
            return self.median_s * math.exp(self.sigma**2 / 2)
        assert self.quantiles is not None
        ps, vs = self._table()
        # Mean of the piecewise-linear inverse CDF: trapezoids over the percent axis.
        return float(np.sum((vs[1:] + vs[:-1]) / 2 * np.diff(ps)) / 100.0)

    def quantile(self, percent: float) -> float:
        """Seconds at ``percent`` (0..100)."""
        if self.kind == "constant":
            assert self.mean_s is not None
            return self.mean_s
        if self.kind == "exponential":
            assert self.mean_s is not None
            return -self.mean_s * math.log1p(-min(percent / 100.0, 1 - 1e-12))
        if self.kind == "lognormal":
            assert self.median_s is not None and self.sigma is not None
            from statistics import NormalDist

            p = min(max(percent / 100.0, 1e-12), 1 - 1e-12)
            return self.median_s * math.exp(self.sigma * NormalDist().inv_cdf(p))
        ps, vs = self._table()
        return float(np.interp(percent, ps, vs))

    def _table(self) -> tuple[np.ndarray, np.ndarray]:
        assert self.quantiles is not None
        ps = np.array(sorted(self.quantiles), dtype=np.float64)
        return ps, np.array([self.quantiles[p] for p in sorted(self.quantiles)], dtype=np.float64)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` draws in seconds (vectorised; the same ``rng`` state gives the same draws)."""
        if self.kind == "constant":
            assert self.mean_s is not None
            return np.full(n, self.mean_s)
        if self.kind == "exponential":
            assert self.mean_s is not None
            return rng.exponential(self.mean_s, n)
        if self.kind == "lognormal":
            assert self.median_s is not None and self.sigma is not None
            return self.median_s * np.exp(self.sigma * rng.standard_normal(n))  # type: ignore[no-any-return]
        ps, vs = self._table()
        return np.asarray(np.interp(rng.random(n) * 100.0, ps, vs), dtype=np.float64)

    def scaled(self, factor: float, *, note: str) -> Distribution:
        """The same shape times ``factor`` (its source notes why)."""
        src = self.source.model_copy(update={"note": "; ".join(x for x in (self.source.note, note) if x)})
        return self.model_copy(update={
            "quantiles": None if self.quantiles is None else {p: v * factor for p, v in self.quantiles.items()},
            "median_s": None if self.median_s is None else self.median_s * factor,
            "mean_s": None if self.mean_s is None else self.mean_s * factor,
            "source": src,
        })

    def lognormal_fit(self) -> Distribution:
        """A lognormal through this distribution's median and 90th percentile."""
        median = self.quantile(50.0)
        p90 = self.quantile(90.0)
        if median <= 0:
            raise ConfigurationError("Cannot fit a lognormal to a distribution whose median is 0")
        sigma = max(math.log(max(p90, median) / median) / _Z90, 0.0)
        note = "lognormal through the median and p90 of " + self.kind + " quantiles"
        return Distribution(kind="lognormal", median_s=median, sigma=sigma, samples=self.samples,
                            source=self.source.model_copy(update={"note": note}))


class IdleSlowdown(_Model):
    """How much more CPU the same work takes in a thread that has just slept, by how long it slept.

    Measured on the host (:func:`~mmeperf.planner.calibrate.measure_idle_slowdown`): on a shared
    or virtual machine a thread that wakes after an idle spell runs slower for a while (caches
    and branch predictors refilled, a sibling hyperthread or another tenant on its core, lower
    clocks), so one request's CPU at a few requests per second is not its CPU at saturation.
    """

    points: list[tuple[float, float]]
    """(seconds asleep, CPU factor against back-to-back work), sorted by seconds; interpolated
    between points, the last factor beyond them."""
    samples: int | None = None
    source: Source

    @field_validator("points")
    @classmethod
    def _check(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if not points or any(g < 0 or f <= 0 for g, f in points):
            raise ValueError("idle slowdown points must be (seconds >= 0, factor > 0), at least one")
        return sorted(points)


class WakeDelay(_Model):
    """How long a request that finds the whole server asleep waits for it to wake, by how long it
    slept, beyond the unloaded latency (measured back to back).

    Measured end to end (:func:`~mmeperf.planner.calibrate.idle_latency_curve`): on a virtual
    machine a core that went idle is halted, and the threads a request wakes (the event loop, a
    pool thread) wait for the hypervisor to run it again; the longer it slept, the longer.
    """

    points: list[tuple[float, float]]
    """(seconds asleep, seconds of delay), sorted by seconds; interpolated between points, the
    last delay beyond them."""
    source: Source

    @field_validator("points")
    @classmethod
    def _check(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if not points or any(g < 0 or d < 0 for g, d in points):
            raise ValueError("wake delay points must be (seconds >= 0, seconds >= 0), at least one")
        return sorted(points)


class HostFacts(_Model):
    """What the calibration run ran on."""

    instance_type: str | None = None
    """The endpoint's instance type (real or emulated), as the run recorded it."""
    emulated: bool | None = None
    endpoint_kind: str | None = None
    """local, memory, sagemaker, triton."""
    cpu_count: int | None = None
    """Cores of the machine that ran the load (environment.json)."""
    platform: str | None = None
    memory_budget_bytes: int | None = None
    """The endpoint's model-cache budget, when it reported one."""
    worker_mode: Literal["thread", "process"] | None = None
    """How the local MME ran its models: in its own threads (a model's memory is the runner's
    estimate plus the instance's per-model overhead) or one worker process each (the worker's
    measured memory, no overhead); None: not a local MME, or not recorded."""


class ModelCalibration(_Model):
    """What was measured of one model."""

    requests: int = 0
    """Requests the calibration run sent to it."""
    cold_requests: int = 0
    service_time: Distribution | None = None
    """Time a worker is busy with one warm request."""
    memory_bytes: Measured | None = None
    """Bytes the model holds in the cache when loaded (with its per-model overhead)."""


class Calibration(_Model):
    """Everything a simulation of an MME needs that a run measured, with sources."""

    schema_version: int = SCHEMA_VERSION
    runs: list[str] = Field(default_factory=list)
    """Run folders this calibration was built from."""
    host: HostFacts = Field(default_factory=HostFacts)
    models: dict[str, ModelCalibration] = Field(default_factory=dict)
    """Per model: request counts, service time, memory."""
    service_time: Distribution | None = None
    """Warm service time over all models (for models without their own)."""
    client_warm_latency: Distribution | None = None
    """Warm request latency as the client saw it (histograms.json, all stages)."""
    client_cold_latency: Distribution | None = None
    """Cold request latency as the client saw it (wait for the load included)."""
    overhead_latency: Distribution | None = None
    """The server's own time per request outside the model (OverheadLatency)."""
    load_time: Distribution | None = None
    """Time to load a model into memory (ModelLoadingTime)."""
    unload_time: Distribution | None = None
    download_time: Distribution | None = None
    loading_wait_time: Distribution | None = None
    """Time a request waited for its model's download and load (ModelLoadingWaitTime)."""
    cpu_seconds_per_request: Measured | None = None
    """CPU time the server spent per invocation (CPUUtilization x interval / Invocations)."""
    memory_per_model_bytes: Measured | None = None
    """Bytes one loaded model takes (when every model is alike)."""
    hit_ratio: Measured | None = None
    """The run's measured ModelCacheHit (weighted by invocations)."""
    request_cpu_s: Measured | None = None
    """Server CPU per request answered from a loaded model (a warm run: no loads)."""
    uncompiled_request_cpu_s: Measured | None = None
    """Server CPU per request served by XGBoost's own predict (before a model's fast path is
    compiled): a warm run against a server without the fast path."""
    load_cpu_s: Measured | None = None
    """Server CPU per model load: the run's CPU less ``request_cpu_s`` per request, over its loads."""
    client_cpu_s: Measured | None = None
    """The load client's CPU per request (measured by the caller around its runs)."""
    compile_cpu_s: Measured | None = None
    """CPU to compile one model's fast path (measured on this host, see measure_model_cpu)."""
    unloaded_latency: Distribution | None = None
    """Client-seen warm latency with one user and every model loaded (no queueing)."""
    unloaded_cold_latency: Distribution | None = None
    """Client-seen cold latency with one user and room for one model (every request a load from
    the disk cache, nothing else running): what a load costs beyond a warm request, unqueued."""
    cpu_share: Measured | None = None
    """Share of a core one thread got on the host at calibration (see measure_cpu_share)."""
    cpu_stalls: Distribution | None = None
    """Wall time beyond its CPU a thread lost per ``stall_probe_s`` of CPU (see measure_cpu_share)."""
    stall_probe_s: float | None = None
    fetch_cpu_s: Measured | None = None
    """CPU to fetch one model into the disk cache (extract its archive): a load of a model not yet
    on the server's disk pays it before the load (see measure_model_cpu)."""
    idle_slowdown: IdleSlowdown | None = None
    """The host's CPU factor after a thread slept (see planner.hostspeed): the CPU figures above
    are measured with their threads busy (back to back)."""
    wake_delay: WakeDelay | None = None
    """The pure delay of a request that finds the whole server asleep, by how long it slept (see
    calibrate.idle_latency_curve)."""
    host_speed: Measured | None = None
    """Thread CPU of the reference work (planner.hostspeed.probe_work), hot, beside the calibration
    runs: a prediction for a time the host ran it in another time scales the CPU figures by
    the ratio (HostModel.speed_ratio)."""
    latency_timing: Literal["kernel", "user"] | None = None
    """How the calibration run's client timed requests: to the kernel's receive stamp of the answer
    ("kernel", mmeperf's default where the OS has it: run.json has ``client_lag``) or to the read
    in user space ("user"); None: not known (read as "kernel")."""

    # --- files ----------------------------------------------------------------------------

    def save(self, path: PathLike) -> Path:
        """Write YAML (.yaml/.yml) or JSON (anything else)."""
        p = Path(path)
        data = self.model_dump(mode="json", exclude_none=True)
        if p.suffix.lower() in (".yaml", ".yml"):
            text = yaml.safe_dump(data, sort_keys=False, width=100)
        else:
            text = json.dumps(data, indent=1)
        p.write_text(text, encoding="utf-8")
        return p

    @classmethod
    def load(cls, path: PathLike) -> Calibration:
        data = read_mapping(path, "calibration")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigurationError(f"Invalid calibration {str(path)!r}: {exc}") from exc

    # --- what a simulation reads ----------------------------------------------------------

    def service_time_of(self, model: str) -> Distribution:
        """The model's own service time, else the all-model one."""
        own = self.models.get(model)
        if own is not None and own.service_time is not None:
            return own.service_time
        if self.service_time is None:
            raise ConfigurationError(
                f"The calibration has no service time for {model!r} nor an all-model one; "
                "calibrate from a run with warm requests"
            )
        return self.service_time

    def memory_of(self, model: str) -> int | None:
        own = self.models.get(model)
        if own is not None and own.memory_bytes is not None:
            return int(own.memory_bytes.value)
        return None if self.memory_per_model_bytes is None else int(self.memory_per_model_bytes.value)

    def popularity(self) -> dict[str, float]:
        """Share of the calibration run's requests per model (the measured popularity)."""
        total = sum(m.requests for m in self.models.values())
        return {name: m.requests / total for name, m in self.models.items()} if total else {}
