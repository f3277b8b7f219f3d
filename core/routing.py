"""Model names to routes, and the core's own ``select_provider`` impl that applies the
strategy a route names."""

from __future__ import annotations

import inspect
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import attrs
from plugway.context import RequestContext, Route, Target
from plugway.errors import ModelNotFound
from plugway.hooks import hookimpl

S = TypeVar("S")


@attrs.define
class StrategyEnv:
    """What a strategy may depend on, injectable so tests are exact: a monotonic ``clock``
    and a ``random`` source.

    One per gateway (per worker). ``settings`` are the plugins' validated settings by name
    (``config.plugin_settings``, set by the gateway). ``shared`` holds the objects routing
    plugins share between their strategies and request hooks (health, latency figures),
    made once through :meth:`service`; hooks reach it as ``ctx.env``.
    """

    clock: Callable[[], float] = time.monotonic
    random: random.Random = attrs.field(factory=random.Random)
    settings: Mapping[str, Any] = attrs.field(factory=dict)
    shared: dict[str, Any] = attrs.field(factory=dict)

    def service(self, name: str, factory: Callable[[StrategyEnv], S]) -> S:
        """The shared object ``name``, made by ``factory(self)`` on first use."""
        if name not in self.shared:
            self.shared[name] = factory(self)
        found: S = self.shared[name]
        return found


class Strategy(Protocol):
    """A routing strategy: orders the candidates of one request into a plan."""

    def plan(
        self, ctx: RequestContext, candidates: Sequence[Target]
    ) -> list[Target] | Awaitable[list[Target]]: ...


class Router:
    """Resolves the ``model`` a client sent to a route.

    A configured model name wins; otherwise ``provider/model`` addresses one target of a
    configured provider directly.
    """

    def __init__(
        self, routes: Mapping[str, Route], providers: Sequence[str], default_deadline: float
    ) -> None:
        self.routes = dict(routes)
        self.providers = frozenset(providers)
        self.default_deadline = default_deadline

    def resolve(self, model: str) -> Route:
        route = self.routes.get(model)
        if route is not None:
            return route
        provider, sep, upstream_model = model.partition("/")
        if sep and upstream_model and provider in self.providers:
            return Route(
                name=model,
                targets=(Target(provider=provider, model=upstream_model),),
                deadline=self.default_deadline,
            )
        raise ModelNotFound(
            f"The model '{model}' does not exist on this gateway. GET /v1/models lists the "
            "models it serves; a configured provider's model can also be asked for as "
            "'provider/model'.",
            param="model",
        )

    def model_names(self) -> list[str]:
        return list(self.routes)


class StrategyDispatch:
    """The core's ``select_provider`` impl. It runs last, so any plugin's impl that returns a
    plan wins over it; it applies the strategy the route names."""

    def __init__(self, strategies: Mapping[str, Strategy]) -> None:
        self.strategies = strategies

    @hookimpl(trylast=True)
    async def select_provider(
        self, ctx: RequestContext, candidates: Sequence[Target]
    ) -> list[Target] | None:
        route = ctx.route
        name = route.strategy if route is not None else "fallback"
        strategy = self.strategies[name]
        ctx.trace.strategy = name
        plan = strategy.plan(ctx, candidates)
        if inspect.isawaitable(plan):
            plan = await plan
        return list(plan)
