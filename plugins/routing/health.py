"""The ``health`` plugin: a circuit breaker per target, fed by the failure and response
hooks. Consecutive failures or a high error rate put a target in cool-down (open); after the
cool-down one request probes it (half-open); a success closes it, a failure opens it again.
A 429's (or 503's) ``retry-after`` sets the cool-down length.
Only the target's own failures count (:func:`plugway.errors.counts_against_target`: connect,
timeout, reset, 429, 5xx, a malformed answer, a broken stream); a 4xx the request caused and
the gateway's own faults (attempt outcome ``internal``) are not the target's. Strategies read the breakers
through :class:`plugway.plugins.routing.state.HealthBackend` (in-process by default)."""

from __future__ import annotations

from plugway.context import Attempt, RequestContext
from plugway.errors import GatewayError, counts_against_target
from plugway.hooks import hookimpl
from plugway.plugins.routing.common import PROBES
from plugway.plugins.routing.state import routing_state

#: Writes no prompt or completion text anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False


@hookimpl(tryfirst=True)
def on_failure(ctx: RequestContext, attempt: Attempt, error: GatewayError) -> None:
    """Observe only (returns None), first, so a custom policy cannot hide failures."""
    if not counts_against_target(error):
        return  # the target answered (the request was at fault), or the gateway broke
    state = routing_state(ctx.env)
    state.health.record(attempt.target.key, False, state.clock(), error.retry_after)


@hookimpl
def post_response(ctx: RequestContext) -> None:
    state = routing_state(ctx.env)
    now = state.clock()
    recorded = set()
    for attempt in ctx.attempts:
        if attempt.outcome == "ok":
            state.health.record(attempt.target.key, True, now)
        elif attempt.outcome == "broken" and counts_against_target(attempt.error):
            state.health.record(attempt.target.key, False, now)
        elif attempt.outcome == "error" and counts_against_target(attempt.error):
            pass  # recorded by on_failure
        else:
            # Cancelled, refused for the request's sake (4xx) or broken by the gateway: says
            # nothing of the target, so a probe it held goes back.
            continue
        recorded.add(attempt.target.key)
    for key in ctx.state.get(PROBES, ()):
        if key not in recorded:
            state.health.release_probe(key)
