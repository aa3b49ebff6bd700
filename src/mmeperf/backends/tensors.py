"""Named-tensor models (TorchScript, ONNX, TensorRT): signatures, payload codecs, a shared base.

A :class:`Signature` says what a tensor model takes and returns (names, dtypes, shapes with -1 for
dynamic axes); it travels with the artifact as ``signature.json``. Requests may be KServe v2 JSON
(what Triton takes), plain JSON (a nested list, or ``{name: nested list}``), NPY (one tensor) or
NPZ (named tensors); answers are JSON (a nested array, as the tabular codecs answer), NPY or NPZ.
Clients write requests with :func:`mmeperf.backends.bodies.encode_request`.
"""

from __future__ import annotations

import io
import json
import zipfile
from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, field_validator

from mmeperf._types import Array, Batch, Tensors
from mmeperf.backends.base import Backend, Encoded, Runner
from mmeperf.backends.bodies import (
    JSON,
    NPY,
    NPZ,
    TENSOR_DTYPES,
    kserve_datatype,
    kserve_request,
    media_type,
    npy_bytes,
    npz_bytes,
    numpy_dtype,
)
from mmeperf.errors import (
    ModelLoadError,
    PayloadError,
    UnsupportedAcceptError,
    UnsupportedContentTypeError,
)

__all__ = [
    "JSON_TYPE",
    "NPY_TYPE",
    "NPZ_TYPE",
    "SIGNATURE_FILE",
    "Signature",
    "TensorBackend",
    "TensorRunner",
    "TensorSpec",
    "decode_tensors",
    "encode_tensors",
    "kserve_datatype",
    "kserve_request",
    "kserve_response",
    "main_artifact",
    "negotiate",
    "numpy_dtype",
    "triton_datatype",
]

JSON_TYPE = JSON
NPY_TYPE = NPY
NPZ_TYPE = NPZ
#: The file beside a tensor model's artifact that records its signature.
SIGNATURE_FILE = "signature.json"


def triton_datatype(dtype: str | np.dtype[Any]) -> str:
    """``float32`` -> ``TYPE_FP32`` (config.pbtxt's DataType enum)."""
    return "TYPE_" + kserve_datatype(dtype)


class TensorSpec(BaseModel):
    """One input or output tensor of a model."""

    name: str
    """Tensor name as the model (and Triton's config) knows it, e.g. ``INPUT__0``, ``input_ids``."""
    dtype: str | None = None
    """numpy dtype name: ``float32``, ``int64``, ...; None when the artifact does not say
    (payload integers then stay int64 and floats become float32)."""
    shape: list[int] | None = None
    """Full shape including the batch axis first; -1 marks a dynamic axis; None when unknown."""

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, value: str | None) -> str | None:
        if value is None:
            return None
        name = np.dtype(value).name
        if name not in TENSOR_DTYPES:
            raise ValueError(f"unsupported dtype {value!r}; expected one of: {', '.join(TENSOR_DTYPES)}")
        return name

    @field_validator("shape")
    @classmethod
    def _valid_shape(cls, value: list[int] | None) -> list[int] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("a tensor needs at least a batch axis")
        if any(d == 0 or d < -1 for d in value):
            raise ValueError(f"dims must be positive or -1 (dynamic), got {value}")
        return value

    @property
    def item_shape(self) -> list[int]:
        """The shape without the batch axis (what Triton's ``dims`` lists)."""
        if self.shape is None:
            raise ValueError(f"the shape of tensor {self.name!r} is not known")
        return self.shape[1:]

    @property
    def numpy_dtype(self) -> np.dtype[Any]:
        if self.dtype is None:
            raise ValueError(f"the dtype of tensor {self.name!r} is not known")
        return np.dtype(self.dtype)

    def matches(self, array: Array) -> str | None:
        """Why ``array`` does not fit this spec (shape), or None when it fits."""
        if self.shape is None:
            return None
        if array.ndim != len(self.shape):
            return f"tensor {self.name!r} must have {len(self.shape)} dims {self.shape}, got shape {list(array.shape)}"
        for axis, (want, got) in enumerate(zip(self.shape, array.shape, strict=True)):
            if want != -1 and want != got:
                return (
                    f"tensor {self.name!r} axis {axis} must be {want} (shape {self.shape}), "
                    f"got shape {list(array.shape)}"
                )
        return None


class Signature(BaseModel):
    """What a tensor model takes and returns, in order."""

    inputs: list[TensorSpec]
    """Inputs in the order the model's forward takes them."""
    outputs: list[TensorSpec]
    """Outputs in the order the model returns them; ``predict`` answers the first."""

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def save(self, directory: Path) -> Path:
        path = directory / SIGNATURE_FILE
        path.write_text(self.model_dump_json(indent=2))
        return path

    @classmethod
    def load(cls, directory: Path) -> Signature | None:
        """The signature saved beside an artifact, or None when there is none."""
        path = directory / SIGNATURE_FILE
        if not path.is_file():
            return None
        try:
            return cls.model_validate_json(path.read_text())
        except ValueError as exc:
            raise ModelLoadError(f"Unreadable {SIGNATURE_FILE} in {directory}: {exc}") from exc

    @classmethod
    def from_arrays(
        cls,
        inputs: Tensors,
        outputs: Tensors,
        *,
        dynamic_batch: bool = True,
    ) -> Signature:
        """A signature from example tensors; the batch axis becomes -1 when ``dynamic_batch``."""

        def spec(name: str, array: Array) -> TensorSpec:
            shape = [int(d) for d in array.shape]
            if dynamic_batch and shape:
                shape[0] = -1
            return TensorSpec(name=name, dtype=array.dtype.name, shape=shape)

        return cls(
            inputs=[spec(n, a) for n, a in inputs.items()],
            outputs=[spec(n, a) for n, a in outputs.items()],
        )

    def check_inputs(self, batch: Batch) -> Tensors:
        """Name, cast and shape-check a batch against the inputs; PayloadError when it does not fit.

        A bare array is accepted for a one-input model; integer payloads are cast to the
        model's integer type (JSON has no int64), floats likewise.
        """
        if not isinstance(batch, dict):
            if len(self.inputs) != 1:
                raise PayloadError(
                    f"This model takes {len(self.inputs)} named inputs {self.input_names}; send "
                    f"them by name (JSON object, KServe v2 or NPZ), not one unnamed tensor"
                )
            batch = {self.inputs[0].name: batch}
        missing = [n for n in self.input_names if n not in batch]
        extra = [n for n in batch if n not in self.input_names]
        if missing or extra:
            raise PayloadError(
                f"Expected inputs {self.input_names}, got {sorted(batch)}"
                + (f" (missing {missing})" if missing else "")
                + (f" (unknown {extra})" if extra else "")
            )
        out: Tensors = {}
        rows: int | None = None
        for spec in self.inputs:
            array = np.asarray(batch[spec.name])
            if array.ndim == 0:
                raise PayloadError(f"tensor {spec.name!r} must be an array, got a scalar")
            if spec.shape is not None and array.ndim == len(spec.shape) - 1:
                array = array[np.newaxis, ...]  # one sample without its batch axis
            problem = spec.matches(array)
            if problem is not None:
                raise PayloadError(problem)
            if spec.dtype is not None:
                want = np.dtype(spec.dtype)
            elif array.dtype.kind == "f":
                want = np.dtype(np.float32)
            else:
                want = array.dtype
            if array.dtype != want:
                if want.kind in "iub" and array.dtype.kind == "f":
                    raise PayloadError(
                        f"tensor {spec.name!r} must hold integers ({spec.dtype}), got {array.dtype.name}"
                    )
                if array.dtype.kind not in "iubf":
                    raise PayloadError(
                        f"tensor {spec.name!r} must be numeric ({spec.dtype}), got {array.dtype.name}"
                    )
                array = array.astype(want)
            if rows is not None and array.shape[0] != rows:
                raise PayloadError(
                    f"all inputs must have the same batch size; {spec.name!r} has "
                    f"{array.shape[0]}, earlier inputs {rows}"
                )
            rows = int(array.shape[0])
            out[spec.name] = np.ascontiguousarray(array)
        if rows == 0:
            raise PayloadError("Empty batch: no rows")
        return out


# --- codecs ------------------------------------------------------------------------------------


def _numeric_array(value: Any, what: str, dtype: np.dtype[Any] | None = None) -> Array:
    try:
        array = np.asarray(value, dtype=dtype)
    except (ValueError, TypeError) as exc:
        raise PayloadError(f"{what} is not a rectangular numeric array: {exc}") from exc
    if array.dtype.kind not in "iubf":
        raise PayloadError(f"{what} must be numeric, got {array.dtype.name} values")
    return array


def _decode_json(body: bytes) -> Batch:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"Malformed JSON body: {exc}") from exc
    if isinstance(doc, dict) and isinstance(doc.get("inputs"), list):
        return _decode_kserve(doc["inputs"])
    if isinstance(doc, dict) and "instances" in doc:
        return _numeric_array(doc["instances"], "'instances'")
    if isinstance(doc, dict):
        if not doc:
            raise PayloadError("Empty JSON object: expected named tensors")
        return {str(k): _numeric_array(v, f"tensor {k!r}") for k, v in doc.items()}
    if isinstance(doc, list):
        return _numeric_array(doc, "JSON body")
    raise PayloadError(
        "JSON body must be a KServe v2 request, an object of named tensors or a nested list"
    )


def _decode_kserve(inputs: list[Any]) -> Tensors:
    out: Tensors = {}
    for i, item in enumerate(inputs):
        if not isinstance(item, dict) or not {"name", "shape", "datatype", "data"} <= item.keys():
            raise PayloadError(
                f"KServe v2 input {i} needs name, shape, datatype and data; got "
                f"{sorted(item) if isinstance(item, dict) else type(item).__name__}"
            )
        name, shape = str(item["name"]), item["shape"]
        if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise PayloadError(
                f"KServe v2 input {name!r}: shape must be a list of sizes, got {shape!r}"
            )
        dtype = numpy_dtype(str(item["datatype"]))
        array = _numeric_array(item["data"], f"KServe v2 input {name!r}", dtype)
        if array.size != int(np.prod(shape)):
            raise PayloadError(
                f"KServe v2 input {name!r}: {array.size} values do not fill shape {shape}"
            )
        out[name] = array.reshape(shape)
    if not out:
        raise PayloadError("KServe v2 request has no inputs")
    return out


def decode_tensors(body: bytes, content_type: str) -> Batch:
    """Decode a request body into one tensor or named tensors. PayloadError when malformed."""
    kind = media_type(content_type)
    if not body:
        raise PayloadError("Empty request body")
    if kind == JSON_TYPE:
        return _decode_json(body)
    if kind == NPY_TYPE:
        try:
            array = np.load(io.BytesIO(body), allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise PayloadError(f"Malformed NPY body: {exc}") from exc
        if not isinstance(array, np.ndarray):
            raise PayloadError(
                "NPY body holds an archive; send application/x-npz for named tensors"
            )
        return _numeric_array(array, "NPY body")
    if kind == NPZ_TYPE:
        try:
            with np.load(io.BytesIO(body), allow_pickle=False) as archive:
                if not isinstance(archive, np.lib.npyio.NpzFile):
                    raise PayloadError("NPZ body holds a single array; send application/x-npy")
                return {k: _numeric_array(archive[k], f"tensor {k!r}") for k in archive.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise PayloadError(f"Malformed NPZ body: {exc}") from exc
    raise UnsupportedContentTypeError(content_type, (JSON_TYPE, NPY_TYPE, NPZ_TYPE))


def negotiate(accept: str | None, produced: tuple[str, ...]) -> str:
    """The answer type for an ``Accept`` header: the first listed type we produce, else 406."""
    if not accept or not accept.strip():
        return produced[0]
    for part in accept.split(","):
        wanted = media_type(part)
        if wanted in ("*/*", "*", "application/*"):
            return produced[0]
        if wanted in produced:
            return wanted
    raise UnsupportedAcceptError(accept, produced)


def encode_tensors(outputs: Tensors, accept: str | None = None) -> Encoded:
    """Encode model outputs: JSON (the first output as a nested array, as the tabular codecs
    answer), NPY (the first output, exact dtype and shape) or NPZ (every output by name)."""
    kind = negotiate(accept, (JSON_TYPE, NPY_TYPE, NPZ_TYPE))
    first = np.asarray(next(iter(outputs.values())))
    if kind == JSON_TYPE:
        return Encoded(json.dumps(first.tolist(), separators=(",", ":")).encode(), JSON_TYPE)
    if kind == NPY_TYPE:
        return Encoded(npy_bytes(first), NPY_TYPE)
    return Encoded(npz_bytes(outputs), NPZ_TYPE)


def kserve_response(outputs: Tensors, *, model_name: str | None = None) -> dict[str, Any]:
    """Outputs as a KServe v2 inference response (what Triton answers over HTTP/JSON)."""
    doc: dict[str, Any] = {
        "outputs": [
            {
                "name": name,
                "shape": [int(d) for d in array.shape],
                "datatype": kserve_datatype(array.dtype),
                "data": np.asarray(array).reshape(-1).tolist(),
            }
            for name, array in outputs.items()
        ]
    }
    if model_name is not None:
        doc["model_name"] = model_name
    return doc


# --- shared base ---------------------------------------------------------------------------------


class TensorRunner(Runner):
    """A loaded tensor model: ``run`` maps named inputs to named outputs; ``predict`` the first."""

    def __init__(self, signature: Signature) -> None:
        self.signature = signature

    @abstractmethod
    def run(self, inputs: Tensors) -> Tensors:
        """Run checked, correctly typed inputs; return every output by name."""

    def predict(self, batch: Batch) -> Array:
        outputs = self.run(self.signature.check_inputs(batch))
        return outputs[self.signature.outputs[0].name]


class TensorBackend(Backend):
    """Base of the tensor backends: codecs for named tensors instead of tabular rows."""

    content_types: ClassVar[tuple[str, ...]] = (JSON_TYPE, NPY_TYPE, NPZ_TYPE)
    accept_types: ClassVar[tuple[str, ...]] = (JSON_TYPE, NPY_TYPE, NPZ_TYPE)
    # Requests carry whole batches of images or sequences already; stacking requests of
    # different tensor shapes is not generally possible.
    supports_batching: ClassVar[bool] = False

    def decode(self, body: bytes, content_type: str, runner: Runner | None = None) -> Batch:
        """Decode, and with a runner check names, shapes and dtypes against its signature.

        A one-input model gets a bare array back, a several-input model named tensors.
        """
        kind = media_type(content_type) if content_type else self.content_types[0]
        if kind not in self.content_types:
            raise UnsupportedContentTypeError(content_type or "", self.content_types)
        batch = decode_tensors(body, kind)
        if isinstance(runner, TensorRunner):
            checked = runner.signature.check_inputs(batch)
            return next(iter(checked.values())) if len(checked) == 1 else checked
        return batch

    def encode(self, predictions: Array, accept: str | None = None) -> Encoded:
        if accept and accept.strip():
            negotiate(accept, self.accept_types)  # 406 for types this backend does not list
        return encode_tensors({"OUTPUT__0": np.asarray(predictions)}, accept)

    def encode_outputs(self, outputs: Tensors, accept: str | None = None) -> Encoded:
        """Encode every named output (NPZ keeps them all; JSON and NPY carry the first)."""
        return encode_tensors(outputs, accept)


def main_artifact(directory: Path, filename: str) -> Path:
    """Where ``filename`` lies under ``directory``: at the top, or inside a Triton model folder
    (``1/model.pt``, ``<name>/1/model.pt`` as SageMaker's Triton tarballs hold it).

    The shallowest match wins; among Triton versions at one depth, the highest version.
    """
    directory = Path(directory)
    if (directory / filename).is_file():
        return directory / filename
    if directory.is_dir():
        found = [
            p
            for p in directory.rglob(filename)
            if p.is_file() and len(p.relative_to(directory).parts) <= 3
        ]
        if found:

            def rank(path: Path) -> tuple[int, int]:
                version = path.parent.name
                return (
                    len(path.relative_to(directory).parts),
                    -int(version) if version.isdigit() else 0,
                )

            return min(found, key=rank)
    raise ModelLoadError(f"No {filename} in {directory}")
