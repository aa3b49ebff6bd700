"""A simulation's observations and their figures: the same totals and files as a real run, labelled predicted."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmeperf._types import PathLike
from mmeperf.load.hist import Histogram
from mmeperf.load.profile import LoadProfile, StagePlan
from mmeperf.metrics import SERVER_METRIC_COLUMNS
from mmeperf.planner import _runfolder as R

__all__ = ["Records", "SimulationResult"]

_PCTS = (50.0, 90.0, 95.0, 99.0)
_STATUS_NAMES = {0: "Timeout", 429: "ModelNotReadyException", 503: "ServiceUnavailable", -1: "CancelledAtStop"}


@dataclass
class Records:
    """What a simulation observed, appended as it goes."""

    done: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    model: list[int] = field(default_factory=list)
    cold: list[bool] = field(default_factory=list)
    status: list[int] = field(default_factory=list)
    stage: list[int] = field(default_factory=list)
    sent: list[float] = field(default_factory=list)
    late: int = 0
    lookups: list[tuple[float, int, bool]] = field(default_factory=list)
    loads: list[tuple[float, int, float, float, bool]] = field(default_factory=list)
    unloads: list[tuple[float, int, float]] = field(default_factory=list)
    counts: list[tuple[float, int, int]] = field(default_factory=list)
    invocations: list[tuple[float, int, float, int]] = field(default_factory=list)

    def add(self, done: float, model: int, cold: bool, status: int, stage: int, sent: float, latency: float) -> None:
        """One request as the client saw it (success or failure, exactly once)."""
        self.done.append(done)
        self.latency.append(latency)
        self.model.append(model)
        self.cold.append(cold)
        self.status.append(status)
        self.stage.append(stage)
        self.sent.append(sent)

    def lookup(self, t: float, inst: int, hit: bool) -> None:
        self.lookups.append((t, inst, hit))

    def server(self, t: float, inst: int, service_s: float, status: int) -> None:
        self.invocations.append((t, inst, service_s, status))

    def load(self, t: float, inst: int, download: float, load: float, downloaded: bool) -> None:
        self.loads.append((t, inst, download, load, downloaded))

    def unload(self, t: float, inst: int, unload: float, loaded_after: int) -> None:
        self.unloads.append((t, inst, unload))
        self.counts.append((t, inst, loaded_after))

    def loaded_count(self, t: float, inst: int, count: int) -> None:
        self.counts.append((t, inst, count))


def _hist(latency_s: np.ndarray) -> Histogram:
    h = Histogram()
    h.record(np.rint(latency_s * 1e6).astype(np.int64))
    return h


@dataclass
class SimulationResult:
    """A predicted run: totals like :class:`BenchmarkResult`'s, and :meth:`write` for its files."""

    profile: LoadProfile
    instance: Any
    instance_count: int
    model_names: list[str]
    seed: int
    plans: list[StagePlan]
    duration_s: float
    records: Records
    requests_sent: int
    predicted: bool = True

    @cached_property
    def _a(self) -> dict[str, np.ndarray]:
        r = self.records
        return {
            "done": np.asarray(r.done, dtype=np.float64),
            "latency": np.asarray(r.latency, dtype=np.float64),
            "model": np.asarray(r.model, dtype=np.int64),
            "cold": np.asarray(r.cold, dtype=bool),
            "status": np.asarray(r.status, dtype=np.int64),
            "stage": np.asarray(r.stage, dtype=np.int64),
        }

    # --- totals ---------------------------------------------------------------------------

    @property
    def total_requests(self) -> int:
        return int(self._a["done"].size)

    @property
    def total_failures(self) -> int:
        return int(np.count_nonzero(self._a["status"] != 200))

    @property
    def rps(self) -> float | None:
        return self.total_requests / self.duration_s if self.duration_s > 0 else None

    @property
    def ok_rps(self) -> float | None:
        return (self.total_requests - self.total_failures) / self.duration_s if self.duration_s > 0 else None

    def percentiles_ms(self, percentiles: tuple[float, ...] = _PCTS) -> dict[float, float | None]:
        """Exact (HDR, 3 digits) latency percentiles of every request, as a real run reports them."""
        return _hist(self._a["latency"]).percentiles_ms(percentiles)

    @property
    def p50_ms(self) -> float | None:
        return self.percentiles_ms((50.0,))[50.0]

    @property
    def p99_ms(self) -> float | None:
        return self.percentiles_ms((99.0,))[99.0]

    @property
    def mean_latency_s(self) -> float | None:
        lat = self._a["latency"]
        return float(lat.mean()) if lat.size else None

    @property
    def hit_ratio(self) -> float | None:
        """Share of lookups whose model was loaded (CloudWatch ModelCacheHit)."""
        lookups = self.records.lookups
        return sum(1 for _, _, hit in lookups if hit) / len(lookups) if lookups else None

    @property
    def loads_per_minute(self) -> float:
        return len(self.records.loads) / self.duration_s * 60.0 if self.duration_s > 0 else 0.0

    @property
    def unloads_per_minute(self) -> float:
        return len(self.records.unloads) / self.duration_s * 60.0 if self.duration_s > 0 else 0.0

    def failures_by_reason(self) -> dict[str, int]:
        status = self._a["status"]
        return {_STATUS_NAMES.get(int(s), str(s)): int(np.count_nonzero(status == s))
                for s in np.unique(status[status != 200])}

    def loaded_model_count(self, interval_s: float = 1.0) -> pd.DataFrame:
        """LoadedModelCount (summed over instances) at the end of every interval."""
        ends = np.arange(interval_s, self.duration_s + interval_s / 2, interval_s)
        total = np.zeros(ends.size, dtype=np.int64)
        for inst in range(self.instance_count):
            events = [(t, c) for t, i, c in self.records.counts if i == inst]
            if not events:
                continue
            times = np.asarray([t for t, _ in events])
            counts = np.asarray([c for _, c in events])
            idx = np.searchsorted(times, ends, side="right") - 1
            total += np.where(idx >= 0, counts[np.maximum(idx, 0)], 0)
        return pd.DataFrame({"elapsed_s": ends, "LoadedModelCount": total})

    def summary(self) -> dict[str, Any]:
        pct = self.percentiles_ms()
        return {
            "predicted": True,
            "requests": self.total_requests,
            "failures": self.total_failures,
            "rps": self.rps,
            "ok_rps": self.ok_rps,
            "p50_ms": pct[50.0],
            "p90_ms": pct[90.0],
            "p95_ms": pct[95.0],
            "p99_ms": pct[99.0],
            "hit_ratio": self.hit_ratio,
            "loads_per_minute": self.loads_per_minute,
            "unloads_per_minute": self.unloads_per_minute,
            "failures_by_reason": self.failures_by_reason(),
        }

    # --- the run folder -------------------------------------------------------------------

    def write(self, out_dir: PathLike) -> R.BenchmarkResult:
        """Write the files a real run writes (predicted, labelled so) and read them back."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        a = self._a
        labels = {"instance_type": getattr(self.instance, "name", None) or "simulated",
                  "platform": "predicted", "max_models_loaded": len(self.model_names), "predicted": True}
        R.atomic_write_csv(out / R.SUMMARY_CSV, R.SUMMARY_COLUMNS, self._summary_rows(labels))
        R.atomic_write_csv(out / R.PER_MODEL_CSV, R.PER_MODEL_COLUMNS, self._per_model_rows())
        R.atomic_write_csv(out / R.HISTORY_CSV, R.HISTORY_COLUMNS, self._history_rows())
        R.atomic_write_csv(out / R.SERVER_METRICS_CSV, SERVER_METRIC_COLUMNS, self._server_rows())
        failures = []
        for (stage, model, status), n in sorted(self._failure_counts().items()):
            failures.append({"stage": stage, "model": self.model_names[model], "status": max(status, 0),
                             "error_code": _STATUS_NAMES.get(status, ""), "count": n, "message": "predicted"})
        R.atomic_write_csv(out / R.FAILURES_CSV, R.FAILURES_COLUMNS, failures)
        stages: dict[str, str] = {}
        for stage in np.unique(a["stage"]):
            for kind, mask in (("warm", ~a["cold"]), ("cold", a["cold"])):
                sel = (a["stage"] == stage) & mask
                if sel.any():
                    stages[f"{int(stage)}/{kind}"] = _hist(a["latency"][sel]).encode()
        models = {self.model_names[m]: _hist(a["latency"][a["model"] == m]).encode() for m in np.unique(a["model"])}
        R.atomic_write_json(out / R.HISTOGRAMS_JSON, {"unit": "microseconds", "stages": stages, "models": models})
        pct = self.percentiles_ms()
        totals = {
            "requests": self.total_requests, "failures": self.total_failures,
            "cold_requests": int(a["cold"].sum()), "late_sends": self.records.late,
            "duration_s": self.duration_s, "rps": self.rps, "ok_rps": self.ok_rps,
            "p50_ms": pct[50.0], "p90_ms": pct[90.0], "p95_ms": pct[95.0], "p99_ms": pct[99.0],
            "max_ms": float(a["latency"].max() * 1000) if a["latency"].size else None,
            "hit_ratio": self.hit_ratio,
        }
        R.atomic_write_json(out / R.RUN_JSON, {"status": "predicted", "predicted": True, "labels": labels,
                                               "totals": totals, "stop_reason": None})
        R.atomic_write_json(out / R.ENVIRONMENT_JSON, {
            "predicted": True,
            "endpoint": {"kind": "simulated", "name": "predicted", "instance_type": labels["instance_type"],
                         "instance_count": self.instance_count,
                         "memory_budget_bytes": getattr(self.instance, "memory_budget_bytes", None)},
            "simulation": {"seed": self.seed, "instance": _dump(self.instance),
                           "note": "server metrics sum over instances (LoadedModelCount too)"},
            "target_models": len(self.model_names),
        })
        R.atomic_write_json(out / R.PROFILE_JSON, self.profile.model_dump(mode="json"))
        return R.BenchmarkResult.load(out)

    def _failure_counts(self) -> dict[tuple[int, int, int], int]:
        a = self._a
        bad = a["status"] != 200
        counts: dict[tuple[int, int, int], int] = {}
        for stage, model, status in zip(a["stage"][bad], a["model"][bad], a["status"][bad], strict=True):
            key = (int(stage), int(model), int(status))
            counts[key] = counts.get(key, 0) + 1
        return counts

    def _summary_rows(self, labels: dict[str, Any]) -> list[dict[str, Any]]:
        a = self._a
        rows = []
        for plan in self.plans:
            sel = a["stage"] == plan.index
            n = int(sel.sum())
            fails = int(np.count_nonzero(a["status"][sel] != 200))
            lat = a["latency"][sel]
            cold = a["cold"][sel]
            pct = _hist(lat).percentiles_ms(_PCTS)
            warm = _hist(lat[~cold]).percentiles_ms((50.0, 99.0))
            cpct = _hist(lat[cold]).percentiles_ms((50.0, 99.0))
            d = plan.duration_s
            rows.append({
                "stage": plan.index, "name": plan.name, **{k: labels[k] for k in
                ("instance_type", "platform", "max_models_loaded")},
                "users": plan.phase.users_at(plan.duration_s) if plan.phase is not None else plan.users,
                "target_rate": plan.rate, "start_s": plan.start_s, "duration_s": d,
                "requests": n, "failures": fails, "failure_pct": 100.0 * fails / n if n else 0.0,
                "rps": n / d if d > 0 else None, "ok_rps": (n - fails) / d if d > 0 else None,
                "send_rate": None, "p50_ms": pct[50.0], "p90_ms": pct[90.0], "p95_ms": pct[95.0],
                "p99_ms": pct[99.0], "max_ms": float(lat.max() * 1000) if n else None,
                "mean_ms": float(lat.mean() * 1000) if n else None,
                "cold_requests": int(cold.sum()), "cold_share": float(cold.mean()) if n else None,
                "warm_p50_ms": warm[50.0], "warm_p99_ms": warm[99.0],
                "cold_p50_ms": cpct[50.0], "cold_p99_ms": cpct[99.0], "late_sends": None,
            })
        return rows

    def _per_model_rows(self) -> list[dict[str, Any]]:
        a = self._a
        rows = []
        for m in np.unique(a["model"]):
            sel = a["model"] == m
            lat = a["latency"][sel]
            n = int(sel.sum())
            fails = int(np.count_nonzero(a["status"][sel] != 200))
            cold = int(a["cold"][sel].sum())
            pct = _hist(lat).percentiles_ms(_PCTS)
            rows.append({"model": self.model_names[m], "requests": n, "failures": fails,
                         "failure_pct": 100.0 * fails / n, "cold_requests": cold, "cold_share": cold / n,
                         "p50_ms": pct[50.0], "p90_ms": pct[90.0], "p95_ms": pct[95.0], "p99_ms": pct[99.0],
                         "max_ms": float(lat.max() * 1000), "mean_ms": float(lat.mean() * 1000)})
        return sorted(rows, key=lambda r: str(r["model"]))

    def _history_rows(self) -> list[dict[str, Any]]:
        a = self._a
        second = np.floor(a["done"]).astype(np.int64)
        rows = []
        last = int(second.max()) + 1 if second.size else 0
        for s in range(last):
            sel = second == s
            lat = a["latency"][sel]
            n = int(sel.sum())
            fails = int(np.count_nonzero(a["status"][sel] != 200))
            pct = _hist(lat).percentiles_ms(_PCTS) if n else {}
            rows.append({"timestamp": s + 1, "elapsed_s": s + 1, "stage": int(a["stage"][sel][0]) if n else None,
                         "users": None, "requests": n, "failures": fails, "rps": n, "ok_rps": n - fails,
                         "failures_per_s": fails, "p50_ms": pct.get(50.0), "p90_ms": pct.get(90.0),
                         "p95_ms": pct.get(95.0), "p99_ms": pct.get(99.0),
                         "max_ms": float(lat.max() * 1000) if n else None,
                         "cold_requests": int(a["cold"][sel].sum()), "late_sends": None})
        return rows

    def _server_rows(self) -> list[dict[str, Any]]:
        r = self.records
        seconds = max(int(np.ceil(self.duration_s)), 1)
        counts = self.loaded_model_count(1.0)

        def binned(times: list[float], values: list[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
            idx = np.clip(np.floor(np.asarray(times, dtype=np.float64)).astype(np.int64), 0, seconds - 1) \
                if times else np.zeros(0, dtype=np.int64)
            n = np.bincount(idx, minlength=seconds)[:seconds]
            total = np.bincount(idx, weights=np.asarray(values, dtype=np.float64) if values is not None else None,
                                minlength=seconds)[:seconds]
            return n, total

        ok_inv = [x for x in r.invocations if x[3] == 200]
        inv_n, _ = binned([x[0] for x in r.invocations])
        e4, _ = binned([x[0] for x in r.invocations if 400 <= x[3] < 500])
        e5, _ = binned([x[0] for x in r.invocations if x[3] >= 500])
        lat_n, lat_sum = binned([x[0] for x in ok_inv], [x[2] * 1e6 for x in ok_inv])
        look_n, hits = binned([x[0] for x in r.lookups], [float(x[2]) for x in r.lookups])
        load_n, load_sum = binned([x[0] for x in r.loads], [x[3] * 1e6 for x in r.loads])
        dl = [x for x in r.loads if x[4]]
        dl_n, dl_sum = binned([x[0] for x in dl], [x[2] * 1e6 for x in dl])
        un_n, un_sum = binned([x[0] for x in r.unloads], [x[2] * 1e6 for x in r.unloads])
        vcpus = getattr(self.instance, "vcpus", None)
        rows = []
        for s in range(seconds):
            def mean(total: np.ndarray, n: np.ndarray, s: int = s) -> float | None:
                return float(total[s] / n[s]) if n[s] else None

            cpu = None
            if vcpus:
                cpu = 100.0 * float(lat_sum[s]) / 1e6  # busy inference seconds in this second, x100
            rows.append({
                "timestamp": s + 1, "elapsed_s": s + 1, "Invocations": int(inv_n[s]),
                "Invocation4XXErrors": int(e4[s]), "Invocation5XXErrors": int(e5[s]),
                "ModelCacheHit": mean(hits, look_n), "LoadedModelCount": int(counts["LoadedModelCount"].iloc[s])
                if s < len(counts) else None,
                "ModelLoads": int(load_n[s]), "ModelUnloads": int(un_n[s]),
                "ModelLatency": mean(lat_sum, lat_n), "OverheadLatency": None, "ModelLoadingWaitTime": None,
                "ModelDownloadingTime": mean(dl_sum, dl_n), "ModelLoadingTime": mean(load_sum, load_n),
                "ModelUnloadingTime": mean(un_sum, un_n), "CPUUtilization": cpu,
            })
        return rows


def _dump(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    return dump(mode="json") if callable(dump) else str(obj)
