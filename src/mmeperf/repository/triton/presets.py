"""Ready-made Triton configs: the reference's CV and NLP models, FIL (XGBoost), Python models,
and the config of an exported tensor model from its signature.

Every builder raises ConfigurationError (400) for what :class:`TritonModelConfig` refuses.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from mmeperf.errors import ConfigurationError
from mmeperf.repository.triton.config import (
    BACKEND_PLATFORMS,
    BatchingSpec,
    BatchRange,
    DataType,
    InstanceGroup,
    InstanceKind,
    Platform,
    TritonModelConfig,
    TritonTensor,
    WarmupSpec,
    build_config,
    check_engine_profile,
    validation_problems,
)

if TYPE_CHECKING:
    from mmeperf.backends.tensors import Signature

__all__ = ["config_for_signature", "cv_config", "fil_config", "nlp_config", "python_config"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _configuration_errors(builder: _F) -> _F:
    """Builders raise ConfigurationError (400) for what the typed spec refuses."""

    @functools.wraps(builder)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return builder(*args, **kwargs)
        except ValidationError as exc:
            raise ConfigurationError(f"Invalid Triton model config: {validation_problems(exc)}") from exc

    return wrapper  # type: ignore[return-value]


def _tensor_model_config(
    *,
    platform: Platform,
    name: str | None,
    max_batch_size: int,
    inputs: list[TritonTensor],
    outputs: list[TritonTensor],
    preferred_batch_sizes: Sequence[int] | None,
    max_queue_delay_microseconds: int,
    dynamic_batching: bool,
    instance_kind: InstanceKind,
    instance_count: int,
    warmup: bool,
    warmup_inputs: list[TritonTensor] | None = None,
) -> TritonModelConfig:
    """The config shared by tensor models (CV, NLP, from a signature): batching, instances, warmup."""
    return build_config(
        platform=platform,
        name=name,
        max_batch_size=max_batch_size,
        inputs=inputs,
        outputs=outputs,
        dynamic_batching=_batching(
            preferred_batch_sizes, max_queue_delay_microseconds, max_batch_size, dynamic_batching
        ),
        instance_groups=_instances(instance_kind, instance_count),
        warmup=_warmup_for(inputs if warmup_inputs is None else warmup_inputs, warmup),
    )


def _instances(kind: InstanceKind, count: int) -> list[InstanceGroup]:
    return [InstanceGroup(kind=kind, count=count)]


def _batching(
    preferred: Sequence[int] | None,
    max_queue_delay_microseconds: int,
    max_batch_size: int,
    enabled: bool = True,
) -> BatchingSpec | None:
    if not enabled:
        if preferred:
            raise ConfigurationError("preferred batch sizes need dynamic_batching=True")
        return None
    if max_batch_size == 0:
        if preferred:
            raise ConfigurationError("preferred batch sizes need max_batch_size > 0")
        return None
    return BatchingSpec(
        preferred_batch_size=list(preferred or []),
        max_queue_delay_microseconds=max_queue_delay_microseconds,
    )


def _warmup_for(inputs: list[TritonTensor], enabled: bool, batch_size: int = 1) -> list[WarmupSpec]:
    if not enabled or not inputs:
        return []
    return [WarmupSpec(batch_size=batch_size, inputs={t.name: t for t in inputs})]


@_configuration_errors
def cv_config(
    platform: Platform,
    *,
    name: str | None = None,
    image_shape: Sequence[int] = (3, 224, 224),
    num_classes: int = 1000,
    input_name: str = "INPUT__0",
    output_name: str = "OUTPUT__0",
    max_batch_size: int = 32,
    preferred_batch_sizes: Sequence[int] | None = (16,),
    max_queue_delay_microseconds: int = 0,
    instance_kind: InstanceKind = "KIND_GPU",
    instance_count: int = 1,
    dynamic_batching: bool = True,
    warmup: bool = False,
    io: bool = True,
) -> TritonModelConfig:
    """An image classifier: ``INPUT__0`` FP32 [3, 224, 224] -> ``OUTPUT__0`` FP32 [classes].

    The defaults are the reference's CV PyTorch config (max batch 32, preferred 16, one GPU
    instance). ``io=False`` leaves inputs and outputs to Triton's auto-complete.
    """
    inputs = (
        [TritonTensor(name=input_name, data_type="TYPE_FP32", dims=list(image_shape))] if io else []
    )
    outputs = (
        [TritonTensor(name=output_name, data_type="TYPE_FP32", dims=[num_classes])] if io else []
    )
    return _tensor_model_config(
        platform=platform, name=name, max_batch_size=max_batch_size, inputs=inputs, outputs=outputs,
        preferred_batch_sizes=preferred_batch_sizes,
        max_queue_delay_microseconds=max_queue_delay_microseconds, dynamic_batching=dynamic_batching,
        instance_kind=instance_kind, instance_count=instance_count, warmup=warmup,
    )


@_configuration_errors
def nlp_config(
    platform: Platform,
    *,
    name: str | None = None,
    seq_len: int = 128,
    hidden_size: int = 768,
    input_names: Sequence[str] = ("input_ids", "attention_mask"),
    input_dtype: DataType = "TYPE_INT64",
    output_name: str = "last_hidden_state",
    max_batch_size: int = 128,
    preferred_batch_sizes: Sequence[int] | None = None,
    max_queue_delay_microseconds: int = 0,
    instance_kind: InstanceKind = "KIND_GPU",
    instance_count: int = 1,
    dynamic_batching: bool = True,
    warmup: bool = False,
    io: bool = True,
) -> TritonModelConfig:
    """A text encoder: token tensors [seq_len] -> ``last_hidden_state`` FP32 [seq_len, hidden].

    The reference's NLP PyTorch config used INT32 tokens and max batch 128; our exports take
    INT64 (what tokenizers and ONNX produce). ``io=False``: auto-complete (its TensorRT config).
    """
    inputs = (
        [TritonTensor(name=n, data_type=input_dtype, dims=[seq_len]) for n in input_names]
        if io
        else []
    )
    outputs = (
        [TritonTensor(name=output_name, data_type="TYPE_FP32", dims=[seq_len, hidden_size])]
        if io
        else []
    )
    return _tensor_model_config(
        platform=platform, name=name, max_batch_size=max_batch_size, inputs=inputs, outputs=outputs,
        preferred_batch_sizes=preferred_batch_sizes,
        max_queue_delay_microseconds=max_queue_delay_microseconds, dynamic_batching=dynamic_batching,
        instance_kind=instance_kind, instance_count=instance_count, warmup=warmup,
    )


@_configuration_errors
def fil_config(
    *,
    num_features: int,
    name: str | None = None,
    model_type: str = "xgboost_json",
    output_class: bool = True,
    predict_proba: bool = False,
    num_outputs: int = 1,
    threshold: float | None = None,
    max_batch_size: int = 32768,
    max_queue_delay_microseconds: int = 100,
    instance_kind: InstanceKind = "KIND_GPU",
    instance_count: int = 1,
    extra_parameters: dict[str, str] | None = None,
    default_model_filename: str | None = None,
) -> TritonModelConfig:
    """An XGBoost (or LightGBM/Treelite) model on Triton's FIL backend: ``input__0`` FP32
    [num_features] -> ``output__0`` FP32 [num_outputs]; binary classifiers have one output.

    SageMaker-style artifacts (``xgboost-model`` in UBJSON, as mmeperf's xgboost backend saves
    them) need ``model_type="xgboost_ubj", default_model_filename="xgboost-model"``.
    """
    if num_features < 1:
        raise ConfigurationError(f"num_features must be >= 1, got {num_features}")
    parameters = {
        "model_type": model_type,
        "output_class": "true" if output_class else "false",
    }
    if predict_proba:
        parameters["predict_proba"] = "true"
    if threshold is not None:
        parameters["threshold"] = repr(float(threshold))
    parameters.update(extra_parameters or {})
    return build_config(
        platform="fil",
        name=name,
        max_batch_size=max_batch_size,
        inputs=[TritonTensor(name="input__0", data_type="TYPE_FP32", dims=[num_features])],
        outputs=[TritonTensor(name="output__0", data_type="TYPE_FP32", dims=[num_outputs])],
        dynamic_batching=BatchingSpec(max_queue_delay_microseconds=max_queue_delay_microseconds),
        instance_groups=_instances(instance_kind, instance_count),
        parameters=parameters,
        default_model_filename=default_model_filename,
    )


@_configuration_errors
def python_config(
    *,
    inputs: Sequence[TritonTensor] = (),
    outputs: Sequence[TritonTensor] = (),
    name: str | None = None,
    max_batch_size: int = 0,
    instance_kind: InstanceKind = "KIND_CPU",
    instance_count: int = 1,
    parameters: dict[str, str] | None = None,
) -> TritonModelConfig:
    """A Python-backend model (``1/model.py``), e.g. the reference's server-metrics model."""
    return build_config(
        platform="python",
        name=name,
        max_batch_size=max_batch_size,
        inputs=list(inputs),
        outputs=list(outputs),
        instance_groups=_instances(instance_kind, instance_count),
        parameters=dict(parameters or {}),
    )


@_configuration_errors
def config_for_signature(
    backend: str,
    signature: Signature,
    *,
    name: str | None = None,
    max_batch_size: int = 32,
    preferred_batch_sizes: Sequence[int] | None = None,
    max_queue_delay_microseconds: int = 0,
    instance_kind: InstanceKind = "KIND_GPU",
    instance_count: int = 1,
    dynamic_batching: bool = True,
    warmup: bool = False,
    engine_profile: BatchRange | None = None,
    allow_unused_profile: bool = False,
) -> TritonModelConfig:
    """The config for an exported tensor model (``pytorch``, ``onnx`` or ``tensorrt``) from its
    signature; a TensorRT config is checked against the engine's optimization profile.

    Triton's ``dims`` leave out the batch axis when ``max_batch_size > 0`` and include it when
    ``max_batch_size == 0``. So a batching config needs every tensor's first axis dynamic (-1,
    exported with ``dynamic_batch=True``) and drops it; ``max_batch_size=0`` lists the full
    shape, a dynamic first axis staying -1 (any size, no server-side batching).
    """
    from mmeperf.backends.tensors import triton_datatype

    if backend not in BACKEND_PLATFORMS or backend == "xgboost":
        raise ConfigurationError(
            f"Expected a tensor backend (pytorch, onnx, tensorrt), got {backend!r}; use fil_config for XGBoost"
        )

    def tensor(spec: Any) -> TritonTensor:
        if spec.dtype is None or spec.shape is None:
            raise ConfigurationError(
                f"Tensor {spec.name!r} has no recorded dtype/shape; export with mmeperf.exporters "
                f"so signature.json is written"
            )
        shape = [int(d) for d in spec.shape]
        if max_batch_size > 0:
            if not shape or shape[0] != -1:
                raise ConfigurationError(
                    f"Tensor {spec.name!r} has the fixed shape {shape} (no dynamic batch axis), "
                    f"but max_batch_size={max_batch_size} makes Triton add a batch axis in front "
                    f"of dims. Re-export with dynamic_batch=True, or use max_batch_size=0 so "
                    f"dims list the full shape"
                )
            dims = shape[1:]
        else:
            dims = shape
        if not dims:
            # A per-row scalar: Triton wants dims [1] and a reshape to [] for the model.
            return TritonTensor.model_validate(
                {
                    "name": spec.name,
                    "data_type": triton_datatype(spec.dtype),
                    "dims": [1],
                    "reshape": [],
                }
            )
        return TritonTensor.model_validate(
            {"name": spec.name, "data_type": triton_datatype(spec.dtype), "dims": dims}
        )

    try:
        inputs = [tensor(s) for s in signature.inputs]
        outputs = [tensor(s) for s in signature.outputs]
    except ValidationError as exc:
        raise ConfigurationError(f"Invalid tensor for a Triton config: {exc}") from exc
    warmup_inputs = inputs
    if max_batch_size == 0:
        # Warmup requests need concrete dims: one row where the batch axis is dynamic.
        warmup_inputs = [
            t.model_copy(update={"dims": [1 if i == 0 and d == -1 else d for i, d in enumerate(t.dims)]})
            for t in inputs
        ]
    config = _tensor_model_config(
        platform=BACKEND_PLATFORMS[backend], name=name, max_batch_size=max_batch_size,
        inputs=inputs, outputs=outputs, preferred_batch_sizes=preferred_batch_sizes,
        max_queue_delay_microseconds=max_queue_delay_microseconds, dynamic_batching=dynamic_batching,
        instance_kind=instance_kind, instance_count=instance_count, warmup=warmup,
        warmup_inputs=warmup_inputs,
    )
    if engine_profile is not None:
        check_engine_profile(config, engine_profile, allow_unused_profile=allow_unused_profile)
    return config
