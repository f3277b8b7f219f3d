"""The ``lowest-cost`` strategy: cheapest estimated request first (estimated prompt tokens
times the input price plus the expected output tokens times the output price). Prices come
from ``RoutingState.price`` (the target's own ``price`` until a price table replaces it);
targets without a price come last, in config order."""

from __future__ import annotations

import math
from collections.abc import Callable

from plugway.context import RequestContext, Target
from plugway.hooks import hookimpl
from plugway.plugins.routing.common import BaseStrategy, request_shape
from plugway.plugins.routing.state import PriceLookup

#: Writes no prompt or completion text anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False


def estimated_cost(
    target: Target, prompt_tokens: int, output_tokens: int, price_of: PriceLookup
) -> float:
    """USD for one request on ``target``, or ``inf`` when its price is unknown."""
    price = price_of(target)
    if price is None:
        return math.inf
    return (prompt_tokens * price.input + output_tokens * price.output) / 1_000_000


class LowestCost(BaseStrategy):
    name = "lowest-cost"

    def order(self, ctx: RequestContext, targets: list[Target]) -> list[Target]:
        shape = request_shape(ctx)
        price_of = self.state.price
        costs = {
            t.key: estimated_cost(t, shape.prompt_tokens, shape.output_tokens, price_of)
            for t in targets
        }
        ctx.trace.scores = {k: v for k, v in costs.items() if math.isfinite(v)}
        return sorted(targets, key=lambda t: costs[t.key])


@hookimpl
def register_strategies(register: Callable[..., None]) -> None:
    register("lowest-cost", LowestCost)
