"""An example third-party mmeperf backend: scikit-learn linear models as JSON, never pickle.

The whole plugin is :class:`SklearnBackend` plus one entry-point line in pyproject.toml. A fitted
linear estimator is stored as its coefficients (``sklearn-model.json``) and predicted with numpy,
so serving needs neither scikit-learn nor pickle; pickled estimators load only on opt-in.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mmeperf.backends.base import Backend, Runner
from mmeperf.errors import ConfigurationError, ModelLoadError, PayloadError

__all__ = ["MODEL_FILE", "SklearnBackend"]
__version__ = "0.1.0"

MODEL_FILE = "sklearn-model.json"
_FORMAT = "mmeperf-sklearn-linear"
_PICKLE_FILES = ("model.pkl", "model.joblib")
_REGRESSORS = {"LinearRegression", "Ridge", "Lasso", "ElasticNet"}
_CLASSIFIERS = {"LogisticRegression"}

Array = np.ndarray[Any, Any]


class _LinearRunner(Runner):
    """``x @ coef.T + intercept``; classifiers answer ``predict_proba`` like scikit-learn's."""

    def __init__(self, spec: dict[str, Any], source: Path) -> None:
        try:
            # scikit-learn keeps float32 coefficients for float32 training data and predicts in
            # that precision: keep the dtype it had, so answers match it.
            dtype = np.dtype(spec.get("dtype", "float64"))
            if dtype not in (np.float32, np.float64):
                raise ValueError(f"dtype {dtype} is not float32 or float64")
            self.coef = np.asarray(spec["coef"], dtype=dtype)
            self.intercept = np.asarray(spec["intercept"], dtype=dtype)
            self.task = spec["task"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(f"{source} is not a valid {_FORMAT} model: {exc!r}") from exc
        if self.task not in ("classification", "regression") or self.coef.ndim not in (1, 2):
            raise ModelLoadError(f"{source} is not a valid {_FORMAT} model (task {self.task!r})")
        self._n_features = int(self.coef.shape[-1])
        self._bytes = self.coef.nbytes + self.intercept.nbytes

    def predict(self, batch: Any) -> Array:
        rows = np.asarray(batch)
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if rows.ndim != 2 or rows.shape[1] != self._n_features:
            raise PayloadError(f"Expected rows of {self._n_features} features, received shape {rows.shape}")
        # Same operations, in the same order, as scikit-learn's decision_function.
        decision = rows @ self.coef.T + self.intercept
        if self.task == "regression":
            return np.asarray(decision)
        if decision.ndim == 1 or decision.shape[1] == 1:
            positive = 1.0 / (1.0 + np.exp(-decision.reshape(-1)))
            return np.vstack([1 - positive, positive]).T
        shifted = decision - decision.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        return np.asarray(exp / exp.sum(axis=1, keepdims=True))

    @property
    def n_features(self) -> int:
        return self._n_features

    @property
    def memory_bytes(self) -> int:
        return self._bytes


class _PickledRunner(Runner):
    """A pickled estimator, loaded only because the caller opted in."""

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def predict(self, batch: Any) -> Array:
        if hasattr(self.estimator, "predict_proba"):
            return np.asarray(self.estimator.predict_proba(batch))
        return np.asarray(self.estimator.predict(batch))

    @property
    def n_features(self) -> int | None:
        n = getattr(self.estimator, "n_features_in_", None)
        return int(n) if n is not None else None


class SklearnBackend(Backend):
    """scikit-learn linear models, stored as JSON coefficients (safe to load from anywhere)."""

    name: ClassVar[str] = "sklearn"
    # Serving needs numpy only; save() reads the fitted attributes without importing sklearn.
    requires: ClassVar[tuple[str, ...]] = ()
    artifact_patterns: ClassVar[tuple[str, ...]] = (MODEL_FILE,)

    def save(self, model: Any, directory: Path) -> Path:
        kind = type(model).__name__
        if not type(model).__module__.startswith("sklearn.") or kind not in _REGRESSORS | _CLASSIFIERS:
            raise ConfigurationError(
                f"Expected a fitted scikit-learn {', '.join(sorted(_REGRESSORS | _CLASSIFIERS))}, "
                f"received {type(model).__module__}.{type(model).__qualname__}"
            )
        if not hasattr(model, "coef_"):
            raise ConfigurationError(f"Expected a fitted {kind}, received one without coef_ (call fit first)")
        if getattr(model, "multi_class", "auto") == "ovr" and len(getattr(model, "classes_", ())) > 2:
            raise ConfigurationError("One-vs-rest multiclass LogisticRegression is not supported; use multinomial")
        spec = {
            "format": _FORMAT,
            "version": 1,
            "estimator": kind,
            "task": "classification" if kind in _CLASSIFIERS else "regression",
            "dtype": str(np.asarray(model.coef_).dtype),
            "coef": np.asarray(model.coef_, dtype=np.float64).tolist(),
            "intercept": np.asarray(model.intercept_, dtype=np.float64).tolist(),
            "classes": np.asarray(getattr(model, "classes_", [])).tolist(),
        }
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / MODEL_FILE
        # repr of a float64 round-trips exactly (float32 values too), so the JSON holds the
        # very same coefficients.
        path.write_text(json.dumps(spec))
        return path

    def load(self, directory: Path, *, allow_pickle: bool = False) -> Runner:
        directory = Path(directory)
        path = directory / MODEL_FILE
        if path.is_file():
            raw = path.read_bytes()
            if raw.startswith(b"\x80"):
                raise ModelLoadError(f"{path} is a pickle, not {_FORMAT} JSON; refusing to unpickle it")
            try:
                spec = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                raise ModelLoadError(f"{path} is not JSON ({exc})") from exc
            if not isinstance(spec, dict) or spec.get("format") != _FORMAT:
                raise ModelLoadError(f"{path} is not a {_FORMAT} model")
            return _LinearRunner(spec, path)
        for name in _PICKLE_FILES:
            pickled = directory / name
            if pickled.is_file():
                if not allow_pickle:
                    raise ModelLoadError(
                        f"{pickled} is a pickle; loading it can run arbitrary code. Re-save it with "
                        "SklearnBackend().save(model, folder), or opt in with allow_pickle=True"
                    )
                try:
                    return _PickledRunner(pickle.loads(pickled.read_bytes()))
                except Exception as exc:
                    raise ModelLoadError(f"Cannot unpickle {pickled}: {exc!r}") from exc
        raise ModelLoadError(f"Expected {MODEL_FILE} in {directory}, found none")
