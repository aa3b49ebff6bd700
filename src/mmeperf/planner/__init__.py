"""The planner: calibrate from runs, simulate MME instances, predict the LRU hit ratio, search instance types."""

from __future__ import annotations

from mmeperf.planner.cache import che_hit_ratio, hit_ratio_curve, lru_hit_ratio_simulated
from mmeperf.planner.calibrate import calibrate, idle_latency_curve
from mmeperf.planner.calibration import (
    Calibration,
    Distribution,
    HostFacts,
    IdleSlowdown,
    Measured,
    ModelCalibration,
    Source,
    WakeDelay,
)
from mmeperf.planner.result import SimulationResult
from mmeperf.planner.search import (
    Candidate,
    Constraints,
    Plan,
    Planner,
    Workload,
    measured_summary,
    relative_error,
    replica_name,
)
from mmeperf.planner.simulation import (
    HostModel,
    InstanceConfig,
    ModelSpec,
    Simulation,
    popularity_of,
)

__all__ = [
    "Calibration",
    "Candidate",
    "Constraints",
    "Distribution",
    "HostFacts",
    "HostModel",
    "IdleSlowdown",
    "InstanceConfig",
    "Measured",
    "ModelCalibration",
    "ModelSpec",
    "Plan",
    "Planner",
    "Simulation",
    "SimulationResult",
    "Source",
    "WakeDelay",
    "Workload",
    "calibrate",
    "che_hit_ratio",
    "hit_ratio_curve",
    "idle_latency_curve",
    "lru_hit_ratio_simulated",
    "measured_summary",
    "popularity_of",
    "relative_error",
    "replica_name",
]
