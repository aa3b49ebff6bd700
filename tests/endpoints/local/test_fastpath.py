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


def _model(trees: int, depth: int) -> xgboost.Booster:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3000, 6)).astype(np.float32)
    return xgboost.train({"objective": "reg:squarederror", "max_depth": depth, "nthread": 1},
                         xgboost.DMatrix(x, label=x[:, 0] * x[:, 1]), trees)


def test_compiling_happens_in_the_compiler_process(tmp_path: Path) -> None:
    import os

    from mmeperf.endpoints.local import fastpath

    fastpath.shutdown_compiler()
    compiled = compile_runner(_runner(_model(10, 3), tmp_path))
    assert isinstance(compiled, CompiledXGBoostRunner)
    proc = fastpath._COMPILER._proc
    assert proc is not None and proc.poll() is None and proc.pid != os.getpid()
    fastpath.shutdown_compiler()
    assert proc.poll() is not None


def test_models_too_large_to_pay_keep_xgboost(tmp_path: Path) -> None:
    from mmeperf.endpoints.local.fastpath import MAX_PATH_COMPARISONS, build_compiled_trees

    runner = _runner(_model(500, 6), tmp_path)
    reason = build_compiled_trees(bytes(runner.booster.save_raw(raw_format="ubj")), runner.n_features)
    assert isinstance(reason, str) and str(MAX_PATH_COMPARISONS) in reason
    assert compile_runner(runner) is runner


def test_batches_past_the_comparison_bound_go_to_xgboost(tmp_path: Path) -> None:
    from mmeperf.endpoints.local.fastpath import BATCH_MAX_COMPARISONS, ROW_COST_COMPARISONS

    compiled = compile_runner(_runner(_model(60, 6), tmp_path), in_process=True)
    assert isinstance(compiled, CompiledXGBoostRunner)
    assert compiled.max_rows * (compiled.path_comparisons + ROW_COST_COMPARISONS) <= BATCH_MAX_COMPARISONS
    calls: list[int] = []
    inner_predict = compiled.inner.predict

    def spy(batch: object) -> np.ndarray:
        calls.append(len(batch))  # type: ignore[arg-type]
        return inner_predict(batch)  # type: ignore[arg-type]

    compiled.inner.predict = spy  # type: ignore[method-assign]
    rows = np.random.default_rng(0).normal(size=(compiled.max_rows + 1, 6)).astype(np.float32)
    compiled.predict(rows[: compiled.max_rows])
    assert calls == []
    compiled.predict(rows)
    assert calls == [compiled.max_rows + 1]


def test_no_measured_gain_turns_the_fast_path_off(tmp_path: Path, monkeypatch: object) -> None:
    from mmeperf.endpoints.local import fastpath

    runner = _runner(_model(10, 3), tmp_path)
    assert isinstance(compile_runner(runner, in_process=True), CompiledXGBoostRunner)
    monkeypatch.setattr(fastpath, "MIN_GAIN", 0.0)  # type: ignore[attr-defined]
    assert compile_runner(runner, in_process=True) is runner
    assert isinstance(compile_runner(runner, in_process=True, check_gain=False), CompiledXGBoostRunner)
