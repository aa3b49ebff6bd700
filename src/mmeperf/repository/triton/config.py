"""Triton's ``config.pbtxt`` as a typed spec: validated when built, written as protobuf text.

:class:`TritonModelConfig` covers what the GPU workflow needs (pytorch_libtorch, onnxruntime_onnx,
tensorrt_plan, python and fil models; batching, instance groups, warmup) and writes text that
Triton's own ``model_config_pb2`` parses (:func:`parse_config`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from mmeperf.errors import ConfigurationError, MissingDependencyError

__all__ = [
    "BACKEND_PLATFORMS",
    "CONFIG_FILE",
    "DEFAULT_MODEL_FILES",
    "FIL_MODEL_FILES",
    "BatchRange",
    "BatchingSpec",
    "DataType",
    "InstanceGroup",
    "InstanceKind",
    "Platform",
    "TritonModelConfig",
    "TritonTensor",
    "WarmupSpec",
    "build_config",
    "check_engine_profile",
    "parse_config",
]

CONFIG_FILE = "config.pbtxt"

Platform = Literal["pytorch_libtorch", "onnxruntime_onnx", "tensorrt_plan", "python", "fil"]
DataType = Literal[
    "TYPE_BOOL",
    "TYPE_UINT8",
    "TYPE_UINT16",
    "TYPE_UINT32",
    "TYPE_UINT64",
    "TYPE_INT8",
    "TYPE_INT16",
    "TYPE_INT32",
    "TYPE_INT64",
    "TYPE_FP16",
    "TYPE_FP32",
    "TYPE_FP64",
    "TYPE_STRING",
    "TYPE_BF16",
]
InstanceKind = Literal["KIND_AUTO", "KIND_GPU", "KIND_CPU"]

#: Platforms Triton selects with ``platform:``; the others are ``backend:`` names.
_PLATFORM_FIELD = {"pytorch_libtorch", "onnxruntime_onnx", "tensorrt_plan"}
#: The file Triton loads from ``<name>/<version>/`` for each platform, by default.
DEFAULT_MODEL_FILES: dict[str, str] = {
    "pytorch_libtorch": "model.pt",
    "onnxruntime_onnx": "model.onnx",
    "tensorrt_plan": "model.plan",
    "python": "model.py",
    "fil": "xgboost.json",
}
#: FIL's model_type values and the file name it loads for each.
FIL_MODEL_FILES: dict[str, str] = {
    "xgboost_json": "xgboost.json",
    "xgboost_ubj": "xgboost.ubj",
    "xgboost": "xgboost.model",
    "lightgbm": "model.txt",
    "treelite_checkpoint": "checkpoint.tl",
}
#: mmeperf backend plugin -> Triton platform.
BACKEND_PLATFORMS: dict[str, Platform] = {
    "pytorch": "pytorch_libtorch",
    "onnx": "onnxruntime_onnx",
    "tensorrt": "tensorrt_plan",
    "xgboost": "fil",
}

def _text(value: str) -> str:
    """A protobuf text-format string literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _check_name(value: str, what: str) -> str:
    if not value or not value.strip():
        raise ValueError(f"{what} must not be empty")
    if any(ord(c) < 32 for c in value):
        raise ValueError(f"{what} {value!r} holds control characters")
    return value


class TritonTensor(BaseModel):
    """One ``input`` or ``output`` entry."""

    name: str
    """Tensor name (``INPUT__0``, ``input_ids``, ``input__0`` for FIL)."""
    data_type: DataType
    """Triton data type, e.g. ``TYPE_FP32``."""
    dims: list[int]
    """Shape of one sample: without the batch axis when max_batch_size > 0; -1 = dynamic."""
    reshape: list[int] | None = None
    """Shape the model sees, when it differs from ``dims`` (e.g. ``[]`` for scalars)."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value, "tensor name")

    @field_validator("dims")
    @classmethod
    def _dims(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("dims must list at least one dimension")
        if any(d == 0 or d < -1 for d in value):
            raise ValueError(f"dims must be positive or -1 (dynamic), got {value}")
        return value

    def _pbtxt(self, indent: str) -> list[str]:
        lines = [
            f"{indent}{{",
            f"{indent}  name: {_text(self.name)}",
            f"{indent}  data_type: {self.data_type}",
            f"{indent}  dims: [ {', '.join(map(str, self.dims))} ]",
        ]
        if self.reshape is not None:
            lines.append(f"{indent}  reshape: {{ shape: [ {', '.join(map(str, self.reshape))} ] }}")
        lines.append(f"{indent}}}")
        return lines


class BatchingSpec(BaseModel):
    """``dynamic_batching``: Triton merges requests into batches of these sizes."""

    preferred_batch_size: list[int] = Field(default_factory=list)
    """Batch sizes the scheduler aims for; each at most max_batch_size."""
    max_queue_delay_microseconds: int = 0
    """How long a request may wait for others to fill a preferred batch."""

    @field_validator("max_queue_delay_microseconds")
    @classmethod
    def _delay(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"max_queue_delay_microseconds must be >= 0, got {value}")
        return value

    @field_validator("preferred_batch_size")
    @classmethod
    def _sizes(cls, value: list[int]) -> list[int]:
        if any(v < 1 for v in value):
            raise ValueError(f"preferred batch sizes must be >= 1, got {value}")
        if len(set(value)) != len(value):
            raise ValueError(f"preferred batch sizes repeat: {value}")
        return value


class InstanceGroup(BaseModel):
    """One ``instance_group`` entry: how many copies of the model run, and where."""

    kind: InstanceKind = "KIND_GPU"
    """KIND_GPU, KIND_CPU or KIND_AUTO (GPU when present)."""
    count: int = 1
    """Instances per device."""
    gpus: list[int] | None = None
    """GPU indices (default: every GPU)."""

    @model_validator(mode="after")
    def _valid(self) -> InstanceGroup:
        if self.count < 1:
            raise ValueError(f"instance count must be >= 1, got {self.count}")
        if self.gpus is not None and self.kind == "KIND_CPU":
            raise ValueError("gpus applies to KIND_GPU instance groups, not KIND_CPU")
        if self.gpus is not None and any(g < 0 for g in self.gpus):
            raise ValueError(f"gpu indices must be >= 0, got {self.gpus}")
        return self


class WarmupSpec(BaseModel):
    """One ``model_warmup`` entry: a request Triton sends itself before serving the model."""

    name: str = "warmup"
    """Name shown in Triton's log."""
    batch_size: int = 1
    """Rows in the warmup request; at most max_batch_size."""
    inputs: dict[str, TritonTensor] = Field(default_factory=dict)
    """Input name -> data type and dims (the tensor's own ``name`` is ignored here)."""
    data: Literal["random_data", "zero_data"] = "random_data"
    """What the warmup tensors hold."""
    count: int = 1
    """How many times the warmup request is sent."""

    @model_validator(mode="after")
    def _valid(self) -> WarmupSpec:
        if self.batch_size < 1:
            raise ValueError(f"warmup batch_size must be >= 1, got {self.batch_size}")
        if self.count < 1:
            raise ValueError(f"warmup count must be >= 1, got {self.count}")
        if not self.inputs:
            raise ValueError("a warmup entry needs the inputs it sends")
        return self


class TritonModelConfig(BaseModel):
    """A Triton model configuration; invalid combinations are refused when it is built."""

    platform: Platform
    """pytorch_libtorch, onnxruntime_onnx, tensorrt_plan (``platform:``), python or fil (``backend:``)."""
    name: str | None = None
    """Model name; None leaves it to the folder name (what copies of one model need)."""
    max_batch_size: int = 0
    """Largest batch Triton forms or accepts; 0 means the model has no batch axis."""
    inputs: list[TritonTensor] = Field(default_factory=list)
    """Inputs; may stay empty for tensorrt_plan, onnxruntime_onnx and python (auto-complete)."""
    outputs: list[TritonTensor] = Field(default_factory=list)
    """Outputs; may stay empty where inputs may."""
    dynamic_batching: BatchingSpec | None = None
    """Server-side batching; needs max_batch_size > 0."""
    instance_groups: list[InstanceGroup] = Field(default_factory=list)
    """Where instances run; empty means Triton's default (one per GPU, else one on CPU)."""
    warmup: list[WarmupSpec] = Field(default_factory=list)
    """Requests Triton sends before the model serves."""
    parameters: dict[str, str] = Field(default_factory=dict)
    """Backend parameters (FIL: model_type, output_class, ...)."""
    default_model_filename: str | None = None
    """The artifact's file name in the version folder, when not the platform's default."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _check_name(value, "model name")
        if "/" in value or value in (".", ".."):
            raise ValueError(f"model name {value!r} must be a single folder name")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TritonModelConfig:
        if self.max_batch_size < 0:
            raise ValueError(f"max_batch_size must be >= 0, got {self.max_batch_size}")
        for group, tensors in (("input", self.inputs), ("output", self.outputs)):
            names = [t.name for t in tensors]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{group} names repeat: {dupes}")
        if self.platform in ("pytorch_libtorch", "fil") and not (self.inputs and self.outputs):
            raise ValueError(
                f"{self.platform} models need their inputs and outputs listed (no auto-complete)"
            )
        if bool(self.inputs) != bool(self.outputs) and self.platform != "python":
            raise ValueError("list both inputs and outputs, or neither (auto-complete)")
        batching = self.dynamic_batching
        if batching is not None:
            if self.max_batch_size == 0:
                raise ValueError("dynamic_batching needs max_batch_size > 0")
            too_big = [b for b in batching.preferred_batch_size if b > self.max_batch_size]
            if too_big:
                raise ValueError(
                    f"preferred batch sizes {too_big} exceed max_batch_size {self.max_batch_size}"
                )
        input_names = {t.name for t in self.inputs}
        for entry in self.warmup:
            if self.max_batch_size > 0 and entry.batch_size > self.max_batch_size:
                raise ValueError(
                    f"warmup {entry.name!r} batch_size {entry.batch_size} exceeds max_batch_size "
                    f"{self.max_batch_size}"
                )
            if self.max_batch_size == 0 and entry.batch_size != 1:
                raise ValueError(
                    "without a batch axis (max_batch_size 0) warmup batch_size must be 1"
                )
            unknown = sorted(set(entry.inputs) - input_names) if input_names else []
            if unknown:
                raise ValueError(f"warmup {entry.name!r} names unknown inputs {unknown}")
        if self.platform == "fil":
            if len(self.inputs) != 1 or len(self.outputs) != 1:
                raise ValueError(
                    "fil models take one input (input__0) and give one output (output__0)"
                )
            wrong = [t.name for t in (*self.inputs, *self.outputs) if t.data_type != "TYPE_FP32"]
            if wrong:
                raise ValueError(f"fil tensors must be TYPE_FP32; not so: {wrong}")
            model_type = self.parameters.get("model_type")
            if model_type not in FIL_MODEL_FILES:
                raise ValueError(
                    f"fil needs parameters['model_type'] in {sorted(FIL_MODEL_FILES)}, got {model_type!r}"
                )
            if self.max_batch_size == 0:
                raise ValueError("fil models need max_batch_size > 0")
        return self

    @property
    def model_filename(self) -> str:
        """The artifact file Triton loads from the version folder."""
        if self.default_model_filename:
            return self.default_model_filename
        if self.platform == "fil":
            return FIL_MODEL_FILES[self.parameters["model_type"]]
        return DEFAULT_MODEL_FILES[self.platform]

    def to_pbtxt(self) -> str:
        """The configuration as protobuf text (config.pbtxt)."""
        lines: list[str] = []
        if self.name is not None:
            lines.append(f"name: {_text(self.name)}")
        if self.platform in _PLATFORM_FIELD:
            lines.append(f"platform: {_text(self.platform)}")
        else:
            lines.append(f"backend: {_text(self.platform)}")
        lines.append(f"max_batch_size: {self.max_batch_size}")
        if self.default_model_filename:
            lines.append(f"default_model_filename: {_text(self.default_model_filename)}")
        for field, tensors in (("input", self.inputs), ("output", self.outputs)):
            if not tensors:
                continue
            lines.append(f"{field} [")
            for i, tensor in enumerate(tensors):
                block = tensor._pbtxt("  ")
                if i < len(tensors) - 1:
                    block[-1] += ","
                lines.extend(block)
            lines.append("]")
        if self.instance_groups:
            lines.append("instance_group [")
            for i, group in enumerate(self.instance_groups):
                lines.append("  {")
                lines.append(f"    kind: {group.kind}")
                lines.append(f"    count: {group.count}")
                if group.gpus is not None:
                    lines.append(f"    gpus: [ {', '.join(map(str, group.gpus))} ]")
                lines.append("  }," if i < len(self.instance_groups) - 1 else "  }")
            lines.append("]")
        if self.dynamic_batching is not None:
            batching = self.dynamic_batching
            lines.append("dynamic_batching {")
            if batching.preferred_batch_size:
                sizes = ", ".join(map(str, batching.preferred_batch_size))
                lines.append(f"  preferred_batch_size: [ {sizes} ]")
            if batching.max_queue_delay_microseconds:
                lines.append(
                    f"  max_queue_delay_microseconds: {batching.max_queue_delay_microseconds}"
                )
            lines.append("}")
        if self.warmup:
            lines.append("model_warmup [")
            for i, entry in enumerate(self.warmup):
                lines.append("  {")
                lines.append(f"    name: {_text(entry.name)}")
                lines.append(f"    batch_size: {entry.batch_size}")
                if entry.count != 1:
                    lines.append(f"    count: {entry.count}")
                for input_name, spec in entry.inputs.items():
                    lines.append("    inputs {")
                    lines.append(f"      key: {_text(input_name)}")
                    lines.append("      value {")
                    lines.append(f"        data_type: {spec.data_type}")
                    lines.append(f"        dims: [ {', '.join(map(str, spec.dims))} ]")
                    lines.append(f"        {entry.data}: true")
                    lines.append("      }")
                    lines.append("    }")
                lines.append("  }," if i < len(self.warmup) - 1 else "  }")
            lines.append("]")
        for key, value in self.parameters.items():
            lines.append("parameters {")
            lines.append(f"  key: {_text(key)}")
            lines.append(f"  value {{ string_value: {_text(value)} }}")
            lines.append("}")
        return "\n".join(lines) + "\n"

    def write(self, folder: Path) -> Path:
        """Write ``folder/config.pbtxt`` (checked by Triton's protobuf first, when installed)."""
        text = self.to_pbtxt()
        try:
            parse_config(text)
        except MissingDependencyError:
            pass  # the typed spec already refused what Triton would; protobuf is a second check
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / CONFIG_FILE
        path.write_text(text)
        return path

    def with_name(self, name: str | None) -> TritonModelConfig:
        return self.model_validate(self.model_dump() | {"name": name})

def build_config(**fields: Any) -> TritonModelConfig:
    """``TritonModelConfig(**fields)`` with validation failures as ConfigurationError (400)."""
    try:
        return TritonModelConfig(**fields)
    except ValidationError as exc:
        raise ConfigurationError(f"Invalid Triton model config: {validation_problems(exc)}") from exc


def validation_problems(exc: ValidationError) -> str:
    """A pydantic validation failure as one line: ``field: message; ...``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
    )


def parse_config(text: str) -> Any:
    """Parse config.pbtxt text with Triton's own ``model_config_pb2`` (strict: unknown fields fail).

    Returns the ``ModelConfig`` message. ConfigurationError when Triton would not read it;
    MissingDependencyError without tritonclient (the ``triton`` extra).
    """
    from mmeperf._deps import require

    pb = require(
        "tritonclient.grpc.model_config_pb2",
        what="Parsing Triton configs",
        extra="triton",
        package="tritonclient",
    )
    text_format = require(
        "google.protobuf.text_format",
        what="Parsing Triton configs",
        extra="triton",
        package="protobuf",
    )
    try:
        return text_format.Parse(text, pb.ModelConfig())
    except text_format.ParseError as exc:
        raise ConfigurationError(f"Triton cannot parse this config.pbtxt: {exc}") from exc


class BatchRange(Protocol):
    """The batch sizes an engine takes (a TensorRT :class:`~mmeperf.backends.tensorrt.EngineProfile`)."""

    @property
    def min_batch(self) -> int: ...

    @property
    def max_batch(self) -> int: ...


def check_engine_profile(
    config: TritonModelConfig, profile: BatchRange, *, allow_unused_profile: bool = False
) -> None:
    """Refuse a tensorrt_plan config whose batches the engine cannot take, or that wastes it.

    Triton rejects a plan whose profile max batch is below max_batch_size. The reference's
    mistake was the other way round (engines built for 128, configs capping at 12): refused
    too, unless ``allow_unused_profile``.
    """
    if config.platform != "tensorrt_plan":
        raise ConfigurationError(
            f"Engine profiles apply to tensorrt_plan configs, not {config.platform}"
        )
    if config.max_batch_size > profile.max_batch:
        raise ConfigurationError(
            f"max_batch_size {config.max_batch_size} exceeds the engine's profile max batch "
            f"{profile.max_batch}; rebuild the engine with max_batch >= {config.max_batch_size}"
        )
    if config.max_batch_size < profile.max_batch and not allow_unused_profile:
        raise ConfigurationError(
            f"max_batch_size {config.max_batch_size} is below the engine's profile max batch "
            f"{profile.max_batch}: batches above {config.max_batch_size} would never reach it "
            f"(set max_batch_size={profile.max_batch}, or pass allow_unused_profile=True)"
        )
    if config.max_batch_size and config.max_batch_size < profile.min_batch:
        raise ConfigurationError(
            f"max_batch_size {config.max_batch_size} is below the engine's min batch {profile.min_batch}"
        )
    sizes = config.dynamic_batching.preferred_batch_size if config.dynamic_batching else []
    outside = [b for b in sizes if not profile.min_batch <= b <= profile.max_batch]
    if outside:
        raise ConfigurationError(
            f"preferred batch sizes {outside} are outside the engine's profile "
            f"{profile.min_batch}..{profile.max_batch}"
        )
