"""The ``routing_stats`` plugin: watches attempts start and end to keep each target's
in-flight count and decaying latency and time-to-first-token averages (read by least-busy,
least-latency and hedging), and counts requests for the retry budget."""

from __future__ import annotations

from plugway.context import Attempt, RequestContext
from plugway.hooks import hookimpl
from plugway.plugins.routing.state import routing_state

#: Writes no prompt or completion text anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False


@hookimpl
def attempt_started(ctx: RequestContext, attempt: Attempt) -> None:
    state = routing_state(ctx.env)
    state.stats.of(attempt.target.key).in_flight += 1
    if attempt.number == 1:
        state.budget.request(state.clock())


@hookimpl
def attempt_ended(ctx: RequestContext, attempt: Attempt) -> None:
    state = routing_state(ctx.env)
    key = attempt.target.key
    stats = state.stats.of(key)
    stats.in_flight = max(0, stats.in_flight - 1)
    latency = attempt.latency
    if latency is None or attempt.outcome == "cancelled":
        return
    if attempt.outcome == "ok" or attempt.status == 504:
        # An attempt's own latency is the time to first token for a stream (the attempt
        # ends at the first event) and the whole latency otherwise; a timeout counts as slow.
        state.stats.add_ttft(key, latency)
        if not ctx.stream:
            state.stats.add_latency(key, latency)


@hookimpl
def post_response(ctx: RequestContext) -> None:
    attempt = ctx.final_attempt
    if ctx.stream and attempt is not None and attempt.outcome == "ok" and ctx.ended:
        routing_state(ctx.env).stats.add_latency(attempt.target.key, ctx.ended - attempt.started)
