"""Thresholds and the verdict of a run: what makes ``mmeperf bench`` exit non-zero.

k6's idea: ``p99<50ms``, ``failure_rate<1%``, ``ok_rps>100`` are checked on the run's totals
once it ends; any that fails fails the run. Beside them, a run fails on its own when it sent no
request, when every request failed, when the target never answered, or when more than half the
requests failed (unless a ``failure_rate`` threshold says what is acceptable).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from mmeperf.errors import ConfigurationError

__all__ = [
    "EXIT_FAILED",
    "EXIT_LOAD_ERROR",
    "EXIT_OK",
    "EXIT_USAGE",
    "MAX_FAILURE_RATIO",
    "FailureReason",
    "RunVerdict",
    "Threshold",
    "ThresholdResult",
    "judge",
    "parse_thresholds",
    "top_failure_reasons",
]

#: Exit codes of ``mmeperf bench`` (documented in docs/load-testing.md).
EXIT_OK = 0
EXIT_FAILED = 1  # a threshold failed, or the run is mostly failures / never got an answer
EXIT_USAGE = 2  # a bad option, spec or URL, or a target that refuses connections: nothing ran
EXIT_LOAD_ERROR = 3  # the load generator itself failed (Locust crashed or never finished)

#: Without a failure_rate threshold, a run with more failed requests than this share fails.
MAX_FAILURE_RATIO = 0.5

Metric = Literal["p50", "p90", "p95", "p99", "max", "mean", "failure_rate", "rps", "ok_rps"]
Operator = Literal["<", "<=", ">", ">="]

_LATENCY: dict[str, str] = {
    "p50": "p50_ms", "p90": "p90_ms", "p95": "p95_ms", "p99": "p99_ms", "max": "max_ms", "mean": "mean_ms",
}
_ALIASES = {
    "p(50)": "p50", "p(90)": "p90", "p(95)": "p95", "p(99)": "p99", "med": "p50", "median": "p50",
    "avg": "mean", "error_rate": "failure_rate", "http_req_failed": "failure_rate", "throughput": "ok_rps",
}
_UNITS_MS = {"us": 0.001, "µs": 0.001, "ms": 1.0, "s": 1000.0}
_PATTERN = re.compile(
    r"^\s*(?P<metric>[a-z_]+(?:\(\d+\))?|p\d+)\s*(?P<op><=|>=|<|>)\s*(?P<value>[0-9]*\.?[0-9]+)\s*(?P<unit>[a-zµ/%]*)\s*$"
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Threshold(_Model):
    """One condition on a run's totals, e.g. ``p99<10ms`` (parse it with :meth:`parse`)."""

    metric: Metric
    """A latency percentile, max or mean (ms); failure_rate (a fraction); rps or ok_rps (req/s)."""
    op: Operator
    value: float
    """In the metric's unit: milliseconds, a fraction (1% is 0.01), or requests per second."""
    text: str
    """As the user wrote it."""

    @classmethod
    def parse(cls, text: str) -> Threshold:
        """``p95<200`` (ms), ``p99<10ms``, ``max<1s``, ``failure_rate<1%``, ``rps>100``, ``ok_rps>=50``."""
        match = _PATTERN.match(text.strip().lower())
        expected = (
            "expected METRIC OP VALUE, e.g. p99<10ms, p95<200, failure_rate<1%, rps>100, ok_rps>50 "
            f"(metrics: {', '.join(Metric.__args__)})"  # type: ignore[attr-defined]
        )
        if match is None:
            raise ConfigurationError(f"Bad threshold {text!r}: {expected}")
        metric = _ALIASES.get(match["metric"], match["metric"])
        unit = match["unit"]
        value = float(match["value"])
        if metric in _LATENCY:
            if unit not in ("", *_UNITS_MS):
                raise ConfigurationError(f"Bad threshold {text!r}: a latency is in us, ms (default) or s, received {unit!r}")
            value *= _UNITS_MS.get(unit, 1.0)
        elif metric == "failure_rate":
            if unit == "%":
                value /= 100.0
            elif unit:
                raise ConfigurationError(f"Bad threshold {text!r}: a failure rate is a fraction or a percentage")
            if not 0.0 <= value <= 1.0:
                raise ConfigurationError(f"Bad threshold {text!r}: a failure rate is between 0 and 1 (0%-100%)")
        elif metric in ("rps", "ok_rps"):
            if unit not in ("", "/s", "rps"):
                raise ConfigurationError(f"Bad threshold {text!r}: a rate is in requests per second")
        else:
            raise ConfigurationError(f"Bad threshold {text!r}: unknown metric {metric!r}; {expected}")
        return cls(metric=metric, op=match["op"], value=value, text=text.strip())  # type: ignore[arg-type]

    @property
    def unit(self) -> str:
        return "ms" if self.metric in _LATENCY else "" if self.metric == "failure_rate" else "req/s"

    def actual(self, totals: Mapping[str, Any]) -> float | None:
        """This threshold's metric in a run's totals (run.json ``totals``); None if unknown."""
        if self.metric in _LATENCY:
            value = totals.get(_LATENCY[self.metric])
        elif self.metric == "failure_rate":
            requests = totals.get("requests") or 0
            value = (totals.get("failures") or 0) / requests if requests else None
        else:
            value = totals.get(self.metric)
        return None if value is None else float(value)

    def check(self, totals: Mapping[str, Any]) -> ThresholdResult:
        actual = self.actual(totals)
        if actual is None or actual != actual:
            passed = False
        else:
            passed = {
                "<": actual < self.value, "<=": actual <= self.value,
                ">": actual > self.value, ">=": actual >= self.value,
            }[self.op]
        return ThresholdResult(threshold=self.text, metric=self.metric, op=self.op, limit=self.value,
                               actual=actual, passed=passed)


class ThresholdResult(_Model):
    """A threshold checked against a run."""

    threshold: str
    metric: Metric
    op: Operator
    limit: float
    actual: float | None
    """None when the run has no such value (no request): the threshold fails."""
    passed: bool

    def describe(self) -> str:
        def fmt(v: float | None) -> str:
            if v is None:
                return "n/a"
            if self.metric == "failure_rate":
                return f"{100 * v:.2f}%"
            return f"{v:.3f} ms" if self.metric in _LATENCY else f"{v:.1f} req/s"

        mark = "pass" if self.passed else "FAIL"
        return f"{mark}  {self.threshold}: {self.metric} = {fmt(self.actual)} (limit {self.op} {fmt(self.limit)})"


class FailureReason(_Model):
    """Failed requests of one kind: HTTP status (0: no HTTP answer) and error code, with a sample message."""

    status: int
    error_code: str
    count: int
    message: str = ""

    def describe(self) -> str:
        where = "no HTTP answer" if self.status == 0 else f"HTTP {self.status}"
        text = f"{self.count} x {self.error_code or 'error'} ({where})"
        return f"{text}: {self.message[:160]}" if self.message else text


class RunVerdict(_Model):
    """Whether a run passed, why not, and the exit code ``mmeperf bench`` gives it."""

    passed: bool
    exit_code: int
    reasons: list[str]
    """Why the run failed (empty when it passed)."""
    thresholds: list[ThresholdResult]
    top_failures: list[FailureReason]
    max_failure_ratio: float | None
    """The failure share above which the run fails without a threshold (None: a failure_rate threshold decides)."""


def parse_thresholds(texts: Iterable[str]) -> list[Threshold]:
    """Parse each ``--threshold`` (ConfigurationError on the first bad one)."""
    return [Threshold.parse(t) for t in texts if t.strip()]


def top_failure_reasons(rows: Iterable[Mapping[str, Any]], n: int = 5) -> list[FailureReason]:
    """failures.csv rows (stage, model, status, error_code, count, message) grouped by kind, most first."""
    grouped: dict[tuple[int, str], list[Any]] = {}
    for row in rows:
        status = int(row.get("status") or 0)
        code = str(row.get("error_code") or "")
        if code == "nan":
            code = ""
        entry = grouped.setdefault((status, code), [0, ""])
        entry[0] += int(row.get("count") or 0)
        message = row.get("message")
        if not entry[1] and isinstance(message, str) and message != "nan":
            entry[1] = message
    ranked = sorted(grouped.items(), key=lambda kv: (-kv[1][0], kv[0]))
    return [FailureReason(status=s, error_code=c, count=v[0], message=v[1]) for (s, c), v in ranked[:n]]


def judge(
    totals: Mapping[str, Any],
    failures: Sequence[FailureReason],
    thresholds: Sequence[Threshold] = (),
    *,
    max_failure_ratio: float = MAX_FAILURE_RATIO,
) -> RunVerdict:
    """The verdict of a run from its totals (run.json) and its failure reasons (all of them, grouped)."""
    results = [t.check(totals) for t in thresholds]
    reasons = [f"threshold {r.threshold} failed: {r.describe()[6:]}" for r in results if not r.passed]
    requests = int(totals.get("requests") or 0)
    failed = int(totals.get("failures") or 0)
    decides = any(t.metric == "failure_rate" for t in thresholds)
    no_answer = sum(f.count for f in failures if f.status == 0)
    if requests == 0:
        reasons.insert(0, "no request was sent")
    elif failed >= requests:
        if no_answer >= requests:
            reasons.insert(0, f"the target never answered: all {requests} requests failed without an HTTP answer")
        else:
            reasons.insert(0, f"every request failed ({failed} of {requests})")
    elif not decides and failed / requests > max_failure_ratio:
        reasons.insert(
            0, f"the run is mostly failures: {failed} of {requests} requests failed "
            f"({100 * failed / requests:.1f}% > {100 * max_failure_ratio:g}%)"
        )
    return RunVerdict(
        passed=not reasons,
        exit_code=EXIT_OK if not reasons else EXIT_FAILED,
        reasons=reasons,
        thresholds=results,
        top_failures=list(failures[:5]),
        max_failure_ratio=None if decides else max_failure_ratio,
    )
