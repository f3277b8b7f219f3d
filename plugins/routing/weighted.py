"""The ``weighted`` strategy: the first target is drawn at random in proportion to
``weight``; the rest follow in further weighted draws, so failover order is weighted too.
Targets of weight 0 come last, as a reserve."""

from __future__ import annotations

from collections.abc import Callable
from random import Random

from plugway.context import RequestContext, Target
from plugway.hooks import hookimpl
from plugway.plugins.routing.common import BaseStrategy

#: Writes no prompt or completion text anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False


def weighted_order(targets: list[Target], rng: Random) -> list[Target]:
    """A weighted random permutation (draws without replacement)."""
    pool = [t for t in targets if t.weight > 0]
    reserve = [t for t in targets if t.weight <= 0]
    out = []
    while pool:
        total = sum(t.weight for t in pool)
        point = rng.random() * total
        for i, target in enumerate(pool):
            point -= target.weight
            if point < 0 or i == len(pool) - 1:
                out.append(pool.pop(i))
                break
    return out + reserve


class Weighted(BaseStrategy):
    name = "weighted"

    def order(self, ctx: RequestContext, targets: list[Target]) -> list[Target]:
        total = sum(t.weight for t in targets if t.weight > 0)
        if total:
            ctx.trace.scores = {t.key: t.weight / total for t in targets}
        return weighted_order(targets, self.env.random)


@hookimpl
def register_strategies(register: Callable[..., None]) -> None:
    register("weighted", Weighted)
