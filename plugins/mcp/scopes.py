"""Who may see and call which tool, and how tools are named on each endpoint.

``/mcp/{server}`` shows a server's tools under their own names; ``/mcp`` shows every server
the caller may use, each tool (and prompt) named ``{server}__{tool}`` (server names cannot
hold ``__``, so the first ``__`` splits a name). A key's ``mcp_tools`` (``server/tool``
globs; absent means all) decides what it sees *and* what it may call, on both endpoints: a
tool outside it is answered exactly like a tool that does not exist.
"""

from __future__ import annotations

from typing import Any

import attrs

SEPARATOR = "__"


@attrs.frozen
class Caller:
    """One inbound request's identity: the principal, its key record (``None`` for the
    master key or a gateway without keys) and the endpoint's server (``None`` for ``/mcp``)."""

    principal: str | None
    key: Any
    server: str | None

    def may_use(self, server: str, tool: str) -> bool:
        return self.key is None or bool(self.key.allows_tool(server, tool))

    def may_see_server(self, server: str, names: list[str]) -> bool:
        """Whether any of ``names`` (the server's tools) is in scope: a key scoped to other
        servers does not see this server's resources or prompts either."""
        if self.key is None or self.key.mcp_tools is None:
            return True
        return any(self.may_use(server, name) for name in names) or any(
            glob.split("/", 1)[0] == server for glob in self.key.mcp_tools
        )


def public_name(caller: Caller, server: str, name: str) -> str:
    """The name a client sees for ``server``'s tool or prompt ``name``."""
    return name if caller.server is not None else f"{server}{SEPARATOR}{name}"


def resolve(caller: Caller, name: str, servers: list[str]) -> tuple[str, str] | None:
    """``(server, tool)`` for a name a client sent, or ``None`` when it names no server."""
    if caller.server is not None:
        return caller.server, name
    server, sep, tool = name.partition(SEPARATOR)
    if not sep or server not in servers or not tool:
        return None
    return server, tool
