"""The ``tensorrt`` backend: serialized TensorRT engines (``model.plan``) run on a CUDA GPU.

Uses TensorRT's name-based tensor API (8.5 and later; ``execute_async_v3``) with torch CUDA
tensors as device buffers. Build engines from ONNX with :class:`TensorRTExporter`; it records the
optimization profile in ``tensorrt.json`` so Triton configs can be checked without TensorRT.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, model_validator

from mmeperf._deps import require
from mmeperf._types import Tensors
from mmeperf.backends.tensors import (
    Signature,
    TensorBackend,
    TensorRunner,
    TensorSpec,
    main_artifact,
)
from mmeperf.errors import ConfigurationError, ModelLoadError, PayloadError, PredictionError

__all__ = [
    "BUILD_INFO_FILE",
    "MODEL_FILE",
    "EngineProfile",
    "TensorRTBackend",
    "TensorRTRunner",
    "check_profile_shapes",
    "import_tensorrt",
]

#: The artifact's file name (what Triton's tensorrt_plan platform loads from ``1/``).
MODEL_FILE = "model.plan"
#: Beside the plan: how it was built (profile batch sizes, precision, versions).
BUILD_INFO_FILE = "tensorrt.json"


def import_tensorrt() -> Any:
    """``import tensorrt`` or MissingDependencyError with the one-line fix."""
    return require("tensorrt", what="The 'tensorrt' backend", extra="tensorrt")


class EngineProfile(BaseModel):
    """The batch sizes a TensorRT engine was built for (one optimization profile)."""

    min_batch: int = 1
    """Smallest batch the engine accepts."""
    opt_batch: int = 16
    """Batch size TensorRT tunes its kernels for."""
    max_batch: int = 32
    """Largest batch the engine accepts; a Triton config's max_batch_size must not exceed it."""
    fp16: bool = False
    """Whether FP16 kernels were allowed."""
    tensorrt_version: str | None = None
    """TensorRT that built the engine (plans only load on the same version)."""
    device: str | None = None
    """GPU the engine was built on (plans are specific to a GPU architecture)."""

    @model_validator(mode="after")
    def _ordered(self) -> EngineProfile:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ValueError(
                "optimization profile needs 1 <= min_batch <= opt_batch <= max_batch, got "
                f"{self.min_batch}/{self.opt_batch}/{self.max_batch}"
            )
        return self

    def save(self, directory: Path) -> Path:
        path = directory / BUILD_INFO_FILE
        path.write_text(self.model_dump_json(indent=2))
        return path

    @classmethod
    def load(cls, directory: Path) -> EngineProfile | None:
        for path in (directory / BUILD_INFO_FILE, *directory.glob(f"*/{BUILD_INFO_FILE}")):
            if path.is_file():
                try:
                    return cls.model_validate_json(path.read_text())
                except ValueError as exc:
                    raise ModelLoadError(f"Unreadable {path}: {exc}") from exc
        return None


class TensorRTRunner(TensorRunner):
    """A deserialized engine with one execution context (calls are serialized by a lock)."""

    def __init__(self, engine: Any, signature: Signature, plan_bytes: int) -> None:
        super().__init__(signature)
        self.engine = engine
        self.context = engine.create_execution_context()
        if self.context is None:
            raise ModelLoadError("TensorRT could not create an execution context (GPU memory?)")
        # One execution context holds per-call shapes and addresses: one call at a time.
        self._lock = threading.Lock()
        # TensorRT 10 renamed the scratch size (the old name is deprecated there).
        scratch: Any = getattr(engine, "device_memory_size_v2", None)
        if scratch is None:
            scratch = getattr(engine, "device_memory_size", 0)
        self._memory_bytes = int(plan_bytes) + int(scratch or 0)
        self._runtime: Any = None
        self.max_batch = _profile_max_batch(engine, signature)
        #: Input name -> (min shape, max shape) of optimization profile 0.
        self.profile_shapes = _profile_shapes(engine, signature)

    @property
    def memory_bytes(self) -> int:
        """The engine's weights (plan size) plus the scratch memory its context reserves."""
        return self._memory_bytes

    def run(self, inputs: Tensors) -> Tensors:
        import torch

        # A shape outside the engine's profile is the caller's mistake (400), found before any
        # GPU work; TensorRT itself would only log it and fail the launch.
        check_profile_shapes({n: tuple(a.shape) for n, a in inputs.items()}, self.profile_shapes)
        with self._lock:
            try:
                stream = torch.cuda.current_stream()
                keep: list[torch.Tensor] = []
                for name, array in inputs.items():
                    # set_input_shape answers False (and logs) for a shape the profile refuses.
                    if not self.context.set_input_shape(name, tuple(array.shape)):
                        raise PayloadError(
                            f"TensorRT refused the shape {list(array.shape)} for input {name!r} "
                            f"(outside the engine's optimization profile)"
                        )
                for name, array in inputs.items():
                    tensor = torch.from_numpy(array).to("cuda")
                    keep.append(tensor)
                    self.context.set_tensor_address(name, tensor.data_ptr())
                outputs: dict[str, torch.Tensor] = {}
                for spec in self.signature.outputs:
                    shape = tuple(self.context.get_tensor_shape(spec.name))
                    dtype = _torch_dtype(np.dtype(spec.dtype or "float32"))
                    tensor = torch.empty(shape, dtype=dtype, device="cuda")
                    outputs[spec.name] = tensor
                    self.context.set_tensor_address(spec.name, tensor.data_ptr())
                if not self.context.execute_async_v3(stream.cuda_stream):
                    raise PredictionError("TensorRT execute_async_v3 reported failure")
                stream.synchronize()
            except (PredictionError, PayloadError):
                raise
            except Exception as exc:
                raise PredictionError(f"TensorRT failed: {str(exc).strip()[:300]}") from exc
        return {name: t.cpu().numpy() for name, t in outputs.items()}

    def close(self) -> None:
        del self.context
        del self.engine
        import torch

        torch.cuda.empty_cache()


class TensorRTBackend(TensorBackend):
    """TensorRT engines (``model.plan``): Triton's ``tensorrt_plan`` platform. Needs a CUDA GPU."""

    name: ClassVar[str] = "tensorrt"
    requires: ClassVar[tuple[str, ...]] = ("tensorrt",)
    extra: ClassVar[str | None] = "tensorrt"
    artifact_patterns: ClassVar[tuple[str, ...]] = (MODEL_FILE,)
    triton_platform: ClassVar[str | None] = "tensorrt_plan"

    def save(self, model: Any, directory: Path) -> Path:
        """Write a serialized engine: bytes, TensorRT's ``IHostMemory``, an ``ICudaEngine`` or a
        ``.plan`` path. Build one from ONNX with :class:`mmeperf.exporters.TensorRTExporter`."""
        if isinstance(model, (str, os.PathLike)):
            source = Path(model)
            if not source.is_file():
                raise ConfigurationError(f"No TensorRT plan at {source}")
            data = source.read_bytes()
        elif isinstance(model, (bytes, bytearray, memoryview)):
            data = bytes(model)
        elif hasattr(model, "serialize") and callable(model.serialize):  # ICudaEngine
            data = bytes(memoryview(model.serialize()))
        elif type(model).__name__ == "IHostMemory":
            data = bytes(memoryview(model))
        else:
            raise ConfigurationError(
                f"The 'tensorrt' backend saves a serialized engine (bytes, IHostMemory, "
                f"ICudaEngine or a .plan path), got {type(model).__name__}"
            )
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / MODEL_FILE
        path.write_bytes(data)
        return path

    def load(self, directory: Path, *, allow_pickle: bool = False) -> TensorRTRunner:
        trt = import_tensorrt()
        torch = require("torch", what="The 'tensorrt' backend (GPU buffers)", extra="torch")
        path = main_artifact(directory, MODEL_FILE)
        if not torch.cuda.is_available():
            raise ModelLoadError(
                f"The 'tensorrt' backend needs a CUDA GPU to load {path}; none is visible"
            )
        plan = path.read_bytes()
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise ModelLoadError(
                f"TensorRT {trt.__version__} could not deserialize {path}: plans only load on the "
                f"TensorRT version and GPU architecture that built them"
            )
        runner = TensorRTRunner(engine, engine_signature(engine), len(plan))
        runner._runtime = runtime  # the engine must not outlive its runtime
        return runner


def engine_signature(engine: Any) -> Signature:
    """Inputs and outputs of an ``ICudaEngine`` (name-based API), dynamic axes as -1."""
    trt = import_tensorrt()
    inputs: list[TensorSpec] = []
    outputs: list[TensorSpec] = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name))).name
        shape = [int(d) for d in engine.get_tensor_shape(name)]
        spec = TensorSpec(name=name, dtype=dtype, shape=shape or None)
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            inputs.append(spec)
        else:
            outputs.append(spec)
    return Signature(inputs=inputs, outputs=outputs)


def _profile_max_batch(engine: Any, signature: Signature) -> int | None:
    """Largest batch profile 0 accepts for the first input (None when the batch is fixed)."""
    if not signature.inputs:
        return None
    name = signature.inputs[0].name
    try:
        _min, _opt, max_shape = engine.get_tensor_profile_shape(name, 0)
    except Exception:
        return None
    return int(max_shape[0]) if len(max_shape) else None


def _profile_shapes(
    engine: Any, signature: Signature
) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """Input name -> (min, max) shape of optimization profile 0
    (``ICudaEngine.get_tensor_profile_shape(name, 0)`` answers [min, opt, max])."""
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    for spec in signature.inputs:
        try:
            low, _opt, high = engine.get_tensor_profile_shape(spec.name, 0)
        except Exception:  # a static input (no profile entry): set_input_shape still checks it
            continue
        shapes[spec.name] = (tuple(int(d) for d in low), tuple(int(d) for d in high))
    return shapes


def check_profile_shapes(
    shapes: Mapping[str, Sequence[int]],
    profile: Mapping[str, tuple[Sequence[int], Sequence[int]]],
) -> None:
    """Raise PayloadError (400) when an input's shape lies outside the profile's min..max.

    ``shapes``: input name -> the request's shape; ``profile``: input name -> (min, max) shape,
    as TensorRT reports them for profile 0.
    """
    for name, shape in shapes.items():
        if name not in profile:
            continue
        low, high = profile[name]
        if len(shape) != len(low) or any(
            not lo <= d <= hi for d, lo, hi in zip(shape, low, high, strict=True)
        ):
            raise PayloadError(
                f"Input {name!r} has shape {list(shape)}; the engine's optimization profile "
                f"accepts {list(low)} to {list(high)}"
            )


def _torch_dtype(dtype: np.dtype[Any]) -> Any:
    import torch

    table = {
        "float32": torch.float32,
        "float16": torch.float16,
        "int32": torch.int32,
        "int64": torch.int64,
        "int8": torch.int8,
        "uint8": torch.uint8,
        "bool": torch.bool,
    }
    if dtype.name not in table:
        raise PredictionError(f"TensorRT output dtype {dtype.name} is not supported here")
    return table[dtype.name]
