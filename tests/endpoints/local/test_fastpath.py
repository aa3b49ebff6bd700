"""The compiled XGBoost path: bit for bit XGBoost's predict, or not used at all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xgboost

from mmeperf.backends.xgboost import XGBoostRunner
from mmeperf.datasets.churn import FEATURES
from mmeperf.endpoints.local.fastpath import CompiledXGBoostRunner, compile_runner
from mmeperf.plugins import get_backend

from .conftest import Churn


def _runner(booster: xgboost.Booster, tmp_path: Path) -> XGBoostRunner:
    backend = get_backend("xgboost")
    folder = tmp_path / "model"
    backend.save(booster, folder)
    runner = backend.load(folder)
    assert isinstance(runner, XGBoostRunner)
    return runner


def test_all_churn_models_compile_and_match_xgboost_bit_for_bit(churn: Churn, tmp_path: Path) -> None:
    rows = churn.test[list(FEATURES)].to_numpy(np.float32)
    with_missing = rows[:64].copy()
    with_missing[::3, 2] = np.nan
    with_missing[1::3, 7] = np.nan
    for name, model in churn.build.models.items():
        runner = _runner(model.booster, tmp_path / name)
        compiled = compile_runner(runner)
        assert isinstance(compiled, CompiledXGBoostRunner), name
        dmatrix_predict = np.asarray(model.booster.predict(xgboost.DMatrix(rows)), np.float32)
        one_by_one = np.concatenate([compiled.predict(rows[i: i + 1]) for i in range(len(rows))])
        np.testing.assert_array_equal(one_by_one, dmatrix_predict)
        np.testing.assert_array_equal(compiled.predict(rows[:16]), dmatrix_predict[:16])
        np.testing.assert_array_equal(compiled.compiled_predict(with_missing), runner.predict(with_missing))
        # Large batches go to XGBoost itself.
        np.testing.assert_array_equal(compiled.predict(rows), dmatrix_predict)


def test_regression_objective_compiles(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    booster = xgboost.train({"objective": "reg:squarederror", "max_depth": 8}, xgboost.DMatrix(x, label=x[:, 0] * 3), 30)
    compiled = compile_runner(_runner(booster, tmp_path))
    assert isinstance(compiled, CompiledXGBoostRunner)
    probe = rng.normal(size=(200, 5)).astype(np.float32)
    expected = booster.predict(xgboost.DMatrix(probe))
    np.testing.assert_array_equal(np.concatenate([compiled.predict(probe[i: i + 1]) for i in range(200)]), expected)


def test_models_it_cannot_reproduce_keep_xgboost(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    multiclass = xgboost.train({"objective": "multi:softprob", "num_class": 3},
                               xgboost.DMatrix(x, label=rng.integers(0, 3, 300)), 3)
    runner = _runner(multiclass, tmp_path / "multi")
    assert compile_runner(runner) is runner

    class Subclass(XGBoostRunner):
        pass

    binary = xgboost.train({"objective": "binary:logistic"}, xgboost.DMatrix(x, label=x[:, 0] > 0), 3)
    sub = _runner(binary, tmp_path / "sub")
    sub.__class__ = Subclass
    assert compile_runner(sub) is sub
