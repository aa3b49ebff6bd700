"""Request and response bodies <-> numpy batches, for the content types SageMaker's XGBoost speaks.

The server decodes every request through :func:`decode` (hot path: one short CSV row parses in a
few microseconds, no pandas) and encodes every answer through :func:`encode`; clients write
requests with :func:`mmeperf.backends.bodies.encode_request` and read answers with
:func:`decode_predictions`.

Formats, as SageMaker's XGBoost container (algorithm mode, the one multi-model endpoints run)
reads and writes them:

* ``text/csv``: rows without a header, one per line, ``,``-separated; an empty field is a missing
  value (NaN), as the container reads it. Parameters (``; charset=utf-8``, ``;label_size=0``)
  are tolerated. Answers are the container's real-time format: predictions joined by ``,`` on
  one line (2-D predictions: one row per line), each written with Python's ``str(float)``.
* ``text/libsvm`` (alias ``text/x-libsvm``): ``[label] index:value ...`` per line, indices as
  given (0-based columns), the optional leading label ignored; absent entries are missing (NaN).
* ``application/json``: a row ``[...]``, rows ``[[...], ...]``, ``{"instances": [...]}`` whose
  items are rows, ``{"features": [...]}`` or ``{"data": {"features": {"values": [...]}}}``
  (SageMaker's common JSON request format, dense or sparse ``keys``/``shape``/``values``), or a
  single such record. Answers are a JSON array of the predictions (``json.dumps(p.tolist())``),
  which is what the container's JSON answer is.
* ``application/x-npy``: ``numpy.save`` bytes, read with ``allow_pickle=False``.

Every malformed body raises :class:`~mmeperf.errors.PayloadError` (400) saying what was expected
and what was received; an unknown content type raises UnsupportedContentTypeError (415) and an
unknown accept type UnsupportedAcceptError (406).
"""

from __future__ import annotations

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
from mmeperf.backends.bodies import CSV, JSON, LIBSVM, NPY, media_type, npy_bytes
from mmeperf.errors import PayloadError, UnsupportedAcceptError, UnsupportedContentTypeError

__all__ = [
    "CSV",
    "JSON",
    "LIBSVM",
    "MAX_JSON_DEPTH",
    "MAX_SPARSE_CELLS",
    "MAX_SPARSE_WIDTH",
    "NPY",
    "Encoded",
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


_KNOWN = (CSV, JSON, NPY, LIBSVM)
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
    dtype: npt.DTypeLike = np.float32,
) -> Array:
    """Parse a request body into a batch (rows on the first axis).

    ``accepted`` lists the content types the backend takes; an empty or missing content type
    means the first of them (the container defaults to CSV the same way). ``n_features``, when
    known, is checked against the columns of 2-D batches. Numbers are parsed as float64 and then
    cast to ``dtype`` (float32 by default), the same rounding path the XGBoost container takes.
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
    else:
        batch = _decode_libsvm(body, dtype, n_features)
    if n_features is not None and batch.ndim == 2 and batch.shape[1] != n_features:
        raise PayloadError(
            f"Expected {n_features} columns per row (the model's features), "
            f"received {batch.shape[1]} in a {kind} body of {batch.shape[0]} row(s)"
        )
    return batch


def _decode_csv(body: bytes, dtype: npt.DTypeLike) -> Array:
    text = body.strip()
    if not text:
        raise PayloadError(f"Expected CSV rows, received only whitespace ({len(body)} bytes)")
    # float() takes "1_000" as 1000 (Python literal syntax), which no CSV number is; one byte
    # search over the body keeps float() as the parser on the hot path.
    fast = b"_" not in text
    if fast and b"\n" not in text:
        # Hot path: one row. float() on bytes is the fastest validating parser here.
        try:
            return np.array(list(map(float, text.split(b","))), dtype=dtype).reshape(1, -1)
        except ValueError:
            return np.array([_csv_row_slow(text, 1)], dtype=dtype)
    # Many rows: parsed a slice of lines at a time into numpy (a list per row would cost ~150
    # bytes per value: a 6 MiB body of 3M one-value rows grew the process by half a gigabyte).
    parts: list[Array] = []
    width = -1
    number = 0  # lines before the slice, blank ones included (row numbers in errors count them)
    for chunk in _line_slices(text):
        block: Array | None = _csv_block_fast(chunk, width) if fast else None
        if block is None:
            block = _csv_block_slow(chunk, number, width)
        if block.shape[0]:
            width = block.shape[1]
            parts.append(block.astype(dtype, copy=False))
        number += chunk.count(b"\n") + 1
    if not parts:  # pragma: no cover - a stripped non-empty body has a non-blank line
        raise PayloadError("Expected CSV rows, received none")
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


#: Bytes of a many-row body parsed at once (bounds the temporary Python objects to a few MB).
_SLICE_BYTES = 256 * 1024


def _line_slices(text: bytes) -> Iterator[bytes]:
    """``text`` cut at line ends into slices of about :data:`_SLICE_BYTES` (no trailing newline)."""
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


def _csv_block_fast(chunk: bytes, width: int) -> Array | None:
    """The rows of a slice when every line has ``width`` numbers (None: anything unusual, which
    the row-by-row parser then reports exactly)."""
    raw = np.frombuffer(chunk, np.uint8)
    ends = np.flatnonzero(raw == 10)
    commas = np.cumsum(raw == 44, dtype=np.int64)
    per_line = np.diff(np.append(commas[ends], commas[-1]), prepend=0) if raw.size else np.zeros(1, np.int64)
    fields = int(per_line[0]) + 1
    if (width >= 0 and fields != width) or bool((per_line != fields - 1).any()):
        return None
    rows = per_line.size
    try:
        values = np.fromiter(map(float, chunk.replace(b"\n", b",").split(b",")), np.float64, count=rows * fields)
    except ValueError:  # an empty field (NaN), a blank line or a non-number
        return None
    return values.reshape(rows, fields)


def _csv_block_slow(chunk: bytes, before: int, width: int) -> Array:
    """The rows of a slice, line by line (missing values, blank lines, exact errors)."""
    rows: list[list[float]] = []
    for number, line in enumerate(chunk.split(b"\n"), start=before + 1):
        if not line.strip():
            continue  # blank lines between rows carry nothing
        try:
            if b"_" in line:
                raise ValueError
            row = list(map(float, line.split(b",")))
        except ValueError:
            row = _csv_row_slow(line, number)
        if width < 0:
            width = len(row)
        elif len(row) != width:
            raise PayloadError(
                f"Expected every CSV row to have {width} values like the first, "
                f"received {len(row)} in row {number}"
            )
        rows.append(row)
    return np.array(rows, dtype=np.float64).reshape(len(rows), max(width, 0))


def _csv_row_slow(line: bytes, number: int) -> list[float]:
    """Parse one CSV row field by field: empty fields are NaN; anything else must be a number."""
    row: list[float] = []
    for column, field in enumerate(line.split(b","), start=1):
        stripped = field.strip()
        if not stripped:
            row.append(math.nan)
            continue
        try:
            if b"_" in stripped:
                raise ValueError
            row.append(float(stripped))
        except ValueError:
            raise PayloadError(
                f"Expected a number in CSV row {number}, column {column}, received "
                f"{_quote(stripped)} (CSV bodies carry numbers only, no header row)"
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
    text = body.strip()
    if not text:
        raise PayloadError(f"Expected libsvm rows, received only whitespace ({len(body)} bytes)")
    strict = b"_" in text  # int() and float() take "1_0" (Python literal syntax); libsvm does not
    # Entries gathered as flat arrays a slice of lines at a time, placed in one assignment at the
    # end (a dict and a fancy-index assignment per row took seconds for 2 MiB of short rows).
    rows_at: list[Array] = []
    indices: list[Array] = []
    values: list[Array] = []
    n_rows = 0
    number = 0
    for chunk in _line_slices(text):
        block = None if strict else _libsvm_block_fast(chunk, n_features)
        if block is None:
            block = _libsvm_block_slow(chunk, number, n_features, strict)
        count, row_ids, idx, vals = block
        rows_at.append(row_ids + n_rows)
        indices.append(idx)
        values.append(vals)
        n_rows += count
        number += chunk.count(b"\n") + 1
    idx_all = np.concatenate(indices) if len(indices) > 1 else indices[0]
    largest = int(idx_all.max()) if idx_all.size else -1
    width = n_features if n_features is not None else 1 + largest
    if width <= 0:
        raise PayloadError("Expected at least one index:value pair in the libsvm body, received none")
    # The batch is made dense: "0:1 400000000:1" must not become gigabytes.
    if n_features is None and width > MAX_SPARSE_WIDTH:
        raise PayloadError(
            f"Expected libsvm feature indices below {MAX_SPARSE_WIDTH} (the model's width is not "
            f"known here), received {width - 1}"
        )
    if n_rows * width > MAX_SPARSE_CELLS:
        raise PayloadError(
            f"Expected a libsvm body that expands to at most {MAX_SPARSE_CELLS} values, received "
            f"{n_rows} rows of {width} features; send fewer rows per request"
        )
    batch = np.full((n_rows, width), np.nan, dtype=dtype)
    if idx_all.size:
        # Assigned straight into ``dtype``: the same float64 -> float32 rounding as astype.
        batch[np.concatenate(rows_at), idx_all] = np.concatenate(values)
    return batch


_LibsvmBlock = tuple[int, Array, Array, Array]


def _libsvm_block_fast(chunk: bytes, n_features: int | None) -> _LibsvmBlock | None:
    """(rows, row of each entry, index, value) of a slice of well-formed lines; None for
    anything unusual (the row-by-row parser then reports it exactly)."""
    pairs: list[bytes] = []
    counts: list[int] = []
    for line in chunk.split(b"\n"):
        tokens = line.split()
        if not tokens:
            continue
        if b":" not in tokens[0]:
            del tokens[0]  # the optional label; the container ignores it at inference
        pairs += tokens
        counts.append(len(tokens))
    joined = b" ".join(pairs)
    if joined.count(b":") != len(pairs):
        return None
    flat = joined.replace(b":", b" ").split()
    if len(flat) != 2 * len(pairs):
        return None
    try:
        idx = np.fromiter(map(int, flat[0::2]), np.int64, count=len(pairs))
        vals = np.fromiter(map(float, flat[1::2]), np.float64, count=len(pairs))
    except (ValueError, OverflowError):
        return None
    if idx.size and (int(idx.min()) < 0 or (n_features is not None and int(idx.max()) >= n_features)):
        return None
    row_ids = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    if idx.size:
        keys = row_ids * (int(idx.max()) + 1) + idx
        if np.unique(keys).size != keys.size:
            return None  # an index twice in a row
    return len(counts), row_ids, idx, vals


def _libsvm_block_slow(chunk: bytes, before: int, n_features: int | None, strict: bool) -> _LibsvmBlock:
    """A slice parsed line by line, raising PayloadError naming the first bad row."""
    row_ids: list[int] = []
    idx: list[int] = []
    vals: list[float] = []
    count = 0
    for number, line in enumerate(chunk.split(b"\n"), start=before + 1):
        tokens = line.split()
        if not tokens:
            continue
        if b":" not in tokens[0]:
            tokens = tokens[1:]  # the optional label; the container ignores it at inference
        seen: set[int] = set()
        for token in tokens:
            index_text, sep, value_text = token.partition(b":")
            try:
                if not sep or (strict and b"_" in token):
                    raise ValueError
                index, value = int(index_text), float(value_text)
            except ValueError:
                raise PayloadError(
                    f"Expected index:value pairs in libsvm row {number}, received {_quote(token)}"
                ) from None
            if index < 0 or (n_features is not None and index >= n_features):
                limit = f"0..{n_features - 1}" if n_features is not None else "0 or more"
                raise PayloadError(
                    f"Expected feature indices {limit} in libsvm row {number}, received {index}"
                )
            if index in seen:
                raise PayloadError(f"Expected each index once per libsvm row, received {index} twice in row {number}")
            if index >= 2**62:
                raise PayloadError(f"Expected libsvm feature indices below {MAX_SPARSE_WIDTH}, received {index}")
            seen.add(index)
            row_ids.append(count)
            idx.append(index)
            vals.append(value)
        count += 1
    return (count, np.array(row_ids, dtype=np.int64), np.array(idx, dtype=np.int64),
            np.array(vals, dtype=np.float64))


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
            text = ",".join(map(str, array.reshape(-1).tolist()))
        else:
            text = "\n".join(",".join(map(str, row)) for row in array.reshape(array.shape[0], -1).tolist())
        return Encoded(text.encode(), CSV)
    if kind == JSON:
        return Encoded(json.dumps(array.tolist()).encode(), JSON)
    if kind == NPY:
        return Encoded(npy_bytes(array), NPY)
    # A backend listed an accept type this module cannot write: a backend bug, but still typed.
    raise UnsupportedAcceptError(accept or kind, [a for a in accepted_t if media_type(a) in (CSV, JSON, NPY)])


def decode_predictions(body: bytes, content_type: str) -> Array:
    """Parse a response body written by :func:`encode` (client side) into a float64 array.

    CSV cannot tell a one-row multi-output answer from several one-value rows; a single line
    comes back 1-D. Use JSON or NPY where the shape matters.
    """
    kind = media_type(content_type)
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
