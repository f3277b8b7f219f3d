"""Model names to routes, and the core's own ``select_provider`` impl that applies the
strategy a route names."""

from __future__ import annotations

import fnmatch
import inspect
import random
import re
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


#: The characters that make a ``[[models]] name`` a glob.
GLOB_CHARS = frozenset("*?[")
#: In a pattern route's target, ``model = "{name}"`` is the model name the client asked for.
NAME_PLACEHOLDER = "{name}"
#: Pattern resolutions remembered (model name -> bound route); cleared when full.
MATCHED_CACHE_SIZE = 4096


def is_glob(name: str) -> bool:
    return not GLOB_CHARS.isdisjoint(name)


_REGEX_SPECIAL = frozenset("\\.^$*+?{}[]|()")


def literal_prefix(glob: str) -> str:
    """The part of a glob before its first wildcard."""
    cut = min((i for i, c in enumerate(glob) if c in GLOB_CHARS), default=len(glob))
    return glob[:cut]


def regex_literal_prefix(regex: str) -> str:
    """The plain text every match of ``regex`` starts with (after a leading ``^``), as far
    as a simple scan sees: up to the first special character, less a character that a
    quantifier right after it makes optional."""
    text = regex.removeprefix("^")
    cut = min((i for i, c in enumerate(text) if c in _REGEX_SPECIAL), default=len(text))
    if cut < len(text) and text[cut] in "*?{":
        cut = max(cut - 1, 0)
    return text[:cut]


class Router:
    """Resolves the ``model`` a client sent to a route, most specific first:

    1. an exact ``[[models]] name`` (a dict lookup: the hot path);
    2. a pattern: a glob ``name`` (``claude-*``) or a ``match`` regular expression (a full
       match), the one with the longest literal prefix first (the text before a glob's
       first wildcard; the plain text a regex starts with after its ``^``), config order
       among equals; so ``claude-3-*`` before ``claude-*`` before ``*``;
    3. ``provider/model``, one target of a configured provider addressed directly.

    Patterns are walked only on a miss of (1) and each answer is remembered. A pattern
    route keeps its pattern as its ``name``; in its targets ``{name}`` becomes the model
    name asked for (``model = "{name}"`` sends it on as it is).
    """

    def __init__(
        self, routes: Mapping[str, Route], providers: Sequence[str], default_deadline: float
    ) -> None:
        self.routes = dict(routes)
        self.providers = frozenset(providers)
        self.default_deadline = default_deadline
        self.exact: dict[str, Route] = {}
        patterns: list[tuple[int, Route, re.Pattern[str]]] = []
        for name, route in self.routes.items():
            if route.match is not None:
                prefix = regex_literal_prefix(route.match)
                patterns.append((len(prefix), route, re.compile(route.match)))
            elif is_glob(name):
                prefix = literal_prefix(name)
                patterns.append((len(prefix), route, re.compile(fnmatch.translate(name))))
            else:
                self.exact[name] = route
        patterns.sort(key=lambda item: -item[0])  # stable: config order among equals
        self.patterns = [(route, pattern) for _, route, pattern in patterns]
        self._matched: dict[str, Route] = {}

    def match(self, model: str) -> Route | None:
        """The pattern route for ``model`` with ``{name}`` filled in, or None."""
        found = self._matched.get(model)
        if found is not None:
            return found
        for route, pattern in self.patterns:
            if pattern.fullmatch(model):
                bound = attrs.evolve(
                    route,
                    targets=tuple(
                        attrs.evolve(t, model=t.model.replace(NAME_PLACEHOLDER, model))
                        for t in route.targets
                    ),
                )
                if len(self._matched) >= MATCHED_CACHE_SIZE:
                    self._matched.clear()
                self._matched[model] = bound
                return bound
        return None

    def resolve(self, model: str) -> Route:
        route = self.exact.get(model)
        if route is not None:
            return route
        if self.patterns:
            route = self.match(model)
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
