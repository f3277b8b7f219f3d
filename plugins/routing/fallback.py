"""The ``fallback`` strategy: try the targets in the order the config lists them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from plugway.context import RequestContext, Target
from plugway.hooks import hookimpl
from plugway.routing import StrategyEnv


class Fallback:
    """Config order, every time."""

    def __init__(self, env: StrategyEnv) -> None:
        self.env = env

    def plan(self, ctx: RequestContext, candidates: Sequence[Target]) -> list[Target]:
        return list(candidates)


@hookimpl
def register_strategies(register: Callable[..., None]) -> None:
    register("fallback", Fallback)
