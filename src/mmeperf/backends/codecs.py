"""Request and response bodies <-> numpy batches, for the content types SageMaker's XGBoost speaks.

The server decodes every request through :func:`decode` (hot path: one short CSV row parses in a
few microseconds, no pandas; many-row CSV and libsvm bodies are read a slice of lines at a time
straight into numpy, so memory stays a small multiple of the body) and encodes every answer
through :func:`encode`; clients write requests with
:func:`mmeperf.backends.bodies.encode_request` and read answers with :func:`decode_predictions`.

Formats, as SageMaker's XGBoost container (algorithm mode, the one multi-model endpoints run)
reads and writes them:

* ``text/csv``: rows without a header, one per line (``\n``), as the container's
  ``encoder.csv_to_dmatrix`` reads them: the delimiter is sniffed from the first line (``,`` when
  it has one; else :class:`csv.Sniffer`'s guess, an alphanumeric guess meaning ``,``), an empty
  field is a missing value (NaN), every number goes through ``float()``, and rows of different
  lengths (a blank line between rows is a row of one missing value) are an error. Parameters
  (``; charset=utf-8``) are tolerated. Answers are the container's real-time format:
  predictions joined by ``,`` on one line, each written with Python's ``str(float)``.
* ``text/libsvm`` (alias ``text/x-libsvm``): ``[label] index:value ...`` per line, as the
  container's ``_get_sparse_matrix_from_libsvm`` reads it: tokens split on single spaces,
  tokens without ``:`` ignored, indices 1-based when the smallest index of the whole body is 1
  or more and 0-based otherwise; absent entries are missing (NaN); lines after the last one
  with an entry are dropped.
* ``application/x-recordio-protobuf``: SageMaker's RecordIO-protobuf records (see
  :mod:`mmeperf.backends.recordio`), read as the container's ``read_recordio_protobuf`` reads
  them: ``features["values"]`` of each record, dense, or sparse (``keys``, width ``shape[0]``
  or the largest key + 1) with absent entries missing.
* ``application/json``: a row ``[...]``, rows ``[[...], ...]``, ``{"instances": [...]}`` whose
  items are rows, ``{"features": [...]}`` or ``{"data": {"features": {"values": [...]}}}``
  (SageMaker's common JSON request format, dense or sparse ``keys``/``shape``/``values``), or a
  single such record. Answers are a JSON array of the predictions (``json.dumps(p.tolist())``),
  which is what the container's JSON answer is.
* ``application/x-npy``: ``numpy.save`` bytes, read with ``allow_pickle=False``.

With the model's width known (``n_features``), wider rows are refused and rows down to
``min_features`` wide are padded with missing values (XGBoost reads a narrower DMatrix that way).

Every malformed body raises :class:`~mmeperf.errors.PayloadError` (400) saying what was expected
and what was received; an unknown content type raises UnsupportedContentTypeError (415) and an
unknown accept type UnsupportedAcceptError (406).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from mmeperf._types import Array
from mmeperf.backends import recordio
from mmeperf.backends.bodies import CSV, JSON, LIBSVM, NPY, RECORDIO_PROTOBUF, media_type, npy_bytes
from mmeperf.errors import PayloadError, UnsupportedAcceptError, UnsupportedContentTypeError

__all__ = [
    "CSV",
    "JSON",
    "LIBSVM",
    "MAX_JSON_DEPTH",
    "MAX_SPARSE_CELLS",
    "MAX_SPARSE_WIDTH",
    "NPY",
    "RECORDIO_PROTOBUF",
    "Encoded",
    "container_csv",
    "decode",
    "decode_predictions",
    "encode",
    "loads_bounded",
    "media_type",
]


@dataclass(frozen=True, slots=True)
class Encoded:
    """A response body and its content type."""

    body: bytes
    content_type: str


_KNOWN = (CSV, JSON, NPY, LIBSVM, RECORDIO_PROTOBUF)
_NUMERIC_KINDS = frozenset("iuf")
# Errors quote at most this much of what they received: bodies can be megabytes.
_QUOTE = 40
#: Widest sparse record (JSON or libsvm) accepted when the model's width is unknown: the width
#: then comes from the request, and the record is made dense before anything else can check it.
MAX_SPARSE_WIDTH = 1_000_000
#: Most values the sparse records (JSON or libsvm) of one body may expand to: 40 MB as float32,
#: far over any real-time payload written densely; a tiny body cannot claim gigabytes.
MAX_SPARSE_CELLS = 10_000_000


@lru_cache(maxsize=64)
def _accepted_set(accepted: tuple[str, ...]) -> frozenset[str]:
    return frozenset(media_type(a) for a in accepted)


def _quote(value: bytes | str) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return repr(text if len(text) <= _QUOTE else text[:_QUOTE] + "...")


# --- decode ----------------------------------------------------------------------------------


def decode(
    body: bytes,
    content_type: str | None,
    *,
    accepted: Sequence[str],
    n_features: int | None = None,
    min_features: int | None = None,
    dtype: npt.DTypeLike = np.float32,
) -> Array:
    """Parse a request body into a batch (rows on the first axis).

    ``accepted`` lists the content types the backend takes; an empty or missing content type
    means the first of them. ``n_features``, when known, is the model's width: 2-D batches wider
    than it are refused; narrower ones down to ``min_features`` columns (default: no narrower
    than ``n_features``) are padded with NaN, a missing value, as XGBoost reads a narrower
    DMatrix. Numbers are parsed as float64 and then cast to ``dtype`` (float32 by default), the
    same rounding path the XGBoost container takes.
    """
    accepted_t = tuple(accepted)
    kind = media_type(content_type) if content_type else media_type(accepted_t[0])
    if kind not in _accepted_set(accepted_t) or kind not in _KNOWN:
        raise UnsupportedContentTypeError(content_type or "", accepted_t)
    if not body:
        raise PayloadError(f"Expected a non-empty {kind} request body, received 0 bytes")
    if kind == CSV:
        batch = _decode_csv(body, dtype)
    elif kind == JSON:
        batch = _decode_json(body, dtype, n_features)
    elif kind == NPY:
        batch = _decode_npy(body, dtype)
    elif kind == RECORDIO_PROTOBUF:
        batch = _decode_recordio(body, dtype, n_features)
    else:
        batch = _decode_libsvm(body, dtype, n_features)
    if n_features is not None and batch.ndim == 2 and batch.shape[1] != n_features:
        batch = _fit_width(batch, kind, n_features, n_features if min_features is None else min_features)
    return batch


def _fit_width(batch: Array, kind: str, n_features: int, min_features: int) -> Array:
    """Rows narrower than the model padded with missing values, or a PayloadError."""
    rows, width = batch.shape
    if width > n_features or width < min_features:
        wanted = (
            f"{n_features}" if min_features >= n_features
            else f"at most {n_features}" if min_features <= 0
            else f"{min_features} to {n_features}"
        )
        raise PayloadError(
            f"Expected {wanted} columns per row (the model's features), "
            f"received {width} in a {kind} body of {rows} row(s)"
        )
    if rows * n_features > MAX_SPARSE_CELLS:  # a body of short rows must not claim gigabytes
        raise PayloadError(
            f"Expected a {kind} body that expands to at most {MAX_SPARSE_CELLS} values, received "
            f"{rows} rows of {width} values to widen to the model's {n_features}; send fewer rows per request"
        )
    padded = np.full((rows, n_features), np.nan, dtype=batch.dtype)
    padded[:, :width] = batch
    return padded


def _decode_csv(body: bytes, dtype: npt.DTypeLike) -> Array:
    """CSV as the container's ``encoder.csv_to_dmatrix`` reads it (see the module docstring)."""
    text = body.strip()
    if not text:
        raise PayloadError(f"Expected CSV rows, received only whitespace ({len(body)} bytes)")
    delimiter = _csv_delimiter(text)
    if delimiter == b"," and b"\n" not in text:
        # Hot path: one comma-separated row. float() on bytes is the fastest validating parser.
        try:
            return np.array(list(map(float, text.split(b","))), dtype=dtype).reshape(1, -1)
        except ValueError:
            return np.array([_csv_row_slow(text, delimiter, 1)], dtype=dtype)
    # Many rows: parsed a slice of lines at a time into numpy (a list per row would cost ~150
    # bytes per value: a 6 MiB body of 3M one-value rows grew the process by half a gigabyte).
    # The delimiter comes from the first line; every slice follows the same rules, and row
    # numbers in errors count every line before the slice (a blank line is a row).
    parts: list[Array] = []
    width = -1
    number = 0
    for chunk in _line_slices(text):
        block = _csv_block_fast(chunk, delimiter, width)
        if block is None:
            block = _csv_block_slow(chunk, delimiter, number, width)
        width = block.shape[1]
        parts.append(block.astype(dtype, copy=False))
        number += chunk.count(b"\n") + 1
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


#: Bytes of a many-row body parsed at once (bounds the temporary Python objects to a few MB).
_SLICE_BYTES = 256 * 1024


def _line_slices(text: bytes) -> Iterator[bytes]:
    """``text`` cut at line ends into slices of about :data:`_SLICE_BYTES` (no trailing newline).

    Joined with ``\\n`` the slices are ``text`` again: every line is in exactly one slice.
    """
    start, size = 0, len(text)
    while start < size:
        end = text.find(b"\n", start + _SLICE_BYTES) if start + _SLICE_BYTES < size else -1
        if end < 0:
            yield text[start:]
            return
        yield text[start:end]
        start = end + 1
    if size and text.endswith(b"\n"):  # pragma: no cover - callers strip the body
        yield b""


def _csv_block_fast(chunk: bytes, delimiter: bytes, width: int) -> Array | None:
    """The rows of a slice when every line has as many fields as the first row (``width``, or
    the slice's first line) and every field is a number for ``float()``; None for anything
    else (an empty field, a blank line, a ragged row, a non-number), which
    :func:`_csv_block_slow` then reads or reports exactly."""
    if len(delimiter) != 1:
        return None
    raw = np.frombuffer(chunk, np.uint8)
    if not raw.size:
        return None
    ends = np.flatnonzero(raw == 10)
    seps = np.cumsum(raw == delimiter[0], dtype=np.int64)
    per_line = np.diff(np.append(seps[ends], seps[-1]), prepend=0)
    fields = int(per_line[0]) + 1
    if (width >= 0 and fields != width) or bool((per_line != fields - 1).any()):
        return None
    rows = per_line.size
    try:
        # Every line has ``fields`` fields: splitting the whole slice is splitting each line.
        values = np.fromiter(
            map(float, chunk.replace(b"\n", delimiter).split(delimiter)), np.float64, count=rows * fields
        )
    except ValueError:
        return None
    return values.reshape(rows, fields)


def _csv_block_slow(chunk: bytes, delimiter: bytes, before: int, width: int) -> Array:
    """The rows of a slice, line by line: empty fields are NaN, a blank line is a row of one
    missing value, and a row whose length differs from the first row's is an error naming it."""
    rows: list[list[float]] = []
    for number, line in enumerate(chunk.split(b"\n"), start=before + 1):
        try:
            row = list(map(float, line.split(delimiter)))
        except ValueError:
            row = _csv_row_slow(line, delimiter, number)
        if width < 0:
            width = len(row)
        elif len(row) != width:
            raise PayloadError(
                f"Expected every CSV row to have {width} values like the first, "
                f"received {len(row)} in row {number}"
            )
        rows.append(row)
    return np.array(rows, dtype=np.float64).reshape(len(rows), width)


def _csv_delimiter(text: bytes) -> bytes:
    """The container's delimiter: ``csv.Sniffer`` on the first line's first 512 characters.

    On one unquoted line the sniffer picks ``,`` whenever there is one (its first preferred
    delimiter), so only other bodies pay for the sniffer itself.
    """
    head = text.split(b"\n", 1)[0][:512]
    if b"," in head and b'"' not in head and b"'" not in head:
        return b","
    try:
        line = text.decode("utf-8").split("\n", 1)[0][:512]
        sniffed = csv.Sniffer().sniff(line).delimiter
    except UnicodeDecodeError:
        raise PayloadError("Expected a UTF-8 CSV body, received bytes that are not UTF-8") from None
    except csv.Error:
        raise PayloadError(
            f"Expected CSV rows, received a first line whose delimiter cannot be told: {_quote(head)}"
        ) from None
    return b"," if sniffed.isalnum() else sniffed.encode("utf-8")


def _csv_row_slow(line: bytes, delimiter: bytes, number: int) -> list[float]:
    """Parse one CSV row field by field: an empty field is NaN; anything else goes to float()."""
    row: list[float] = []
    for column, field in enumerate(line.split(delimiter), start=1):
        if not field:
            row.append(math.nan)
            continue
        try:
            row.append(float(field.decode("utf-8")))
        except (ValueError, UnicodeDecodeError):
            raise PayloadError(
                f"Expected a number in CSV row {number}, column {column}, received "
                f"{_quote(field)} (CSV bodies carry numbers only, no header row)"
            ) from None
    return row


def _decode_npy(body: bytes, dtype: npt.DTypeLike) -> Array:
    try:
        # Never allow_pickle: an object array in a request body could run code on load.
        loaded: Any = np.load(io.BytesIO(body), allow_pickle=False)
    except ValueError as exc:
        raise PayloadError(f"Expected a numeric .npy array, received one that {exc}") from None
    except Exception as exc:
        raise PayloadError(
            f"Expected an application/x-npy body written by numpy.save, received "
            f"{len(body)} bytes starting {_quote(body[:16])} ({exc})"
        ) from None
    if not isinstance(loaded, np.ndarray):
        raise PayloadError(f"Expected one .npy array, received {type(loaded).__name__}")
    array: Array = loaded
    if array.dtype.kind not in _NUMERIC_KINDS or array.dtype.fields is not None:
        raise PayloadError(f"Expected a numeric .npy array, received dtype {array.dtype}")
    if array.ndim == 0 or array.size == 0:
        raise PayloadError(f"Expected at least one row, received an array of shape {array.shape}")
    if array.ndim == 1:
        array = array.reshape(1, -1)
    return array.astype(dtype, copy=False)


def _decode_json(body: bytes, dtype: npt.DTypeLike, n_features: int | None) -> Array:
    obj = loads_bounded(body)
    rows = _json_rows(obj, n_features, [MAX_SPARSE_CELLS])
    try:
        array = np.asarray(rows)
    except RecursionError:  # pragma: no cover - loads_bounded already refused deep nesting
        raise PayloadError(f"Expected JSON nested at most {MAX_JSON_DEPTH} levels deep") from None
    except ValueError:
        lengths = sorted({len(r) for r in rows if isinstance(r, list)})
        raise PayloadError(
            f"Expected rows of equal length in the JSON body, received lengths {lengths}"
        ) from None
    # numpy turns [true, 1] into integers; JSON booleans are not numbers (rarely in a body, so
    # the byte search keeps the common case free).
    if array.dtype.kind not in _NUMERIC_KINDS or (
        array.dtype.kind in "iu" and (b"true" in body or b"false" in body) and _has_bool(rows)
    ):
        raise PayloadError(
            f"Expected only numbers in the JSON body, received {_first_non_number(rows)}"
        )
    if array.size == 0:
        raise PayloadError(f"Expected at least one row, received {_quote(body)}")
    if array.ndim == 1:
        array = array.reshape(1, -1)
    return array.astype(dtype, copy=False)


#: Deepest nesting of arrays and objects a JSON body may have (rows of rows need 2 or 3; the
#: parser's recursion would otherwise turn a 1,000-deep body into a RecursionError, a 500).
MAX_JSON_DEPTH = 32


def loads_bounded(body: bytes | str, *, what: str = "a JSON body") -> Any:
    """``json.loads`` refusing invalid JSON and nesting deeper than :data:`MAX_JSON_DEPTH` with
    PayloadError (400), never RecursionError."""
    try:
        obj = json.loads(body)
    except RecursionError:
        raise PayloadError(
            f"Expected {what} nested at most {MAX_JSON_DEPTH} levels deep, received deeper nesting"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"Expected {what}, received invalid JSON ({exc})") from None
    opens = body.count(b"[") + body.count(b"{") if isinstance(body, bytes) else body.count("[") + body.count("{")
    if opens > MAX_JSON_DEPTH and _depth_over(obj, MAX_JSON_DEPTH):
        raise PayloadError(
            f"Expected {what} nested at most {MAX_JSON_DEPTH} levels deep, received deeper nesting"
        )
    return obj


def _depth_over(obj: Any, limit: int) -> bool:
    """Whether ``obj`` nests lists and dicts deeper than ``limit`` (iterative, no recursion)."""
    stack = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, list):
            if depth > limit:
                return True
            stack.extend((x, depth + 1) for x in item if isinstance(x, list | dict))
        elif isinstance(item, dict):
            if depth > limit:
                return True
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, list | dict))
    return False


def _json_rows(obj: Any, n_features: int | None, budget: list[int]) -> list[Any]:
    """The rows of any accepted JSON request shape, as nested lists.

    ``budget`` holds the cells sparse records may still expand to (shared by all records).
    """
    if isinstance(obj, dict):
        if "instances" in obj:
            instances = obj["instances"]
            if not isinstance(instances, list):
                raise PayloadError(
                    f"Expected \"instances\" to be a list, received {type(instances).__name__}"
                )
            return [_json_record(item, n_features, budget) for item in instances]
        return [_json_record(obj, n_features, budget)]
    if isinstance(obj, list):
        if obj and all(isinstance(item, dict) for item in obj):
            return [_json_record(item, n_features, budget) for item in obj]
        return obj
    raise PayloadError(
        "Expected a JSON list of rows, a row, or an object with \"instances\" or \"features\", "
        f"received {type(obj).__name__} {_quote(json.dumps(obj))}"
    )


def _json_record(item: Any, n_features: int | None, budget: list[int]) -> Any:
    """One record: a row, ``{"features": row}``, or ``{"data": {"features": {...}}}``."""
    if not isinstance(item, dict):
        return item
    if "features" in item:
        return _json_features(item["features"], n_features, budget)
    data = item.get("data")
    if isinstance(data, dict) and "features" in data:
        return _json_features(data["features"], n_features, budget)
    raise PayloadError(
        "Expected each JSON record to have \"features\" or \"data\": {\"features\": ...}, "
        f"received keys {sorted(item)}"
    )


def _json_features(features: Any, n_features: int | None, budget: list[int]) -> Any:
    if not isinstance(features, dict):
        return features
    values = features.get("values")
    if not isinstance(values, list):
        raise PayloadError(
            f"Expected \"features\" to hold a \"values\" list, received keys {sorted(features)}"
        )
    keys = features.get("keys")
    if keys is None:
        return values
    # Sparse record: absent entries are missing values, as XGBoost reads sparse input.
    if not isinstance(keys, list) or len(keys) != len(values):
        raise PayloadError(
            f"Expected sparse \"keys\" and \"values\" of equal length, received "
            f"{len(keys) if isinstance(keys, list) else type(keys).__name__} keys and {len(values)} values"
        )
    width = _sparse_width(features.get("shape"), n_features)
    if width > budget[0]:
        raise PayloadError(
            f"Expected sparse records that expand to at most {MAX_SPARSE_CELLS} values in all, "
            f"received more (this record alone is {width} wide); send fewer rows per request"
        )
    budget[0] -= width
    row = [math.nan] * width
    for key, value in zip(keys, values, strict=True):
        if not isinstance(key, int) or isinstance(key, bool) or not 0 <= key < width:
            raise PayloadError(f"Expected sparse keys in 0..{width - 1}, received {key!r}")
        row[key] = value
    return row


def _sparse_width(shape: Any, n_features: int | None) -> int:
    """The width of a sparse record: the model's when known (the request's must agree)."""
    given: int | None = None
    if shape is not None:
        if (
            not isinstance(shape, list) or len(shape) != 1 or not isinstance(shape[0], int)
            or isinstance(shape[0], bool) or shape[0] <= 0
        ):
            raise PayloadError(
                f"Expected a sparse record's \"shape\" to be [n_features], received {_quote(json.dumps(shape))}"
            )
        given = shape[0]
    if n_features is not None:
        if given is not None and given != n_features:
            raise PayloadError(
                f"Expected a sparse record's \"shape\" to be [{n_features}] (the model's features), "
                f"received [{given}]"
            )
        return n_features
    if given is None:
        raise PayloadError(
            "Expected a sparse record's \"shape\" to be [n_features] (the model's width is not "
            "known here), received none"
        )
    if given > MAX_SPARSE_WIDTH:
        raise PayloadError(
            f"Expected a sparse record's \"shape\" to be at most [{MAX_SPARSE_WIDTH}], received [{given}]"
        )
    return given


def _has_bool(rows: Any) -> bool:
    stack = [rows]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, bool):
            return True
    return False


def _first_non_number(rows: Any) -> str:
    stack = [rows]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, bool) or not isinstance(item, int | float):
            return _quote(json.dumps(item))
    return "a value that is not a number"


def _decode_libsvm(body: bytes, dtype: npt.DTypeLike, n_features: int | None) -> Array:
    """libsvm as the container's ``_get_sparse_matrix_from_libsvm`` reads it (module docstring).

    One difference: an index given twice in a row is refused (scipy would add the two values).
    Entries are gathered a slice of lines at a time as flat numpy arrays (line, index, value);
    the index base is decided once over the whole body, then each slice is placed in the batch.
    """
    text = body.strip()
    if not text:
        raise PayloadError(f"Expected libsvm rows, received only whitespace ({len(body)} bytes)")
    blocks: list[tuple[Array, Array, Array]] = []  # (line, index, value) per slice
    number = 0  # lines before the slice: a line is a row, blank or not
    lowest: int | None = None
    largest: int | None = None
    last_row = -1
    for chunk in _line_slices(text):
        block = _libsvm_block_fast(chunk, dtype)
        if block is None:
            block = _libsvm_block_slow(chunk, number, dtype)
        rows_at, idx, vals, low, high = block
        if idx.size:
            low = int(idx.min()) if low is None else min(low, int(idx.min()))
            high = int(idx.max()) if high is None else max(high, int(idx.max()))
            last_row = number + int(rows_at[-1])  # lines in order: the last entry's line
            blocks.append((rows_at + number, idx, vals))
        if low is not None and high is not None:
            lowest = low if lowest is None else min(lowest, low)
            largest = high if largest is None else max(largest, high)
        number += chunk.count(b"\n") + 1
    if lowest is None or largest is None:
        raise PayloadError("Expected at least one index:value pair in the libsvm body, received none")
    shift = 1 if lowest >= 1 else 0  # decided over the whole body, as the container does
    if lowest < 0:
        raise PayloadError(f"Expected feature indices of 0 or more in the libsvm body, received {lowest}")
    width = largest - shift + 1
    _check_sparse_width(width, n_features, "libsvm feature index", largest)
    n_rows = last_row + 1  # lines after the last entry carry no row
    if n_rows * width > MAX_SPARSE_CELLS:
        raise PayloadError(
            f"Expected a libsvm body that expands to at most {MAX_SPARSE_CELLS} values, received "
            f"{n_rows} rows of {width} features; send fewer rows per request"
        )
    # Values were parsed as float64 and stored as ``dtype``: the same single rounding as the
    # container's float64 matrix cast once.
    batch = np.full((n_rows, width), np.nan, dtype=dtype)
    for rows_at, idx, vals in blocks:
        batch[rows_at, idx - shift] = vals
    return batch


#: A slice's entries: line (within the slice) and index of each entry, its value (in the
#: batch's dtype), and the smallest and largest index beyond int64 (Python ints, or None).
_LibsvmBlock = tuple[Array, Array, Array, int | None, int | None]
#: Indices at or beyond this magnitude stay out of the int64 arrays (only their extremes are
#: kept): a body holding one is refused once read (a negative index, or far too wide).
_HUGE_INDEX = 2**62


def _libsvm_block_fast(chunk: bytes, dtype: npt.DTypeLike) -> _LibsvmBlock | None:
    """The entries of a slice whose tokens with ``:`` are all ``index:value`` with one colon,
    int64 indices and no index twice in a line; None for anything else (the line-by-line
    parser then reads or reports it exactly)."""
    pairs: list[bytes] = []
    counts: list[int] = []
    for line in chunk.split(b"\n"):
        tokens = [token for token in line.split(b" ") if b":" in token]
        pairs += tokens
        counts.append(len(tokens))
    joined = b" ".join(pairs)
    if joined.count(b":") != len(pairs):
        return None  # "1:2:3": read as the container reads it, line by line
    flat = joined.replace(b":", b" ").split(b" ") if pairs else []
    try:
        idx = np.fromiter(map(int, flat[0::2]), np.int64, count=len(pairs))
        vals = np.fromiter(map(float, flat[1::2]), np.float64, count=len(pairs))
    except (ValueError, OverflowError):
        return None
    rows_at = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    if idx.size:
        low, high = int(idx.min()), int(idx.max())
        if low <= -_HUGE_INDEX or high >= _HUGE_INDEX:
            return None
        span = high - low + 1
        if span * len(counts) >= _HUGE_INDEX:
            return None
        keys = rows_at * span + (idx - low)
        if np.unique(keys).size != keys.size:
            return None  # an index twice in a line
    return rows_at, idx, vals.astype(dtype, copy=False), None, None


def _libsvm_block_slow(chunk: bytes, before: int, dtype: npt.DTypeLike) -> _LibsvmBlock:
    """A slice read line by line as the container reads it, raising PayloadError naming the
    first bad line (``before`` lines precede the slice)."""
    rows_at: list[int] = []
    idx: list[int] = []
    vals: list[float] = []
    low: int | None = None
    high: int | None = None
    for row, line in enumerate(chunk.split(b"\n")):
        seen: set[int] = set()
        for token in line.split(b" "):
            if b":" not in token:
                continue  # the label, or anything else without a colon: the container skips it
            parts = token.split(b":")
            try:
                index, value = int(parts[0]), float(parts[1])
            except ValueError:
                raise PayloadError(
                    f"Expected index:value pairs in libsvm row {before + row + 1}, received {_quote(token)}"
                ) from None
            if index in seen:
                raise PayloadError(
                    f"Expected each index once per libsvm row, received {index} twice in row {before + row + 1}"
                )
            seen.add(index)
            if -_HUGE_INDEX < index < _HUGE_INDEX:
                rows_at.append(row)
                idx.append(index)
                vals.append(value)
            else:  # the body is refused once read (index < 0, or too wide): only the extremes count
                low = index if low is None else min(low, index)
                high = index if high is None else max(high, index)
    return (np.array(rows_at, dtype=np.int64), np.array(idx, dtype=np.int64),
            np.array(vals, dtype=np.float64).astype(dtype, copy=False), low, high)


def _check_sparse_width(width: int, n_features: int | None, what: str, received: int) -> None:
    """A sparse row is made dense: its width is the model's at most, else bounded."""
    if n_features is not None:
        if width > n_features:
            raise PayloadError(
                f"Expected {n_features} columns per row (the model's features) at most, received "
                f"{what} {received} ({width} columns)"
            )
    elif width > MAX_SPARSE_WIDTH:
        raise PayloadError(
            f"Expected rows at most {MAX_SPARSE_WIDTH} wide (the model's width is not known here), "
            f"received {what} {received} ({width} columns)"
        )


def _decode_recordio(body: bytes, dtype: npt.DTypeLike, n_features: int | None) -> Array:
    """RecordIO-protobuf as the container's ``read_recordio_protobuf`` reads it.

    Records without ``features["values"]`` (or whose value holds no tensor) are skipped. When any
    record is sparse the container stacks the rows as a scipy sparse matrix, where a dense
    record keeps only its non-zero entries: its zeros become missing values, here too. As in
    libsvm, a key given twice in a record is refused.
    """
    rows: list[tuple[Array, Array | None]] = []
    widths: set[int] = set()
    sparse = False
    for number, record in enumerate(recordio.read_records(body), start=1):
        tensor = record.features.get("values")
        if tensor is None:
            continue
        if tensor.keys.size:
            sparse = True
            width = int(tensor.shape[0]) if tensor.shape else int(tensor.keys.max()) + 1
            if tensor.keys.size != tensor.values.size:
                raise PayloadError(
                    f"Expected as many keys as values in sparse record {number}, received "
                    f"{tensor.keys.size} keys and {tensor.values.size} values"
                )
            if int(tensor.keys.max()) >= width:
                raise PayloadError(
                    f"Expected keys below the width {width} in sparse record {number}, received "
                    f"{int(tensor.keys.max())}"
                )
            if np.unique(tensor.keys).size != tensor.keys.size:
                raise PayloadError(f"Expected each key once in sparse record {number}, received repeats")
            _check_sparse_width(width, n_features, "record width", width)
            rows.append((tensor.values, tensor.keys.astype(np.intp)))
        else:
            width = int(tensor.values.size)
            rows.append((tensor.values, None))
        widths.add(width)
    if not rows:
        raise PayloadError('Expected at least one RecordIO record with features["values"], received none')
    if len(widths) > 1:
        raise PayloadError(
            f"Expected RecordIO records of one width, received widths {sorted(widths)[:10]}"
        )
    width = widths.pop()
    if sparse and len(rows) * width > MAX_SPARSE_CELLS:
        raise PayloadError(
            f"Expected a RecordIO body that expands to at most {MAX_SPARSE_CELLS} values, received "
            f"{len(rows)} records of {width} features; send fewer rows per request"
        )
    batch = np.full((len(rows), width), np.nan, dtype=np.float64)
    for i, (values, keys) in enumerate(rows):
        if keys is not None:
            batch[i, keys] = values
        elif sparse:
            dense = values.astype(np.float64)
            batch[i] = np.where(dense == 0, np.nan, dense)
        else:
            batch[i] = values
    return batch.astype(dtype, copy=False)


# --- encode ----------------------------------------------------------------------------------


def _negotiate(accept: str | None, accepted: tuple[str, ...]) -> str:
    """The response type for an ``Accept`` header: first listed type we produce, else 406."""
    if not accept:
        return media_type(accepted[0])
    produced = [media_type(a) for a in accepted]
    for part in accept.split(","):
        wanted = media_type(part)
        if wanted in ("*/*", "*"):
            return produced[0]
        if wanted.endswith("/*"):
            prefix = wanted[:-1]
            for candidate in produced:
                if candidate.startswith(prefix):
                    return candidate
        elif wanted in produced:
            return wanted
    raise UnsupportedAcceptError(accept, accepted)


#: Items written per C call when encoding an answer. One ``json.dumps`` or ``str.join`` holds the
#: GIL throughout (40,000 predictions: about 25 ms), and with it a server's event loop; between
#: chunks the interpreter may switch threads. The text is the same as in one call.
ENCODE_CHUNK = 2048


def json_array(values: Any) -> str:
    """``json.dumps(values)``; a list is written in chunks of :data:`ENCODE_CHUNK` items."""
    if not isinstance(values, list) or len(values) <= ENCODE_CHUNK:
        return json.dumps(values)
    return "[" + ", ".join(json.dumps(values[i:i + ENCODE_CHUNK])[1:-1]
                           for i in range(0, len(values), ENCODE_CHUNK)) + "]"


def joined(values: Any, separator: str = ",") -> str:
    """``separator.join(map(str, values))``; a list is written in chunks of :data:`ENCODE_CHUNK` items."""
    if not isinstance(values, list) or len(values) <= ENCODE_CHUNK:
        return separator.join(map(str, values))
    return separator.join(separator.join(map(str, values[i:i + ENCODE_CHUNK]))
                          for i in range(0, len(values), ENCODE_CHUNK))


def encode(predictions: Array, accept: str | None, *, accepted: Sequence[str]) -> Encoded:
    """Write predictions as the body of type ``accept`` (a header value; ``None``/``*/*``: default).

    ``accepted`` lists what the backend produces, its default first. A 1-D prediction in CSV is
    one line joined by ``,`` (the container's real-time answer); 2-D is one row per line. JSON is
    an array of the predictions (nested for 2-D); NPY keeps dtype and shape exactly.
    """
    accepted_t = tuple(accepted)
    kind = _negotiate(accept, accepted_t)
    array = np.asarray(predictions)
    if kind == CSV:
        if array.ndim <= 1:
            text = joined(array.reshape(-1).tolist())
        else:
            text = "\n".join(",".join(map(str, row)) for row in array.reshape(array.shape[0], -1).tolist())
        return Encoded(text.encode(), CSV)
    if kind == JSON:
        return Encoded(json_array(array.tolist()).encode(), JSON)
    if kind == NPY:
        return Encoded(npy_bytes(array), NPY)
    # A backend listed an accept type this module cannot write: a backend bug, but still typed.
    raise UnsupportedAcceptError(accept or kind, [a for a in accepted_t if media_type(a) in (CSV, JSON, NPY)])


def container_csv(predictions: Array) -> bytes:
    """The XGBoost container's CSV answer: ``",".join(map(str, predictions.tolist()))``.

    One line without a trailing newline; a 2-D prediction (multi-output) is a row per item in
    Python's list notation, ``[0.1, 0.9],[0.3, 0.7]``, which the container keeps for
    compatibility although it is not valid CSV.
    """
    return joined(np.asarray(predictions).tolist()).encode()


def decode_predictions(body: bytes, content_type: str) -> Array:
    """Parse a response body written by :func:`encode` or :func:`container_csv` (client side)
    into a float64 array.

    Line-based CSV cannot tell a one-row multi-output answer from several one-value rows; a
    single line comes back 1-D. The container's 2-D CSV (``[..],[..]``) keeps its shape.
    """
    kind = media_type(content_type)
    if kind == CSV and body.lstrip().startswith(b"["):
        # The container's 2-D answer: Python lists joined by ",".
        try:
            return np.asarray(json.loads(b"[" + body + b"]"), dtype=np.float64)
        except ValueError:
            raise PayloadError(f"Expected rows of numbers in a CSV answer, received {_quote(body)}") from None
    if kind == CSV:
        lines = [line for line in body.strip().split(b"\n") if line.strip()]
        try:
            rows = [list(map(float, line.split(b","))) for line in lines]
        except ValueError:
            raise PayloadError(f"Expected numbers in a CSV answer, received {_quote(body)}") from None
        return np.array(rows[0] if len(rows) == 1 else rows, dtype=np.float64)
    if kind == JSON:
        try:
            return np.asarray(json.loads(body), dtype=np.float64)
        except ValueError as exc:
            raise PayloadError(f"Expected a JSON array of numbers, received {_quote(body)} ({exc})") from None
    if kind == NPY:
        try:
            return np.asarray(np.load(io.BytesIO(body), allow_pickle=False))
        except Exception as exc:
            raise PayloadError(f"Expected an .npy answer, received {len(body)} bytes ({exc})") from None
    raise UnsupportedContentTypeError(content_type, (CSV, JSON, NPY))
