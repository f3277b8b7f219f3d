"""The ``[mcp]`` section, owned and checked by this plugin.

::

    [mcp]
    tools_cache_seconds = 60        # how long a server's tool list is reused

    [mcp.servers.github]            # Streamable HTTP (or legacy SSE: transport = "sse")
    url = "https://api.githubcopilot.com/mcp/"
    headers = { Authorization = "Bearer ${GITHUB_TOKEN}" }
    timeout = 30                    # seconds per call
    connect_timeout = 5             # seconds to connect (and to answer "unavailable")

    [mcp.servers.files]             # stdio: started by the gateway
    command = "npx"
    args = ["-y", "@modelcontextprotocol/server-filesystem", "/srv/docs"]
    env = { LOG_LEVEL = "warn" }

Server URLs and commands come only from here, never from a client. ``${VAR}`` in any value
(a header's token, say) reads the environment when the config loads.
"""

from __future__ import annotations

import re
from typing import Literal

import attrs

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@attrs.define(kw_only=True)
class ServerSettings:
    """One upstream server: ``url`` (with ``headers``) or ``command`` (with ``args``, ``env``)."""

    url: str | None = None
    transport: Literal["streamable-http", "sse"] = "streamable-http"
    headers: dict[str, str] = attrs.field(factory=dict)
    command: str | None = None
    args: list[str] = attrs.field(factory=list)
    env: dict[str, str] = attrs.field(factory=dict)
    cwd: str | None = None
    #: Seconds one call (tools/call, a list, a read) may take before it ends as an error.
    timeout: float = 60.0
    #: Seconds to connect (start the process, the handshake); a server that does not answer
    #: within it is reported unavailable and tried again after a back-off.
    connect_timeout: float = 10.0
    #: USD charged to the key's and team's budgets for each call that succeeds.
    price_per_call: float | None = None

    @property
    def kind(self) -> str:
        return "stdio" if self.command is not None else self.transport


@attrs.define(kw_only=True)
class McpSettings:
    """``[mcp]``."""

    servers: dict[str, ServerSettings] = attrs.field(factory=dict)
    #: Seconds a server's tool, resource and prompt lists are reused before being fetched
    #: again (a ``list_changed`` notification from the server drops them at once).
    tools_cache_seconds: float = 60.0
    #: Longest back-off, in seconds, between attempts to reach a server that failed.
    max_backoff: float = 30.0


def check(settings: McpSettings) -> list[str]:
    """What the types alone do not catch; each problem names its TOML path and the fix."""
    problems: list[str] = []
    for name, server in settings.servers.items():
        path = f"mcp.servers.{name}"
        if not NAME_PATTERN.match(name) or "__" in name:
            problems.append(
                f"{path}: {name!r} is not a usable server name; use letters, digits, '-' and "
                "single '_' (tools are named SERVER__TOOL on /mcp)"
            )
        if (server.url is None) == (server.command is None):
            problems.append(
                f"{path}: give exactly one of url (a Streamable HTTP server) or command (a "
                'stdio server), e.g. url = "https://example.com/mcp" or command = "uvx"'
            )
            continue
        if server.url is not None:
            if not re.match(r"^https?://[^/\s]+", server.url):
                problems.append(
                    f"{path}.url: {server.url!r} is not an http(s) URL; write it as "
                    '"https://host[:port]/path"'
                )
            for field in ("args", "env", "cwd"):
                if getattr(server, field):
                    problems.append(
                        f"{path}.{field}: only for stdio servers (command = ...); remove it"
                    )
        elif server.headers:
            problems.append(
                f"{path}.headers: only for url servers; give a stdio server its "
                "credentials in env = { ... }"
            )
        elif server.transport != "streamable-http":
            problems.append(f"{path}.transport: only for url servers; remove it")
        for field in ("timeout", "connect_timeout"):
            value = getattr(server, field)
            if value <= 0:
                problems.append(f"{path}.{field}: {value} must be more than 0 seconds")
        if server.price_per_call is not None and server.price_per_call < 0:
            problems.append(f"{path}.price_per_call: must be 0 or more (USD per call)")
    if settings.tools_cache_seconds < 0:
        problems.append("mcp.tools_cache_seconds: must be 0 or more seconds")
    if settings.max_backoff <= 0:
        problems.append("mcp.max_backoff: must be more than 0 seconds")
    return problems
