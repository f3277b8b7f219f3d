"""Connections to the upstream MCP servers: one live session per server per worker.

Each :class:`Upstream` keeps its ``mcp.Client`` open in a task of its own (the SDK's
transports are anyio context managers that must be left in the task that entered them) and
hands the connected client to callers. A server is connected on first use, within its
``connect_timeout``; one that cannot be reached is *unavailable* for a back-off that doubles
with each failure (up to ``max_backoff``), and answers at once during it, so a dead server
never holds up ``/mcp``. A session that breaks (a stdio process that exits, an HTTP server
that goes away) is dropped and made again on the next call: that is how a crashed stdio server
is restarted. Nothing here is shared between workers: each worker runs its own stdio processes
and its own HTTP sessions, and the inbound side is stateless, so any worker can serve any
request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import anyio
import httpx2
import mcp_types as types
from loguru import logger
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from plugway.plugins.mcp.config import McpSettings, ServerSettings

T = TypeVar("T")

#: JSON-RPC error codes that mean the session itself is gone, not that the request failed.
_BROKEN_CODES = frozenset({types.CONNECTION_CLOSED})


class Unavailable(Exception):
    """The server cannot be reached now (it failed to connect, or is backing off)."""


class CallTimeout(Exception):
    """A call took longer than the server's ``timeout``."""


class UpstreamFailed(Exception):
    """The server answered a request with a JSON-RPC error (its message is safe to show)."""


def _dump(model: Any) -> dict[str, Any]:
    out: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return out


class Upstream:
    """One configured server, as seen from one worker."""

    def __init__(self, name: str, settings: ServerSettings, mcp: McpSettings) -> None:
        self.name = name
        self.settings = settings
        self.mcp = mcp
        self.failures = 0
        self.down_until = 0.0
        self.last_error: str | None = None
        self._client: Client | None = None
        self._holder: asyncio.Task[None] | None = None
        self._release: asyncio.Event | None = None
        self._lock = asyncio.Lock()
        self._lists: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        #: The last tool list fetched and what ``tools_listed`` made of it (see inbound).
        self.prepared: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None

    # -- state -------------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """False while the server is backing off after a failure."""
        return self._client is not None or time.monotonic() >= self.down_until

    def status(self) -> dict[str, Any]:
        """For ``/ready`` and ``/-/plugins``: never a URL's secret, a header or an env value."""
        state = (
            "connected"
            if self._client is not None
            else ("unavailable" if self.last_error else "idle")
        )
        out: dict[str, Any] = {"transport": self.settings.kind, "state": state}
        if self.last_error and self._client is None:
            out["error"] = self.last_error
        return out

    # -- the session -------------------------------------------------------------------------

    def _transport(self) -> Any:
        s = self.settings
        if s.command is not None:
            return StdioServerParameters(
                command=s.command, args=list(s.args), env=dict(s.env) or None, cwd=s.cwd
            )
        assert s.url is not None
        # The session's read timeout ends a slow call; an HTTP read timeout would instead
        # break the whole session (the transport's task group fails), so it is set far out.
        timeout = httpx2.Timeout(max(300.0, s.timeout * 2), connect=s.connect_timeout)
        if s.transport == "sse":
            return sse_client(
                s.url,
                headers=dict(s.headers),
                timeout=s.connect_timeout,
                sse_read_timeout=s.timeout,
            )
        http = create_mcp_http_client(headers=dict(s.headers), timeout=timeout)
        return streamable_http_client(s.url, http_client=http)

    async def client(self) -> Client:
        """The connected client, connecting first when needed; raises :class:`Unavailable`."""
        client = self._client
        if client is not None:
            return client
        async with self._lock:
            if self._client is not None:
                return self._client
            now = time.monotonic()
            if now < self.down_until:
                raise Unavailable(
                    f"MCP server '{self.name}' is unavailable ({self.last_error}); it is tried "
                    f"again in {self.down_until - now:.0f}s"
                )
            try:
                return await self._connect()
            except Exception as exc:
                self.failures += 1
                backoff = min(self.mcp.max_backoff, 0.5 * 2 ** (self.failures - 1))
                self.down_until = time.monotonic() + backoff
                self.last_error = _describe(exc, self.settings.connect_timeout)
                logger.warning("MCP server {!r} is unavailable: {}", self.name, self.last_error)
                raise Unavailable(
                    f"MCP server '{self.name}' is unavailable: {self.last_error}"
                ) from None

    async def _connect(self) -> Client:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[Client] = loop.create_future()
        release = asyncio.Event()
        holder = loop.create_task(self._hold(ready, release), name=f"mcp-upstream-{self.name}")
        try:
            client = await asyncio.wait_for(asyncio.shield(ready), self.settings.connect_timeout)
        except BaseException:
            release.set()
            holder.cancel()
            with contextlib.suppress(BaseException):
                await holder
            raise
        self._client, self._holder, self._release = client, holder, release
        self.failures, self.last_error, self.down_until = 0, None, 0.0
        self._lists.clear()
        return client

    async def _hold(self, ready: asyncio.Future[Client], release: asyncio.Event) -> None:
        """Enter the client, publish it, keep it open until released, leave it (one task)."""
        try:
            async with AsyncExitStack() as stack:
                client = Client(
                    self._transport(),
                    cache=None,
                    read_timeout_seconds=self.settings.timeout,
                    message_handler=self._on_message,
                    client_info=types.Implementation(name="plugway", version="0.1"),
                )
                # Bounded by _connect's wait (a cancel scope here would straddle the
                # client's own task groups).
                await stack.enter_async_context(client)
                if not ready.done():
                    ready.set_result(client)
                await release.wait()
        except BaseException as exc:  # the transport's errors arrive as exception groups
            if not ready.done():
                ready.set_exception(_first(exc))
            elif not isinstance(exc, asyncio.CancelledError):
                logger.info("MCP server {!r}: session ended: {!r}", self.name, _first(exc))
        finally:
            if self._release is release:  # still the live session: it is gone now
                self._client, self._release = None, None

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, types.ServerNotification):
            method = getattr(message, "method", "")
            if method.endswith("/list_changed"):
                self._lists.pop(method.split("/")[1], None)
        await anyio.lowlevel.checkpoint()

    def drop(self, reason: str) -> None:
        """Forget a broken session; the next call connects again (restarts a stdio server)."""
        if self._release is not None:
            self._release.set()
        self._client, self._release = None, None
        self._lists.clear()
        logger.warning(
            "MCP server {!r}: session dropped ({}); reconnecting on next use", self.name, reason
        )

    async def aclose(self) -> None:
        if self._release is not None:
            self._release.set()
        holder, self._holder = self._holder, None
        self._client = None
        if holder is not None:
            try:
                await asyncio.wait_for(holder, 5)
            except BaseException:
                holder.cancel()

    # -- requests ----------------------------------------------------------------------------

    async def request(self, call: Callable[[Client], Awaitable[T]]) -> T:
        """Run ``call`` on the session within the server's ``timeout``. A broken session is
        dropped (and the error raised as :class:`Unavailable`); a JSON-RPC error answer is
        :class:`UpstreamFailed`; the timeout is :class:`CallTimeout`."""
        client = await self.client()
        late = CallTimeout(
            f"MCP server '{self.name}' did not answer within {self.settings.timeout:g}s"
        )
        try:
            # The session's own read timeout ends the call (and tells the server); this
            # outer bound only catches a session that never answers at all.
            return await asyncio.wait_for(call(client), self.settings.timeout + 5)
        except TimeoutError:
            self.drop("no answer")
            raise late from None
        except MCPError as exc:
            if exc.code == types.REQUEST_TIMEOUT:
                raise late from None
            if exc.code in _BROKEN_CODES:
                self.drop(exc.message)
                raise Unavailable(
                    f"MCP server '{self.name}' closed the connection: {exc.message}"
                ) from None
            raise UpstreamFailed(exc.message) from None
        except Exception as exc:
            self.drop(type(exc).__name__)
            raise Unavailable(
                f"MCP server '{self.name}' failed: {_describe(exc, self.settings.timeout)}"
            ) from None

    async def listing(self, kind: str, ttl: float) -> list[dict[str, Any]]:
        """Every ``tools``, ``resources``, ``resourceTemplates`` or ``prompts`` entry of the
        server (all pages), reused for ``ttl`` seconds."""
        hit = self._lists.get(kind)
        now = time.monotonic()
        if hit is not None and now - hit[0] < ttl:
            return hit[1]
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(100):  # a server whose cursor never ends cannot hang a list
            page = _dump(await self.request(_lister(kind, cursor)))
            items += page.get(kind) or []
            cursor = page.get("nextCursor")
            if not cursor:
                break
        self._lists[kind] = (now, items)
        return items

    def forget_lists(self) -> None:
        self._lists.clear()


def _lister(kind: str, cursor: str | None) -> Callable[[Client], Awaitable[Any]]:
    """The request for one page of a server's ``kind`` list."""

    async def fetch(client: Client) -> Any:
        if kind == "tools":
            return await client.list_tools(cursor=cursor)
        if kind == "resources":
            return await client.list_resources(cursor=cursor)
        if kind == "resourceTemplates":
            return await client.list_resource_templates(cursor=cursor)
        return await client.list_prompts(cursor=cursor)

    return fetch


def _first(exc: BaseException) -> BaseException:
    """The first leaf of an exception group (anyio wraps transport errors in them)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _describe(exc: BaseException, timeout: float) -> str:
    """A short, safe account of a connection failure (no URL, header or environment)."""
    exc = _first(exc)
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g}s"
    if isinstance(exc, FileNotFoundError):
        return "its command was not found"
    if isinstance(exc, httpx2.HTTPStatusError):
        return f"it answered HTTP {exc.response.status_code}"
    if isinstance(exc, httpx2.ConnectError):
        return "connection refused"
    if isinstance(exc, MCPError):
        return str(exc.message)[:200]
    return type(exc).__name__


class Pool:
    """The configured servers of one worker, by name, in config order."""

    def __init__(self, settings: McpSettings) -> None:
        self.settings = settings
        self.upstreams = {
            name: Upstream(name, server, settings) for name, server in settings.servers.items()
        }

    def status(self) -> dict[str, Any]:
        return {name: up.status() for name, up in self.upstreams.items()}

    async def aclose(self) -> None:
        await asyncio.gather(*(up.aclose() for up in self.upstreams.values()))
