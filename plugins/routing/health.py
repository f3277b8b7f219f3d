"""The ``health`` plugin: a circuit breaker per target, fed by the failure and response
hooks. Consecutive failures or a high error rate put a target in cool-down (open); after the
cool-down one request probes it (half-open); a success closes it, a failure opens it again.
A 429's (or 503's) ``retry-after`` sets the cool-down length. Strategies read the breakers
through :class:`plugway.plugins.routing.state.HealthBackend` (in-process by default)."""

from __future__ import annotations

from plugway.context import Attempt, RequestContext
from plugway.errors import GatewayError
from plugway.hooks import hookimpl
from plugway.plugins.routing.common import PROBES
from plugway.plugins.routing.state import routing_state

#: Writes no prompt or completion text anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False


@hookimpl(tryfirst=True)
def on_failure(ctx: RequestContext, attempt: Attempt, error: GatewayError) -> None:
    """Observe only (returns None), first, so a custom policy cannot hide failures."""
    if not error.retryable:
        return  # the target answered; the request was at fault
    state = routing_state(ctx.env)
    state.health.record(attempt.target.key, False, state.clock(), error.retry_after)


@hookimpl
def post_response(ctx: RequestContext) -> None:
    state = routing_state(ctx.env)
    now = state.clock()
    attempted = set()
    for attempt in ctx.attempts:
        attempted.add(attempt.target.key)
        if attempt.outcome == "ok":
            state.health.record(attempt.target.key, True, now)
        elif attempt.outcome == "broken":
            state.health.record(attempt.target.key, False, now)
        elif attempt.outcome == "cancelled":
            attempted.discard(attempt.target.key)
    for key in ctx.state.get(PROBES, ()):
        if key not in attempted:
            state.health.release_probe(key)
