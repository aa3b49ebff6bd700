"""The planner: calibrate from runs, simulate MME instances, predict the LRU hit ratio."""

from __future__ import annotations

from mmeperf.planner.cache import che_hit_ratio, hit_ratio_curve, lru_hit_ratio_simulated
from mmeperf.planner.calibrate import calibrate
from mmeperf.planner.calibration import (
    Calibration,
    Distribution,
    HostFacts,
    Measured,
    ModelCalibration,
    Source,
)
from mmeperf.planner.result import SimulationResult
from mmeperf.planner.simulation import InstanceConfig, ModelSpec, Simulation, popularity_of

__all__ = [
    "Calibration",
    "Distribution",
    "HostFacts",
    "InstanceConfig",
    "Measured",
    "ModelCalibration",
    "ModelSpec",
    "Simulation",
    "SimulationResult",
    "Source",
    "calibrate",
    "che_hit_ratio",
    "hit_ratio_curve",
    "lru_hit_ratio_simulated",
    "popularity_of",
]
