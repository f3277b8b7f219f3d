"""The default failure policy (``on_failure``, trylast so any plugin can override it).

* A retryable error (connection, timeout, 408/409/429/5xx, a body that is not JSON) moves on
  to the next target of the plan.
* On the last target, an error whose upstream sent ``retry-after`` is retried once after that
  delay, if it fits in what is left of the deadline.
* Anything else (400/401/403/404/422, a context-window or content-filter refusal) stops: the
  client gets that error.
"""

from __future__ import annotations

from plugway.context import Attempt, FailureDecision, RequestContext
from plugway.errors import GatewayError
from plugway.hooks import hookimpl


@hookimpl(trylast=True)
def on_failure(ctx: RequestContext, attempt: Attempt, error: GatewayError) -> FailureDecision:
    if not error.retryable:
        return FailureDecision.stop("not retryable")
    if attempt.plan_index < len(ctx.plan) - 1:
        return FailureDecision.next("retryable")
    if error.retry_after is not None and attempt.retry_of_target == 0:
        remaining = ctx.remaining()
        if remaining is None or error.retry_after < remaining:
            return FailureDecision.retry(error.retry_after, "retry-after")
    return FailureDecision.stop("no target left")
