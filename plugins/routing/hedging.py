"""The ``hedging`` plugin: answers ``hedge_delay`` for models with ``hedge = {...}``: the fixed
``after``, or the ``percentile`` of the target's recent time to first token clamped to
``[min, max]`` (``max`` while there are no figures yet). No hedge when the retry budget is
spent: a hedge is an extra upstream call like a retry."""

from __future__ import annotations

from plugway.context import RequestContext, Target
from plugway.hooks import hookimpl
from plugway.plugins.routing.state import routing_state


@hookimpl
def hedge_delay(ctx: RequestContext, target: Target) -> float | None:
    hedge = ctx.route.policy.hedge if ctx.route is not None else None
    if hedge is None:
        return None
    state = routing_state(ctx.env)
    if not state.budget.allows(state.clock()):
        ctx.trace.notes.append("no hedge: retry budget spent")
        return None
    if hedge.after is not None:
        return hedge.after
    assert hedge.percentile is not None
    figure = state.stats.percentile_ttft(target.key, hedge.percentile)
    return hedge.max if figure is None else min(hedge.max, max(hedge.min, figure))
