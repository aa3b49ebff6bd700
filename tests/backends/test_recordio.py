"""RecordIO-protobuf, read as SageMaker's XGBoost container reads it and written as the SDK writes it.

Follows aws/sagemaker-xgboost-container ``src/sagemaker_xgboost_container/recordio_protobuf.py``
(``read_recordio_protobuf``) and its tests in ``test/unit/algorithm_mode/test_serve_utils.py``
(``test_parse_content_data`` with recordio-protobuf payloads); the bodies here are written by
hand or by protobuf's own runtime, never by the module under test.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest

from mmeperf.backends import codecs, recordio
from mmeperf.backends.bodies import RECORDIO_PROTOBUF, encode_request
from mmeperf.errors import PayloadError

MAGIC_LE = b"\x0a\x23\xd7\xce"  # 0xCED7230A, little-endian


def dec(body: bytes, n_features: int | None = None) -> np.ndarray[Any, Any]:
    return codecs.decode(body, RECORDIO_PROTOBUF, accepted=(RECORDIO_PROTOBUF,), n_features=n_features)


def framed(*records: bytes) -> bytes:
    out = b""
    for record in records:
        out += MAGIC_LE + struct.pack("<I", len(record)) + record + b"\0" * (-len(record) % 4)
    return out


# features["values"] = Float32Tensor(values=[1.5, -2.0]), byte by byte:
#   Tensor   0a 08 <1.5f> <-2.0f>                    values, packed (field 1, wire 2)
#   Value    12 0a <Tensor>                          float32_tensor (field 2)
#   entry    0a 06 "values" 12 0c <Value>            map entry: key (1), value (2)
#   Record   0a 16 <entry>                           features (field 1)
DENSE_F32 = (
    b"\x0a\x16" b"\x0a\x06values" b"\x12\x0c" b"\x12\x0a" b"\x0a\x08"
    + struct.pack("<ff", 1.5, -2.0)
)
# Int32Tensor(values=[7], keys=[2], shape=[4]): a sparse row of width 4.
SPARSE_I32 = (
    b"\x0a\x15" b"\x0a\x06values" b"\x12\x0b" b"\x3a\x09"  # int32_tensor is field 7: tag 0x3a
    b"\x0a\x01\x07" b"\x12\x01\x02" b"\x1a\x01\x04"
)


def test_dense_record_written_by_hand() -> None:
    assert len(DENSE_F32) == 24  # a multiple of 4: no padding
    np.testing.assert_array_equal(dec(framed(DENSE_F32)), np.array([[1.5, -2.0]], dtype=np.float32))


def test_the_request_encoder_writes_the_sdks_dense_layout() -> None:
    # sagemaker.amazon.common.write_numpy_to_dense_tensor: one record per row, packed values.
    body = encode_request(np.array([[1.5, -2.0]], dtype=np.float32), RECORDIO_PROTOBUF)
    assert body == framed(DENSE_F32)
    assert codecs.media_type("recordio-protobuf") == RECORDIO_PROTOBUF


def test_sparse_record_written_by_hand_leaves_absent_entries_missing() -> None:
    batch = dec(framed(SPARSE_I32, SPARSE_I32))
    assert batch.shape == (2, 4)
    assert batch[0, 2] == 7 and np.isnan(batch[:, [0, 1, 3]]).all()


def test_sparse_width_without_shape_is_the_largest_key_plus_one() -> None:
    record = recordio.record_bytes(np.array([1.0, 2.0], dtype=np.float32), keys=[0, 5])
    assert dec(framed(record)).shape == (1, 6)


def test_round_trip_against_protobufs_own_runtime() -> None:
    # An independent writer: the aialgs.data.Record schema built with protobuf's descriptors.
    pytest.importorskip("google.protobuf")
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(name="record_test.proto", package="aialgs.data", syntax="proto2")
    f = descriptor_pb2.FieldDescriptorProto
    for name, kind in (("Float32Tensor", f.TYPE_FLOAT), ("Float64Tensor", f.TYPE_DOUBLE), ("Int32Tensor", f.TYPE_INT32)):
        msg = fdp.message_type.add(name=name)
        msg.field.add(name="values", number=1, type=kind, label=f.LABEL_REPEATED).options.packed = True
        msg.field.add(name="keys", number=2, type=f.TYPE_UINT64, label=f.LABEL_REPEATED).options.packed = True
        msg.field.add(name="shape", number=3, type=f.TYPE_UINT64, label=f.LABEL_REPEATED).options.packed = True
    value = fdp.message_type.add(name="Value")
    value.oneof_decl.add(name="value")
    for name, number in (("float32_tensor", 2), ("float64_tensor", 3), ("int32_tensor", 7)):
        type_name = ".aialgs.data." + "".join(w.capitalize() for w in name.split("_"))
        value.field.add(name=name, number=number, type=f.TYPE_MESSAGE, type_name=type_name,
                        label=f.LABEL_OPTIONAL, oneof_index=0)
    record = fdp.message_type.add(name="Record")
    for name, number in (("features", 1), ("label", 2)):
        entry = record.nested_type.add(name=name.capitalize() + "Entry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
        entry.field.add(name="value", number=2, type=f.TYPE_MESSAGE, type_name=".aialgs.data.Value",
                        label=f.LABEL_OPTIONAL)
        record.field.add(name=name, number=number, type=f.TYPE_MESSAGE, label=f.LABEL_REPEATED,
                         type_name=f".aialgs.data.Record.{name.capitalize()}Entry")
    record.field.add(name="uid", number=3, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    Record = message_factory.GetMessageClass(pool.FindMessageTypeByName("aialgs.data.Record"))

    rows = np.array([[0.1, -3.25, 1e30], [7.0, 0.0, -1e-7]], dtype=np.float64)
    records = []
    for row in rows:
        r = Record(uid="row")
        r.features["values"].float64_tensor.values.extend(row.tolist())
        r.label["values"].float32_tensor.values.append(1.0)
        records.append(r.SerializeToString())
    sparse = Record()
    tensor = sparse.features["values"].int32_tensor
    tensor.values.extend([-5, 2_000_000_000])
    tensor.keys.extend([2, 0])
    tensor.shape.append(3)
    np.testing.assert_array_equal(dec(framed(*records)), rows.astype(np.float32))
    got = dec(framed(sparse.SerializeToString()))
    np.testing.assert_array_equal(got, np.array([[2e9, np.nan, -5]], dtype=np.float32))
    # And our writer's bytes parse in protobuf's runtime to the same message.
    ours = recordio.record_bytes(np.array([1.0, -2.5], dtype=np.float32), keys=[1, 3], shape=[4], label=0.0)
    parsed = Record.FromString(ours)
    assert list(parsed.features["values"].float32_tensor.values) == [1.0, -2.5]
    assert list(parsed.features["values"].float32_tensor.keys) == [1, 3]
    assert list(parsed.features["values"].float32_tensor.shape) == [4]
    assert list(parsed.label["values"].float32_tensor.values) == [0.0]


def test_unpacked_values_negative_int32_and_unknown_fields() -> None:
    # Unpacked float (wire 5) values, an int32 of -1 as a 10-byte varint, and a uid (field 3).
    unpacked = b"\x0d" + struct.pack("<f", 2.5) + b"\x0d" + struct.pack("<f", 4.0)
    value = b"\x12" + bytes([len(unpacked)]) + unpacked
    entry = b"\x0a\x06values\x12" + bytes([len(value)]) + value
    record = b"\x0a" + bytes([len(entry)]) + entry + b"\x1a\x03abc"
    assert dec(framed(record)).tolist() == [[2.5, 4.0]]
    negative = b"\x08" + b"\xff" * 9 + b"\x01"
    value = b"\x3a" + bytes([len(negative)]) + negative
    entry = b"\x0a\x06values\x12" + bytes([len(value)]) + value
    assert dec(framed(b"\x0a" + bytes([len(entry)]) + entry)).tolist() == [[-1.0]]


def test_records_without_values_are_skipped_and_trailing_bytes_ignored() -> None:
    other = b"\x0a\x0c\x0a\x06others\x12\x02\x4a\x00"  # features["others"] = Bytes{}
    body = framed(other, DENSE_F32) + b"\0\0\0\0"  # under 8 bytes left: the container stops
    assert dec(body).tolist() == [[1.5, -2.0]]


def test_a_dense_record_among_sparse_ones_loses_its_zeros_as_scipy_does() -> None:
    dense = recordio.record_bytes(np.array([0.0, 1.0, 0.0, 2.0], dtype=np.float32))
    batch = dec(framed(dense, SPARSE_I32))
    assert np.isnan(batch[0, 0]) and batch[0, 1] == 1 and np.isnan(batch[0, 2]) and batch[0, 3] == 2
    assert dec(framed(dense)).tolist() == [[0.0, 1.0, 0.0, 2.0]]  # all dense: zeros stay zeros


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\x0b\x23\xd7\xce\x00\x00\x00\x00", "magic 0xCED7230A at byte 0, received 0xCED7230B"),
        (MAGIC_LE + struct.pack("<I", 100) + b"\0" * 8, "record of 100 bytes at byte 8, received only 8"),
        (framed(b"\x0f\x00"), "wire type 0, 1, 2 or 5, received 7"),
        (framed(b"\x0a\xff\xff\xff\xff\x0f"), "protobuf field of 4294967295 bytes"),
        (framed(b"\x08" + b"\xff" * 11), "truncated or overlong"),
        (framed(b"\x08\x01"), 'at least one RecordIO record with features["values"]'),
        (framed(recordio.record_bytes(np.ones(2, np.float32)), recordio.record_bytes(np.ones(3, np.float32))),
         "one width, received widths [2, 3]"),
        (framed(recordio.record_bytes(np.ones(2, np.float32), keys=[0, 4], shape=[3])), "keys below the width 3"),
        (framed(recordio.record_bytes(np.ones(2, np.float32), keys=[1, 1], shape=[3])), "each key once"),
        (framed(recordio.record_bytes(np.ones(1, np.float32), keys=[2_000_000])), "at most 1000000 wide"),
    ],
)
def test_malformed_bodies_are_payload_errors(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError) as info:
        dec(body)
    assert message in str(info.value)


def test_keys_and_values_must_pair_up() -> None:
    tensor = b"\x0a\x04" + struct.pack("<f", 1.0) + b"\x12\x02\x00\x01"  # 1 value, 2 keys
    value = b"\x12" + bytes([len(tensor)]) + tensor
    entry = b"\x0a\x06values\x12" + bytes([len(value)]) + value
    with pytest.raises(PayloadError, match="as many keys as values"):
        dec(framed(b"\x0a" + bytes([len(entry)]) + entry))


def test_sparse_rows_wider_than_the_model_are_refused_before_allocation() -> None:
    body = framed(recordio.record_bytes(np.ones(1, np.float32), keys=[0], shape=[10**9]))
    with pytest.raises(PayloadError, match="Expected 17 columns per row"):
        dec(body, n_features=17)
