"""Request bodies: one encoder per content type, one NaN rule, read back by the backends' decoders."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmeperf.backends import codecs
from mmeperf.backends.bodies import CSV, JSON, LIBSVM, NPY, NPZ, encode_request
from mmeperf.backends.tensors import decode_tensors
from mmeperf.errors import PayloadError, UnsupportedContentTypeError


def test_nan_is_an_empty_csv_field_and_an_absent_libsvm_entry() -> None:
    row = np.array([[1.5, np.nan, 3.0]], dtype=np.float32)
    assert encode_request(row, CSV) == b"1.5,,3.0"
    assert encode_request(row, LIBSVM) == b"1:1.5 3:3.0"  # 1-based: unambiguous to the container
    assert np.isnan(json.loads(encode_request(row, JSON))[0][1])  # Python's json reads NaN back


def test_an_array_in_json_is_read_by_the_tabular_and_the_tensor_decoders() -> None:
    batch = np.arange(6, dtype=np.float32).reshape(2, 3)
    body = encode_request(batch, JSON)
    np.testing.assert_array_equal(codecs.decode(body, JSON, accepted=(JSON,)), batch)
    np.testing.assert_array_equal(decode_tensors(body, JSON), batch)


def test_named_tensors_go_as_kserve_json_or_npz_never_as_rows() -> None:
    named = {"a": np.zeros((1, 2), np.int64), "b": np.ones((1, 2), np.float32)}
    assert json.loads(encode_request(named, JSON))["inputs"][1]["datatype"] == "FP32"
    decoded = decode_tensors(encode_request(named, NPZ), NPZ)
    assert isinstance(decoded, dict) and sorted(decoded) == ["a", "b"]
    for content_type in (CSV, LIBSVM, NPY):
        with pytest.raises(PayloadError):
            encode_request(named, content_type)
    with pytest.raises(PayloadError, match="rows of numbers"):
        encode_request(np.zeros((1, 2, 2)), CSV)
    with pytest.raises(UnsupportedContentTypeError):
        encode_request(np.zeros((1, 2)), "image/png")
