"""Traffic: which model each request targets and what bytes it sends.

A :class:`Traffic` (configuration) becomes a :class:`RequestTable` once, in the library process:
every payload encoded to bytes, every model name resolved. The table is written to one binary
file the Locust processes map, and :class:`RequestSampler` draws requests from it in the hot loop.
"""

from __future__ import annotations

import bisect
import json
import mimetypes
import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from mmeperf._types import PathLike
from mmeperf.backends.bodies import CSV, JSON, NPY, encode_request
from mmeperf.errors import ConfigurationError

__all__ = ["RequestSampler", "RequestTable", "Traffic", "zipf_weights"]

_MAGIC = b"MMEPERF-REQUESTS-1\n"
#: ``Traffic.array_encoding`` -> the content type its rows are sent as.
_ARRAY_TYPES = {"csv": CSV, "npy": NPY, "json": JSON}


def zipf_weights(n: int, s: float) -> list[float]:
    """Zipf(s) weights over ranks 1..n (the first model is the most popular)."""
    return [1.0 / (k**s) for k in range(1, n + 1)]


class Traffic(BaseModel):
    """Which model each request targets and what it sends.

    Routing: a column of the payload rows (``model_column``, the reference's ``State``), each
    value formatted with ``model_template``; or a distribution (``uniform``, ``zipf``,
    ``weights``) over ``models``. Payloads: a CSV file or DataFrame (one CSV line per request,
    routing and label columns dropped), a numpy array (one row per request), or raw files.
    """

    model_config = ConfigDict(extra="forbid")

    data: str | None = None
    """Payload source: a CSV (.csv), numpy (.npy) file, or a raw file/folder (one request per file)."""
    format: Literal["auto", "csv", "npy", "raw"] = "auto"
    """How to read ``data``; auto picks by extension (folders and unknown extensions are raw)."""
    model_column: str | None = None
    """Column whose value names each row's model (e.g. State)."""
    model_template: str = "{}.tar.gz"
    """Turns a column value into a target model name: ``churn-xgb-{}.tar.gz``."""
    keep_model_column: bool = False
    """Send the routing column in the payload too (dropped by default)."""
    label_column: str | None = None
    """A column to drop from the payload (the label, e.g. ``Churn?``)."""
    drop_columns: list[str] = Field(default_factory=list)
    """More columns to drop from the payload (e.g. CustomerID)."""
    models: list[str] = Field(default_factory=list)
    """Target models when routing by distribution (names used as-is)."""
    distribution: Literal["uniform", "zipf", "weights"] = "uniform"
    """How to pick a model from ``models`` for each request."""
    zipf_s: float = Field(default=1.0, gt=0)
    """Exponent of the Zipf distribution."""
    weights: list[float] | dict[str, float] | None = None
    """Explicit weights, a list aligned with ``models`` or a mapping name -> weight."""
    content_type: str | None = None
    """Content type of every request; default text/csv for CSV rows, by extension for files."""
    accept: str | None = None
    """Accept header, when the endpoint should answer in a particular type."""
    array_encoding: Literal["csv", "npy", "json"] = "csv"
    """How a numpy row becomes bytes (csv line, .npy with a batch axis, or a JSON list of one row),
    written by the backends' request encoder; NaN is an empty CSV field."""
    payloads: list[str] = Field(default_factory=list)
    """Literal payloads (UTF-8 text), when no data file is given."""

    _frame: Any = PrivateAttr(default=None)
    _array: Any = PrivateAttr(default=None)
    _raw: list[bytes] | None = PrivateAttr(default=None)
    _route: bool = PrivateAttr(default=True)

    @model_validator(mode="after")
    def _check(self) -> Traffic:
        if self.distribution == "weights":
            if self.weights is None:
                raise ValueError("distribution 'weights' needs weights")
            if isinstance(self.weights, list) and self.models and len(self.weights) != len(self.models):
                raise ValueError(
                    f"weights has {len(self.weights)} entries but models has {len(self.models)}"
                )
        if "{}" not in self.model_template and "{value}" not in self.model_template:
            raise ValueError(f"model_template must contain {{}}, received {self.model_template!r}")
        return self

    # --- in-memory sources ----------------------------------------------------------------

    @classmethod
    def from_frame(cls, frame: Any, **kwargs: Any) -> Traffic:
        """Rows of a pandas DataFrame as payloads (one CSV line per request)."""
        t = cls(**kwargs)
        t._frame = frame
        return t

    @classmethod
    def from_array(cls, array: Any, **kwargs: Any) -> Traffic:
        """Rows (first axis) of a numpy array as payloads; route with ``models``."""
        t = cls(**kwargs)
        t._array = np.asarray(array)
        return t

    @classmethod
    def from_bytes(cls, payloads: Sequence[bytes], **kwargs: Any) -> Traffic:
        """Raw request bodies; route with ``models``."""
        t = cls(**kwargs)
        t._raw = [bytes(p) for p in payloads]
        return t

    def resolve_paths(self, base: Path) -> None:
        """Make a relative ``data`` path relative to ``base`` (the spec file's folder)."""
        if self.data and not Path(self.data).is_absolute() and not Path(self.data).exists():
            candidate = base / self.data
            if candidate.exists():
                self.data = str(candidate)

    def describe(self) -> str:
        if self._frame is not None:
            return f"DataFrame {self._frame.shape[0]}x{self._frame.shape[1]}"
        if self._array is not None:
            return f"array {tuple(self._array.shape)}"
        if self._raw is not None:
            return f"{len(self._raw)} raw payloads"
        return self.data or f"{len(self.payloads)} literal payloads"

    # --- building -------------------------------------------------------------------------

    def build(self, *, route: bool = True) -> RequestTable:
        """Encode every payload and resolve every model name (once, before the run).

        ``route=False``: payloads only (a trace replay names each request's model itself).
        """
        import pandas as pd

        self._route = route
        frame = self._frame
        if frame is None and self.data and self._kind() == "csv":
            try:
                frame = pd.read_csv(self.data)
            except (OSError, ValueError) as exc:
                raise ConfigurationError(f"Cannot read CSV payloads {self.data!r}: {exc}") from exc
        if frame is not None:
            return self._from_frame(frame)
        if self._array is not None:
            return self._from_array(self._array)
        if self.data and self._kind() == "npy":
            try:
                return self._from_array(np.load(self.data, allow_pickle=False))
            except (OSError, ValueError) as exc:
                raise ConfigurationError(f"Cannot read numpy payloads {self.data!r}: {exc}") from exc
        if self._raw is not None:
            return self._routed([bytes(p) for p in self._raw], [self._ctype("application/octet-stream")])
        if self.data:
            return self._from_files(Path(self.data))
        if self.payloads:
            return self._routed([p.encode() for p in self.payloads], [self._ctype("text/csv")])
        raise ConfigurationError(
            "Traffic has no payloads: give data (a CSV/.npy file or folder), a DataFrame, an array "
            "or literal payloads"
        )

    def _kind(self) -> str:
        if self.format != "auto":
            return self.format
        assert self.data is not None
        p = Path(self.data)
        if p.is_dir():
            return "raw"
        suffix = p.suffix.lower()
        return {".csv": "csv", ".npy": "npy"}.get(suffix, "raw")

    def _ctype(self, default: str) -> str:
        return self.content_type or default

    def _from_frame(self, frame: Any) -> RequestTable:
        if len(frame) == 0:
            raise ConfigurationError("Traffic data has no rows")
        drop: list[str] = list(self.drop_columns)
        if self.label_column:
            drop.append(self.label_column)
        if self.model_column:
            if self.model_column not in frame.columns:
                raise ConfigurationError(
                    f"Model column {self.model_column!r} is not in the data; columns: "
                    f"{', '.join(map(str, frame.columns))}"
                )
            if not self.keep_model_column:
                drop.append(self.model_column)
        missing = [c for c in drop if c not in frame.columns]
        if missing:
            raise ConfigurationError(
                f"Columns to drop {missing} are not in the data; columns: {', '.join(map(str, frame.columns))}"
            )
        features = frame.drop(columns=drop)
        if features.shape[1] == 0:
            raise ConfigurationError("No payload columns are left after dropping routing/label columns")
        _reject_line_breaks(features)
        # pandas formats each value exactly as a CSV writer would; one line per request.
        text = features.to_csv(header=False, index=False, lineterminator="\n")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if len(lines) != len(features):
            # Bodies must stay aligned with the rows' models: never guess which line is which.
            raise ConfigurationError(
                f"The payload rows became {len(lines)} CSV lines for {len(features)} rows; each row "
                "must be one line (a value holds a line break?)"
            )
        bodies = [line.encode() for line in lines]
        ctypes = [self._ctype("text/csv")]
        if self.model_column:
            names = [self.model_name(v) for v in frame[self.model_column].tolist()]
            models = sorted(set(names))
            index = {m: i for i, m in enumerate(models)}
            return RequestTable(bodies, ctypes, models, row_models=[index[n] for n in names], accept=self.accept)
        return self._routed(bodies, ctypes)

    def model_name(self, value: Any) -> str:
        text = str(value)
        if "{value}" in self.model_template:
            return self.model_template.format(value=text)
        return self.model_template.format(text)

    def _from_array(self, array: Any) -> RequestTable:
        arr = np.asarray(array)
        if arr.ndim == 0 or arr.shape[0] == 0:
            raise ConfigurationError(f"Expected an array with at least one row, received shape {arr.shape}")
        # The backends' own request encoder: one writer per content type, one NaN rule (an empty
        # CSV field, as the frame path's pandas writes it too).
        content_type = _ARRAY_TYPES[self.array_encoding]
        bodies: list[bytes] = []
        for row in arr:
            one = np.asarray(row)[None, ...]  # each request carries one row with its batch axis
            if self.array_encoding == "csv":
                one = one.reshape(1, -1)
            bodies.append(encode_request(one, content_type))
        return self._routed(bodies, [self._ctype(content_type)])

    def _from_files(self, path: Path) -> RequestTable:
        if not path.exists():
            raise ConfigurationError(f"Payload path {str(path)!r} does not exist")
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        if not files:
            raise ConfigurationError(f"Payload folder {str(path)!r} has no files")
        bodies = [f.read_bytes() for f in files]
        ctypes = [
            self.content_type or mimetypes.guess_type(f.name)[0] or "application/octet-stream" for f in files
        ]
        table = self._routed(bodies, ctypes)
        table.keys = [f.relative_to(path).as_posix() if path.is_dir() else f.name for f in files]
        return table

    def _routed(self, bodies: list[bytes], ctypes: list[str]) -> RequestTable:
        if not self._route:
            return RequestTable(bodies, ctypes, [], accept=self.accept)
        if self.model_column:
            raise ConfigurationError(
                f"model_column {self.model_column!r} needs tabular data (a CSV file or a DataFrame)"
            )
        if not self.models:
            raise ConfigurationError(
                "Without a model column, give the target models: models=[...] (with uniform, zipf or weights)"
            )
        return RequestTable(bodies, ctypes, list(self.models), weights=self.model_weights(), accept=self.accept)

    def model_weights(self) -> list[float] | None:
        """Weights aligned with ``models`` (None for uniform)."""
        if self.distribution == "uniform":
            return None
        if self.distribution == "zipf":
            return zipf_weights(len(self.models), self.zipf_s)
        assert self.weights is not None
        if isinstance(self.weights, dict):
            unknown = sorted(set(self.weights) - set(self.models))
            if unknown:
                raise ConfigurationError(f"weights name models not in models: {unknown}")
            weights = [float(self.weights.get(m, 0.0)) for m in self.models]
        else:
            weights = [float(w) for w in self.weights]
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ConfigurationError(f"weights must be >= 0 with a positive sum, received {weights}")
        return weights


def _reject_line_breaks(features: Any) -> None:
    """A CSV payload is one line per request: a value holding a line break cannot be sent as one."""
    for column in features.columns:
        values = features[column]
        if values.dtype.kind not in "OSU" and str(values.dtype) not in ("string", "category"):
            continue  # numbers, booleans and dates never format with a line break
        text = values.astype(str)
        spans = text.str.contains("\n", regex=False) | text.str.contains("\r", regex=False)
        if spans.any():
            row = int(np.flatnonzero(spans.to_numpy())[0])
            raise ConfigurationError(
                f"Column {str(column)!r} holds a line break (first in row {row}: {text.iloc[row][:60]!r}); "
                "a CSV payload is sent one line per request: remove the line breaks or drop the column"
            )


@dataclass
class RequestTable:
    """Every payload encoded once, plus how a request picks its model.

    ``row_models[i]`` is the model of payload ``i`` (routing by column); otherwise each request
    draws a model from ``models`` with ``weights`` (None: uniform) and a payload uniformly.
    ``content_types`` has one entry per payload, or a single entry for all.
    """

    bodies: list[bytes]
    content_types: list[str]
    models: list[str]
    row_models: list[int] | None = None
    weights: list[float] | None = None
    accept: str | None = None
    keys: list[str] | None = None
    """Payload names (a raw folder's files, by path under it): a trace may name payloads by them."""

    def __len__(self) -> int:
        return len(self.bodies)

    def save(self, path: PathLike) -> Path:
        """One file: magic, a JSON header with offsets, then the bodies back to back."""
        offsets: list[int] = []
        pos = 0
        for body in self.bodies:
            offsets.append(pos)
            pos += len(body)
        header = json.dumps(
            {
                "content_types": self.content_types,
                "models": self.models,
                "row_models": self.row_models,
                "weights": self.weights,
                "accept": self.accept,
                "keys": self.keys,
                "offsets": offsets,
                "total": pos,
            }
        ).encode()
        out = Path(path)
        with out.open("wb") as fh:
            fh.write(_MAGIC)
            fh.write(struct.pack("<Q", len(header)))
            fh.write(header)
            for body in self.bodies:
                fh.write(body)
        return out

    @classmethod
    def load(cls, path: PathLike) -> RequestTable:
        data = Path(path).read_bytes()
        if not data.startswith(_MAGIC):
            raise ConfigurationError(f"{str(path)!r} is not an mmeperf request table")
        pos = len(_MAGIC)
        (n,) = struct.unpack_from("<Q", data, pos)
        pos += 8
        header = json.loads(data[pos : pos + n])
        blob = memoryview(data)[pos + n :]
        offsets: list[int] = header["offsets"]
        ends = [*offsets[1:], header["total"]]
        bodies = [bytes(blob[a:b]) for a, b in zip(offsets, ends, strict=True)]
        return cls(
            bodies,
            header["content_types"],
            header["models"],
            row_models=header["row_models"],
            weights=header["weights"],
            accept=header["accept"],
            keys=header.get("keys"),
        )

    def model_counts(self) -> dict[str, int]:
        """Rows per model (column routing)."""
        counts: dict[str, int] = {}
        if self.row_models is not None:
            for i in self.row_models:
                counts[self.models[i]] = counts.get(self.models[i], 0) + 1
        return counts


class RequestSampler:
    """Draws (model, body, content_type) for each request; cheap enough for the hot loop."""

    def __init__(self, table: RequestTable, *, seed: int | None = None) -> None:
        self.table = table
        self._rng = random.Random(seed)
        self._n = len(table.bodies)
        self._single_ctype = table.content_types[0] if len(table.content_types) == 1 else None
        self._cum: list[float] | None = None
        if table.row_models is None and table.weights is not None:
            total = 0.0
            self._cum = []
            for w in table.weights:
                total += w
                self._cum.append(total)

    def next(self) -> tuple[str, bytes, str]:
        t = self.table
        i = int(self._rng.random() * self._n)
        if t.row_models is not None:
            model = t.models[t.row_models[i]]
        elif self._cum is not None:
            x = self._rng.random() * self._cum[-1]
            model = t.models[min(bisect.bisect_right(self._cum, x), len(t.models) - 1)]
        else:
            model = t.models[int(self._rng.random() * len(t.models))]
        ctype = self._single_ctype or t.content_types[i]
        return model, t.bodies[i], ctype

    def random_row(self) -> int:
        """A payload row drawn uniformly (a trace row that names no payload)."""
        return int(self._rng.random() * self._n)

    def payload(self, i: int) -> tuple[bytes, str]:
        """Payload row ``i``: (body, content type)."""
        return self.table.bodies[i], self._single_ctype or self.table.content_types[i]
