"""The ``onnx`` backend: ONNX models (``model.onnx``) run by ONNX Runtime.

CUDA (and, when asked, TensorRT) execution providers are used where ONNX Runtime has them, the
CPU provider otherwise; Triton serves the same file with its ``onnxruntime_onnx`` platform.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mmeperf._types import Tensors
from mmeperf.backends.tensors import (
    Signature,
    TensorBackend,
    TensorRunner,
    TensorSpec,
    main_artifact,
)
from mmeperf.errors import ConfigurationError, ModelLoadError, PredictionError

__all__ = ["MODEL_FILE", "OnnxBackend", "OnnxRunner", "onnx_signature"]

#: The artifact's file name (what Triton's onnxruntime_onnx platform loads from ``1/``).
MODEL_FILE = "model.onnx"

# ONNX Runtime's type strings -> numpy dtype names.
_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
}


def default_providers(available: list[str]) -> list[str]:
    """Execution providers in preference order among those ONNX Runtime has here.

    ``MMEPERF_ORT_PROVIDERS`` (comma-separated) overrides; TensorRT's provider is only used when
    named there, because it builds an engine on first load (minutes), which would distort a
    benchmark's load times.
    """
    wanted = os.environ.get("MMEPERF_ORT_PROVIDERS")
    if wanted:
        names = [p.strip() for p in wanted.split(",") if p.strip()]
        missing = [p for p in names if p not in available]
        if missing:
            raise ConfigurationError(
                f"MMEPERF_ORT_PROVIDERS names {missing}, not available here; available: {available}"
            )
        return names
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def onnx_signature(session: Any) -> Signature:
    """The signature of an ``onnxruntime.InferenceSession`` (dynamic axes as -1)."""

    def spec(arg: Any) -> TensorSpec:
        shape = [d if isinstance(d, int) and d > 0 else -1 for d in arg.shape]
        return TensorSpec(name=arg.name, dtype=_ORT_TYPES.get(arg.type), shape=shape or None)

    return Signature(
        inputs=[spec(a) for a in session.get_inputs()],
        outputs=[spec(a) for a in session.get_outputs()],
    )


class OnnxRunner(TensorRunner):
    """An ONNX Runtime session."""

    def __init__(self, session: Any, signature: Signature, weight_bytes: int) -> None:
        super().__init__(signature)
        self.session = session
        self._weight_bytes = weight_bytes

    @property
    def memory_bytes(self) -> int:
        """The model's weights (initializer bytes); ONNX Runtime's arena grows per batch on top."""
        return self._weight_bytes

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def run(self, inputs: Tensors) -> Tensors:
        try:
            values = self.session.run(None, inputs)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidArgument types
            raise PredictionError(f"ONNX Runtime failed: {str(exc).strip()[:500]}") from exc
        return {
            name: np.asarray(value)
            for name, value in zip(self.signature.output_names, values, strict=True)
        }

    def close(self) -> None:
        del self.session


class OnnxBackend(TensorBackend):
    """ONNX (``model.onnx``) on ONNX Runtime: Triton's ``onnxruntime_onnx`` platform."""

    name: ClassVar[str] = "onnx"
    requires: ClassVar[tuple[str, ...]] = ("onnxruntime",)
    extra: ClassVar[str | None] = "onnx"
    artifact_patterns: ClassVar[tuple[str, ...]] = (MODEL_FILE,)
    triton_platform: ClassVar[str | None] = "onnxruntime_onnx"

    def save(self, model: Any, directory: Path) -> Path:
        """Write an ``onnx.ModelProto``, serialized bytes, or a copy of a ``.onnx`` file.

        Torch modules need an example input: use :class:`mmeperf.exporters.OnnxExporter`.
        """
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / MODEL_FILE
        if isinstance(model, (str, os.PathLike)):
            source = Path(model)
            if not source.is_file():
                raise ConfigurationError(f"No ONNX file at {source}")
            shutil.copyfile(source, path)
        elif isinstance(model, (bytes, bytearray)):
            path.write_bytes(bytes(model))
        elif type(model).__name__ == "ModelProto" and hasattr(model, "SerializeToString"):
            path.write_bytes(model.SerializeToString())
        else:
            raise ConfigurationError(
                f"The 'onnx' backend saves an onnx.ModelProto, bytes or a .onnx path, got "
                f"{type(model).__name__}; export torch modules with mmeperf.exporters.OnnxExporter"
            )
        return path

    def load(self, directory: Path, *, allow_pickle: bool = False) -> OnnxRunner:
        import onnxruntime as ort

        path = main_artifact(directory, MODEL_FILE)
        options = ort.SessionOptions()
        threads = os.environ.get("MMEPERF_ORT_THREADS")
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            session = ort.InferenceSession(
                str(path),
                sess_options=options,
                providers=default_providers(ort.get_available_providers()),
            )
        except ConfigurationError:
            raise
        except Exception as exc:
            raise ModelLoadError(
                f"{path} is not a loadable ONNX model: {str(exc).strip()[:300]}"
            ) from exc
        return OnnxRunner(session, onnx_signature(session), _weight_bytes(path))


def _weight_bytes(path: Path) -> int:
    """Bytes of the model's initializers (its weights), the same basis as the TorchScript
    runner's estimate; the file size (graph included) when the ``onnx`` package is absent."""
    try:
        import onnx
        from onnx import helper
    except ImportError:
        return sum(
            p.stat().st_size for p in path.parent.iterdir() if p.is_file() and p.suffix != ".json"
        )
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # the session loaded it; an estimate must not fail the load
        return path.stat().st_size
    total = 0
    for init in model.graph.initializer:
        count = int(np.prod(init.dims)) if len(init.dims) else 1
        total += count * np.dtype(helper.tensor_dtype_to_np_dtype(init.data_type)).itemsize
    return total
