"""Invocation traces: read a log of (timestamp, target model[, payload]) and turn it into a send schedule.

:func:`read_trace` reads a CSV or Parquet log; :func:`build_trace` applies a window, a speed
and model renaming (a :class:`~mmeperf.load.profile.TraceShape`'s fields), and returns a
:class:`Trace`: every send's offset from the replay's start, its model and its payload row. The
library builds it once and writes it to a file (:meth:`Trace.save`) the Locust processes load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmeperf._types import PathLike
from mmeperf.errors import ConfigurationError
from mmeperf.units import parse_duration

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Trace", "build_trace", "read_trace", "rename_model"]

_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


@dataclass
class Trace:
    """A replay schedule: send ``i`` leaves ``offsets[i]`` seconds after the replay starts.

    ``models[model_ids[i]]`` is its target model; ``payloads[i]`` the row of the request table
    it sends (-1, or no ``payloads`` at all: a row drawn at random). ``span_s`` is the replay's
    length (the window's, scaled by the speed).
    """

    offsets: np.ndarray
    model_ids: np.ndarray
    models: list[str]
    payloads: np.ndarray | None
    span_s: float

    def __len__(self) -> int:
        return int(self.offsets.size)

    def model_counts(self) -> dict[str, int]:
        """Sends per target model."""
        counts = np.bincount(self.model_ids, minlength=len(self.models))
        return {m: int(c) for m, c in zip(self.models, counts, strict=True) if c}

    def save(self, path: PathLike) -> Path:
        """A numpy ``.npz`` (no pickle): arrays plus a JSON header with the model names."""
        out = Path(path)
        header = json.dumps({"models": self.models, "span_s": self.span_s})
        with out.open("wb") as fh:
            np.savez(
                fh, offsets=self.offsets, model_ids=self.model_ids,
                payloads=self.payloads if self.payloads is not None else np.zeros(0, dtype=np.int64),
                has_payloads=np.array(self.payloads is not None), header=np.array(header),
            )
        return out

    @classmethod
    def load(cls, path: PathLike) -> Trace:
        with np.load(Path(path), allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            return cls(
                offsets=data["offsets"].astype(np.float64),
                model_ids=data["model_ids"].astype(np.int64),
                models=list(header["models"]),
                payloads=data["payloads"].astype(np.int64) if bool(data["has_payloads"]) else None,
                span_s=float(header["span_s"]),
            )


def read_trace(path: PathLike, *, format: str = "auto") -> pd.DataFrame:
    """A CSV or Parquet invocation log as a DataFrame (columns as written)."""
    import pandas as pd

    p = Path(path)
    kind = format if format != "auto" else ("parquet" if p.suffix.lower() in (".parquet", ".pq") else "csv")
    if not p.exists():
        raise ConfigurationError(f"Trace file {str(p)!r} does not exist")
    if kind == "parquet":
        try:
            return pd.read_parquet(p)
        except ImportError as exc:
            raise ConfigurationError(
                f"Reading the Parquet trace {str(p)!r} needs pyarrow. Install it with: pip install 'mmeperf[parquet]'"
            ) from exc
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"Cannot read Parquet trace {str(p)!r}: {exc}") from exc
    try:
        return pd.read_csv(p)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"Cannot read CSV trace {str(p)!r}: {exc}") from exc


def _seconds(column: pd.Series, unit: str, name: str) -> np.ndarray:
    """Timestamps as float seconds: numbers in ``unit``, or datetimes / ISO strings (UTC)."""
    import pandas as pd

    values: np.ndarray
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        values = column.to_numpy(dtype=np.float64) * _UNITS[unit]
    else:
        try:
            stamps = pd.to_datetime(column, utc=True)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(
                f"Trace column {name!r} holds neither numbers nor datetimes (first value {column.iloc[0]!r}): {exc}"
            ) from exc
        values = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        row = int(np.flatnonzero(np.isnan(values))[0])
        raise ConfigurationError(f"Trace column {name!r} has an empty timestamp (row {row})")
    return values


def _bound(value: float | str | None, origin: float, name: str) -> float | None:
    """A window bound: a duration (seconds from the trace's first timestamp) or an absolute datetime."""
    import pandas as pd

    if value is None:
        return None
    try:
        return origin + parse_duration(value)
    except (ValueError, TypeError, ConfigurationError):
        pass
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"Trace window {name} {value!r} is neither a duration (90s, 10m) nor a datetime (2024-05-01T09:00Z)"
        ) from exc
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return float((stamp - pd.Timestamp(0, tz="UTC")).total_seconds())


def rename_model(name: str, rename: dict[str, str], template: str) -> str:
    """A trace's model name as the endpoint knows it: the mapping first, then the template."""
    mapped = rename.get(name, name)
    if "{value}" in template:
        return template.format(value=mapped)
    return template.format(mapped)


def build_trace(
    path: str,
    *,
    format: str = "auto",
    timestamp_column: str = "timestamp",
    timestamp_unit: str = "s",
    model_column: str = "model",
    payload_column: str | None = None,
    speed: float = 1.0,
    start: float | str | None = None,
    end: float | str | None = None,
    rename: dict[str, str] | None = None,
    model_template: str = "{}",
    keys: list[str] | None = None,
    n_payloads: int | None = None,
) -> Trace:
    """Read a log and make its replay schedule (window, speed, renaming, payload rows).

    The arguments are :class:`~mmeperf.load.profile.TraceShape`'s fields. ``keys`` names the
    request table's payloads (raw files: their paths under the folder), so a string payload
    column can name them; ``n_payloads`` bounds integer rows.
    """
    frame = read_trace(path, format=format)
    for column in (timestamp_column, model_column, payload_column):
        if column is not None and column not in frame.columns:
            raise ConfigurationError(
                f"Trace {path!r} has no column {column!r}; columns: {', '.join(map(str, frame.columns))}"
            )
    if len(frame) == 0:
        raise ConfigurationError(f"Trace {path!r} has no rows")
    times = _seconds(frame[timestamp_column], timestamp_unit, timestamp_column)
    order = np.argsort(times, kind="stable")
    times = times[order]
    frame = frame.iloc[order]
    origin = float(times[0])
    lo_at = _bound(start, origin, "start")
    hi_at = _bound(end, origin, "end")
    lo = origin if lo_at is None else lo_at
    keep = times >= lo
    if hi_at is not None:
        if hi_at <= lo:
            raise ConfigurationError(f"Trace window end {end!r} is not after its start {start!r}")
        keep &= times < hi_at
    if not keep.any():
        raise ConfigurationError(
            f"No row of trace {path!r} falls in the window [{start}, {end}) "
            f"(its timestamps run {times[-1] - origin:.3f} s from the first)"
        )
    times = times[keep]
    frame = frame.loc[frame.index[keep]]
    offsets = (times - lo) / speed
    span = ((hi_at if hi_at is not None else float(times[-1])) - lo) / speed
    names = [rename_model(str(v), rename or {}, model_template) for v in frame[model_column].tolist()]
    models = sorted(set(names))
    index = {m: i for i, m in enumerate(models)}
    model_ids = np.fromiter((index[n] for n in names), dtype=np.int64, count=len(names))
    payloads = None
    if payload_column is not None:
        payloads = _payload_rows(frame[payload_column], keys=keys, n_payloads=n_payloads, name=payload_column)
    return Trace(offsets=offsets.astype(np.float64), model_ids=model_ids, models=models, payloads=payloads,
                 span_s=float(max(span, 0.0)))


def _payload_rows(column: pd.Series, *, keys: list[str] | None, n_payloads: int | None, name: str) -> np.ndarray:
    import pandas as pd

    if pd.api.types.is_integer_dtype(column):
        rows = column.to_numpy(dtype=np.int64)
    elif pd.api.types.is_float_dtype(column):
        values = column.to_numpy(dtype=np.float64)
        if np.isnan(values).any() or not np.all(values == np.floor(values)):
            raise ConfigurationError(f"Trace payload column {name!r} must hold row numbers or payload keys")
        rows = values.astype(np.int64)
    else:
        if keys is None:
            raise ConfigurationError(
                f"Trace payload column {name!r} holds keys, but the traffic's payloads have no names "
                "(keys name the files of a raw payload folder; otherwise give row numbers)"
            )
        where = {k: i for i, k in enumerate(keys)}
        text = column.astype(str).tolist()
        missing = sorted({t for t in text if t not in where})
        if missing:
            raise ConfigurationError(
                f"Trace payload keys {missing[:5]} are not among the payload files ({', '.join(keys[:5])}, ...)"
            )
        rows = np.fromiter((where[t] for t in text), dtype=np.int64, count=len(text))
    if n_payloads is not None and rows.size and (rows.min() < 0 or rows.max() >= n_payloads):
        bad = int(rows[(rows < 0) | (rows >= n_payloads)][0])
        raise ConfigurationError(f"Trace payload row {bad} is outside the {n_payloads} payloads of the traffic")
    return rows
