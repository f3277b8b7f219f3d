"""The ``hedging`` plugin: answers ``hedge_delay`` for models with ``hedge = {...}``: the fixed
``after``, or the ``percentile`` of the target's recent time to first token clamped to
``[min, max]`` (``max`` while there are no figures yet).

A hedge is an extra upstream call like a retry, so it is paid from the retry budget: one
retry is reserved when the delay is answered (no hedge when the budget is spent), kept when
the hedge starts, and given back when the attempt ends before the delay passed.
"""

from __future__ import annotations

from typing import Any

from plugway.context import Attempt, RequestContext, Target
from plugway.hooks import hookimpl
from plugway.plugins.routing.state import routing_state

#: Writes no prompt or completion text anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False

RESERVED = "hedging.reserved"  # ctx.state: when the budget reservation for a hedge was made


def plugway_enabled(config: Any) -> bool:
    """Idle (unregistered, no hook on the request path) unless some model hedges."""
    return any(model.hedge is not None for model in config.models)


@hookimpl
def hedge_delay(ctx: RequestContext, target: Target) -> float | None:
    hedge = ctx.route.policy.hedge if ctx.route is not None else None
    if hedge is None:
        return None
    state = routing_state(ctx.env)
    now = state.clock()
    if not state.budget.try_spend(now):
        ctx.trace.notes.append("no hedge: retry budget spent")
        return None
    ctx.state[RESERVED] = now
    if hedge.after is not None:
        return hedge.after
    assert hedge.percentile is not None
    figure = state.stats.percentile_ttft(target.key, hedge.percentile)
    return hedge.max if figure is None else min(hedge.max, max(hedge.min, figure))


@hookimpl
def attempt_started(ctx: RequestContext, attempt: Attempt) -> None:
    if attempt.hedge:
        ctx.state.pop(RESERVED, None)  # the reservation is used


@hookimpl
def attempt_ended(ctx: RequestContext, attempt: Attempt) -> None:
    reserved = ctx.state.pop(RESERVED, None) if not attempt.hedge else None
    if reserved is not None:
        routing_state(ctx.env).budget.refund(reserved)
