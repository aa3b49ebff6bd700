"""The XGBoost backend: conformance, SageMaker-compatible artifacts, pickle policy, exact parity."""

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
from mmeperf.errors import ConfigurationError, ModelLoadError, PayloadError, PredictionError
from mmeperf.plugins import get_backend
from mmeperf.testing import BackendConformance
from tests.backends._tabular import N_FEATURES, churn_like

xgboost = pytest.importorskip("xgboost")

from mmeperf.backends.xgboost import MODEL_FILE_NAME, XGBoostBackend  # noqa: E402


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


def test_load_prefers_xgboost_model_and_refuses_ambiguity(backend: XGBoostBackend, tiny_booster: Any, tmp_path: Path) -> None:
    raw = bytes(tiny_booster.save_raw(raw_format="ubj"))
    (tmp_path / "a.json").write_bytes(raw)
    (tmp_path / "b.ubj").write_bytes(raw)
    with pytest.raises(ModelLoadError, match=r"found 2: a\.json, b\.ubj"):
        backend.load(tmp_path)
    (tmp_path / MODEL_FILE_NAME).write_bytes(raw)
    assert backend.load(tmp_path).source.name == MODEL_FILE_NAME


def test_load_finds_the_model_in_a_subfolder_and_accepts_a_file_path(backend: XGBoostBackend, tiny_booster: Any, tmp_path: Path) -> None:
    path = backend.save(tiny_booster, tmp_path / "nested" / "deeper")
    assert backend.load(tmp_path).source == path
    assert backend.load(path).source == path


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
    assert backend.encode(predictions, "text/csv").body.count(b"\n") == 3  # one row per line


def test_runner_checks_batches(backend: XGBoostBackend, tiny_booster: Any, tmp_path: Path) -> None:
    backend.save(tiny_booster, tmp_path)
    runner = backend.load(tmp_path)
    with pytest.raises(PayloadError, match=r"Expected 17 columns per row.*received 16"):
        runner.predict(np.zeros((2, 16), dtype=np.float32))
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
    answer = backend.encode(runner.predict(batch))  # no Accept: the container answers CSV
    expected = tiny_booster.predict(xgboost.DMatrix(x))
    assert answer.content_type == "text/csv"
    assert answer.body == ",".join(map(str, expected.tolist())).encode()
    with pytest.raises(PayloadError, match="Expected 17 columns"):
        backend.decode(b"1,2,3", "text/csv", runner)


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
