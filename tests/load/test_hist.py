"""The numpy histogram keeps HdrHistogram's buckets and percentiles exactly."""

from __future__ import annotations

import numpy as np
from hdrh.histogram import HdrHistogram

from mmeperf.load.hist import HIGHEST_US, Histogram


def test_same_buckets_and_percentiles_as_hdrh() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.integers(1, 5000, 3000), rng.lognormal(10, 2, 3000).astype(np.int64) + 1])
    values = np.clip(values, 1, HIGHEST_US)
    ours = Histogram()
    ours.record(values)
    ref = HdrHistogram(1, HIGHEST_US, 3)
    for v in values.tolist():
        ref.record_value(v)
    assert np.array_equal(ours.counts, np.ctypeslib.as_array(ref.counts))
    for p in (1.0, 25.0, 50.0, 90.0, 99.0, 99.9):
        assert ours.values_at([p])[p] == min(ref.get_value_at_percentile(p), int(values.max()))
    assert ours.values_at([100.0])[100.0] == int(values.max())


def test_sparse_merge_and_encode_round_trip() -> None:
    a, b = Histogram(), Histogram()
    a.record([100, 200, 300])
    b.add_sparse(Histogram.sparse_of([300, 4_000_000_000]))  # clamped, still counted
    a.merge(b)
    assert a.total == 5 and a.max_us == HIGHEST_US
    back = Histogram.decode(a.encode())
    assert np.array_equal(back.counts, a.counts) and back.total == 5
    assert Histogram().values_at([50.0]) == {50.0: None}
