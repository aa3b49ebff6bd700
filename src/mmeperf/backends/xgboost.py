"""The XGBoost backend: native Booster artifacts, loaded the way SageMaker's XGBoost container does.

``save`` writes one file ``xgboost-model`` in XGBoost's UBJSON (or JSON) format; ``load`` reads
a folder holding one model file (``xgboost-model``, ``*.json``, ``*.ubj``, ``*.bst``, ...) in any
format the installed XGBoost reads, and refuses pickles unless the caller opts in. xgboost itself
is imported inside the methods, so discovering this plugin costs nothing.
"""

from __future__ import annotations

import fnmatch
import json
import pickle
import pickletools
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from mmeperf._types import Array, Batch
from mmeperf.backends import codecs
from mmeperf.backends.base import Backend, Encoded, Runner
from mmeperf.errors import ConfigurationError, ModelLoadError, PayloadError, PredictionError

if TYPE_CHECKING:
    import xgboost

__all__ = ["MODEL_FILE_NAME", "XGBoostBackend", "XGBoostRunner"]

#: The file name SageMaker's XGBoost container writes and multi-model endpoints load.
MODEL_FILE_NAME = "xgboost-model"
#: Added to a booster's serialized size to estimate the memory it holds once loaded. Measured on
#: xgboost 3.2 (200 boosters of 17 features loaded in one process, RSS growth per booster):
#: 20 trees -> 42 KB for 32 KB of UBJSON, 100 trees -> 64 KB for 105 KB. Serialized size plus
#: 16 KiB is therefore at or above what a booster really holds: the cache errs on the safe side.
_BOOSTER_OVERHEAD_BYTES = 16 * 1024
_PICKLE_MAGIC = b"\x80"  # every pickle of protocol 2 or later starts with the PROTO opcode


def _is_pickle(raw: bytes) -> bool:
    """Whether a model file is a pickle: protocol 2+ starts with PROTO (0x80); protocols 0 and
    1 (``pickle.dumps(m, 0)``) start with an opcode such as GLOBAL ``c`` or MARK ``(`` and parse
    as opcodes up to STOP (parsed only, never run). XGBoost's JSON and UBJSON start with ``{``."""
    if raw.startswith(_PICKLE_MAGIC):
        return True
    head = raw.lstrip()[:1]
    if not head or head == b"{" or not raw.rstrip().endswith(b"."):
        return False
    try:
        last = None
        for opcode, _, _ in pickletools.genops(raw):
            last = opcode.name
    except Exception:  # not opcodes: a legacy binary model or garbage, for the native loader
        return False
    return last == "STOP"


class XGBoostRunner(Runner):
    """A Booster ready to predict: one thread per booster, ``inplace_predict`` on numpy rows.

    Many models share a few cores on a multi-model endpoint, so each booster predicts on one
    thread (as the SageMaker container sets ``nthread=1``); concurrency comes from requests.
    """

    def __init__(self, booster: xgboost.Booster, *, serialized_bytes: int, source: Path) -> None:
        booster.set_param({"nthread": 1})
        self._booster: xgboost.Booster | None = booster
        self.source = source
        self._serialized_bytes = serialized_bytes
        self._n_features: int = int(booster.num_features())

    def predict(self, batch: Batch) -> Array:
        """Predictions for the rows of ``batch``, bit for bit ``Booster.predict(DMatrix(batch))``."""
        if isinstance(batch, dict):
            raise PayloadError(
                f"Expected one 2-D array of rows for an XGBoost model, received named tensors {sorted(batch)}"
            )
        rows = np.asarray(batch)
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if rows.ndim != 2:
            raise PayloadError(f"Expected a 2-D array of rows, received shape {rows.shape}")
        if rows.shape[1] != self._n_features:
            raise PayloadError(
                f"Expected {self._n_features} columns per row (the model's features), received {rows.shape[1]}"
            )
        booster = self.booster
        try:
            # inplace_predict skips building a DMatrix: 1.5-10x faster for small batches and
            # thread-safe; it computes the same float32 sums as predict (tested bit for bit).
            return np.asarray(booster.inplace_predict(rows, validate_features=False))
        except Exception as exc:
            raise PredictionError(f"XGBoost failed to predict {rows.shape[0]} row(s): {exc}") from exc

    @property
    def booster(self) -> xgboost.Booster:
        """The loaded Booster (raises PredictionError after ``close``)."""
        if self._booster is None:
            raise PredictionError(f"The XGBoost model from {self.source} was unloaded")
        return self._booster

    @property
    def n_features(self) -> int:
        return self._n_features

    @property
    def memory_bytes(self) -> int:
        """Serialized size + 16 KiB: an estimate at or above the measured RSS of a booster."""
        return self._serialized_bytes + _BOOSTER_OVERHEAD_BYTES

    def close(self) -> None:
        # Dropping the reference frees the native learner once no request holds it.
        self._booster = None


class XGBoostBackend(Backend):
    """XGBoost models as SageMaker's XGBoost container stores, loads and serves them."""

    name: ClassVar[str] = "xgboost"
    requires: ClassVar[tuple[str, ...]] = ("xgboost",)
    extra: ClassVar[str | None] = "xgboost"
    content_types: ClassVar[tuple[str, ...]] = (codecs.CSV, codecs.LIBSVM, codecs.JSON, codecs.NPY)
    # The container answers CSV unless asked otherwise.
    accept_types: ClassVar[tuple[str, ...]] = (codecs.CSV, codecs.JSON, codecs.NPY)
    supports_batching: ClassVar[bool] = True
    artifact_patterns: ClassVar[tuple[str, ...]] = (
        MODEL_FILE_NAME, "*.json", "*.ubj", "*.bst", "*.model",
    )
    triton_platform: ClassVar[str | None] = None  # Triton serves XGBoost through FIL, not here

    def save(
        self, model: Any, directory: Path, *, format: Literal["ubj", "json"] = "ubj"
    ) -> Path:
        """Write a Booster or an sklearn-style XGBoost model as ``directory/xgboost-model``.

        UBJSON by default (read by xgboost >= 1.6, i.e. SageMaker XGBoost containers 1.7-1 and
        later); ``format="json"`` for older containers (xgboost >= 1.0).
        """
        import xgboost

        if format not in ("ubj", "json"):
            raise ConfigurationError(f"Expected format 'ubj' or 'json', received {format!r}")
        booster = model.get_booster() if hasattr(model, "get_booster") else model
        if not isinstance(booster, xgboost.Booster):
            raise ConfigurationError(
                "Expected an xgboost.Booster or an sklearn-style XGBoost model (XGBClassifier, "
                f"XGBRegressor, ...), received {type(model).__module__}.{type(model).__qualname__}"
            )
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / MODEL_FILE_NAME
        path.write_bytes(bytes(booster.save_raw(raw_format=format)))
        return path

    def load(self, directory: Path, *, allow_pickle: bool = False) -> XGBoostRunner:
        """Load the one model file in ``directory`` (or the file ``directory`` itself)."""
        path = self._model_file(Path(directory))
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"Cannot read XGBoost model file {path}: {exc}") from exc
        if not raw:
            raise ModelLoadError(f"XGBoost model file {path} is empty (0 bytes)")
        if _is_pickle(raw):
            booster = self._load_pickle(path, raw, allow_pickle=allow_pickle)
        else:
            booster = self._load_native(path, raw)
        return XGBoostRunner(booster, serialized_bytes=len(raw), source=path)

    def decode(self, body: bytes, content_type: str, runner: Runner | None = None) -> Batch:
        # Same as Backend.decode, without its per-call import: this runs for every request.
        return codecs.decode(
            body, content_type, accepted=self.content_types,
            n_features=runner.n_features if runner is not None else None,
        )

    def encode(self, predictions: Array, accept: str | None = None) -> Encoded:
        return codecs.encode(predictions, accept, accepted=self.accept_types)

    # --- loading -----------------------------------------------------------------------------

    def _model_file(self, directory: Path) -> Path:
        if directory.is_file():
            return directory
        if not directory.is_dir():
            raise ModelLoadError(f"Expected an XGBoost model folder, {directory} does not exist")
        files = sorted(p for p in directory.rglob("*") if p.is_file())
        preferred = [p for p in files if p.name == MODEL_FILE_NAME]
        if len(preferred) == 1:
            return preferred[0]
        candidates = [
            p for p in files
            if any(fnmatch.fnmatch(p.name, pattern) for pattern in self.artifact_patterns)
        ]
        # The container loads the folder's one file whatever its name; do the same when unambiguous.
        if not candidates and len(files) == 1:
            candidates = files
        if len(candidates) == 1:
            return candidates[0]
        found = ", ".join(str(p.relative_to(directory)) for p in files[:10]) or "no files"
        if not candidates:
            raise ModelLoadError(
                f"Expected one XGBoost model file ({', '.join(self.artifact_patterns)}) in "
                f"{directory}, found {found}"
            )
        raise ModelLoadError(
            f"Expected one XGBoost model file in {directory}, found {len(candidates)}: "
            f"{', '.join(str(p.relative_to(directory)) for p in candidates[:10])}; "
            f"name the one to serve {MODEL_FILE_NAME}"
        )

    @staticmethod
    def _load_native(path: Path, raw: bytes) -> xgboost.Booster:
        import xgboost

        booster = xgboost.Booster()
        try:
            # From memory, XGBoost recognises UBJSON, JSON and (where still supported) the
            # legacy binary format by their bytes, not by the file name.
            booster.load_model(bytearray(raw))
        except xgboost.core.XGBoostError as exc:
            kind = "JSON" if raw.lstrip()[:2] == b'{"' else "UBJSON" if raw[:2] == b"{L" else None
            if kind is None:
                hint = (
                    "it is neither JSON nor UBJSON; if it is a legacy binary model, re-save it "
                    f"as JSON with the xgboost that wrote it (this is xgboost {xgboost.__version__})"
                )
            else:
                hint = f"it looks like {kind} but XGBoost cannot read it (truncated or corrupt?)"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(
                f"Cannot load XGBoost model file {path} ({len(raw)} bytes): {hint}. XGBoost said: {first}"
            ) from exc
        return booster

    @staticmethod
    def _load_pickle(path: Path, raw: bytes, *, allow_pickle: bool) -> xgboost.Booster:
        if not allow_pickle:
            raise ModelLoadError(
                f"XGBoost model file {path} is a pickle; loading a pickle can run arbitrary code, "
                "so it is refused. Re-save the model natively (booster.save_model('xgboost-model.json')), "
                "or, if you trust the file, opt in with allow_pickle=True "
                "(mmeperf serve --allow-pickle)"
            )
        import xgboost

        try:
            obj = pickle.loads(raw)  # the caller opted in with allow_pickle=True
        except Exception as exc:
            raise ModelLoadError(f"Cannot unpickle XGBoost model file {path}: {exc!r}") from exc
        booster = obj.get_booster() if hasattr(obj, "get_booster") else obj
        if not isinstance(booster, xgboost.Booster):
            raise ModelLoadError(
                f"Expected a pickled xgboost.Booster or XGBoost sklearn model in {path}, "
                f"received {type(obj).__module__}.{type(obj).__qualname__}"
            )
        return booster

    @staticmethod
    def describe(runner: XGBoostRunner) -> dict[str, Any]:
        """The booster's objective, tree count and features, for listings and reports."""
        config = json.loads(runner.booster.save_config())
        learner = config.get("learner", {})
        return {
            "objective": learner.get("objective", {}).get("name"),
            "n_features": runner.n_features,
            "n_trees": runner.booster.num_boosted_rounds(),
        }
