"""Request bodies: the one encoder per content type, for every client of a backend.

:func:`encode_request` writes what the backends' decoders read (the tabular codecs in
:mod:`mmeperf.backends.codecs`, the named tensors of :mod:`mmeperf.backends.tensors`); the
conformance kit, the load side's traffic tables and the demos all send bodies through it. The
byte writers shared with the answer encoders (NPY, NPZ) live here too, as do the content-type
names and :func:`media_type`, which every codec parses headers with.

One NaN rule for every type: a missing value is an empty CSV field or an absent libsvm entry
(how SageMaker's XGBoost container reads them); JSON carries it as Python's ``NaN`` token, which
the decoders (Python's ``json``) read back; NPY and NPZ keep it as is.
"""

from __future__ import annotations

import io
import json
from functools import lru_cache
from typing import Any

import numpy as np

from mmeperf._types import Array, Batch, Tensors
from mmeperf.backends.recordio import encode_dense
from mmeperf.errors import PayloadError, UnsupportedContentTypeError

__all__ = [
    "CSV",
    "JSON",
    "LIBSVM",
    "NPY",
    "NPZ",
    "RECORDIO_PROTOBUF",
    "REQUEST_TYPES",
    "TENSOR_DTYPES",
    "encode_request",
    "kserve_datatype",
    "kserve_request",
    "media_type",
    "npy_bytes",
    "npz_bytes",
    "numpy_dtype",
]

CSV = "text/csv"
JSON = "application/json"
NPY = "application/x-npy"
NPZ = "application/x-npz"
LIBSVM = "text/libsvm"
RECORDIO_PROTOBUF = "application/x-recordio-protobuf"
#: The content types :func:`encode_request` writes.
REQUEST_TYPES = (CSV, LIBSVM, JSON, NPY, NPZ, RECORDIO_PROTOBUF)

#: Spellings SageMaker clients use for the same format.
_ALIASES = {
    "text/x-libsvm": LIBSVM, "csv": CSV, "json": JSON, "libsvm": LIBSVM,
    "recordio-protobuf": RECORDIO_PROTOBUF,
}

#: The name an unnamed tensor gets where a format needs names (KServe v2 JSON, NPZ).
_UNNAMED = "INPUT__0"

# numpy dtype name -> KServe v2 datatype (Triton's config uses the same names prefixed TYPE_).
_KSERVE: dict[str, str] = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
}
_NUMPY = {v: k for k, v in _KSERVE.items()}
#: numpy dtype names a tensor may have on the wire (KServe v2 / Triton).
TENSOR_DTYPES = tuple(_KSERVE)


@lru_cache(maxsize=256)
def media_type(header: str) -> str:
    """``"Text/CSV; charset=utf-8"`` -> ``"text/csv"``; aliases (``text/x-libsvm``) resolved.

    Cached: a load test sends the same few header strings millions of times.
    """
    base = header.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def kserve_datatype(dtype: str | np.dtype[Any]) -> str:
    """``float32`` -> ``FP32`` (KServe v2 / Triton wire name)."""
    name = np.dtype(dtype).name
    if name not in _KSERVE:
        raise PayloadError(
            f"Unsupported tensor dtype {name!r}; expected one of: {', '.join(_KSERVE)}"
        )
    return _KSERVE[name]


def numpy_dtype(datatype: str) -> np.dtype[Any]:
    """``FP32`` or ``TYPE_FP32`` -> ``float32``."""
    key = datatype.removeprefix("TYPE_").upper()
    if key not in _NUMPY:
        raise PayloadError(
            f"Unsupported datatype {datatype!r}; expected one of: {', '.join(_NUMPY)}"
        )
    return np.dtype(_NUMPY[key])


def kserve_request(inputs: Tensors) -> dict[str, Any]:
    """Inputs as a KServe v2 inference request body (what Triton and the reference's load test send)."""
    return {
        "inputs": [
            {
                "name": name,
                "shape": [int(d) for d in array.shape],
                "datatype": kserve_datatype(array.dtype),
                "data": np.asarray(array).reshape(-1).tolist(),
            }
            for name, array in inputs.items()
        ]
    }


def npy_bytes(array: Array) -> bytes:
    """``numpy.save`` bytes of one array (never pickled)."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def npz_bytes(named: Tensors) -> bytes:
    """``numpy.savez`` bytes of named arrays."""
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {name: np.asarray(a) for name, a in named.items()}
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _rows(batch: Batch, kind: str) -> list[list[Any]]:
    """A 2-D table's rows as Python lists (1-D: one row); tabular formats carry nothing else."""
    if isinstance(batch, dict):
        raise PayloadError(
            f"{kind} carries one table of rows, not named tensors {sorted(batch)}; "
            "send them as application/json (KServe v2) or application/x-npz"
        )
    array = np.asarray(batch)
    if array.ndim <= 1:
        array = array.reshape(1, -1)
    if array.ndim != 2:
        raise PayloadError(f"{kind} carries rows of numbers, not an array of shape {list(array.shape)}")
    rows: list[list[Any]] = array.tolist()
    return rows


def encode_request(batch: Batch, content_type: str = JSON) -> bytes:
    """A request body of ``content_type`` carrying ``batch`` (one array, or named tensors).

    * ``text/csv``: one line per row, values joined by ``,``, floats in Python's shortest
      round-tripping repr (decoding gives back the same float32 values); NaN is an empty field.
    * ``text/libsvm``: ``index:value`` pairs per row, NaN entries left out; indices 1-based
      (libsvm's own convention), which the XGBoost container's whole-body detection reads the
      same whatever the first column holds (0-based bodies whose first column is missing in
      every row would be read shifted).
    * ``application/json``: an array is its rows (``[[...], ...]``, what both the tabular and the
      tensor decoders read); named tensors are a KServe v2 request, dtypes and shapes kept.
    * ``application/x-npy``: the one array (a single named tensor counts) as ``numpy.save`` writes it.
    * ``application/x-npz``: every tensor by name (an array is named ``INPUT__0``).
    * ``application/x-recordio-protobuf``: one dense record per row, as the SageMaker SDK's
      ``write_numpy_to_dense_tensor`` writes (float32, float64 or int32 values as the array's).

    Raises PayloadError when the batch does not fit the type, UnsupportedContentTypeError for a
    type no backend decoder reads.
    """
    kind = media_type(content_type)
    if kind == CSV:
        return "\n".join(
            ",".join("" if v != v else str(v) for v in row) for row in _rows(batch, kind)
        ).encode()
    if kind == LIBSVM:
        return "\n".join(
            " ".join(f"{i}:{v}" for i, v in enumerate(row, start=1) if v == v)
            for row in _rows(batch, kind)
        ).encode()
    if kind == JSON:
        if isinstance(batch, dict):
            return json.dumps(kserve_request(batch), separators=(",", ":")).encode()
        return json.dumps(_rows_or_tensor(batch), separators=(",", ":")).encode()
    if kind == NPY:
        if isinstance(batch, dict):
            if len(batch) != 1:
                raise PayloadError(
                    f"NPY carries one tensor; send {len(batch)} named inputs as NPZ or JSON"
                )
            return npy_bytes(next(iter(batch.values())))
        return npy_bytes(batch)
    if kind == NPZ:
        return npz_bytes(batch if isinstance(batch, dict) else {_UNNAMED: np.asarray(batch)})
    if kind == RECORDIO_PROTOBUF:
        if isinstance(batch, dict) or np.asarray(batch).ndim > 2:
            _rows(batch, kind)  # raises: the tabular formats' refusal
        return encode_dense(np.asarray(batch))
    raise UnsupportedContentTypeError(content_type, REQUEST_TYPES)


def _rows_or_tensor(array: Array) -> Any:
    """JSON of one array: a 1-D array as one row, anything wider as its nested lists."""
    value = np.asarray(array)
    return (value.reshape(1, -1) if value.ndim <= 1 else value).tolist()
