"""The inbound MCP endpoints: ``/mcp/{server}`` and ``/mcp``, served by the mcp SDK.

The SDK's low-level ``Server`` speaks the protocol, both eras (the 2026-07-28 per-request
envelope with ``server/discover``, and the 2025-06-18/2025-11-25 initialize handshake),
through its Streamable HTTP session manager in *stateless, JSON-response* mode: no session
lives between HTTP requests, so any worker (or machine) can answer any request and
``--workers N`` needs no affinity. Sanic is not an ASGI server, so :func:`serve_asgi` hands
each request to the manager as one ASGI call.

Who is asking travels with the request in a context variable (:data:`_inbound`), read by
the handlers: the caller's key scopes what is listed and what may be called.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import mcp_types as types
from loguru import logger
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from plugway.gateway import Gateway
from plugway.plugins.mcp import calls
from plugway.plugins.mcp.config import McpSettings
from plugway.plugins.mcp.scopes import Caller, public_name, resolve
from plugway.plugins.mcp.upstream import (
    CallTimeout,
    Pool,
    Unavailable,
    Upstream,
    UpstreamFailed,
)
from plugway.tools import ToolCall
from sanic import Request

#: JSON-RPC error code for a call the gateway refused (auth, a rate limit, a budget);
#: ``data`` carries the gateway's ``status``, ``type`` and ``code``.
REFUSED = -32040
#: JSON-RPC error code for an upstream server that cannot be reached.
UNAVAILABLE = -32050


@attrs.define
class Inbound:
    """One inbound HTTP request, as the handlers need it."""

    gateway: Gateway
    runtime: Runtime
    caller: Caller
    headers: dict[str, str]
    client_ip: str | None


_inbound: contextvars.ContextVar[Inbound] = contextvars.ContextVar("plugway_mcp_inbound")


class Runtime:
    """One worker's MCP gateway: the upstream pool, the SDK server and its session manager."""

    def __init__(self, settings: McpSettings, gateway: Gateway) -> None:
        self.settings = settings
        self.gateway = gateway
        self.pool = Pool(settings)
        self.server = _make_server()
        # SSE answers (not plain JSON) so that a call's progress notifications reach the
        # client on its own response stream; still no session between requests.
        self.manager = StreamableHTTPSessionManager(
            app=self.server, json_response=False, stateless=True
        )
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Run the session manager in a task of its own (anyio scopes stay in one task)."""
        started = asyncio.Event()

        async def run() -> None:
            async with self.manager.run():
                started.set()
                await self._stop.wait()

        self._task = asyncio.get_running_loop().create_task(run(), name="mcp-session-manager")
        await started.wait()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._task, 5)
        await self.pool.aclose()

    def servers_for(self, caller: Caller) -> list[Upstream]:
        if caller.server is not None:
            return [self.pool.upstreams[caller.server]]
        return list(self.pool.upstreams.values())

    async def tools_of(self, upstream: Upstream) -> list[dict[str, Any]]:
        """The server's tools after ``tools_listed`` (cached with the raw list)."""

        tools = await upstream.listing("tools", self.settings.tools_cache_seconds)
        cached = upstream.prepared
        if cached is not None and cached[0] is tools:
            return cached[1]
        listed = [dict(tool) for tool in tools]
        await self.gateway.hooks.call_all("tools_listed", server=upstream.name, tools=listed)
        upstream.prepared = (tools, listed)
        return listed


async def serve_asgi(request: Request, app: Callable[[Any, Any, Any], Awaitable[None]]) -> None:
    """Hand one Sanic request to an ASGI app and stream its answer back."""
    body_sent = False
    done = asyncio.Event()
    headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in request.headers.items()
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.path.encode(),
        "root_path": "",
        "query_string": request.query_string.encode("latin-1"),
        "headers": headers,
        "client": (request.remote_addr or request.ip, 0),
        "server": (request.server_name, request.server_port),
    }

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": request.body or b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    response: Any = None
    start: dict[str, Any] = {}

    async def send(message: dict[str, Any]) -> None:
        nonlocal response
        if message["type"] == "http.response.start":
            start.update(message)
            return
        if message["type"] != "http.response.body":
            return
        if response is None:
            out = {
                name.decode("latin-1"): value.decode("latin-1")
                for name, value in start.get("headers", [])
                if name.lower() not in (b"content-length", b"transfer-encoding")
            }
            content_type = out.pop("content-type", "application/json")
            response = await request.respond(
                status=start.get("status", 200), headers=out, content_type=content_type
            )
        chunk = message.get("body", b"")
        if chunk:
            await response.send(chunk)
        if not message.get("more_body", False):
            await response.eof()
            done.set()

    try:
        await app(scope, receive, send)
    finally:
        done.set()
    if response is None:  # the app answered nothing: never leave the client hanging
        response = await request.respond(status=500, content_type="application/json")
        await response.eof()


# -- the SDK server's handlers -----------------------------------------------------------------


def _current() -> Inbound:
    try:
        return _inbound.get()
    except LookupError:  # only reachable if the SDK ran a handler outside the request
        raise MCPError(types.INTERNAL_ERROR, "no gateway request in scope") from None


def bind(inbound: Inbound) -> contextvars.Token[Inbound]:
    return _inbound.set(inbound)


def unbind(token: contextvars.Token[Inbound]) -> None:
    _inbound.reset(token)


async def _visible_tools(inbound: Inbound) -> list[tuple[Upstream, list[dict[str, Any]]]]:
    """Each usable server with the tools the caller may see. On ``/mcp`` a server that
    fails is left out (and logged); on ``/mcp/{server}`` its failure is the answer."""
    caller, runtime = inbound.caller, inbound.runtime
    upstreams = runtime.servers_for(caller)
    results = await asyncio.gather(
        *(runtime.tools_of(up) for up in upstreams), return_exceptions=True
    )
    out = []
    for upstream, result in zip(upstreams, results, strict=True):
        if isinstance(result, BaseException):
            if caller.server is not None:
                raise _as_mcp_error(result)
            logger.info("MCP server {!r} left out of /mcp: {}", upstream.name, result)
            continue
        tools = [t for t in result if caller.may_use(upstream.name, str(t.get("name")))]
        out.append((upstream, tools))
    return out


def _as_mcp_error(exc: BaseException) -> MCPError:
    if isinstance(exc, MCPError):
        return exc
    if isinstance(exc, Unavailable):
        return MCPError(UNAVAILABLE, str(exc))
    if isinstance(exc, UpstreamFailed):
        return MCPError(types.INTERNAL_ERROR, f"the upstream MCP server answered: {exc}")
    if isinstance(exc, CallTimeout):
        return MCPError(UNAVAILABLE, str(exc))
    logger.opt(exception=exc).error("MCP gateway: unexpected error")
    return MCPError(types.INTERNAL_ERROR, "the gateway failed on this request; see its log")


async def _list_tools(
    _ctx: ServerRequestContext[Any], _params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    inbound = _current()
    tools = []
    for upstream, listed in await _visible_tools(inbound):
        for tool in listed:
            shown = dict(tool, name=public_name(inbound.caller, upstream.name, tool["name"]))
            tools.append(types.Tool.model_validate(shown))
    return types.ListToolsResult(tools=tools)


async def _call_tool(
    ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
) -> types.CallToolResult:
    inbound = _current()
    caller, runtime = inbound.caller, inbound.runtime
    target = resolve(caller, params.name, list(runtime.pool.upstreams))
    if target is None or not caller.may_use(*target):
        raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name}")
    server, tool = target
    upstream = runtime.pool.upstreams[server]
    try:
        listed = await runtime.tools_of(upstream)
    except (Unavailable, UpstreamFailed) as exc:
        listed = None  # the call itself reports the failure (and is logged)
        logger.debug("MCP server {!r}: tools not listed before a call: {}", server, exc)
    except Exception as exc:
        raise _as_mcp_error(exc) from None
    if listed is not None and not any(t.get("name") == tool for t in listed):
        raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name}")
    call = ToolCall(server=server, tool=tool, arguments=dict(params.arguments or {}))
    call_ctx = calls.new_context(caller, call, inbound.headers, inbound.client_ip)
    price = runtime.settings.servers[server].price_per_call
    try:
        result = await calls.call_tool(
            inbound.gateway, upstream, call_ctx, price, progress=ctx.session.report_progress
        )
    except calls.Refused as refused:
        error = refused.error
        raise MCPError(
            REFUSED,
            error.message,
            {"status": error.status, "type": error.error_type, "code": error.code},
        ) from None
    return types.CallToolResult.model_validate(result.to_mcp())


async def _visible_upstreams(inbound: Inbound) -> list[Upstream]:
    """The servers whose resources and prompts the caller may see: those with a tool in
    its scope (or named by a glob), and that answer."""
    caller = inbound.caller
    out = []
    for upstream in inbound.runtime.servers_for(caller):
        if caller.key is None or caller.key.mcp_tools is None:
            out.append(upstream)
            continue
        try:
            names = [str(t.get("name")) for t in await inbound.runtime.tools_of(upstream)]
        except Exception:
            names = []
        if caller.may_see_server(upstream.name, names):
            out.append(upstream)
    return out


async def _gather_lists(inbound: Inbound, kind: str) -> list[tuple[Upstream, dict[str, Any]]]:
    ttl = inbound.runtime.settings.tools_cache_seconds
    upstreams = await _visible_upstreams(inbound)
    if inbound.caller.server is not None and not upstreams:
        raise MCPError(types.INVALID_PARAMS, "this key may not use this MCP server")
    results = await asyncio.gather(
        *(up.listing(kind, ttl) for up in upstreams), return_exceptions=True
    )
    out = []
    for upstream, result in zip(upstreams, results, strict=True):
        if isinstance(result, BaseException):
            if inbound.caller.server is not None:
                raise _as_mcp_error(result)
            continue
        out += [(upstream, item) for item in result]
    return out


async def _list_resources(
    _ctx: ServerRequestContext[Any], _params: types.PaginatedRequestParams | None
) -> types.ListResourcesResult:
    items = await _gather_lists(_current(), "resources")
    return types.ListResourcesResult(
        resources=[types.Resource.model_validate(item) for _, item in items]
    )


async def _list_resource_templates(
    _ctx: ServerRequestContext[Any], _params: types.PaginatedRequestParams | None
) -> types.ListResourceTemplatesResult:
    items = await _gather_lists(_current(), "resourceTemplates")
    return types.ListResourceTemplatesResult(
        resource_templates=[types.ResourceTemplate.model_validate(item) for _, item in items]
    )


async def _read_resource(
    _ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
) -> types.ReadResourceResult:
    inbound = _current()
    uri = str(params.uri)
    if inbound.caller.server is not None:
        upstreams = await _visible_upstreams(inbound)
    else:  # /mcp: the server that lists this URI
        listed = await _gather_lists(inbound, "resources")
        upstreams = [up for up, item in listed if item.get("uri") == uri][:1]
    if not upstreams:
        raise MCPError(types.INVALID_PARAMS, f"Unknown resource: {uri}")
    try:
        answer = await upstreams[0].request(lambda c: c.read_resource(uri))
    except Exception as exc:
        raise _as_mcp_error(exc) from None
    return types.ReadResourceResult.model_validate(
        answer.model_dump(mode="json", by_alias=True, exclude_none=True)
    )


async def _list_prompts(
    _ctx: ServerRequestContext[Any], _params: types.PaginatedRequestParams | None
) -> types.ListPromptsResult:
    inbound = _current()
    items = await _gather_lists(inbound, "prompts")
    return types.ListPromptsResult(
        prompts=[
            types.Prompt.model_validate(
                dict(item, name=public_name(inbound.caller, up.name, str(item.get("name"))))
            )
            for up, item in items
        ]
    )


async def _get_prompt(
    _ctx: ServerRequestContext[Any], params: types.GetPromptRequestParams
) -> types.GetPromptResult:
    inbound = _current()
    target = resolve(inbound.caller, params.name, list(inbound.runtime.pool.upstreams))
    visible = {up.name for up in await _visible_upstreams(inbound)}
    if target is None or target[0] not in visible:
        raise MCPError(types.INVALID_PARAMS, f"Unknown prompt: {params.name}")
    upstream = inbound.runtime.pool.upstreams[target[0]]
    arguments = dict(params.arguments or {})
    try:
        answer = await upstream.request(lambda c: c.get_prompt(target[1], arguments))
    except Exception as exc:
        raise _as_mcp_error(exc) from None
    return types.GetPromptResult.model_validate(
        answer.model_dump(mode="json", by_alias=True, exclude_none=True)
    )


def _make_server() -> Server[Any]:
    return Server(
        "plugway",
        version="0.1.0",
        instructions="Tools of the MCP servers behind this plugway gateway.",
        on_list_tools=_list_tools,
        on_call_tool=_call_tool,
        on_list_resources=_list_resources,
        on_list_resource_templates=_list_resource_templates,
        on_read_resource=_read_resource,
        on_list_prompts=_list_prompts,
        on_get_prompt=_get_prompt,
    )
