"""Request/response codecs: the formats SageMaker's XGBoost container speaks, and typed 4xx errors.

Tests of the container's parsing follow aws/sagemaker-xgboost-container: ``test/unit/test_encoder.py``
(CSV), ``test/unit/algorithm_mode/test_serve_utils.py`` (libsvm, RecordIO-protobuf) and the
sources they test, ``encoder.csv_to_dmatrix``, ``serve_utils._get_sparse_matrix_from_libsvm``
and ``recordio_protobuf.read_recordio_protobuf``.
"""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

from mmeperf.backends import codecs
from mmeperf.backends.bodies import encode_request
from mmeperf.errors import PayloadError, UnsupportedAcceptError, UnsupportedContentTypeError

ALL = (codecs.CSV, codecs.LIBSVM, codecs.JSON, codecs.NPY, codecs.RECORDIO_PROTOBUF)
OUT = (codecs.CSV, codecs.JSON, codecs.NPY)


def dec(
    body: bytes, content_type: str | None = "text/csv", n_features: int | None = None, min_features: int | None = None
) -> np.ndarray:
    return codecs.decode(body, content_type, accepted=ALL, n_features=n_features, min_features=min_features)


def npy(array: np.ndarray, *, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


# --- CSV ---------------------------------------------------------------------------------------


def test_csv_one_row_is_a_float32_batch_of_one() -> None:
    batch = dec(b"106,0,274.4,120,46.65\n", n_features=5)
    assert batch.dtype == np.float32 and batch.shape == (1, 5)
    assert batch[0, 2] == np.float32(274.4)


@pytest.mark.parametrize("content_type", ["text/csv", "text/csv; charset=utf-8", "text/csv;label_size=0", "TEXT/CSV", "csv"])
def test_csv_parameters_and_spellings_are_tolerated(content_type: str) -> None:
    assert dec(b"1,2,3", content_type).tolist() == [[1, 2, 3]]


def test_missing_content_type_means_the_first_accepted() -> None:
    assert dec(b"1,2", None).tolist() == [[1, 2]]
    assert dec(b"1,2", "").tolist() == [[1, 2]]


def test_csv_many_rows_crlf_and_spaces() -> None:
    batch = dec(b"1, 2,3\r\n4,5 ,6\r\n")
    assert batch.tolist() == [[1, 2, 3], [4, 5, 6]]


def test_csv_blank_line_between_rows_is_a_ragged_row_like_the_container() -> None:
    # csv_to_dmatrix splits on "\n": a blank line is a row of one missing value.
    with pytest.raises(PayloadError, match="have 3 values like the first, received 1 in row 2"):
        dec(b"1,2,3\n\n4,5,6")
    assert np.isnan(dec(b"1\n\n2")[1, 0])  # one column: a blank line is a missing value


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"1\t2\t3", [[1, 2, 3]]),  # test_encoder.py: test_csv_to_dmatrix with other delimiters
        (b"1;2;3\n4;5;6", [[1, 2, 3], [4, 5, 6]]),
        (b"1 2 3", [[1, 2, 3]]),
        (b"0.5", [[0.5]]),  # the sniffer guesses "5", alphanumeric: read as ","
        (b"0.5\n1.5", [[0.5], [1.5]]),
        (b"1_0,2", [[10, 2]]),  # numpy's astype(float) is float(): Python literal syntax passes
    ],
)
def test_csv_delimiter_is_sniffed_from_the_first_line_like_the_container(body: bytes, expected: list[list[float]]) -> None:
    assert dec(body).tolist() == expected


def test_csv_empty_field_is_a_missing_value_like_the_container() -> None:
    batch = dec(b"1,,3\n4,5,")
    assert math.isnan(batch[0, 1]) and math.isnan(batch[1, 2]) and batch[1, 0] == 4


def test_csv_parses_through_float64_like_the_container() -> None:
    text = "0.1000000000000000055511151231257827,16777217"
    expected = np.array([[float(v) for v in text.split(",")]]).astype(np.float32)
    np.testing.assert_array_equal(dec(text.encode()), expected)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "non-empty text/csv request body, received 0 bytes"),
        (b" \n ", "received only whitespace"),
        (b"State,Account Length\n1,2", "row 1, column 1, received 'State' (CSV bodies carry numbers only, no header row)"),
        (b"1,2,x3", "row 1, column 3, received 'x3'"),
        (b"1,2,3\n4,5", "Expected every CSV row to have 3 values like the first, received 2 in row 2"),
        (b"1,2,\n3,_4,5", "row 2, column 2, received '_4'"),
        (b"1, ,3", "row 1, column 2, received ' '"),  # only an empty field is missing
    ],
)
def test_csv_malformed(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError) as info:
        dec(body)
    assert message in str(info.value)
    assert info.value.http_status == 400


def test_wrong_column_count_says_expected_and_received() -> None:
    with pytest.raises(PayloadError) as info:
        dec(b"1,2,3", n_features=17)
    assert str(info.value) == "Expected 17 columns per row (the model's features), received 3 in a text/csv body of 1 row(s)"


def test_long_garbage_is_quoted_briefly() -> None:
    with pytest.raises(PayloadError) as info:
        dec(b"1," + b"z" * 10_000)
    assert len(str(info.value)) < 200


# --- JSON --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        [1, 2, 3],
        [[1, 2, 3]],
        {"instances": [[1, 2, 3]]},
        {"instances": [{"features": [1, 2, 3]}]},
        {"features": [1, 2, 3]},
        {"instances": [{"data": {"features": {"values": [1, 2, 3]}}}]},
        {"data": {"features": {"values": [1, 2, 3]}}},
        [{"features": [1, 2, 3]}],
    ],
)
def test_json_request_shapes(body: object) -> None:
    assert dec(json.dumps(body).encode(), "application/json").tolist() == [[1, 2, 3]]


def test_json_several_rows_and_sparse_records() -> None:
    body = {
        "instances": [
            {"features": [1, 2, 3, 4]},
            {"data": {"features": {"keys": [0, 3], "shape": [4], "values": [5, 6]}}},
        ]
    }
    batch = dec(json.dumps(body).encode(), "application/json")
    assert batch[0].tolist() == [1, 2, 3, 4]
    assert batch[1, 0] == 5 and batch[1, 3] == 6 and np.isnan(batch[1, 1:3]).all()


def test_json_sparse_width_is_the_models_and_the_request_must_agree() -> None:
    body = {"features": {"keys": [1], "shape": [3], "values": [7]}}
    assert dec(json.dumps(body).encode(), "application/json", n_features=3).shape == (1, 3)
    body["features"]["shape"] = [2_000_000]
    with pytest.raises(PayloadError) as info:
        dec(json.dumps(body).encode(), "application/json", n_features=3)
    assert "shape\" to be [3] (the model's features), received [2000000]" in str(info.value)


def test_json_sparse_width_from_the_request_is_bounded() -> None:
    wide = b'{"features": {"keys": [0], "values": [1.0], "shape": [2000000]}}'
    with pytest.raises(PayloadError, match=r"at most \[1000000\], received \[2000000\]"):
        dec(wide, "application/json")
    # Each record within the limit, but together a tiny body would claim 80 MB of floats.
    record = {"features": {"keys": [0], "values": [1.0], "shape": [codecs.MAX_SPARSE_WIDTH]}}
    many = json.dumps({"instances": [record] * 11}).encode()
    assert len(many) < 1000
    with pytest.raises(PayloadError, match="at most 10000000 values in all"):
        dec(many, "application/json")


def test_json_sparse_width_defaults_to_the_model() -> None:
    body = {"features": {"keys": [1], "values": [7]}}
    batch = dec(json.dumps(body).encode(), "application/json", n_features=3)
    assert batch.shape == (1, 3) and batch[0, 1] == 7


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{nope", "invalid JSON"),
        (b"[[1, 2], [3]]", "rows of equal length in the JSON body, received lengths [1, 2]"),
        (b'[1, "2", 3]', "only numbers in the JSON body, received '\"2\"'"),
        (b"[1, null, 3]", "received 'null'"),
        (b"[true, 1]", "received 'true'"),
        (b'{"rows": [[1]]}', "have \"features\" or \"data\""),
        (b'{"instances": 5}', "\"instances\" to be a list"),
        (b'"text"', "Expected a JSON list of rows"),
        (b"[]", "at least one row"),
        (b'{"features": {"keys": [9], "shape": [3], "values": [1]}}', "sparse keys in 0..2, received 9"),
        (b'{"features": {"keys": [0, 1], "shape": [3], "values": [1]}}', "equal length"),
        (b'{"features": {"keys": [0], "values": [1]}}', "shape\" to be [n_features] (the model's width is not known"),
        (b'{"features": {"keys": [0], "shape": [true], "values": [1]}}', "received '[true]'"),
        (b'{"features": {"keys": [0], "shape": [3, 2], "values": [1]}}', "received '[3, 2]'"),
        (b'{"features": {"keys": [0], "shape": [0], "values": [1]}}', "received '[0]'"),
    ],
)
def test_json_malformed(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError) as info:
        dec(body, "application/json")
    assert message in str(info.value)


# --- NPY ---------------------------------------------------------------------------------------


def test_npy_rows_and_a_flat_row() -> None:
    assert dec(npy(np.arange(6, dtype=np.float64).reshape(2, 3)), "application/x-npy").tolist() == [[0, 1, 2], [3, 4, 5]]
    assert dec(npy(np.arange(3, dtype=np.int64)), "application/x-npy").shape == (1, 3)


def test_npy_never_unpickles() -> None:
    with pytest.raises(PayloadError, match=r"numeric \.npy"):
        dec(npy(np.array([{"a": 1}], dtype=object), allow_pickle=True), "application/x-npy")


@pytest.mark.parametrize(
    "body",
    [b"\x93NUMPY\x01\x00garbage", b"not npy at all", npy(np.array(["a", "b"])), npy(np.zeros((0, 3))), npy(np.float32(1.0))],
)
def test_npy_malformed(body: bytes) -> None:
    with pytest.raises(PayloadError):
        dec(body, "application/x-npy")


# --- libsvm ------------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/libsvm", "text/x-libsvm"])
def test_libsvm_with_and_without_label(content_type: str) -> None:
    batch = dec(b"1 0:1.5 3:2\n2:7\n", content_type, n_features=4)
    assert batch.shape == (2, 4)
    assert batch[0, 0] == 1.5 and batch[0, 3] == 2 and batch[1, 2] == 7
    assert np.isnan(batch[0, 1]) and np.isnan(batch[1, 0])  # absent entries are missing


def test_libsvm_indexing_is_detected_over_the_whole_body() -> None:
    # test_serve_utils.py (libsvm parsing): 1-based when the smallest index of the payload is
    # 1 or more, 0-based otherwise; one row with index 0 makes every row 0-based.
    one_based = dec(b"0 1:10 3:30\n1 2:20", "text/libsvm", n_features=3)
    assert one_based[0, 0] == 10 and one_based[0, 2] == 30 and one_based[1, 1] == 20
    zero_based = dec(b"0 1:10 3:30\n1 0:5", "text/libsvm", n_features=4)
    assert zero_based[0, 1] == 10 and zero_based[0, 3] == 30 and zero_based[1, 0] == 5


def test_libsvm_width_without_a_model_is_the_largest_index() -> None:
    assert dec(b"0 5:1", "text/libsvm").shape == (1, 5)  # 1-based
    assert dec(b"0 0:1 5:1", "text/libsvm").shape == (1, 6)  # 0-based


def test_libsvm_rows_are_lines_and_tokens_without_a_colon_are_skipped() -> None:
    # _get_sparse_matrix_from_libsvm: the row is the line number; trailing lines without an
    # entry carry no row; any token without ":" is skipped; the value is the text after the
    # first ":" up to the next.
    batch = dec(b"1:1\n\n0 2:2 junk\n7", "text/libsvm")
    assert batch.shape == (3, 2)
    assert batch[0, 0] == 1 and np.isnan(batch[1]).all() and batch[2, 1] == 2
    assert dec(b"1:2:3", "text/libsvm").tolist() == [[2.0]]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"1 a:b", "index:value pairs in libsvm row 1, received 'a:b'"),
        (b"1 0:x", "received '0:x'"),
        (b"1 0:1 4:1", "Expected 4 columns per row (the model's features) at most, received libsvm feature index 4"),
        (b"1 5:1", "received libsvm feature index 5"),  # 1-based: column 5 of 4
        (b"1 -1:1", "received -1"),
        (b"1 0:1 0:2", "each index once"),
        (b"1\n2", "at least one index:value"),
        (b"1 0:", "received '0:'"),
    ],
)
def test_libsvm_malformed(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError) as info:
        dec(body, "text/libsvm", n_features=4 if b"1\n2" not in body else None)
    assert message in str(info.value)


def test_libsvm_dense_size_is_bounded() -> None:
    with pytest.raises(PayloadError, match=r"at most 1000000 wide .*received libsvm feature index 2000000"):
        dec(b"0:1 2000000:1", "text/libsvm")
    # 40 kB of one-entry rows, each made 1,000 wide by the model: 80 MB dense.
    with pytest.raises(PayloadError, match="10001 rows of 1 values to widen to the model's 1000"):
        dec(b"0:1\n" * 10_001, "text/libsvm", n_features=1000, min_features=0)
    with pytest.raises(PayloadError, match="10001 rows of 1 values to widen"):
        dec(b"1\n" * 10_001, "text/csv", n_features=1000, min_features=0)
    assert dec(b"0:1\n" * 100, "text/libsvm", n_features=1000, min_features=0).shape == (100, 1000)


# --- many rows: parsed a slice of lines at a time, same rules as one pass --------------------


@pytest.fixture
def tiny_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slices of a few bytes, so that every body below spans many of them."""
    monkeypatch.setattr(codecs, "_SLICE_BYTES", 4)


def test_slices_cover_every_line_once() -> None:
    text = b"1,2\n\n3,4\n" + b"5,6\n" * 200_000 + b"7,8"
    slices = list(codecs._line_slices(text))
    assert len(slices) > 2 and b"\n".join(slices) == text


@pytest.mark.usefixtures("tiny_slices")
def test_csv_across_slices_reads_as_one_pass() -> None:
    assert dec(b"1;2;3\n4;;6\n7;8;9\n1_0;11;12").tolist()[3] == [10, 11, 12]  # ";" from line 1
    batch = dec(b"1;2;3\n4;;6\n7;8;9")
    assert batch.shape == (3, 3) and np.isnan(batch[1, 1]) and batch[2, 2] == 9
    one_column = dec(b"1\n2\n\n3\n" * 5)  # a blank line is a missing value in any slice
    assert one_column.shape == (20, 1) and np.isnan(one_column[2::4]).all() and one_column[19, 0] == 3


@pytest.mark.usefixtures("tiny_slices")
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"1,2,3\n" * 5 + b"\n4,5,6", "have 3 values like the first, received 1 in row 6"),
        (b"1,2,3\n" * 7 + b"4,5", "have 3 values like the first, received 2 in row 8"),
        (b"1,2,3\n" * 4 + b"4,x,6", "row 5, column 2, received 'x'"),
    ],
)
def test_csv_errors_across_slices_name_the_row(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError) as info:
        dec(body)
    assert message in str(info.value)


def test_csv_many_rows_are_not_a_list_per_row() -> None:
    # 300,000 one-value rows (many 256 KiB slices) read exactly, blank lines and all.
    body = b"1\n2.5\n\n" * 100_000 + b"3"
    batch = dec(body)
    assert batch.shape == (300_001, 1) and batch.dtype == np.float32 and batch[300_000, 0] == 3
    assert batch[299_998, 0] == 2.5 and np.isnan(batch[2::3]).all()


@pytest.mark.usefixtures("tiny_slices")
def test_libsvm_index_base_is_decided_over_every_slice() -> None:
    # Every slice but the last is 1-based on its own; the 0 in the last line makes the body 0-based.
    zero_based = dec(b"1 1:10 3:30\n" * 6 + b"1 0:5", "text/libsvm")
    assert zero_based.shape == (7, 4) and zero_based[0, 1] == 10 and zero_based[6, 0] == 5
    one_based = dec(b"1 1:10 3:30\n" * 6 + b"1 2:5", "text/libsvm")
    assert one_based.shape == (7, 3) and one_based[0, 0] == 10 and one_based[6, 1] == 5


@pytest.mark.usefixtures("tiny_slices")
def test_libsvm_rows_across_slices_are_lines() -> None:
    batch = dec(b"1:1\n\n" * 5 + b"0 2:2 junk\n7\n8", "text/libsvm")
    assert batch.shape == (11, 2)  # the last two lines carry no entry: no rows
    assert batch[8, 0] == 1 and np.isnan(batch[9]).all() and batch[10, 1] == 2
    assert dec(b"1:2:3\n" * 5, "text/libsvm").tolist() == [[2.0]] * 5


@pytest.mark.usefixtures("tiny_slices")
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"1 0:1\n" * 5 + b"1 0:1 0:2", "received 0 twice in row 6"),
        (b"1 0:1\n" * 5 + b"1 a:b", "index:value pairs in libsvm row 6, received 'a:b'"),
        (b"1 0:1\n" * 5 + b"1 -1:1", "indices of 0 or more in the libsvm body, received -1"),
        (b"1 1:1\n" * 5 + b"1 99999999999999999999:1", "received libsvm feature index 99999999999999999999"),
        (b"1 -99999999999999999999:1\n1 x:1", "row 2, received 'x:1'"),  # parse errors come first
    ],
)
def test_libsvm_errors_across_slices_name_the_row(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError) as info:
        dec(body, "text/libsvm")
    assert message in str(info.value)


def test_libsvm_many_rows() -> None:
    body = b"\n".join([b"1 0:1 3:2.5 16:1"] * 100_000)
    batch = dec(body, "text/libsvm")
    assert batch.shape == (100_000, 17) and batch.dtype == np.float32
    assert batch[99_999, 3] == 2.5 and np.isnan(batch[:, 1]).all()


# --- content types and accept --------------------------------------------------------------------


def test_unknown_or_undeclared_content_type_is_415() -> None:
    with pytest.raises(UnsupportedContentTypeError) as info:
        dec(b"1", "image/png")
    assert info.value.http_status == 415
    assert str(info.value) == (
        "Unsupported content type 'image/png'; expected one of: text/csv, text/libsvm, application/json, "
        "application/x-npy, application/x-recordio-protobuf"
    )
    with pytest.raises(UnsupportedContentTypeError):
        codecs.decode(b"1 0:1", "text/libsvm", accepted=(codecs.CSV,))


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, "text/csv"),
        ("", "text/csv"),
        ("*/*", "text/csv"),
        ("application/json", "application/json"),
        ("application/json; charset=utf-8", "application/json"),
        ("text/html, application/json;q=0.9", "application/json"),
        ("application/*", "application/json"),
        ("json", "application/json"),
        ("application/x-npy", "application/x-npy"),
    ],
)
def test_accept_negotiation(accept: str | None, chosen: str) -> None:
    assert codecs.encode(np.array([0.5]), accept, accepted=OUT).content_type == chosen


def test_unknown_accept_is_406() -> None:
    with pytest.raises(UnsupportedAcceptError) as info:
        codecs.encode(np.array([0.5]), "text/html", accepted=OUT)
    assert info.value.http_status == 406
    assert "'text/html'" in str(info.value) and "text/csv" in str(info.value)


# --- encode ------------------------------------------------------------------------------------


def test_csv_answer_is_exactly_the_containers() -> None:
    predictions = np.array([0.1, 0.87654321, 1e-8], dtype=np.float32)
    body = codecs.encode(predictions, "text/csv", accepted=OUT).body
    assert body == ",".join(map(str, predictions.tolist())).encode()  # the container's own code


def test_csv_answer_of_2d_predictions_is_one_row_per_line() -> None:
    body = codecs.encode(np.array([[0.1, 0.9], [0.7, 0.3]]), "text/csv", accepted=OUT).body
    assert body == b"0.1,0.9\n0.7,0.3"


def test_json_answer_is_a_json_array_like_the_container() -> None:
    predictions = np.array([0.25, 0.5], dtype=np.float32)
    assert codecs.encode(predictions, "application/json", accepted=OUT).body == b"[0.25, 0.5]"


@pytest.mark.parametrize("accept", OUT)
@pytest.mark.parametrize("shape", [(1,), (5,), (3, 2)])
def test_answers_parse_back_exactly(accept: str, shape: tuple[int, ...]) -> None:
    predictions = np.random.default_rng(0).random(shape).astype(np.float32)
    encoded = codecs.encode(predictions, accept, accepted=OUT)
    parsed = codecs.decode_predictions(encoded.body, encoded.content_type)
    np.testing.assert_array_equal(parsed.ravel(), predictions.astype(np.float64).ravel())


@pytest.mark.parametrize("content_type", ALL)
def test_request_bodies_round_trip_exactly(content_type: str) -> None:
    batch = np.random.default_rng(1).normal(size=(4, 6)).astype(np.float32)
    batch[1, 2] = np.nan
    decoded = dec(encode_request(batch, content_type), content_type, n_features=6)
    np.testing.assert_array_equal(decoded, batch)


def test_encode_batch_of_an_unknown_type() -> None:
    with pytest.raises(UnsupportedContentTypeError):
        encode_request(np.zeros((1, 2)), "image/png")


@pytest.mark.parametrize("size", [0, 1, codecs.ENCODE_CHUNK, codecs.ENCODE_CHUNK + 1, 3 * codecs.ENCODE_CHUNK + 5])
def test_chunked_answers_are_the_text_of_one_call(size: int) -> None:
    """Large answers are written in chunks (the GIL can switch between them), byte for byte as
    one ``json.dumps`` / ``str.join`` writes them, 1-D and 2-D."""
    flat = np.random.default_rng(size).random(size).astype(np.float32).tolist()
    rows = np.random.default_rng(size).random((size, 2)).astype(np.float32).tolist()
    assert codecs.json_array(flat) == json.dumps(flat)
    assert codecs.json_array(rows) == json.dumps(rows)
    assert codecs.joined(flat) == ",".join(map(str, flat))
    assert codecs.joined(rows) == ",".join(map(str, rows))
    assert codecs.container_csv(np.asarray(flat)) == ",".join(map(str, flat)).encode()
    assert codecs.encode(np.asarray(flat), "application/json", accepted=OUT).body == json.dumps(flat).encode()


def test_chunked_answers_of_a_scalar_are_the_text_of_one_call() -> None:
    assert codecs.json_array(0.5) == json.dumps(0.5)
    assert codecs.encode(np.float32(0.25), "application/json", accepted=OUT).body == b"0.25"
