"""HDR histograms of latency in microseconds (1 µs to 1 h, 3 significant digits), in numpy.

:class:`Histogram` keeps HdrHistogram's exact bucket layout (the counts array is the one
``hdrh`` would hold, so :meth:`Histogram.encode` produces the standard V2 wire format) but
records, merges and reads percentiles with vectorised numpy: the pure-Python ``hdrh`` costs
~3 µs per recorded value and milliseconds per merge or percentile, which would stall the load
generator's event loop. Values above the range are clamped to it (and still counted).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

__all__ = ["HIGHEST_US", "LOWEST_US", "SIGNIFICANT_DIGITS", "Histogram"]

LOWEST_US = 1
#: One hour: anything slower is clamped to it (and still counted).
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3

_REF = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
_UNIT = int(_REF.unit_magnitude)
_SHCM = int(_REF.sub_bucket_half_count_magnitude)
_SHC = int(_REF.sub_bucket_half_count)
_SBC = int(_REF.sub_bucket_count)
_MASK = int(_REF.sub_bucket_mask)
COUNTS_LEN = int(_REF.counts_len)


def _bucket_of(values: np.ndarray) -> np.ndarray:
    masked = values | np.int64(_MASK)
    # bit_length(x) for x < 2**53, exactly: frexp's exponent.
    pow2ceiling = np.frexp(masked.astype(np.float64))[1].astype(np.int64)
    return pow2ceiling - _UNIT - (_SHCM + 1)  # type: ignore[no-any-return]


def _index_of(values: np.ndarray) -> np.ndarray:
    bucket = _bucket_of(values)
    sub_bucket = values >> (bucket + _UNIT)
    return ((bucket + 1) << _SHCM) + sub_bucket - _SHC  # type: ignore[no-any-return]


def _highest_equivalent_by_index() -> np.ndarray:
    index = np.arange(COUNTS_LEN, dtype=np.int64)
    bucket = (index >> _SHCM) - 1
    sub = (index & (_SHC - 1)) + _SHC
    low = bucket < 0
    sub = np.where(low, sub - _SHC, sub)
    bucket = np.where(low, 0, bucket)
    value = sub << (bucket + _UNIT)
    vb = _bucket_of(value)
    vsub = value >> (vb + _UNIT)
    lowest = vsub << (vb + _UNIT)
    vb = np.where(vsub >= _SBC, vb + 1, vb)
    return lowest + (np.int64(1) << (_UNIT + vb)) - 1  # type: ignore[no-any-return]


#: hdrh's get_highest_equivalent_value(get_value_from_index(i)) for every counts index i.
_HIGHEST = _highest_equivalent_by_index()


class Histogram:
    """Latency counts in HdrHistogram's layout, plus the exact count, min and max."""

    __slots__ = ("counts", "max_us", "min_us", "total")

    def __init__(self) -> None:
        self.counts = np.zeros(COUNTS_LEN, dtype=np.int64)
        self.total = 0
        self.min_us = math.inf
        self.max_us = 0

    def record(self, values_us: Sequence[int] | np.ndarray) -> None:
        """Record every value (integer microseconds); same buckets as ``hdrh.record_value``."""
        if len(values_us) == 0:
            return
        v = np.clip(np.asarray(values_us, dtype=np.int64), 0, HIGHEST_US)
        self.counts += np.bincount(_index_of(v), minlength=COUNTS_LEN)
        self.total += int(v.size)
        self.min_us = min(self.min_us, int(v.min()))
        self.max_us = max(self.max_us, int(v.max()))

    def merge(self, other: Histogram) -> None:
        if other.total == 0:
            return
        self.counts += other.counts
        self.total += other.total
        self.min_us = min(self.min_us, other.min_us)
        self.max_us = max(self.max_us, other.max_us)

    # --- transport between processes: the non-zero buckets -------------------------------

    @staticmethod
    def sparse_of(values_us: Sequence[int] | np.ndarray) -> dict[str, Any]:
        """The sparse form of a histogram of ``values_us``, without building the dense array."""
        v = np.clip(np.asarray(values_us, dtype=np.int64), 0, HIGHEST_US)
        if v.size == 0:
            return {"i": [], "c": [], "lo": None, "hi": 0}
        index, counts = np.unique(_index_of(v), return_counts=True)
        return {"i": index.tolist(), "c": counts.tolist(), "lo": int(v.min()), "hi": int(v.max())}

    def sparse(self) -> dict[str, Any]:
        index = np.flatnonzero(self.counts)
        return {
            "i": index.tolist(),
            "c": self.counts[index].tolist(),
            "lo": None if math.isinf(self.min_us) else int(self.min_us),
            "hi": int(self.max_us),
        }

    @classmethod
    def from_sparse(cls, data: dict[str, Any]) -> Histogram:
        h = cls()
        h.add_sparse(data)
        return h

    def add_sparse(self, data: dict[str, Any]) -> None:
        counts = np.asarray(data["c"], dtype=np.int64)
        if counts.size == 0:
            return
        np.add.at(self.counts, np.asarray(data["i"], dtype=np.int64), counts)
        self.total += int(counts.sum())
        if data.get("lo") is not None:
            self.min_us = min(self.min_us, int(data["lo"]))
        self.max_us = max(self.max_us, int(data["hi"]))

    # --- reading --------------------------------------------------------------------------

    def values_at(self, percentiles: Iterable[float]) -> dict[float, int | None]:
        """Percentile -> µs, as HdrHistogram computes it; 0 gives the exact min, 100 the exact max."""
        pcts = list(percentiles)
        if self.total == 0:
            return {p: None for p in pcts}
        cumulative = np.cumsum(self.counts)
        out: dict[float, int | None] = {}
        for p in pcts:
            if p >= 100:
                out[p] = int(self.max_us)
            elif p <= 0:
                out[p] = int(self.min_us)
            else:
                target = max(int(p * self.total / 100.0 + 0.5), 1)
                index = int(np.searchsorted(cumulative, target, side="left"))
                out[p] = min(int(_HIGHEST[min(index, COUNTS_LEN - 1)]), int(self.max_us))
        return out

    def percentiles_ms(self, percentiles: Iterable[float]) -> dict[float, float | None]:
        return {p: (None if v is None else v / 1000.0) for p, v in self.values_at(percentiles).items()}

    # --- the standard wire format ---------------------------------------------------------

    def to_hdr(self) -> HdrHistogram:
        hist = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
        np.ctypeslib.as_array(hist.counts)[:] = self.counts
        hist.total_count = self.total
        if self.total:
            hist.min_value = int(self.min_us)
            hist.max_value = int(self.max_us)
        return hist

    def encode(self) -> str:
        """Base64 V2 compressed HdrHistogram encoding (readable by every HdrHistogram port)."""
        data = self.to_hdr().encode()
        return data.decode() if isinstance(data, bytes) else str(data)

    @classmethod
    def decode(cls, encoded: str | bytes) -> Histogram:
        other = HdrHistogram.decode(encoded.encode() if isinstance(encoded, str) else encoded)
        h = cls()
        if (other.unit_magnitude, other.sub_bucket_half_count_magnitude) != (_UNIT, _SHCM):
            raise ValueError("histogram has a different precision than mmeperf's (1 us, 3 digits)")
        src = np.ctypeslib.as_array(other.counts)[: COUNTS_LEN]
        h.counts[: src.size] += src.astype(np.int64)
        h.total = int(h.counts.sum())
        if h.total:
            nz = np.flatnonzero(h.counts)
            h.min_us = int(other.min_value) if other.min_value < 2**62 else int(_HIGHEST[nz[0]])
            h.max_us = int(other.max_value) or int(_HIGHEST[nz[-1]])
        return h
