"""Server metrics read over HTTP: the local MME's Prometheus text parses to its JSON snapshot."""

from __future__ import annotations

import pytest

from mmeperf.endpoints.local.counters import MmeCounters
from mmeperf.load.servermetrics import parse_prometheus


def test_prometheus_text_gives_the_same_counters_as_the_json_snapshot(tmp_path: object) -> None:
    counters = MmeCounters(memory_total_bytes=None, disk_path=str(tmp_path))
    for status in (200, 200, 200, 404, 500):
        counters.count_response(status)
    counters.latency["ModelLatency"].add(1500.0)
    counters.latency["ModelLatency"].add(500.0)
    snap = counters.snapshot()
    parsed = parse_prometheus(counters.prometheus_text().decode(), timestamp=snap.timestamp)
    assert parsed is not None
    assert parsed.invocations == snap.invocations == 5
    assert parsed.invocation_4xx_errors == snap.invocation_4xx_errors == 1
    assert parsed.invocation_5xx_errors == snap.invocation_5xx_errors == 1
    assert parsed.model_latency.count == 2 and parsed.model_latency.sum_us == pytest.approx(2000.0)
    assert parsed.loaded_model_count == snap.loaded_model_count


def test_text_without_mme_metrics_is_not_parsed() -> None:
    assert parse_prometheus("# HELP up x\n# TYPE up gauge\nup 1\n", timestamp=0.0) is None
