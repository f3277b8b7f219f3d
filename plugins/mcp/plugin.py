"""The MCP gateway plugin: MCP servers from ``[mcp.servers.NAME]`` behind the gateway.

* ``POST /mcp/{server}``: one server, its tools under their own names.
* ``POST /mcp``: every server the caller may use, tools and prompts named
  ``{server}__{tool}``.

Both authenticate with the gateway's own keys (``Authorization: Bearer``; 401 without a
valid one when keys are on), scope tools by the key's ``mcp_tools`` globs, and send every
``tools/call`` through ``pre_route`` (rate limits, budgets), ``pre_tool_call`` /
``post_tool_call`` (filters) and ``post_response`` (the log line, metrics, the audit row).
The upstream servers' state is in ``/ready`` (``detail.mcp``) and ``/-/plugins``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from plugway.config import Config
from plugway.errors import NotFound
from plugway.hooks import hookimpl
from plugway.plugins.mcp.config import McpSettings, check
from plugway.plugins.mcp.scopes import Caller
from plugway.redact import register_secret
from sanic import HTTPResponse, Request, Sanic

if TYPE_CHECKING:
    from plugway.gateway import Gateway
    from plugway.plugins.mcp import inbound

# The mcp SDK is an optional extra (``pip install 'plugway[mcp]'``): this module loads without
# it, and the modules that use it are imported only once a server is configured.

#: Passes tool arguments and results through; stores none of them.
PLUGWAY_RETAINS_CONTENT = False

NAME = "mcp"


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    register(NAME, McpSettings, section=True)


@hookimpl
def check_config(config: Config) -> list[str] | None:
    settings: McpSettings = config.plugin_settings[NAME]
    problems = check(settings)
    if settings.servers and importlib.util.find_spec("mcp") is None:
        problems.append(
            "mcp.servers: the MCP gateway needs the mcp SDK, which is not installed; run "
            "pip install 'plugway[mcp]' (or remove the [mcp.servers] tables)"
        )
    return problems or None


def plugway_enabled(config: Config) -> bool:
    """Idle (no routes, no cost) until a server is configured."""
    settings: McpSettings = config.plugin_settings[NAME]
    return bool(settings.servers)


@hookimpl
def register_routes(app: Sanic[Any, Any], config: Config) -> None:
    settings: McpSettings = config.plugin_settings[NAME]
    for server in settings.servers.values():
        for value in (*server.headers.values(), *server.env.values()):
            register_secret(value)

    from plugway.plugins.mcp import inbound

    async def serve(request: Request, server: str | None = None) -> HTTPResponse | None:
        runtime: inbound.Runtime = request.app.ctx.mcp
        if server is not None and server not in runtime.pool.upstreams:
            raise NotFound(f"no MCP server named {server!r} is configured", param="server")
        caller = await _caller(request, server)
        if request.method == "GET":
            # No server-initiated stream: nothing lives between requests (the spec's 405).
            return HTTPResponse(
                b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,'
                b'"message":"this endpoint opens no SSE stream; POST requests to it"}}',
                status=405,
                headers={"allow": "POST, DELETE"},
                content_type="application/json",
            )
        token = inbound.bind(
            inbound.Inbound(
                gateway=request.app.ctx.gateway,
                runtime=runtime,
                caller=caller,
                headers=dict(request.headers),
                client_ip=request.remote_addr or request.ip,
            )
        )
        try:
            await inbound.serve_asgi(request, runtime.manager.handle_request)
        finally:
            inbound.unbind(token)
        return None

    methods = ["GET", "POST", "DELETE"]
    app.add_route(serve, "/mcp", methods=methods, name="mcp_all", stream=False)
    app.add_route(serve, "/mcp/<server>", methods=methods, name="mcp_one", stream=False)


async def _caller(request: Request, server: str | None) -> Caller:
    """Who asks: the key the gateway's keys plugin accepts (it refuses a missing or wrong
    one with 401 before this runs), or nobody in particular when keys are off."""
    from plugway.plugins.keys.plugin import authenticator

    auth = authenticator()
    if auth is None or not auth.enabled:
        return Caller(principal=None, key=None, server=server)
    principal = await auth.authenticate(request.headers)
    if principal.master:
        return Caller(principal="master", key=None, server=server)
    assert principal.key is not None
    return Caller(principal=principal.key.id, key=principal.key, server=server)


@hookimpl
async def plugway_startup(app: Sanic[Any, Any], config: Config) -> None:
    from plugway.plugins.mcp import inbound

    gateway: Gateway = app.ctx.gateway
    runtime = inbound.Runtime(config.plugin_settings[NAME], gateway)
    app.ctx.mcp = runtime
    gateway.status[NAME] = runtime.pool.status
    await runtime.start()


@hookimpl
async def plugway_shutdown(app: Sanic[Any, Any]) -> None:
    runtime: inbound.Runtime | None = getattr(app.ctx, "mcp", None)
    if runtime is not None:
        await runtime.stop()
