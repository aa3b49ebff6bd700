"""The KServe v2 inference protocol as Triton speaks it: model metadata, requests in JSON or with
Triton's binary tensor extension, responses back to named arrays, and error bodies.

Pure functions on bytes and arrays: no I/O, so the codec is tested without a server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np

from mmeperf.errors import PayloadError

if TYPE_CHECKING:
    from mmeperf._types import Array, Tensors

__all__ = [
    "HEADER_LENGTH",
    "JSON",
    "ModelMetadata",
    "binary_request",
    "decode_response",
    "error_code",
    "error_message",
    "is_kserve_request",
    "model_path_name",
]

#: Header of Triton's binary tensor extension: byte length of the JSON part of the body.
HEADER_LENGTH = "inference-header-content-length"
JSON = "application/json"


def model_path_name(name: str) -> str:
    """A model name as one URL path segment; InvalidModelName-like PayloadError when unusable."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name:
        raise PayloadError(f"Invalid target model {name!r}: expected a Triton model name")
    if any(ord(c) < 32 for c in name):
        raise PayloadError(f"Invalid target model {name!r}: control characters")
    return quote(name, safe="")


def error_message(data: bytes) -> str:
    """The message of a KServe error body (``{"error": "..."}``), else the body's start."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return data[:500].decode("utf-8", "replace")
    if isinstance(doc, dict) and "error" in doc:
        return str(doc["error"])
    return data[:500].decode("utf-8", "replace")


def error_code(status: int) -> str:
    """The SageMaker runtime's code for an HTTP status, so reports group Triton's failures alike."""
    if 400 <= status < 500:
        return "ValidationError"
    if status == 503:
        return "ServiceUnavailable"
    return "InternalFailure"


class ModelMetadata:
    """What ``GET /v2/models/{name}`` says: input names, datatypes and shapes (batch axis included)."""

    __slots__ = ("inputs",)

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.inputs: dict[str, tuple[str, list[int]]] = {
            str(t["name"]): (str(t["datatype"]), [int(d) for d in t["shape"]])
            for t in doc.get("inputs", [])
        }


def is_kserve_request(body: bytes) -> bool:
    """Whether a JSON body is already a KServe v2 request (``{"inputs": [...]}``)."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"Malformed JSON body: {exc}") from exc
    return isinstance(doc, dict) and isinstance(doc.get("inputs"), list)


def binary_request(meta: ModelMetadata, name: str, inputs: Tensors | Array) -> tuple[bytes, dict[str, str]]:
    """Decoded tensors as a binary-extension KServe request, named and cast per the model."""
    from mmeperf.backends.tensors import kserve_datatype, numpy_dtype

    if isinstance(inputs, np.ndarray):
        if len(meta.inputs) != 1:
            raise PayloadError(
                f"Model {name!r} takes {len(meta.inputs)} inputs ({', '.join(meta.inputs)}); "
                f"send named tensors (JSON object, NPZ or a KServe v2 request)"
            )
        inputs = {next(iter(meta.inputs)): inputs}
    header_inputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for input_name, value in inputs.items():
        array = np.asarray(value)
        declared = meta.inputs.get(input_name)
        if declared is not None:
            datatype, shape = declared
            try:
                wanted = numpy_dtype(datatype)
            except PayloadError:
                wanted = array.dtype  # BYTES and friends: Triton checks them
            if array.dtype != wanted and np.can_cast(array.dtype, wanted, casting="same_kind"):
                array = array.astype(wanted)
            if array.ndim == len(shape) - 1 and shape and shape[0] == -1:
                array = array[np.newaxis]  # one sample without its batch axis gets one
        raw = np.ascontiguousarray(array).tobytes()
        header_inputs.append({
            "name": input_name,
            "shape": [int(d) for d in array.shape],
            "datatype": kserve_datatype(array.dtype),
            "parameters": {"binary_data_size": len(raw)},
        })
        chunks.append(raw)
    header = json.dumps(
        {"inputs": header_inputs, "parameters": {"binary_data_output": True}}, separators=(",", ":")
    ).encode()
    headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))}
    return b"".join([header, *chunks]), headers


def decode_response(headers: Mapping[str, str], data: bytes) -> Tensors:
    """A KServe v2 response (JSON, or JSON + binary tensors) as named arrays."""
    from mmeperf.backends.tensors import numpy_dtype

    length = headers.get(HEADER_LENGTH)
    split = int(length) if length is not None else len(data)
    doc = json.loads(data[:split])
    offset = split
    out: Tensors = {}
    for item in doc.get("outputs", []):
        dtype = numpy_dtype(str(item["datatype"]))
        shape = [int(d) for d in item["shape"]]
        size = (item.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            array = np.frombuffer(data, dtype=dtype, count=int(size) // dtype.itemsize, offset=offset)
            offset += int(size)
        else:
            array = np.asarray(item["data"], dtype=dtype)
        out[str(item["name"])] = array.reshape(shape)
    return out
