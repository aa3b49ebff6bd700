"""The sample models by name: what ``mmeperf demo formats --model`` and the tests choose from."""

from __future__ import annotations

from collections.abc import Callable

from mmeperf.errors import ConfigurationError
from mmeperf.sample_models.base import SampleModel
from mmeperf.sample_models.text import bert_base
from mmeperf.sample_models.vision import resnet50, vit_base

__all__ = ["SAMPLE_MODELS", "sample_model"]

_BUILDERS: dict[str, Callable[..., SampleModel]] = {
    "resnet50": resnet50,
    "vit": vit_base,
    "bert": bert_base,
}
#: Names accepted by :func:`sample_model` (and ``mmeperf demo formats --model``).
SAMPLE_MODELS = tuple(_BUILDERS)


def sample_model(name: str, *, tiny: bool = False, seed: int = 0) -> SampleModel:
    """The sample model ``name`` (one of :data:`SAMPLE_MODELS`)."""
    if name not in _BUILDERS:
        raise ConfigurationError(
            f"Unknown sample model {name!r}; expected one of: {', '.join(SAMPLE_MODELS)}"
        )
    return _BUILDERS[name](tiny=tiny, seed=seed)
