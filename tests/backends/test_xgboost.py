"""The XGBoost backend: conformance, SageMaker-compatible artifacts, pickle policy, exact parity.

The data-contract tests follow aws/sagemaker-xgboost-container's ``test/unit/algorithm_mode/
test_serve_utils.py`` (content types, parsing, feature-size checks), ``test/unit/test_handler_service.py``
(Accept and output), ``test/unit/test_data_utils.py`` (``get_content_type``) and the sources they test;
each test names the one it follows.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmeperf.backends import codecs
from mmeperf.backends.bodies import encode_request
from mmeperf.errors import (
    ConfigurationError,
    ModelLoadError,
    PayloadError,
    PredictionError,
    UnsupportedAcceptError,
    UnsupportedContentTypeError,
)
from mmeperf.plugins import get_backend
from mmeperf.testing import BackendConformance
from tests.backends._tabular import N_FEATURES, churn_like

xgboost = pytest.importorskip("xgboost")

from mmeperf.backends.xgboost import EXTRA_TYPES_ENV, MODEL_FILE_NAME, XGBoostBackend, request_kind  # noqa: E402


class TestXGBoostConformance(BackendConformance):
    backend = "xgboost"

    def make_model(self) -> Any:
        x, y = churn_like(300)
        return xgboost.train({"objective": "binary:logistic", "max_depth": 3}, xgboost.DMatrix(x, label=y), 5)

    def make_batch(self) -> np.ndarray[Any, Any]:
        x, _ = churn_like(7, seed=1)
        x[2, 4] = np.nan  # a missing value travels through every format
        return x

    def native_predict(self, model: Any, batch: Any) -> np.ndarray[Any, Any]:
        return np.asarray(model.predict(xgboost.DMatrix(batch)))


@pytest.fixture
def backend() -> XGBoostBackend:
    b = get_backend("xgboost")
    assert isinstance(b, XGBoostBackend)
    return b


def test_save_writes_one_ubjson_file_named_like_sagemaker(backend: XGBoostBackend, tiny_booster: Any, tmp_path: Path) -> None:
    path = backend.save(tiny_booster, tmp_path)
    assert path == tmp_path / MODEL_FILE_NAME
    assert [p.name for p in tmp_path.iterdir()] == [MODEL_FILE_NAME]
    assert path.read_bytes()[:2] == b"{L"  # UBJSON object with an int64 length marker


def test_save_json_on_request(backend: XGBoostBackend, tiny_booster: Any, tmp_path: Path) -> None:
    path = backend.save(tiny_booster, tmp_path, format="json")
    assert json.loads(path.read_bytes())["learner"]["objective"]["name"] == "binary:logistic"
    with pytest.raises(ConfigurationError, match="'ubj' or 'json'"):
        backend.save(tiny_booster, tmp_path, format="bin")  # type: ignore[arg-type]


def test_save_accepts_sklearn_style_models(backend: XGBoostBackend, tmp_path: Path) -> None:
    x, y = churn_like(200)
    model = xgboost.XGBClassifier(n_estimators=4, max_depth=2, n_jobs=1).fit(x, y)
    backend.save(model, tmp_path)
    runner = backend.load(tmp_path)
    np.testing.assert_array_equal(runner.predict(x), model.predict_proba(x)[:, 1])


@pytest.mark.parametrize("name", ["xgboost-model", "model.json", "model.ubj", "model.bst", "model.model", "anything"])
@pytest.mark.parametrize("fmt", ["ubj", "json"])
def test_load_reads_any_single_model_file_whatever_its_format(
    backend: XGBoostBackend, tiny_booster: Any, tmp_path: Path, name: str, fmt: str
) -> None:
    # The container reads the folder's one file by content, not by name: so do we.
    (tmp_path / name).write_bytes(bytes(tiny_booster.save_raw(raw_format=fmt)))
    x, _ = churn_like(5, seed=3)
    runner = backend.load(tmp_path)
    np.testing.assert_array_equal(runner.predict(x), tiny_booster.predict(xgboost.DMatrix(x)))
    assert runner.n_features == N_FEATURES


def test_load_refuses_several_model_files_where_the_container_would_average_them(
    backend: XGBoostBackend, tiny_booster: Any, tmp_path: Path
) -> None:
    # serve_utils.get_loaded_booster: every top-level file is loaded; with ensemble on (the
    # default) their predictions are averaged. mmeperf refuses rather than answer differently.
    raw = bytes(tiny_booster.save_raw(raw_format="ubj"))
    (tmp_path / "a.json").write_bytes(raw)
    (tmp_path / MODEL_FILE_NAME).write_bytes(raw)
    with pytest.raises(ModelLoadError, match=r"found 2: a\.json, xgboost-model\. .*average their predictions"):
        backend.load(tmp_path)


def test_load_skips_dotfiles_and_subfolders_like_the_container(
    backend: XGBoostBackend, tiny_booster: Any, tmp_path: Path
) -> None:
    # serve_utils._get_full_model_paths: os.listdir, regular files only, names starting with "." skipped.
    raw = bytes(tiny_booster.save_raw(raw_format="ubj"))
    (tmp_path / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "inference.py").write_text("")
    (tmp_path / "my-churn-model").write_bytes(raw)
    assert backend.load(tmp_path).source.name == "my-churn-model"
    assert XGBoostBackend.claims(tmp_path)


def test_a_model_only_in_a_subfolder_is_refused_and_a_file_path_loads(
    backend: XGBoostBackend, tiny_booster: Any, tmp_path: Path
) -> None:
    path = backend.save(tiny_booster, tmp_path / "nested" / "deeper")
    with pytest.raises(ModelLoadError, match=r"only nested/deeper/xgboost-model, not at the top"):
        backend.load(tmp_path)
    assert backend.load(path).source == path


def test_one_file_of_any_name_is_claimed_by_its_content(tiny_booster: Any, tmp_path: Path) -> None:
    from mmeperf.repository import detect_backend

    (tmp_path / "weights").write_bytes(bytes(tiny_booster.save_raw(raw_format="ubj")))
    assert XGBoostBackend.claims(tmp_path)
    assert detect_backend(tmp_path) == "xgboost"
    (tmp_path / "weights").write_text("not a model")
    assert not XGBoostBackend.claims(tmp_path)
    assert detect_backend(tmp_path) is None


def test_foreign_and_corrupt_files_name_the_file(backend: XGBoostBackend, tiny_booster: Any, tmp_path: Path) -> None:
    path = tmp_path / MODEL_FILE_NAME
    path.write_bytes(b"PK\x03\x04 this is a zip, not a model")
    with pytest.raises(ModelLoadError, match="neither JSON nor UBJSON") as info:
        backend.load(tmp_path)
    assert str(path) in str(info.value)
    path.write_bytes(bytes(tiny_booster.save_raw(raw_format="ubj"))[:500])  # truncated
    with pytest.raises(ModelLoadError, match="looks like UBJSON"):
        backend.load(tmp_path)
    path.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty"):
        backend.load(tmp_path)


def test_pickle_needs_opt_in(backend: XGBoostBackend, tiny_booster: Any, tmp_path: Path) -> None:
    (tmp_path / MODEL_FILE_NAME).write_bytes(pickle.dumps(tiny_booster))
    with pytest.raises(ModelLoadError, match="allow_pickle=True"):
        backend.load(tmp_path)
    x, _ = churn_like(4, seed=5)
    runner = backend.load(tmp_path, allow_pickle=True)
    np.testing.assert_array_equal(runner.predict(x), tiny_booster.predict(xgboost.DMatrix(x)))


@pytest.mark.parametrize("protocol", [0, 1])
def test_protocol_0_and_1_pickles_are_claimed_and_loaded_as_pickles(
    backend: XGBoostBackend, tiny_booster: Any, tmp_path: Path, protocol: int
) -> None:
    (tmp_path / "weights").write_bytes(pickle.dumps(tiny_booster, protocol))
    assert XGBoostBackend.claims(tmp_path)
    with pytest.raises(ModelLoadError, match="allow_pickle=True"):
        backend.load(tmp_path)
    assert backend.load(tmp_path, allow_pickle=True).pickled
    (tmp_path / "weights").write_bytes(b"cnot\na_pickle\n")  # looks like GLOBAL, no STOP
    assert not XGBoostBackend.claims(tmp_path)


def test_pickle_of_something_else_is_refused_even_with_opt_in(backend: XGBoostBackend, tmp_path: Path) -> None:
    (tmp_path / MODEL_FILE_NAME).write_bytes(pickle.dumps({"not": "a model"}))
    with pytest.raises(ModelLoadError, match=r"received builtins\.dict"):
        backend.load(tmp_path, allow_pickle=True)


@pytest.mark.parametrize("rows", [1, 2, 17, 100, 1000])
def test_predictions_equal_xgboost_predict_bit_for_bit(backend: XGBoostBackend, tmp_path: Path, rows: int) -> None:
    x, y = churn_like(400, seed=11)
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 6}, xgboost.DMatrix(x, label=y), 20)
    backend.save(booster, tmp_path)
    runner = backend.load(tmp_path)
    batch, _ = churn_like(rows, seed=rows)
    batch[::7, 3] = np.nan
    expected = booster.predict(xgboost.DMatrix(batch))
    got = runner.predict(batch)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert got.tobytes() == expected.tobytes()
    # float64 rows (what a user may pass) give the same answer as their float32 values
    assert runner.predict(batch.astype(np.float64)).tobytes() == expected.tobytes()


def test_multiclass_predictions_keep_their_shape_on_the_wire(backend: XGBoostBackend, tmp_path: Path) -> None:
    x, _ = churn_like(300)
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0).astype(int)
    booster = xgboost.train({"objective": "multi:softprob", "num_class": 3}, xgboost.DMatrix(x, label=y), 3)
    backend.save(booster, tmp_path)
    runner = backend.load(tmp_path)
    predictions = runner.predict(x[:4])
    assert predictions.shape == (4, 3)
    np.testing.assert_array_equal(predictions, booster.predict(xgboost.DMatrix(x[:4])))
    answer = backend.encode(predictions, "application/json")
    np.testing.assert_array_equal(codecs.decode_predictions(answer.body, answer.content_type), predictions)
    # handler_service.default_output_fn: ",".join(map(str, prediction.tolist())), rows as lists.
    csv_body = backend.encode(predictions, "text/csv").body
    assert csv_body == ",".join(map(str, predictions.tolist())).encode()
    assert csv_body.startswith(b"[") and b"\n" not in csv_body
    np.testing.assert_array_equal(codecs.decode_predictions(csv_body, "text/csv"), predictions)


def test_runner_checks_batches(backend: XGBoostBackend, tiny_booster: Any, tmp_path: Path) -> None:
    backend.save(tiny_booster, tmp_path)
    runner = backend.load(tmp_path)
    with pytest.raises(PayloadError, match=r"Expected 17 columns per row.*received 18"):
        runner.predict(np.zeros((2, 18), dtype=np.float32))
    with pytest.raises(PayloadError, match="named tensors"):
        runner.predict({"x": np.zeros((1, 17))})
    assert runner.predict(np.zeros(17, dtype=np.float32)).shape == (1,)  # one row given flat
    runner.close()
    with pytest.raises(PredictionError, match="unloaded"):
        runner.predict(np.zeros((1, 17), dtype=np.float32))


def test_runner_predicts_on_one_thread(backend: XGBoostBackend, tiny_booster: Any, tmp_path: Path) -> None:
    backend.save(tiny_booster, tmp_path)
    runner = backend.load(tmp_path)
    config = json.loads(runner.booster.save_config())
    assert config["learner"]["generic_param"]["nthread"] == "1"


def test_memory_estimate_is_the_artifact_size_plus_a_constant(backend: XGBoostBackend, tiny_booster: Any, tmp_path: Path) -> None:
    path = backend.save(tiny_booster, tmp_path)
    runner = backend.load(tmp_path)
    assert runner.memory_bytes == path.stat().st_size + 16 * 1024


def test_server_side_decode_answers_like_the_container(backend: XGBoostBackend, tiny_booster: Any, tmp_path: Path) -> None:
    backend.save(tiny_booster, tmp_path)
    runner = backend.load(tmp_path)
    x, _ = churn_like(3, seed=9)
    body = encode_request(x, "text/csv")
    batch = backend.decode(body, "text/csv", runner)
    answer = backend.encode(runner.predict(batch), "text/csv")
    expected = tiny_booster.predict(xgboost.DMatrix(x))
    assert answer.content_type == "text/csv"
    assert answer.body == ",".join(map(str, expected.tolist())).encode()
    with pytest.raises(PayloadError, match="Expected at most 17 columns per row"):
        backend.decode(b",".join([b"1"] * 18), "text/csv", runner)


def test_describe_reports_objective_and_trees(backend: XGBoostBackend, tiny_booster: Any, tmp_path: Path) -> None:
    backend.save(tiny_booster, tmp_path)
    info = backend.describe(backend.load(tmp_path))
    assert info == {"objective": "binary:logistic", "n_features": N_FEATURES, "n_trees": 5}


def test_save_rejects_other_objects_with_their_type(backend: XGBoostBackend, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"received builtins\.str"):
        backend.save("model", tmp_path)


def test_backend_class_imports_without_xgboost() -> None:
    code = "import sys, mmeperf.backends.xgboost; print('xgboost' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- the container's data contract -----------------------------------------------------------


@pytest.fixture
def served(backend: XGBoostBackend, tiny_booster: Any, tmp_path: Path) -> Any:
    backend.save(tiny_booster, tmp_path)
    return backend.load(tmp_path)


def _dmatrix_predict(booster: Any, rows: Any) -> np.ndarray[Any, Any]:
    """What the container computes: Booster.predict(DMatrix(rows), validate_features=False)."""
    return np.asarray(booster.predict(xgboost.DMatrix(rows), validate_features=False))


@pytest.mark.parametrize(
    ("content_type", "kind"),
    [
        ("text/csv", codecs.CSV), ("csv", codecs.CSV), ("TEXT/CSV; charset=utf-8", codecs.CSV),
        ("text/csv;label_size=1", codecs.CSV),
        ("text/libsvm", codecs.LIBSVM), ("text/x-libsvm", codecs.LIBSVM), ("libsvm", codecs.LIBSVM),
        ("application/x-recordio-protobuf", codecs.RECORDIO_PROTOBUF),
        ("recordio-protobuf", codecs.RECORDIO_PROTOBUF),
        (None, codecs.LIBSVM), ("", codecs.LIBSVM),
    ],
)
def test_accepted_request_content_types(content_type: str | None, kind: str) -> None:
    # test_data_utils.py test_get_content_type / serve_utils.parse_content_data; None -> libsvm.
    assert request_kind(content_type) == kind


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        ("application/json", "application/json is not an accepted ContentType: csv, libsvm, parquet, "
         "recordio-protobuf, text/csv, text/libsvm, text/x-libsvm, application/x-parquet, "
         "application/x-recordio-protobuf."),
        ("json", "json is not an accepted ContentType: csv,"),
        ("application/x-npy", "application/x-npy is not an accepted ContentType"),
        ("text/csv; label_size=5", "text/csv; label_size=5 is not an accepted csv ContentType. "
         "Optional parameter label_size must be equal to 1"),
        ("application/x-parquet", "Content-type application/x-parquet is not supported."),
    ],
)
def test_refused_request_content_types_are_415_with_the_containers_message(
    backend: XGBoostBackend, served: Any, content_type: str, message: str
) -> None:
    # data_utils.get_content_type (UserError) and serve_utils.parse_content_data (parquet).
    with pytest.raises(UnsupportedContentTypeError) as info:
        backend.decode(b"1,2", content_type, served)
    assert info.value.http_status == 415
    assert str(info.value).startswith(message)


def test_no_content_type_is_read_as_libsvm(backend: XGBoostBackend, served: Any, tiny_booster: Any) -> None:
    x, _ = churn_like(2, seed=4)
    body = encode_request(x, codecs.LIBSVM)
    np.testing.assert_array_equal(backend.decode(body, None, served), x)
    with pytest.raises(PayloadError, match="index:value"):
        backend.decode(encode_request(x, codecs.CSV), "", served)  # CSV without a type is not libsvm


def test_empty_body_is_refused_before_the_content_type(backend: XGBoostBackend, served: Any) -> None:
    # handler_service.default_input_fn raises NoContentInferenceError before parsing the type.
    with pytest.raises(PayloadError, match="non-empty request body") as info:
        backend.decode(b"", "application/json", served)
    assert info.value.http_status == 400


@pytest.mark.parametrize("content_type", [codecs.CSV, codecs.LIBSVM, codecs.RECORDIO_PROTOBUF])
def test_every_request_type_predicts_what_the_container_predicts(
    backend: XGBoostBackend, served: Any, tiny_booster: Any, content_type: str
) -> None:
    x, _ = churn_like(5, seed=6)
    x[1, 0] = np.nan
    x[3, 16] = np.nan
    batch = backend.decode(encode_request(x, content_type), content_type, served)
    np.testing.assert_array_equal(served.predict(batch), _dmatrix_predict(tiny_booster, x))


def test_libsvm_one_based_body_predicts_like_the_container(
    backend: XGBoostBackend, served: Any, tiny_booster: Any
) -> None:
    # test_serve_utils.py (libsvm): a 1-based body (libsvm's convention) is shifted to 0-based.
    x, _ = churn_like(1, seed=8)
    one_based = " ".join(f"{i + 1}:{v}" for i, v in enumerate(x[0].tolist())).encode()
    zero_based = b"0 " + " ".join(f"{i}:{v}" for i, v in enumerate(x[0].tolist())).encode()
    expected = _dmatrix_predict(tiny_booster, x)
    for body in (one_based, zero_based):
        np.testing.assert_array_equal(served.predict(backend.decode(body, "text/libsvm", served)), expected)


@pytest.mark.parametrize("content_type", [codecs.CSV, codecs.LIBSVM, codecs.RECORDIO_PROTOBUF])
def test_short_rows_of_a_native_model_read_the_missing_columns_as_missing(
    backend: XGBoostBackend, served: Any, tiny_booster: Any, content_type: str
) -> None:
    # serve_utils.predict: no feature-size check for XGB_FORMAT; XGBoost reads a narrower
    # DMatrix with the absent columns missing.
    x, _ = churn_like(3, seed=7)
    short = x[:, :12]
    batch = backend.decode(encode_request(short, content_type), content_type, served)
    assert batch.shape == (3, N_FEATURES) and np.isnan(batch[:, 12:]).all()
    np.testing.assert_array_equal(served.predict(batch), _dmatrix_predict(tiny_booster, short))
    np.testing.assert_array_equal(served.predict(short), _dmatrix_predict(tiny_booster, short))


@pytest.mark.parametrize("content_type", [codecs.CSV, codecs.LIBSVM, codecs.RECORDIO_PROTOBUF])
def test_wider_rows_are_refused(backend: XGBoostBackend, served: Any, content_type: str) -> None:
    # XGBoost: "Number of columns does not match number of features in booster".
    wide = np.ones((1, N_FEATURES + 1), dtype=np.float32)
    with pytest.raises(PayloadError, match="17 columns per row"):
        backend.decode(encode_request(wide, content_type), content_type, served)


def test_pickled_model_keeps_the_containers_feature_size_check(
    backend: XGBoostBackend, tiny_booster: Any, tmp_path: Path
) -> None:
    # serve_utils.predict, PKL_FORMAT: CSV and recordio rows may be one column short, no more;
    # libsvm only must not be wider (test_serve_utils.py feature-size tests).
    (tmp_path / MODEL_FILE_NAME).write_bytes(pickle.dumps(tiny_booster))
    runner = backend.load(tmp_path, allow_pickle=True)
    x, _ = churn_like(2, seed=2)
    for content_type in (codecs.CSV, codecs.RECORDIO_PROTOBUF):
        ok = backend.decode(encode_request(x[:, :16], content_type), content_type, runner)
        np.testing.assert_array_equal(runner.predict(ok), _dmatrix_predict(tiny_booster, x[:, :16]))
        with pytest.raises(PayloadError, match="Expected 16 to 17 columns per row"):
            backend.decode(encode_request(x[:, :15], content_type), content_type, runner)
    assert backend.decode(encode_request(x[:, :5], codecs.LIBSVM), codecs.LIBSVM, runner).shape == (2, 17)


def test_ragged_csv_rows_are_an_error(backend: XGBoostBackend, served: Any) -> None:
    # encoder.csv_to_dmatrix: np.array of rows of different lengths raises (inhomogeneous shape).
    with pytest.raises(PayloadError, match="every CSV row to have 3 values"):
        backend.decode(b"1,2,3\n1,2", "text/csv", served)


@pytest.mark.parametrize("accept", [None, "", "*/*", "application/json", "APPLICATION/JSON"])
def test_answer_is_a_plain_json_array_by_default(backend: XGBoostBackend, accept: str | None) -> None:
    # mms_transformer.transform: no Accept or */* -> the default accept, application/json;
    # the toolkit's encoder writes json.dumps(prediction.tolist()).
    predictions = np.array([0.43861907720565796, 0.1], dtype=np.float32)
    answer = backend.encode(predictions, accept)
    assert answer.body == b"[0.43861907720565796, 0.10000000149011612]"
    assert answer.content_type == (accept or "application/json").replace("*/*", "application/json")


@pytest.mark.parametrize("accept", ["text/csv", "csv", "Text/CSV"])
def test_csv_answer_is_one_line_and_echoes_the_accept(backend: XGBoostBackend, accept: str) -> None:
    # handler_service.default_output_fn: ",".join(map(str, prediction.tolist())), no newline;
    # the response Content-Type is the Accept value as sent.
    answer = backend.encode(np.array([0.43861907720565796, 0.1], dtype=np.float32), accept)
    assert answer.body == b"0.43861907720565796,0.10000000149011612"
    assert answer.content_type == accept


@pytest.mark.parametrize(
    "accept", ["json", "application/json; charset=utf-8", "text/csv, application/json", "application/x-npy", "text/*"]
)
def test_other_accepts_are_refused_with_the_containers_message(backend: XGBoostBackend, accept: str) -> None:
    # default_output_fn compares the whole lower-cased value: no parameters, lists or "json".
    with pytest.raises(UnsupportedAcceptError) as info:
        backend.encode(np.array([0.5]), accept)
    assert info.value.http_status == 406
    assert str(info.value) == (
        f"Encoding to accept type {accept} failed with exception: {accept} is not an accepted Accept "
        "type. Please choose one of the following: ['text/csv', 'application/json']."
    )


def test_extra_types_are_an_explicit_option(tiny_booster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extended = XGBoostBackend(extra_types=True)
    extended.save(tiny_booster, tmp_path)
    runner = extended.load(tmp_path)
    x, _ = churn_like(2, seed=3)
    for content_type in (codecs.JSON, codecs.NPY):
        batch = extended.decode(encode_request(x, content_type), content_type, runner)
        np.testing.assert_array_equal(batch, x)
    npy = extended.encode(runner.predict(x), codecs.NPY)
    np.testing.assert_array_equal(codecs.decode_predictions(npy.body, npy.content_type), runner.predict(x))
    with pytest.raises(UnsupportedContentTypeError, match=r"\(Also accepted here: application/json, application/x-npy\.\)"):
        extended.decode(b"1", "image/png", runner)
    assert not XGBoostBackend().extra_types
    monkeypatch.setenv(EXTRA_TYPES_ENV, "1")
    assert XGBoostBackend().extra_content_types == (codecs.JSON, codecs.NPY)
