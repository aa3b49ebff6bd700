import math

import pytest

from mmeperf.errors import ConfigurationError
from mmeperf.instances import DEFAULT_CATALOG
from mmeperf.results.cost import Candidate, endpoint_cost, mme_vs_single_endpoints, recommend


def test_cost_per_million_is_recomputable() -> None:
    cost = endpoint_cost("ml.c5.2xlarge", 250.0, instance_count=2)
    price = DEFAULT_CATALOG.get("ml.c5.2xlarge").price_per_hour_usd
    assert cost.cost_per_hour_usd == pytest.approx(2 * price)
    assert cost.cost_per_million_usd == pytest.approx(2 * price / (250 * 3600) * 1e6)


def test_zero_throughput_costs_infinity() -> None:
    assert math.isinf(endpoint_cost("ml.c5.xlarge", 0.0).cost_per_million_usd)


def test_unknown_instance_lists_known() -> None:
    with pytest.raises(ConfigurationError, match=r"ml\.c5\.xlarge"):
        endpoint_cost("ml.nope.large", 1.0)


def test_mme_vs_single_defaults_to_smallest_of_family() -> None:
    cmp = mme_vs_single_endpoints(51, "ml.c5.2xlarge")
    large = DEFAULT_CATALOG.get("ml.c5.large").price_per_hour_usd
    assert cmp.single_instance_type == "ml.c5.large"
    assert cmp.single_endpoints_cost_per_hour_usd == pytest.approx(51 * large)
    assert cmp.savings_ratio == pytest.approx(51 * large / DEFAULT_CATALOG.get("ml.c5.2xlarge").price_per_hour_usd)


def _cand(label: str, itype: str, *, failures: int = 0, p99: float | None = 10.0) -> Candidate:
    return Candidate(label=label, instance_type=itype, requests=1000, failures=failures, rps=100.0, p99_ms=p99)


def test_recommend_cheapest_within_budget() -> None:
    rec = recommend([_cand("xl", "ml.c5.xlarge", p99=80.0), _cand("2xl", "ml.c5.2xlarge", p99=5.0)], p99_budget_ms=100)
    assert rec.chosen == "xl"
    assert "also met the budget" in rec.explanation


def test_recommend_rejects_failures_and_slow() -> None:
    rec = recommend(
        [_cand("xl", "ml.c5.xlarge", p99=250.0), _cand("4xl", "ml.c5.4xlarge", failures=3), _cand("2xl", "ml.c5.2xlarge")],
        p99_budget_ms=100,
    )
    assert rec.chosen == "2xl"
    assert "over the 100 ms budget" in rec.rejected["xl"]
    assert "3 of 1000 requests failed" in rec.rejected["4xl"]
    assert "xl was rejected because p99 250.0 ms" in rec.explanation


def test_recommend_none_explains() -> None:
    rec = recommend([_cand("xl", "ml.c5.xlarge", p99=None)], p99_budget_ms=50)
    assert rec.chosen is None and "No configuration met" in rec.explanation
