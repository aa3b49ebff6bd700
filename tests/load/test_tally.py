"""Counts travel between processes as lists and merge exactly; a tally's stage views."""

from __future__ import annotations

import math

from mmeperf.load.hist import Histogram
from mmeperf.load.tally import Counts, Group, RunTally


def test_counts_round_trip_and_merge() -> None:
    a, b = Counts(), Counts()
    a.add_request(1_000, True, "warm", False, sent_at=10.0)
    b.add_request(3_000, False, "cold", True, sent_at=12.0)
    assert Counts.from_list(Counts().to_list()).first_send == math.inf  # nothing sent yet survives the trip
    a.merge(Counts.from_list(b.to_list()))
    assert (a.requests, a.failures, a.cold, a.warm, a.late, a.max_us) == (2, 1, 1, 1, 1, 3_000)
    assert a.mean_ms == 2.0 and a.send_rate == 0.5


def test_stage_views_merge_the_kinds_asked_for() -> None:
    tally = RunTally()
    for kind, values in (("warm", [1_000, 1_000]), ("cold", [9_000])):
        group = tally.stage_kind.setdefault((2, kind), Group())
        group.hist.add_sparse(Histogram.sparse_of(values))
    tally.stage_counts[2].merge(Counts(requests=3))
    assert tally.stages() == [2]
    assert tally.stage_hist(2).total == 3 and tally.stage_hist(2, ("cold",)).total == 1
    assert tally.total().requests == 3
