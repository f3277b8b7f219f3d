"""The ``least-busy`` strategy: fewest attempts in flight first (ties broken at random).
The counts come from the ``routing_stats`` plugin's attempt hooks."""

from __future__ import annotations

from collections.abc import Callable

from plugway.context import RequestContext, Target
from plugway.hooks import hookimpl
from plugway.plugins.routing.common import BaseStrategy

#: Writes no prompt or completion text anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False


class LeastBusy(BaseStrategy):
    name = "least-busy"

    def order(self, ctx: RequestContext, targets: list[Target]) -> list[Target]:
        stats = self.state.stats
        busy = {t.key: stats.of(t.key).in_flight for t in targets}
        ctx.trace.scores = {k: float(v) for k, v in busy.items()}
        rng = self.env.random
        ties = {t.key: rng.random() for t in targets}
        return sorted(targets, key=lambda t: (busy[t.key], ties[t.key]))


@hookimpl
def register_strategies(register: Callable[..., None]) -> None:
    register("least-busy", LeastBusy)
