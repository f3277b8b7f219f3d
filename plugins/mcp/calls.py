"""One MCP tool call through the gateway, as a model call goes through it.

1. A :class:`plugway.context.RequestContext` is made (``endpoint = "mcp.tools/call"``,
   ``model = "mcp/{server}/{tool}"``, ``body`` the server, tool and arguments) and
   ``pre_route`` runs: keys, rate limits, budgets. A refusal there is answered as a
   JSON-RPC error (:class:`Refused`) carrying the gateway's status and code.
2. ``pre_tool_call`` may rewrite the arguments or veto the call.
3. The upstream server is called within its ``timeout``.
4. ``post_tool_call`` sees every outcome and may rewrite the result.
5. ``post_response`` runs once (``response=None``): the request log line, metrics, the audit
   row, the settling of limits and budgets.

After admission every failure (a veto, a timeout, an unreachable server, a tool that failed)
reaches the client as a tool result with ``isError: true``, so an agent reads it as the
tool's answer and goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, Protocol

from plugway.context import RequestContext
from plugway.errors import (
    GatewayError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from plugway.gateway import Gateway
from plugway.plugins.limits import ESTIMATE
from plugway.plugins.mcp.scopes import Caller
from plugway.plugins.mcp.upstream import CallTimeout, Unavailable, Upstream, UpstreamFailed
from plugway.redact import redact
from plugway.tools import ToolCall, ToolResult

ENDPOINT = "mcp.tools/call"
STATE_CALL = "mcp.call"
STATE_OUTCOME = "mcp.outcome"
STATE_SIZES = "mcp.sizes"


class Progress(Protocol):
    """Receives an upstream call's progress notifications as they come."""

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        """One notification: how far, of how much (when known), and what is happening."""


class Refused(Exception):
    """``pre_route`` refused the call (auth, a rate limit, a budget): a JSON-RPC error."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.message)
        self.error = error


def new_context(
    caller: Caller, call: ToolCall, headers: Mapping[str, str], client_ip: str | None
) -> RequestContext:
    ctx = RequestContext(
        endpoint=ENDPOINT,
        body={"server": call.server, "tool": call.tool, "arguments": call.arguments},
        headers=headers,
        model=f"mcp/{call.server}/{call.tool}",
        client_ip=client_ip,
    )
    ctx.state[STATE_CALL] = call
    return ctx


async def call_tool(
    gw: Gateway,
    upstream: Upstream,
    ctx: RequestContext,
    price: float | None = None,
    progress: Progress | None = None,
) -> ToolResult:
    """Run the call in ``ctx`` (see the module docstring); raises :class:`Refused` only.
    The upstream's progress notifications are passed to ``progress`` as they come."""
    call: ToolCall = ctx.state[STATE_CALL]
    if price is not None:
        ctx.state[ESTIMATE] = price  # what the limits plugin reserves against budgets
    try:
        await gw.hooks.call_all("pre_route", ctx=ctx)
    except GatewayError as exc:
        _finish(gw, ctx, exc, "refused")
        raise Refused(exc) from None
    except asyncio.CancelledError:
        _finish(gw, ctx, None, "cancelled", status=499)
        raise
    outcome, error = "ok", None
    try:
        result = await _veto_or_call(gw, upstream, ctx, call, progress)
        if result.is_error:
            outcome = "tool_error"
        elif price is not None:
            ctx.cost = price
    except asyncio.CancelledError:
        _finish(gw, ctx, None, "cancelled", status=499)
        raise
    except _Failed as failed:
        outcome, error = failed.outcome, failed.error
        result = ToolResult.error(redact(error.message))
    ctx.ended = time.monotonic()
    ctx.error = error
    ctx.status = error.status if error is not None else 200
    ctx.state[STATE_OUTCOME] = outcome
    try:
        result = await gw.hooks.call_chain("post_tool_call", "result", result, ctx=ctx, call=call)
    except GatewayError as exc:  # a refusal, or a plugin that failed (fails closed)
        outcome, ctx.error = "denied", exc
        result = ToolResult.error(redact(exc.message))
    ctx.state[STATE_SIZES] = (_size(call.arguments), result.size())
    _finish(gw, ctx, ctx.error, outcome)
    return result


class _Failed(Exception):
    def __init__(self, outcome: str, error: GatewayError) -> None:
        super().__init__(error.message)
        self.outcome, self.error = outcome, error


async def _veto_or_call(
    gw: Gateway,
    upstream: Upstream,
    ctx: RequestContext,
    call: ToolCall,
    progress: Progress | None,
) -> ToolResult:
    try:
        await gw.hooks.call_all("pre_tool_call", ctx=ctx, call=call)
    except GatewayError as exc:  # a veto, or a plugin that failed (fails closed)
        raise _Failed("denied", exc) from None
    ctx.body["arguments"] = call.arguments
    try:
        answer = await upstream.request(
            lambda c: c.call_tool(call.tool, call.arguments, progress_callback=progress)
        )
    except CallTimeout as exc:
        raise _Failed("timeout", UpstreamTimeout(str(exc), provider=call.server)) from None
    except Unavailable as exc:
        raise _Failed("unavailable", UpstreamUnavailable(str(exc), provider=call.server)) from None
    except UpstreamFailed as exc:
        message = f"MCP server '{call.server}' answered an error: {exc}"
        raise _Failed("error", UpstreamError(message, provider=call.server)) from None
    return ToolResult.from_mcp(answer.model_dump(mode="json", by_alias=True, exclude_none=True))


def _size(arguments: dict[str, Any]) -> int:
    return len(repr(arguments))


def _finish(
    gw: Gateway,
    ctx: RequestContext,
    error: GatewayError | None,
    outcome: str,
    status: int | None = None,
) -> None:
    ctx.state[STATE_OUTCOME] = outcome
    ctx.error = error
    ctx.status = status or (error.status if error is not None and outcome != "tool_error" else 200)
    ctx.ended = ctx.ended or time.monotonic()
    gw.spawn(gw.hooks.notify("post_response", ctx=ctx, response=None))
