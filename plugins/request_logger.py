"""The request log: one JSON line per request through loguru, on the ``request`` channel.

It holds the request id, the model asked, the provider instance and upstream model that
served it, every attempt with its outcome, the status, total latency, time to first token
for streams and the token usage. Never prompt or completion text, never a key.

The records finished in one turn of the event loop go out together as one loguru message (one
JSON line each) at the start of the next turn: a loguru call costs 10-50 us, nearly all of it
per call, not per line, and the client's response is not held behind it. (Waiting 20 ms for
bigger batches saved another 3% of CPU at 16 in flight, but delays each line enough to race
test harnesses that read the log right after a response.) Lines are not dropped on a normal
stop: what is pending is flushed at shutdown; outside a running loop a record is emitted at
once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from loguru import logger
from plugway.context import RequestContext
from plugway.hooks import hookimpl

#: Writes no prompt or completion text anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False


CHANNEL = "request"
_log = logger.bind(channel=CHANNEL)
_pending: list[str] = []
# When the scheduled flush was due: a flush overdue by a second (its loop was stopped) is
# scheduled again on the current loop, so no record is stranded.
_due = [0.0]


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
    } | _tool_call(ctx)


def _tool_call(ctx: RequestContext) -> dict[str, Any]:
    """An MCP tool call's own fields: server, tool, team, outcome and sizes (characters of
    arguments and result), never the arguments or the result themselves."""
    call = ctx.state.get("mcp.call")
    if call is None:
        return {}
    sizes = ctx.state.get("mcp.sizes") or (None, None)
    return {
        "mcp": {
            "server": call.server,
            "tool": call.tool,
            "team": ctx.tags.get("team"),
            "outcome": ctx.state.get("mcp.outcome"),
            "arguments_chars": sizes[0],
            "result_chars": sizes[1],
        }
    }


def flush() -> None:
    """Emit every pending record now (also those another thread's loop appends meanwhile:
    ``del`` of the copied slice keeps them, and the loop re-checks)."""
    while _pending:
        batch = _pending[:]
        del _pending[: len(batch)]
        _log.info("\n".join(batch))


@hookimpl(trylast=True)
def post_response(ctx: RequestContext) -> None:
    _pending.append(orjson.dumps(request_record(ctx)).decode())
    now = time.monotonic()
    if len(_pending) == 1 or now > _due[0] + 1.0:
        try:
            asyncio.get_running_loop().call_soon(flush)
            _due[0] = now
        except RuntimeError:
            flush()


@hookimpl
def plugway_shutdown() -> None:
    flush()
