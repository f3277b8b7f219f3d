"""The default failure policy (``on_failure``, trylast so any plugin can override it).

In order:

* A context-window refusal moves on to larger-context targets: those the model names in
  ``fallbacks.context_window``, else the route's targets whose ``context_window`` is larger
  than the failed one's, smallest first. A content-filter refusal moves on to the targets in
  ``fallbacks.content_filter``. Without such targets the refusal is answered.
* Other errors that are not retryable (400/401/403/404/422) stop: the client gets them.
* A retryable error (connection, timeout, 408/409/5xx, a body that is not JSON) is retried on
  the same target when the model has ``retry = { attempts, base, cap }``: up to ``attempts``
  times, after a random wait in ``[0, min(cap, base * 2**n))``, if the wait fits the deadline
  and the retry budget allows it. A 429 is not retried on the same target (it cools down).
* Then the next target of the plan.
* On the last target, an error whose upstream sent ``retry-after`` is retried once after that
  delay, if it fits in what is left of the deadline and the retry budget allows it.
"""

from __future__ import annotations

from plugway.context import Attempt, FailureDecision, RequestContext, Target
from plugway.errors import ContentFiltered, ContextWindowExceeded, GatewayError, UpstreamRateLimited
from plugway.hooks import hookimpl
from plugway.plugins.routing.rules import named_targets
from plugway.plugins.routing.state import routing_state
from plugway.policy import RetryPolicy, RoutePolicy


def backoff(retry: RetryPolicy, n: int, uniform: float) -> float:
    """The wait before retry ``n`` (0-based), for a uniform draw in [0, 1): full jitter."""
    ceiling: float = min(retry.cap, retry.base * 2.0**n)
    return uniform * ceiling


def larger_context(ctx: RequestContext, failed: Target, policy: RoutePolicy) -> list[Target]:
    """Where a context-window refusal on ``failed`` goes next."""
    targets = ctx.route.targets if ctx.route is not None else ()
    tried = {a.target.key for a in ctx.attempts}
    if policy.fallbacks.context_window:
        chosen = named_targets(policy.fallbacks.context_window, targets)
    else:
        floor = failed.context_window or 0
        chosen = sorted(
            (t for t in targets if t.context_window and t.context_window > floor),
            key=lambda t: t.context_window or 0,
        )
    return [t for t in chosen if t.key not in tried]


def redirect(
    ctx: RequestContext, attempt: Attempt, targets: list[Target], why: str
) -> FailureDecision:
    if not targets:
        return FailureDecision.stop(f"{why}: no fallback target")
    ctx.plan[attempt.plan_index + 1 :] = targets
    ctx.trace.notes.append(f"{why} -> {','.join(t.key for t in targets)}")
    return FailureDecision.next(why)


#: Writes no prompt or completion text anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False


@hookimpl(trylast=True)
def on_failure(ctx: RequestContext, attempt: Attempt, error: GatewayError) -> FailureDecision:
    policy = ctx.route.policy if ctx.route is not None else RoutePolicy()
    if isinstance(error, ContextWindowExceeded):
        return redirect(ctx, attempt, larger_context(ctx, attempt.target, policy), "context window")
    if isinstance(error, ContentFiltered):
        tried = {a.target.key for a in ctx.attempts}
        targets = [
            t
            for t in named_targets(
                policy.fallbacks.content_filter, ctx.route.targets if ctx.route else ()
            )
            if t.key not in tried
        ]
        return redirect(ctx, attempt, targets, "content filter")
    if not error.retryable:
        return FailureDecision.stop("not retryable")
    state = routing_state(ctx.env)
    remaining = ctx.remaining()
    retry = policy.retry
    if (
        retry is not None
        and attempt.retry_of_target < retry.attempts
        and not isinstance(error, UpstreamRateLimited)
    ):
        delay = backoff(retry, attempt.retry_of_target, state_random(ctx))
        if remaining is None or delay < remaining:
            if state.budget.try_spend(state.clock()):
                return FailureDecision.retry(delay, "backoff")
            ctx.trace.notes.append("retry budget spent")
    if attempt.plan_index < len(ctx.plan) - 1:
        return FailureDecision.next("retryable")
    if error.retry_after is not None and attempt.retry_of_target == 0:
        fits = remaining is None or error.retry_after < remaining
        if fits and state.budget.try_spend(state.clock()):
            return FailureDecision.retry(error.retry_after, "retry-after")
    return FailureDecision.stop("no target left")


def state_random(ctx: RequestContext) -> float:
    return ctx.env.random.random() if ctx.env is not None else 0.5
