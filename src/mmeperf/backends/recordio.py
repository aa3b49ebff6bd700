"""SageMaker's RecordIO-protobuf (``application/x-recordio-protobuf``), read and written by hand.

The body is a sequence of RecordIO frames (little-endian ``uint32`` magic ``0xCED7230A``,
``uint32`` length, the payload, zero padding to 4 bytes), each holding one ``aialgs.data.Record``
protobuf message. Only the parts SageMaker's XGBoost container reads are decoded:
``Record.features`` and ``Record.label`` (``map<string, Value>``, fields 1 and 2), whose
``Value`` is a ``Float32Tensor`` (field 2), ``Float64Tensor`` (3) or ``Int32Tensor`` (7) of
``values`` (1), ``keys`` (2) and ``shape`` (3). Everything else is skipped by wire type.

A hand-written reader of the protobuf wire format (varints and length-delimited fields), so
that no generated module and no protobuf dependency is needed; every length is checked against
the bytes that remain, so a malformed body raises :class:`~mmeperf.errors.PayloadError` and never
reads past its end or allocates more than its own size.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmeperf._types import Array
from mmeperf.errors import PayloadError

__all__ = [
    "CONTENT_TYPE",
    "MAGIC",
    "Record",
    "Tensor",
    "encode_dense",
    "frame",
    "read_records",
    "record_bytes",
]

CONTENT_TYPE = "application/x-recordio-protobuf"
#: The RecordIO magic number that starts every frame (written little-endian).
MAGIC = 0xCED7230A
_HEADER = struct.Struct("<II")

# Wire types of the protobuf encoding.
_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5
# Value's oneof fields -> (numpy dtype of the values, wire type of one unpacked value).
_TENSOR_FIELDS: dict[int, tuple[str, int]] = {2: ("<f4", _FIXED32), 3: ("<f8", _FIXED64), 7: ("int32", _VARINT)}
_FIELD_OF_DTYPE = {"float32": 2, "float64": 3, "int32": 7}


@dataclass(frozen=True, slots=True)
class Tensor:
    """One ``Float32Tensor``/``Float64Tensor``/``Int32Tensor``: dense when ``keys`` is empty."""

    values: Array
    keys: Array  # uint64; empty for a dense tensor
    shape: tuple[int, ...]  # empty when not given


@dataclass(frozen=True, slots=True)
class Record:
    """The decoded parts of one ``aialgs.data.Record``: its features and labels by name.

    A name maps to None when its ``Value`` holds no tensor (``bytes``, or nothing).
    """

    features: dict[str, Tensor | None]
    label: dict[str, Tensor | None]


# --- reading ---------------------------------------------------------------------------------


def read_records(body: bytes) -> list[Record]:
    """Every record of a RecordIO-protobuf body, in order.

    As the container reads it: fewer than 8 bytes left after the last frame are ignored; a
    wrong magic number or a frame longer than what remains is an error.
    """
    return [_parse_record(payload) for payload in _frames(memoryview(body))]


def _frames(buf: memoryview) -> Iterator[memoryview]:
    offset, end = 0, len(buf)
    while offset + _HEADER.size <= end:
        magic, length = _HEADER.unpack_from(buf, offset)
        if magic != MAGIC:
            raise PayloadError(
                f"Expected a RecordIO frame starting with magic 0x{MAGIC:08X} at byte {offset}, "
                f"received 0x{magic:08X}"
            )
        offset += _HEADER.size
        padded = (length + 3) // 4 * 4
        if offset + padded > end:
            raise PayloadError(
                f"Expected a RecordIO record of {length} bytes at byte {offset}, received only "
                f"{end - offset} (truncated body)"
            )
        yield buf[offset:offset + length]
        offset += padded


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """(value, next position) of the varint at ``pos``; at most 10 bytes."""
    result = shift = 0
    end = min(len(buf), pos + 10)
    while pos < end:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & 0xFFFF_FFFF_FFFF_FFFF, pos
        shift += 7
    raise PayloadError("Expected a protobuf varint, received a truncated or overlong one")


def _fields(buf: memoryview) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of one message: an int for varints, bytes otherwise."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise PayloadError("Expected a protobuf field number above 0, received 0")
        value: Any
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
            if pos + size > end:
                raise PayloadError("Expected a fixed-size protobuf field, received a truncated one")
            value, pos = buf[pos:pos + size], pos + size
        elif wire == _LEN:
            length, pos = _varint(buf, pos)
            if length > end - pos:
                raise PayloadError(
                    f"Expected a protobuf field of {length} bytes, received only {end - pos}"
                )
            value, pos = buf[pos:pos + length], pos + length
        else:
            raise PayloadError(f"Expected a protobuf wire type 0, 1, 2 or 5, received {wire}")
        yield number, wire, value


def _parse_record(buf: memoryview) -> Record:
    features: dict[str, Tensor | None] = {}
    label: dict[str, Tensor | None] = {}
    for number, wire, value in _fields(buf):
        if number in (1, 2) and wire == _LEN:
            name, tensor = _parse_map_entry(value)
            (features if number == 1 else label)[name] = tensor  # a repeated key: the last wins
    return Record(features, label)


def _parse_map_entry(buf: memoryview) -> tuple[str, Tensor | None]:
    name, tensor = "", None
    for number, wire, value in _fields(buf):
        if number == 1 and wire == _LEN:
            try:
                name = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                raise PayloadError("Expected a UTF-8 feature name in a RecordIO record") from None
        elif number == 2 and wire == _LEN:
            tensor = _parse_value(value)
    return name, tensor


def _parse_value(buf: memoryview) -> Tensor | None:
    """The tensor of a ``Value`` (its oneof: the last tensor field set wins, as protobuf merges)."""
    chosen: int | None = None
    parts: list[memoryview] = []
    for number, wire, value in _fields(buf):
        if wire != _LEN:
            continue
        if number in _TENSOR_FIELDS:
            if number != chosen:
                chosen, parts = number, []
            parts.append(value)  # the same message field twice merges: its lists concatenate
        elif number == 9:  # Bytes: the container has no use for it
            chosen, parts = None, []
    if chosen is None:
        return None
    return _parse_tensor(parts, *_TENSOR_FIELDS[chosen])


def _parse_tensor(parts: list[memoryview], dtype: str, unpacked_wire: int) -> Tensor:
    values: list[Array] = []
    keys: list[int] = []
    shape: list[int] = []
    for part in parts:
        for number, wire, value in _fields(part):
            if number == 1:
                values.append(_tensor_values(value, wire, dtype, unpacked_wire))
            elif number in (2, 3):
                target = keys if number == 2 else shape
                if wire == _VARINT:
                    target.append(value)
                elif wire == _LEN:
                    target.extend(_packed_varints(value))
    array = np.concatenate(values) if values else np.empty(0, dtype=dtype)
    return Tensor(
        values=array.astype(array.dtype.newbyteorder("="), copy=False),
        keys=np.array(keys, dtype=np.uint64),
        shape=tuple(shape),
    )


def _tensor_values(value: Any, wire: int, dtype: str, unpacked_wire: int) -> Array:
    if dtype == "int32":
        if wire == _VARINT:
            return np.array([_int32(value)], dtype=np.int32)
        if wire == _LEN:
            return np.array([_int32(v) for v in _packed_varints(value)], dtype=np.int32)
    elif wire == _LEN:
        size = np.dtype(dtype).itemsize
        if len(value) % size:
            raise PayloadError(
                f"Expected packed tensor values in multiples of {size} bytes, received {len(value)}"
            )
        return np.frombuffer(value, dtype=dtype)
    elif wire == unpacked_wire:
        return np.frombuffer(value, dtype=dtype)
    raise PayloadError(f"Expected tensor values of wire type 2 or {unpacked_wire}, received {wire}")


def _packed_varints(buf: memoryview) -> list[int]:
    out: list[int] = []
    pos, end = 0, len(buf)
    while pos < end:
        value, pos = _varint(buf, pos)
        out.append(value)
    return out


def _int32(value: int) -> int:
    """A varint as protobuf's int32: the low 32 bits, signed."""
    value &= 0xFFFF_FFFF
    return value - (1 << 32) if value >= 1 << 31 else value


# --- writing ---------------------------------------------------------------------------------


def _write_varint(value: int) -> bytes:
    value &= 0xFFFF_FFFF_FFFF_FFFF  # negative int32 values travel as 10-byte varints
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _write_varint(number << 3 | _LEN) + _write_varint(len(payload)) + payload


def record_bytes(
    values: Array,
    *,
    keys: Sequence[int] | Array | None = None,
    shape: Sequence[int] | None = None,
    label: float | None = None,
) -> bytes:
    """One ``aialgs.data.Record`` with ``features["values"]`` (and ``label["values"]``).

    ``values``' dtype picks the tensor (float32, float64 or int32; other floats are written as
    float64); ``keys`` makes it sparse. Packed fields, as the SageMaker Python SDK writes them.
    """
    array = np.asarray(values).reshape(-1)
    if array.dtype.name not in _FIELD_OF_DTYPE:
        array = array.astype(np.float64)
    tensor = _tensor_bytes(array, keys, shape)
    feature_entry = _len_field(1, b"values") + _len_field(2, _len_field(_FIELD_OF_DTYPE[array.dtype.name], tensor))
    out = _len_field(1, feature_entry)
    if label is not None:
        label_tensor = _tensor_bytes(np.array([label], dtype=np.float32), None, None)
        out += _len_field(2, _len_field(1, b"values") + _len_field(2, _len_field(2, label_tensor)))
    return out


def _tensor_bytes(array: Array, keys: Sequence[int] | Array | None, shape: Sequence[int] | None) -> bytes:
    if array.dtype == np.int32:
        packed = b"".join(_write_varint(int(v)) for v in array.tolist())
    else:
        packed = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    out = _len_field(1, packed) if array.size else b""
    if keys is not None and len(keys):
        out += _len_field(2, b"".join(_write_varint(int(k)) for k in keys))
    if shape:
        out += _len_field(3, b"".join(_write_varint(int(s)) for s in shape))
    return out


def frame(records: Iterable[bytes]) -> bytes:
    """RecordIO framing: magic, length, the record, zero padding to a multiple of 4 bytes."""
    out = bytearray()
    for record in records:
        out += _HEADER.pack(MAGIC, len(record)) + record + b"\0" * (-len(record) % 4)
    return bytes(out)


def encode_dense(rows: Array) -> bytes:
    """A body of one dense record per row, like the SDK's ``write_numpy_to_dense_tensor``."""
    array = np.asarray(rows)
    if array.ndim <= 1:
        array = array.reshape(1, -1)
    return frame(record_bytes(row) for row in array)
