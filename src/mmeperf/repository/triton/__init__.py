"""Triton model configs: the ``config.pbtxt`` schema (:mod:`.config`) and ready-made presets
(:mod:`.presets`).

Packaging an artifact into a repository is :mod:`mmeperf.repository.triton.packaging`, kept apart
because it alone needs the exporters and TensorRT; importing this package never imports them.
"""

from __future__ import annotations

from mmeperf.repository.triton.config import (
    BACKEND_PLATFORMS,
    CONFIG_FILE,
    DEFAULT_MODEL_FILES,
    FIL_MODEL_FILES,
    BatchingSpec,
    BatchRange,
    InstanceGroup,
    TritonModelConfig,
    TritonTensor,
    WarmupSpec,
    build_config,
    check_engine_profile,
    parse_config,
)
from mmeperf.repository.triton.presets import (
    config_for_signature,
    cv_config,
    fil_config,
    nlp_config,
    python_config,
)

__all__ = [
    "BACKEND_PLATFORMS",
    "CONFIG_FILE",
    "DEFAULT_MODEL_FILES",
    "FIL_MODEL_FILES",
    "BatchRange",
    "BatchingSpec",
    "InstanceGroup",
    "TritonModelConfig",
    "TritonTensor",
    "WarmupSpec",
    "build_config",
    "check_engine_profile",
    "config_for_signature",
    "cv_config",
    "fil_config",
    "nlp_config",
    "parse_config",
    "python_config",
]
