"""The example backend passes mmeperf's conformance suite: one subclass per model family."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mmeperf.testing import BackendConformance

sklearn_linear = pytest.importorskip("sklearn.linear_model")


def _data(n_rows: int, *, seed: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_rows, 6)).astype(np.float32)
    return x, x[:, 0] - 2 * x[:, 1] + 0.1 * rng.normal(size=n_rows)


class TestLogisticRegression(BackendConformance):
    backend = "sklearn"
    # The model is float32 (fitted on float32 rows): numpy's exp-based sigmoid and scipy's
    # expit may round the last float32 bit differently (measured: at most 1 ulp, ~1.1e-7).
    rtol = 2.5e-7

    def make_model(self) -> Any:
        x, target = _data(200, seed=0)
        return sklearn_linear.LogisticRegression().fit(x, target > 0)

    def make_batch(self) -> np.ndarray[Any, Any]:
        return _data(5, seed=1)[0]

    def native_predict(self, model: Any, batch: Any) -> np.ndarray[Any, Any]:
        return np.asarray(model.predict_proba(batch))


class TestMultinomialLogisticRegression(TestLogisticRegression):
    def make_model(self) -> Any:
        x, target = _data(300, seed=2)
        return sklearn_linear.LogisticRegression().fit(x, np.digitize(target, [-1.0, 1.0]))


class TestRidge(BackendConformance):
    backend = "sklearn"
    rtol = 0.0  # same float32 matmul as scikit-learn: bit for bit

    def make_model(self) -> Any:
        x, target = _data(200, seed=3)
        return sklearn_linear.Ridge(alpha=0.5).fit(x, target)

    def make_batch(self) -> np.ndarray[Any, Any]:
        return _data(5, seed=4)[0]

    def native_predict(self, model: Any, batch: Any) -> np.ndarray[Any, Any]:
        return np.asarray(model.predict(batch))


def test_pickled_estimators_load_only_on_opt_in(tmp_path: Any) -> None:
    import pickle

    from mmeperf import get_backend
    from mmeperf.errors import ModelLoadError

    x, target = _data(50, seed=5)
    model = sklearn_linear.Ridge().fit(x, target)
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(model))
    with pytest.raises(ModelLoadError, match="allow_pickle=True"):
        get_backend("sklearn").load(tmp_path)
    runner = get_backend("sklearn").load(tmp_path, allow_pickle=True)
    np.testing.assert_array_equal(runner.predict(x), model.predict(x))
