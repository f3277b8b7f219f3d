"""The MCP gateway: upstream MCP servers from ``[mcp.servers.NAME]`` served at ``/mcp/{server}``
and ``/mcp`` behind the gateway's keys, scopes, limits, filters and logs (see
:mod:`plugway.plugins.mcp.plugin`)."""
