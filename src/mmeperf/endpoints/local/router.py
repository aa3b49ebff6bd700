"""Where a multi-instance local MME sends each request: SageMaker's MME routing, as a pure
decision over the front's view of its instances (no I/O here; :mod:`.fleet` does the sending).

The rule follows "How multi-model endpoints work" in the SageMaker developer guide
(https://docs.aws.amazon.com/sagemaker/latest/dg/how-multi-mode-endpoints-work.html): requests
for a model keep going to an instance where the model is already loaded; "if the model receives
many invocation requests, and there are additional instances", some requests go to another
instance, which downloads and loads it. AWS publishes no number for "many", so here a model is
**hot** when its in-flight requests per holding instance are above ``hot_inflight_per_instance``
(default 4): the next request for it goes to the least loaded instance that does not hold it,
which becomes a holder too. A model no instance holds goes to the least loaded instance
(fewest requests in flight, then fewest models held, then the oldest instance).

``random`` routing (every request to a uniformly random instance: a plain load balancer, no
model affinity) is kept as the baseline that shows what affinity buys.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["InstanceView", "Route", "RouteKind", "Router", "RoutingConfig", "RoutingPolicy"]


class RoutingPolicy(StrEnum):
    """How the front picks an instance."""

    AFFINITY = "affinity"
    """SageMaker's MME routing (module docstring)."""
    RANDOM = "random"
    """A uniformly random instance: no model affinity (the baseline)."""


class RoutingConfig(BaseModel):
    """Options of the front's routing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    policy: RoutingPolicy = RoutingPolicy.AFFINITY
    """``affinity`` (SageMaker's) or ``random`` (the baseline)."""
    hot_inflight_per_instance: float = Field(default=4.0, gt=0)
    """A model is hot when its in-flight requests per holding instance are above this; its
    next request then goes to an instance that does not hold it yet (AWS publishes no number)."""
    seed: int | None = None
    """Seed of the random choices (``random`` policy), for reproducible runs."""


class RouteKind(StrEnum):
    """Why an instance was chosen (counted per kind in the front's metrics)."""

    AFFINITY = "affinity"
    """The instance already held the model."""
    HOT_SPREAD = "hot_spread"
    """The model was hot: it is added to one more instance."""
    NEW_MODEL = "new_model"
    """No instance held the model: the least loaded one gets it."""
    RANDOM = "random"
    """Random routing."""


@dataclass(slots=True)
class InstanceView:
    """What the front knows of one in-service instance: the models it holds (loaded or
    loading, as far as the front can tell) and the requests it has in flight."""

    instance_id: str
    order: int
    """Start order: older instances win ties."""
    models: set[str] = field(default_factory=set)
    inflight: int = 0
    inflight_by_model: dict[str, int] = field(default_factory=dict)

    def begin(self, model: str) -> None:
        self.inflight += 1
        self.inflight_by_model[model] = self.inflight_by_model.get(model, 0) + 1

    def end(self, model: str) -> None:
        self.inflight -= 1
        left = self.inflight_by_model.get(model, 0) - 1
        if left > 0:
            self.inflight_by_model[model] = left
        else:
            self.inflight_by_model.pop(model, None)

    def load_key(self) -> tuple[int, int, int]:
        """Smaller is less loaded: requests in flight, then models held, then age."""
        return (self.inflight, len(self.models), self.order)


@dataclass(frozen=True, slots=True)
class Route:
    """A routing decision."""

    instance_id: str
    kind: RouteKind


class Router:
    """Chooses an instance per request and keeps the holder sets the choice reads.

    Mutated from one thread only (the front's event loop): :meth:`choose` records the request
    as in flight on the chosen instance and marks the model held there; :meth:`finish` ends it.
    """

    def __init__(self, config: RoutingConfig | None = None) -> None:
        self.config = config or RoutingConfig()
        self._instances: dict[str, InstanceView] = {}
        self._random = random.Random(self.config.seed)
        self._order = 0
        self.routes: dict[RouteKind, int] = dict.fromkeys(RouteKind, 0)

    # --- instances --------------------------------------------------------------------------

    def add_instance(self, instance_id: str) -> InstanceView:
        """Start routing to ``instance_id`` (an instance that just came into service)."""
        view = InstanceView(instance_id, self._order)
        self._order += 1
        self._instances[instance_id] = view
        return view

    def remove_instance(self, instance_id: str) -> None:
        """Stop routing to ``instance_id`` (draining or gone); its requests in flight finish."""
        self._instances.pop(instance_id, None)

    @property
    def instance_ids(self) -> list[str]:
        return list(self._instances)

    def view(self, instance_id: str) -> InstanceView | None:
        return self._instances.get(instance_id)

    def holders(self, model: str) -> list[str]:
        """Instances that hold ``model`` (as the front knows it)."""
        return [v.instance_id for v in self._instances.values() if model in v.models]

    def sync_models(self, instance_id: str, models: Iterable[str]) -> None:
        """Replace what ``instance_id`` holds with its own listing (an instance unloads models
        on its own, by LRU); models with requests in flight there stay held."""
        view = self._instances.get(instance_id)
        if view is not None:
            view.models = set(models) | set(view.inflight_by_model)

    def forget(self, instance_id: str, model: str) -> None:
        """``model`` is not on ``instance_id`` after all (its load failed or it was refused)."""
        view = self._instances.get(instance_id)
        if view is not None and model not in view.inflight_by_model:
            view.models.discard(model)

    # --- requests ---------------------------------------------------------------------------

    def choose(self, model: str) -> Route | None:
        """The instance for one request for ``model`` (None: no instance in service). The
        request counts as in flight there until :meth:`finish`."""
        views = list(self._instances.values())
        if not views:
            return None
        if self.config.policy is RoutingPolicy.RANDOM:
            view, kind = self._random.choice(views), RouteKind.RANDOM
        else:
            view, kind = self._affinity(model, views)
        view.models.add(model)
        view.begin(model)
        self.routes[kind] += 1
        return Route(view.instance_id, kind)

    def _affinity(self, model: str, views: list[InstanceView]) -> tuple[InstanceView, RouteKind]:
        holders = [v for v in views if model in v.models]
        if not holders:
            return min(views, key=InstanceView.load_key), RouteKind.NEW_MODEL
        inflight = sum(v.inflight_by_model.get(model, 0) for v in holders)
        if inflight / len(holders) > self.config.hot_inflight_per_instance and len(holders) < len(views):
            others = [v for v in views if model not in v.models]
            return min(others, key=InstanceView.load_key), RouteKind.HOT_SPREAD
        return min(holders, key=InstanceView.load_key), RouteKind.AFFINITY

    def finish(self, instance_id: str, model: str) -> None:
        """The request for ``model`` on ``instance_id`` was answered (or failed)."""
        view = self._instances.get(instance_id)
        if view is not None:
            view.end(model)
