"""The ``round-robin`` strategy: each request of a model starts one target further along."""

from __future__ import annotations

from collections.abc import Callable

from plugway.context import RequestContext, Target
from plugway.hooks import hookimpl
from plugway.plugins.routing.common import BaseStrategy

#: Writes no prompt or completion text anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False


class RoundRobin(BaseStrategy):
    name = "round-robin"

    def order(self, ctx: RequestContext, targets: list[Target]) -> list[Target]:
        counters = self.state.round_robin
        name = ctx.route.name if ctx.route is not None else ctx.model
        turn = counters.get(name, 0)
        counters[name] = turn + 1
        start = turn % len(targets)
        return targets[start:] + targets[:start]


@hookimpl
def register_strategies(register: Callable[..., None]) -> None:
    register("round-robin", RoundRobin)
