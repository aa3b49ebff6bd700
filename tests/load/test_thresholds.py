"""Thresholds, the run verdict and max users without failures: pure functions, no Locust."""

from __future__ import annotations

import pytest

from mmeperf.errors import ConfigurationError
from mmeperf.load.profile import LoadProfile, Warmup
from mmeperf.load.runwriter import max_users_without_failures
from mmeperf.load.thresholds import (
    FailureReason,
    Threshold,
    judge,
    parse_thresholds,
    top_failure_reasons,
)

TOTALS = {"requests": 1000, "failures": 5, "p50_ms": 4.0, "p95_ms": 9.0, "p99_ms": 12.5, "max_ms": 40.0,
          "rps": 100.0, "ok_rps": 99.5}


@pytest.mark.parametrize(
    ("text", "metric", "op", "value"),
    [
        ("p99<10ms", "p99", "<", 10.0),
        ("p95<200", "p95", "<", 200.0),
        ("p(95) < 0.2s", "p95", "<", 200.0),
        ("max<=1500us", "max", "<=", 1.5),
        ("failure_rate<1%", "failure_rate", "<", 0.01),
        ("error_rate<0.05", "failure_rate", "<", 0.05),
        ("rps>100", "rps", ">", 100.0),
        ("ok_rps>=50", "ok_rps", ">=", 50.0),
    ],
)
def test_thresholds_parse_into_a_typed_model(text: str, metric: str, op: str, value: float) -> None:
    t = Threshold.parse(text)
    assert (t.metric, t.op, t.value) == (metric, op, pytest.approx(value))
    assert t.text == text.strip()


@pytest.mark.parametrize("text", ["p99", "p99<", "latency<5", "failure_rate<5ms", "p99<5%", "rps>5ms", "failure_rate<150%"])
def test_bad_thresholds_say_what_was_expected(text: str) -> None:
    with pytest.raises(ConfigurationError, match=r"expected|between|latency is|failure rate is|rate is"):
        Threshold.parse(text)


def test_thresholds_are_judged_on_the_totals() -> None:
    verdict = judge(TOTALS, [], parse_thresholds(["p99<10ms", "p50<5", "failure_rate<1%", "ok_rps>100", "rps>=100"]))
    passed = {r.threshold: r.passed for r in verdict.thresholds}
    assert passed == {"p99<10ms": False, "p50<5": True, "failure_rate<1%": True, "ok_rps>100": False, "rps>=100": True}
    assert not verdict.passed and verdict.exit_code == 1
    assert any("p99<10ms" in r for r in verdict.reasons) and any("ok_rps>100" in r for r in verdict.reasons)
    assert judge(TOTALS, [], parse_thresholds(["p99<20ms"])).exit_code == 0


def test_mostly_failures_fail_unless_a_failure_rate_threshold_decides() -> None:
    totals = {**TOTALS, "failures": 600}
    verdict = judge(totals, [FailureReason(status=500, error_code="ModelError", count=600)])
    assert verdict.exit_code == 1 and "mostly failures" in verdict.reasons[0]
    assert judge({**TOTALS, "failures": 400}, []).passed
    # The user's own failure_rate threshold replaces the 50% rule.
    assert judge(totals, [], parse_thresholds(["failure_rate<70%"])).passed
    assert not judge({**TOTALS, "failures": 100}, [], parse_thresholds(["failure_rate<5%"])).passed


def test_every_request_failed_and_never_answered_and_nothing_sent() -> None:
    all_failed = {**TOTALS, "failures": 1000}
    refused = [FailureReason(status=0, error_code="ConnectionRefusedError", count=1000)]
    assert "never answered" in judge(all_failed, refused).reasons[0]
    http = [FailureReason(status=404, error_code="ValidationError", count=1000)]
    verdict = judge(all_failed, http, parse_thresholds(["failure_rate<=100%"]))
    assert not verdict.passed and "every request failed" in verdict.reasons[0]
    assert judge({"requests": 0, "failures": 0}, []).reasons == ["no request was sent"]


def test_top_failure_reasons_group_by_kind() -> None:
    rows = [
        {"stage": 0, "model": "a", "status": 404, "error_code": "ValidationError", "count": 3, "message": "no a"},
        {"stage": 0, "model": "b", "status": 404, "error_code": "ValidationError", "count": 4, "message": "no b"},
        {"stage": 1, "model": "a", "status": 0, "error_code": "ConnectionRefusedError", "count": 5, "message": ""},
    ]
    reasons = top_failure_reasons(rows)
    assert [(r.status, r.error_code, r.count) for r in reasons] == [(404, "ValidationError", 7), (0, "ConnectionRefusedError", 5)]
    assert "no HTTP answer" in reasons[1].describe()


def _rows(*stages: tuple[int, int, int]) -> list[dict[str, int]]:
    return [{"users": u, "requests": r, "failures": f} for u, r, f in stages]


def test_max_users_without_failures_is_the_step_before_the_first_failing_one() -> None:
    plans = LoadProfile.steps(users=[10, 20, 40, 80]).stages()
    assert max_users_without_failures(plans, _rows((10, 100, 0), (20, 200, 0), (40, 300, 2), (80, 300, 0))) == 20
    assert max_users_without_failures(plans, _rows((10, 100, 0), (20, 200, 0), (40, 300, 0), (80, 300, 0))) == 80
    assert max_users_without_failures(plans, _rows((10, 100, 1), (20, 200, 0))) is None
    assert max_users_without_failures(LoadProfile.open_loop(rate=10, duration=1).stages(), _rows((256, 10, 0))) is None


def test_warmup_is_one_of_requests_or_duration() -> None:
    assert Warmup(requests_per_model=1).duration is None
    assert Warmup.model_validate({"duration": "10s"}).duration == 10.0
    for bad in ({}, {"requests_per_model": 1, "duration": 5}):
        with pytest.raises(ConfigurationError):
            LoadProfile.from_dict({"warmup": bad})
