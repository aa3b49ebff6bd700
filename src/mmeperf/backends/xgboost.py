"""The XGBoost backend: native Booster artifacts, loaded and served the way SageMaker's XGBoost
container (aws/sagemaker-xgboost-container, multi-model mode) does.

``save`` writes one file ``xgboost-model`` in XGBoost's UBJSON (or JSON) format; ``load`` reads
the one regular, non-hidden file at the top of a model folder, whatever its name, in any format
the installed XGBoost reads, and refuses pickles unless the caller opts in. xgboost itself is
imported inside the methods, so discovering this plugin costs nothing.

The data contract follows the container's source (``algorithm_mode/serve_utils.py``,
``handler_service.py``, ``data_utils.get_content_type``):

* request types ``text/csv`` (``csv``; a ``label_size`` parameter must be 1), ``text/libsvm``
  (``text/x-libsvm``, ``libsvm``) and ``application/x-recordio-protobuf``
  (``recordio-protobuf``), case-insensitive, parameters allowed; no Content-Type means libsvm;
  anything else, ``application/json`` included, is refused (415);
* rows narrower than the model are read with the missing columns missing (XGBoost's own reading
  of a narrower DMatrix); a pickled model keeps the container's extra check (CSV and
  RecordIO: at most one column fewer); wider rows are refused;
* the answer is JSON unless ``Accept`` asks for ``text/csv``/``csv`` (no Accept or ``*/*``:
  ``application/json``); only ``text/csv``, ``csv`` and ``application/json`` (any case, compared
  whole) are accepted, and the response's Content-Type is the Accept value as sent.

Errors keep their typed 4xx statuses (400, 415, 406) where the container, through a bug in its
error path, answers 503 "Prediction failed": docs/_xgboost-differences.md lists every deliberate
difference. ``XGBoostBackend(extra_types=True)`` (or ``MMEPERF_XGBOOST_EXTRA_TYPES=1`` in the
server's environment) also takes JSON and NPY requests and answers NPY, for tests that are not
about the container.
"""

from __future__ import annotations

import json
import os
import pickle
import pickletools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from mmeperf._types import Array, Batch
from mmeperf.backends import codecs
from mmeperf.backends.base import Backend, Encoded, Runner
from mmeperf.errors import (
    ConfigurationError,
    ModelLoadError,
    PayloadError,
    PredictionError,
    UnsupportedAcceptError,
    UnsupportedContentTypeError,
)

if TYPE_CHECKING:
    import xgboost

__all__ = ["EXTRA_TYPES_ENV", "MODEL_FILE_NAME", "XGBoostBackend", "XGBoostRunner", "request_kind"]

#: The file name SageMaker's XGBoost container writes and multi-model endpoints load.
MODEL_FILE_NAME = "xgboost-model"
#: Added to a booster's serialized size to estimate the memory it holds once loaded. Measured on
#: xgboost 3.2 (200 boosters of 17 features loaded in one process, RSS growth per booster):
#: 20 trees -> 42 KB for 32 KB of UBJSON, 100 trees -> 64 KB for 105 KB. Serialized size plus
#: 16 KiB is therefore at or above what a booster really holds: the cache errs on the safe side.
_BOOSTER_OVERHEAD_BYTES = 16 * 1024
_PICKLE_MAGIC = b"\x80"  # every pickle of protocol 2 or later starts with the PROTO opcode
#: Set to 1 (or true/yes) in the environment to construct the shared backend with extra_types.
EXTRA_TYPES_ENV = "MMEPERF_XGBOOST_EXTRA_TYPES"

# The container's request types (data_utils.VALID_CONTENT_TYPES) by their lower-cased spelling.
_REQUEST_KINDS = {
    "csv": codecs.CSV, "text/csv": codecs.CSV,
    "libsvm": codecs.LIBSVM, "text/libsvm": codecs.LIBSVM, "text/x-libsvm": codecs.LIBSVM,
    "recordio-protobuf": codecs.RECORDIO_PROTOBUF, codecs.RECORDIO_PROTOBUF: codecs.RECORDIO_PROTOBUF,
}
_PARQUET = ("parquet", "application/x-parquet")
#: The list the container's refusal names (data_utils.INVALID_CONTENT_TYPE_ERROR), in its order.
_VALID_CONTENT_TYPES = (
    "csv", "libsvm", "parquet", "recordio-protobuf", "text/csv", "text/libsvm", "text/x-libsvm",
    "application/x-parquet", "application/x-recordio-protobuf",
)
_CSV_ACCEPTS = ("text/csv", "csv")


#: How a protocol-0/1 pickle of a model starts: GLOBAL ("c" module "\n" name "\n"), perhaps
#: after MARK ("("); ``pickle.dumps(booster, 0)`` starts ``ccopy_reg\n_reconstructor\n``.
_OLD_PICKLE_HEAD = re.compile(rb"\(?c[A-Za-z_][\w.]*\n[A-Za-z_][\w.]*\n")


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

    def __init__(
        self, booster: xgboost.Booster, *, serialized_bytes: int, source: Path, pickled: bool = False
    ) -> None:
        booster.set_param({"nthread": 1})
        self._booster: xgboost.Booster | None = booster
        self.source = source
        #: Loaded from a pickle: the container checks such a model's row width more strictly.
        self.pickled = pickled
        self._serialized_bytes = serialized_bytes
        self._n_features: int = int(booster.num_features())

    def predict(self, batch: Batch) -> Array:
        """Predictions for the rows of ``batch``, bit for bit ``Booster.predict(DMatrix(batch))``.

        Rows narrower than the model are padded with NaN: XGBoost reads the missing columns of
        a narrower DMatrix as missing values, the same thing (``inplace_predict`` itself wants
        the full width).
        """
        if isinstance(batch, dict):
            raise PayloadError(
                f"Expected one 2-D array of rows for an XGBoost model, received named tensors {sorted(batch)}"
            )
        rows = np.asarray(batch)
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if rows.ndim != 2:
            raise PayloadError(f"Expected a 2-D array of rows, received shape {rows.shape}")
        if rows.shape[1] > self._n_features:
            raise PayloadError(
                f"Expected {self._n_features} columns per row (the model's features), received {rows.shape[1]}"
            )
        if rows.shape[1] < self._n_features:
            padded = np.full((rows.shape[0], self._n_features), np.nan, dtype=np.float32)
            padded[:, : rows.shape[1]] = rows
            rows = padded
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
    # The container's request types; no Content-Type at all means libsvm (see decode).
    content_types: ClassVar[tuple[str, ...]] = (codecs.CSV, codecs.LIBSVM, codecs.RECORDIO_PROTOBUF)
    # The multi-model container answers JSON unless asked otherwise.
    accept_types: ClassVar[tuple[str, ...]] = (codecs.JSON, codecs.CSV)
    supports_batching: ClassVar[bool] = True
    artifact_patterns: ClassVar[tuple[str, ...]] = (
        MODEL_FILE_NAME, "*.json", "*.ubj", "*.bst", "*.model",
    )
    triton_platform: ClassVar[str | None] = None  # Triton serves XGBoost through FIL, not here

    def __init__(self, *, extra_types: bool | None = None) -> None:
        """``extra_types``: also take JSON and NPY requests and answer NPY, which the container
        refuses (default: the ``MMEPERF_XGBOOST_EXTRA_TYPES`` environment variable, else off)."""
        if extra_types is None:
            extra_types = os.environ.get(EXTRA_TYPES_ENV, "").strip().lower() in ("1", "true", "yes")
        self.extra_types = extra_types
        #: Request types taken beyond the container's ``content_types``.
        self.extra_content_types: tuple[str, ...] = (codecs.JSON, codecs.NPY) if extra_types else ()
        #: Answer types written beyond the container's ``accept_types``.
        self.extra_accept_types: tuple[str, ...] = (codecs.NPY,) if extra_types else ()

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
        pickled = _is_pickle(raw)
        if pickled:
            booster = self._load_pickle(path, raw, allow_pickle=allow_pickle)
        else:
            booster = self._load_native(path, raw)
        return XGBoostRunner(booster, serialized_bytes=len(raw), source=path, pickled=pickled)

    def decode(self, body: bytes, content_type: str | None, runner: Runner | None = None) -> Batch:
        """The rows of a request, read as the container reads them (module docstring).

        An empty or missing ``content_type`` means libsvm, as in the container.
        """
        if not body:  # checked first, as the container's input_fn does (NoContentInferenceError)
            raise PayloadError("Expected a non-empty request body, received 0 bytes")
        kind = request_kind(content_type, extra=self.extra_content_types)
        n_features = runner.n_features if runner is not None else None
        return codecs.decode(
            body, kind, accepted=(kind,), n_features=n_features,
            min_features=_narrowest_rows(runner, kind, n_features),
        )

    def encode(self, predictions: Array, accept: str | None = None) -> Encoded:
        """The container's answer (``default_output_fn``): JSON unless CSV is asked for."""
        if not accept or accept == "*/*":
            accept = codecs.JSON
        wanted = accept.lower()
        if wanted in _CSV_ACCEPTS:
            return Encoded(codecs.container_csv(predictions), accept)
        if wanted == codecs.JSON:
            return Encoded(codecs.json_array(np.asarray(predictions).tolist()).encode(), accept)
        if self.extra_accept_types and codecs.media_type(accept) in self.extra_accept_types:
            return codecs.encode(predictions, accept, accepted=self.extra_accept_types)
        error = UnsupportedAcceptError(accept, (*self.accept_types, *self.extra_accept_types))
        error.args = (
            f"Encoding to accept type {accept} failed with exception: {accept} is not an accepted "
            "Accept type. Please choose one of the following: ['text/csv', 'application/json']."
            + (f" (Also accepted here: {', '.join(self.extra_accept_types)}.)" if self.extra_accept_types else ""),
        )
        raise error

    @classmethod
    def claims(cls, directory: Path) -> bool:
        """By file name, or because the folder's one regular non-hidden file at its top (which
        the container loads whatever its name) starts like a model: JSON/UBJSON or a pickle
        (protocol 2+ by its PROTO byte; 0/1 by a leading GLOBAL and a final STOP)."""
        if super().claims(directory):
            return True
        try:
            files = _top_level_files(directory)
            if len(files) != 1:
                return False
            with files[0].open("rb") as handle:
                head = handle.read(64)
                if _OLD_PICKLE_HEAD.match(head):  # protocol 0/1: also ends with STOP (".")
                    handle.seek(-1, os.SEEK_END)
                    return handle.read(1) == b"."
        except OSError:
            return False
        return head.lstrip().startswith((b"{", _PICKLE_MAGIC))

    # --- loading -----------------------------------------------------------------------------

    def _model_file(self, directory: Path) -> Path:
        """The file the container would load: the one regular non-hidden file at the top.

        The container (``serve_utils._get_full_model_paths``) lists only the folder's top level
        and skips dotfiles. With several such files it loads them all and averages their
        predictions (``SAGEMAKER_INFERENCE_ENSEMBLE``, on by default); mmeperf serves one model
        per artifact and refuses instead of answering differently.
        """
        if directory.is_file():
            return directory
        if not directory.is_dir():
            raise ModelLoadError(f"Expected an XGBoost model folder, {directory} does not exist")
        files = _top_level_files(directory)
        if len(files) == 1:
            return files[0]
        if not files:
            nested = sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())
            found = (
                f"only {', '.join(nested[:10])}, not at the top (the container loads no file in a subfolder)"
                if nested else "no files"
            )
            raise ModelLoadError(f"Expected one XGBoost model file at the top of {directory}, found {found}")
        raise ModelLoadError(
            f"Expected one XGBoost model file at the top of {directory}, found {len(files)}: "
            f"{', '.join(p.name for p in files[:10])}. SageMaker's XGBoost container would load "
            "every one of them and average their predictions (SAGEMAKER_INFERENCE_ENSEMBLE); "
            "mmeperf serves one model per artifact: remove the others"
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


def request_kind(content_type: str | None, *, extra: tuple[str, ...] = ()) -> str:
    """The request type the container reads a Content-Type as (``data_utils.get_content_type``).

    None or empty: libsvm. Lower-cased, parameters dropped; a CSV ``label_size`` other than 1,
    Parquet (listed by the container, then refused by its MME handler) and anything else
    raise UnsupportedContentTypeError (415) with the container's message. ``extra`` lists types
    taken beyond the container's (``XGBoostBackend(extra_types=True)``).
    """
    if not content_type:
        return codecs.LIBSVM
    base, _, params = content_type.lower().partition(";")
    base = base.strip()
    kind = _REQUEST_KINDS.get(base)
    if kind == codecs.CSV and _label_size(params) not in (None, "1"):
        raise _refused(
            content_type,
            f"{content_type} is not an accepted csv ContentType. Optional parameter label_size must be equal to 1",
            extra,
        )
    if kind is not None:
        return kind
    if extra and codecs.media_type(content_type) in extra:
        return codecs.media_type(content_type)
    if base in _PARQUET:
        raise _refused(content_type, f"Content-type {content_type} is not supported.", extra)
    raise _refused(
        content_type,
        f"{content_type} is not an accepted ContentType: {', '.join(_VALID_CONTENT_TYPES)}.",
        extra,
    )


def _label_size(params: str) -> str | None:
    for param in params.split(";"):
        name, sep, value = param.partition("=")
        if sep and name.strip() == "label_size":
            return value.strip().strip('"')
    return None


def _refused(content_type: str, message: str, extra: tuple[str, ...]) -> UnsupportedContentTypeError:
    error = UnsupportedContentTypeError(content_type, (*XGBoostBackend.content_types, *extra))
    error.args = (message + (f" (Also accepted here: {', '.join(extra)}.)" if extra else ""),)
    return error


def _narrowest_rows(runner: Runner | None, kind: str, n_features: int | None) -> int | None:
    """The fewest columns a row may have (``serve_utils.predict``): any, except that for a
    pickled model the container wants CSV and RecordIO rows at most one column short."""
    if n_features is None:
        return None
    inner = getattr(runner, "inner", runner)  # the local MME may wrap the runner (fast path)
    if isinstance(inner, XGBoostRunner) and inner.pickled and kind in (codecs.CSV, codecs.RECORDIO_PROTOBUF):
        return n_features - 1
    return 0


def _top_level_files(directory: Path) -> list[Path]:
    """Regular files at the top of ``directory`` whose names do not start with a dot, sorted."""
    return sorted(p for p in directory.iterdir() if not p.name.startswith(".") and p.is_file())
