"""The request log: one JSON line per request through loguru, on the ``request`` channel.

It holds the request id, the model asked, the provider instance and upstream model that
served it, every attempt with its outcome, the status, total latency, time to first token
for streams and the token usage. Never prompt or completion text, never a key.
"""

from __future__ import annotations

from typing import Any

import orjson
from loguru import logger
from plugway.context import RequestContext
from plugway.hooks import hookimpl

#: Writes no prompt or completion text anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False


CHANNEL = "request"
_log = logger.bind(channel=CHANNEL)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def request_record(ctx: RequestContext) -> dict[str, Any]:
    """The log-safe summary of one finished request."""
    served = ctx.served_by or (ctx.final_attempt.target if ctx.final_attempt else None)
    return {
        "event": "request",
        "request_id": ctx.request_id,
        "endpoint": ctx.endpoint,
        "model": ctx.model,
        "stream": ctx.stream,
        "principal": ctx.principal,
        "provider": served.provider if served else None,
        "upstream_model": served.model if served else None,
        "status": ctx.status,
        "error": None if ctx.error is None else ctx.error.code or type(ctx.error).__name__,
        "attempts": [attempt.summary() for attempt in ctx.attempts],
        "latency_ms": _ms(None if ctx.ended is None else ctx.ended - ctx.started),
        "ttft_ms": _ms(None if ctx.first_token_at is None else ctx.first_token_at - ctx.started),
        "usage": ctx.usage,
        "cost": ctx.cost,
        "finish_reason": ctx.finish_reason,
        "tags": ctx.tags or None,
        "route": ctx.trace.summary(ctx.attempts),
    }


@hookimpl(trylast=True)
def post_response(ctx: RequestContext) -> None:
    _log.info(orjson.dumps(request_record(ctx)).decode())
