"""Cost from the instance catalog and measured throughput, and the cheapest configuration that
meets a latency budget with zero failures, explained in words.

Every figure here is recomputable by hand: price per hour (catalog, dated) x instances, and
price per hour / (requests per second x 3600) x 1e6 for the cost of a million inferences.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

from mmeperf.instances import DEFAULT_CATALOG, InstanceCatalog, InstanceProfile

__all__ = [
    "DEFAULT_P99_BUDGET_MS",
    "Candidate",
    "EndpointCost",
    "HostingComparison",
    "Recommendation",
    "endpoint_cost",
    "mme_vs_single_endpoints",
    "recommend",
]

#: Default latency budget: p99 under 100 ms, a common interactive-API target.
DEFAULT_P99_BUDGET_MS = 100.0


class EndpointCost(BaseModel):
    """What one endpoint costs per hour and per million inferences at a measured throughput."""

    instance_type: str
    instance_count: int
    price_per_hour_usd: float
    """Catalog price of one instance."""
    price_as_of: str
    cost_per_hour_usd: float
    """price_per_hour_usd x instance_count."""
    rps: float
    """Measured successful requests per second."""
    cost_per_million_usd: float
    """cost_per_hour_usd / (rps x 3600) x 1e6; infinite when nothing succeeded."""


def endpoint_cost(
    instance: InstanceProfile | str,
    rps: float,
    *,
    instance_count: int = 1,
    catalog: InstanceCatalog = DEFAULT_CATALOG,
) -> EndpointCost:
    """Cost of ``instance_count`` instances of ``instance`` serving ``rps`` requests per second."""
    profile = catalog.get(instance) if isinstance(instance, str) else instance
    hourly = profile.price_per_hour_usd * instance_count
    return EndpointCost(
        instance_type=profile.name,
        instance_count=instance_count,
        price_per_hour_usd=profile.price_per_hour_usd,
        price_as_of=profile.price_as_of,
        cost_per_hour_usd=hourly,
        rps=rps,
        cost_per_million_usd=profile.cost_per_million(rps, instance_count=instance_count),
    )


class HostingComparison(BaseModel):
    """One multi-model endpoint against one single-model endpoint per model."""

    n_models: int
    mme_instance_type: str
    mme_instance_count: int
    mme_cost_per_hour_usd: float
    single_instance_type: str
    single_instance_count: int
    """Instances behind each single-model endpoint."""
    single_endpoints_cost_per_hour_usd: float
    """n_models x single_instance_count x price of single_instance_type."""
    savings_per_hour_usd: float
    savings_ratio: float
    """single-endpoint cost / MME cost."""


def mme_vs_single_endpoints(
    n_models: int,
    mme_instance: str,
    *,
    mme_instance_count: int = 1,
    single_instance: str | None = None,
    single_instance_count: int = 1,
    catalog: InstanceCatalog = DEFAULT_CATALOG,
) -> HostingComparison:
    """Hourly cost of one MME against ``n_models`` single-model endpoints.

    ``single_instance`` defaults to the smallest (cheapest) instance of the MME's family, the
    least a dedicated endpoint per model would cost.
    """
    mme = catalog.get(mme_instance)
    if single_instance is None:
        family = mme.name.rsplit(".", 1)[0] + "."
        same_family = [p for p in catalog if p.name.startswith(family)]
        single = min(same_family, key=lambda p: p.price_per_hour_usd)
    else:
        single = catalog.get(single_instance)
    mme_hourly = mme.price_per_hour_usd * mme_instance_count
    single_hourly = single.price_per_hour_usd * single_instance_count * n_models
    return HostingComparison(
        n_models=n_models,
        mme_instance_type=mme.name,
        mme_instance_count=mme_instance_count,
        mme_cost_per_hour_usd=mme_hourly,
        single_instance_type=single.name,
        single_instance_count=single_instance_count,
        single_endpoints_cost_per_hour_usd=single_hourly,
        savings_per_hour_usd=single_hourly - mme_hourly,
        savings_ratio=single_hourly / mme_hourly if mme_hourly else math.inf,
    )


class Candidate(BaseModel):
    """One measured configuration."""

    label: str
    """How the report names it (usually the instance type)."""
    instance_type: str
    instance_count: int = 1
    requests: int
    failures: int
    rps: float
    """Successful requests per second."""
    p99_ms: float | None
    """Exact client-side p99 latency, ms."""


class Recommendation(BaseModel):
    """The cheapest candidate that meets the budget, or None, and why."""

    p99_budget_ms: float
    chosen: str | None
    """Label of the chosen candidate."""
    explanation: str
    rejected: dict[str, str] = Field(default_factory=dict)
    """Label -> why it was not chosen."""
    costs: dict[str, EndpointCost] = Field(default_factory=dict)


def recommend(
    candidates: list[Candidate],
    *,
    p99_budget_ms: float = DEFAULT_P99_BUDGET_MS,
    catalog: InstanceCatalog = DEFAULT_CATALOG,
) -> Recommendation:
    """Pick the cheapest per hour among candidates with zero failures and p99 within budget."""
    costs = {
        c.label: endpoint_cost(c.instance_type, c.rps, instance_count=c.instance_count, catalog=catalog)
        for c in candidates
    }
    rejected: dict[str, str] = {}
    eligible: list[Candidate] = []
    for c in candidates:
        if c.requests == 0:
            rejected[c.label] = "it answered no requests"
        elif c.failures > 0:
            rejected[c.label] = f"{c.failures} of {c.requests} requests failed"
        elif c.p99_ms is None or c.p99_ms > p99_budget_ms:
            rejected[c.label] = f"p99 {_ms(c.p99_ms)} is over the {p99_budget_ms:g} ms budget"
        else:
            eligible.append(c)
    if not eligible:
        why = "; ".join(f"{label}: {reason}" for label, reason in rejected.items())
        return Recommendation(
            p99_budget_ms=p99_budget_ms,
            chosen=None,
            explanation=(
                f"No configuration met p99 <= {p99_budget_ms:g} ms with zero failures ({why}). "
                "Try a larger instance type, more instances, or fewer models per endpoint."
            ),
            rejected=rejected,
            costs=costs,
        )
    best = min(eligible, key=lambda c: (costs[c.label].cost_per_hour_usd, -c.rps))
    cost = costs[best.label]
    parts = [
        f"{best.label} is the cheapest configuration that met p99 <= {p99_budget_ms:g} ms with "
        f"zero failures: p99 {_ms(best.p99_ms)}, {best.rps:.1f} req/s, "
        f"${cost.cost_per_hour_usd:.3f}/hour ({cost.instance_count} x ${cost.price_per_hour_usd:.3f}, "
        f"prices as of {cost.price_as_of}), ${cost.cost_per_million_usd:.2f} per million inferences "
        "at the measured throughput."
    ]
    for c in eligible:
        if c is not best:
            other = costs[c.label]
            parts.append(
                f"{c.label} also met the budget but costs ${other.cost_per_hour_usd:.3f}/hour."
            )
    for label, reason in rejected.items():
        parts.append(f"{label} was rejected because {reason}.")
    return Recommendation(
        p99_budget_ms=p99_budget_ms,
        chosen=best.label,
        explanation=" ".join(parts),
        rejected=rejected,
        costs=costs,
    )


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"
