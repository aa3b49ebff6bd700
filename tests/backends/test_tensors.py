"""Named-tensor payloads: KServe v2 / plain JSON, NPY, NPZ in; JSON, NPY, NPZ out; signature checks."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from mmeperf.backends.bodies import encode_request
from mmeperf.backends.tensors import (
    JSON_TYPE,
    NPY_TYPE,
    NPZ_TYPE,
    Signature,
    TensorSpec,
    decode_tensors,
    encode_tensors,
    kserve_response,
    main_artifact,
    numpy_dtype,
    triton_datatype,
)
from mmeperf.errors import (
    ModelLoadError,
    PayloadError,
    UnsupportedAcceptError,
    UnsupportedContentTypeError,
)

SIG = Signature(
    inputs=[
        TensorSpec(name="input_ids", dtype="int64", shape=[-1, 4]),
        TensorSpec(name="attention_mask", dtype="int64", shape=[-1, 4]),
    ],
    outputs=[TensorSpec(name="last_hidden_state", dtype="float32", shape=[-1, 4, 2])],
)


def test_kserve_request_round_trips_with_dtypes_and_shapes() -> None:
    inputs = {
        "input_ids": np.arange(8, dtype=np.int32).reshape(2, 4),
        "attention_mask": np.ones((2, 4), np.int64),
    }
    body = encode_request(inputs, JSON_TYPE)
    doc = json.loads(body)
    assert doc["inputs"][0] == {
        "name": "input_ids",
        "shape": [2, 4],
        "datatype": "INT32",
        "data": list(range(8)),
    }
    decoded = decode_tensors(body, "application/json; charset=utf-8")
    assert isinstance(decoded, dict) and decoded["input_ids"].dtype == np.int32
    checked = SIG.check_inputs(decoded)
    assert checked["input_ids"].dtype == np.int64 and checked["input_ids"].shape == (2, 4)


def test_npz_and_plain_json_carry_named_tensors() -> None:
    inputs = {"input_ids": np.zeros((1, 4), np.int64), "attention_mask": np.ones((1, 4), np.int64)}
    npz = decode_tensors(encode_request(inputs, NPZ_TYPE), NPZ_TYPE)
    plain = decode_tensors(
        json.dumps({k: v.tolist() for k, v in inputs.items()}).encode(), JSON_TYPE
    )
    for batch in (npz, plain):
        assert isinstance(batch, dict)
        np.testing.assert_array_equal(
            SIG.check_inputs(batch)["attention_mask"], inputs["attention_mask"]
        )


def test_one_sample_without_batch_axis_gets_one() -> None:
    checked = SIG.check_inputs({"input_ids": [1, 2, 3, 4], "attention_mask": [1, 1, 1, 0]})
    assert checked["input_ids"].shape == (1, 4)


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"", JSON_TYPE, "Empty request body"),
        (b"{", JSON_TYPE, "Malformed JSON"),
        (b'{"inputs": [{"name": "x"}]}', JSON_TYPE, "needs name, shape, datatype and data"),
        (
            b'{"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2]}]}',
            JSON_TYPE,
            "do not fill shape",
        ),
        (
            b'{"inputs": [{"name": "x", "shape": [1], "datatype": "STR", "data": [1]}]}',
            JSON_TYPE,
            "Unsupported datatype",
        ),
        (b'[["a"]]', JSON_TYPE, "must be numeric"),
        (b"\x93NUMPY junk", NPY_TYPE, "Malformed NPY"),
        (b"junk", NPZ_TYPE, "Malformed NPZ"),
    ],
)
def test_malformed_bodies_are_payload_errors(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(PayloadError, match=message) as info:
        decode_tensors(body, content_type)
    assert info.value.http_status == 400


def test_signature_refusals_say_what_was_expected() -> None:
    with pytest.raises(PayloadError, match=r"axis 1 must be 4"):
        SIG.check_inputs(
            {"input_ids": np.zeros((1, 5), np.int64), "attention_mask": np.zeros((1, 5), np.int64)}
        )
    with pytest.raises(PayloadError, match="same batch size"):
        SIG.check_inputs(
            {"input_ids": np.zeros((1, 4), np.int64), "attention_mask": np.zeros((2, 4), np.int64)}
        )
    with pytest.raises(PayloadError, match="unknown"):
        SIG.check_inputs(
            {"input_ids": np.zeros((1, 4)), "attention_mask": np.zeros((1, 4)), "x": np.zeros(1)}
        )
    with pytest.raises(PayloadError, match="2 named inputs"):
        SIG.check_inputs(np.zeros((1, 4), np.int64))
    with pytest.raises(PayloadError, match="Empty batch"):
        SIG.check_inputs(
            {"input_ids": np.zeros((0, 4), np.int64), "attention_mask": np.zeros((0, 4), np.int64)}
        )


def test_answers_in_each_accept_type() -> None:
    out = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(2, np.int64)}
    as_json = encode_tensors(out, None)
    assert as_json.content_type == JSON_TYPE and json.loads(as_json.body) == out["a"].tolist()
    npy = encode_tensors(out, "application/x-npy")
    np.testing.assert_array_equal(np.load(io.BytesIO(npy.body)), out["a"])
    with np.load(io.BytesIO(encode_tensors(out, NPZ_TYPE).body)) as archive:
        assert sorted(archive.files) == ["a", "b"]
    assert encode_tensors(out, "*/*").content_type == JSON_TYPE
    with pytest.raises(UnsupportedAcceptError):
        encode_tensors(out, "text/csv")
    with pytest.raises(UnsupportedContentTypeError):
        decode_tensors(b"1,2", "text/csv")
    response = kserve_response(out, model_name="m")
    assert response["outputs"][0]["datatype"] == "FP32" and response["outputs"][0]["shape"] == [
        2,
        3,
    ]


def test_datatype_names() -> None:
    assert triton_datatype("float32") == "TYPE_FP32" and triton_datatype(np.int64) == "TYPE_INT64"
    assert numpy_dtype("TYPE_FP16") == np.float16 and numpy_dtype("INT32") == np.int32


def test_main_artifact_finds_triton_version_folders(tmp_path) -> None:  # type: ignore[no-untyped-def]
    for version in ("1", "2"):
        (tmp_path / "m" / version).mkdir(parents=True)
        (tmp_path / "m" / version / "model.onnx").write_bytes(b"x")
    assert main_artifact(tmp_path, "model.onnx") == tmp_path / "m" / "2" / "model.onnx"
    (tmp_path / "model.onnx").write_bytes(b"top")
    assert main_artifact(tmp_path, "model.onnx") == tmp_path / "model.onnx"
    with pytest.raises(ModelLoadError, match=r"No model\.pt"):
        main_artifact(tmp_path, "model.pt")
