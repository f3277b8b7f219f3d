"""The pooled HTTP client every provider instance uses, and the mapping of transport errors
and error responses into the gateway's exception tree."""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

import aiohttp
import httpx
import orjson
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import map_aiohttp_exceptions
from plugway.errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    upstream_error_for_status,
)
from plugway.provider import Provider, ProviderSettings


def make_transport(settings: ProviderSettings) -> AiohttpTransport:
    """httpx's transport interface over aiohttp's pooled connector: 1.2-1.9x the throughput of
    stock httpx (tuned pool or not) in the bench's transport study (bench/RESULTS.md)."""
    limits = httpx.Limits(
        max_connections=settings.max_connections,
        max_keepalive_connections=settings.max_connections,
        keepalive_expiry=30.0,
    )
    return AiohttpTransport(limits=limits, trust_env=False)


def make_timeout(settings: ProviderSettings) -> httpx.Timeout:
    return httpx.Timeout(settings.timeout, connect=settings.connect_timeout)


def make_http_client(
    settings: ProviderSettings,
    *,
    base_url: str | None = None,
    headers: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """One pooled client per provider instance per worker: httpx's API over aiohttp's
    transport (:func:`make_transport` unless one is given)."""
    return httpx.AsyncClient(
        base_url=base_url if base_url is not None else (settings.base_url or ""),
        headers=dict(headers or {}),
        timeout=make_timeout(settings),
        transport=transport if transport is not None else make_transport(settings),
        trust_env=False,
        follow_redirects=False,
    )


class UpstreamAnswer(Protocol):
    """What the error path reads of an upstream's response: ``httpx.Response`` has it, and so
    has :class:`DirectResponse`."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> httpx.Headers: ...

    @property
    def content(self) -> bytes: ...

    async def aread(self) -> bytes: ...

    async def aclose(self) -> None: ...


Answer = TypeVar("Answer", bound=UpstreamAnswer)


class DirectResponse:
    """An upstream's response on the hot path: aiohttp's own, with the part of
    ``httpx.Response``'s API that providers use (``status_code``, ``headers``, ``content``,
    ``aread``, ``aiter_bytes``, ``aclose``). aiohttp's exceptions come out as httpx's, through
    the same mapping the httpx-aiohttp transport applies, so callers handle errors as before.
    """

    __slots__ = ("_headers", "_response", "content")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self._headers: httpx.Headers | None = None
        self.content = b""

    @property
    def status_code(self) -> int:
        return self._response.status

    @property
    def headers(self) -> httpx.Headers:
        if self._headers is None:  # built on demand: the error path and tests read them
            self._headers = httpx.Headers(list(self._response.raw_headers))
        return self._headers

    async def aread(self) -> bytes:
        with map_aiohttp_exceptions():
            self.content = await self._response.read()
        return self.content

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body as it arrives, decompressed."""
        with map_aiohttp_exceptions():
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        """Give the connection back to the pool, or close it when the body was not read to
        its end (the upstream sees the disconnect)."""
        with map_aiohttp_exceptions():
            await self._response.__aexit__(None, None, None)


class DirectSender:
    """The hot path of a provider's pooled client: requests sent on the aiohttp session under
    the client's httpx-aiohttp transport (the same pool), with no httpx ``Request`` or
    ``Response`` in between.

    The layers cost, measured in the bench (bench/RESULTS.md): ``AsyncClient.send`` merges
    URLs and headers, runs auth, redirects and event hooks and fills a cookie jar shared by
    every caller (350-440 us of CPU per request through ``client.post`` against 200-210 us
    with prebuilt requests straight to the transport); httpx's Request and Response objects
    over aiohttp then cost another 0.15 ms of CPU per request and 5.3 KB per open stream
    (headers held three times over). Sent directly on aiohttp, plugway serves 20-34% more
    requests per second on one core and holds 28 KB per open stream instead of 35.

    Everything else a provider does (``client`` for other calls, the anthropic and gemini
    providers) keeps httpx's API. The client's headers and timeouts apply; each URL is built
    once; the body comes back decompressed (gzip and deflate are asked for).
    """

    __slots__ = ("_urls", "client", "headers", "session", "timeout")

    def __init__(
        self,
        client: httpx.AsyncClient,
        transport: AiohttpTransport,
        timeout: httpx.Timeout,
    ) -> None:
        """Call inside the running loop (a provider's ``startup``): the aiohttp session is
        made here and handed to ``transport`` too, so both share one pool."""
        self.client = client
        if not isinstance(transport.client, aiohttp.ClientSession):
            transport.client = transport.get_client()
        self.session: aiohttp.ClientSession = transport.client
        self.headers = self.with_headers({})
        limits = timeout.as_dict()
        # As httpx-aiohttp maps httpx's timeouts: connect -> sock_connect, read -> sock_read,
        # pool -> connect (waiting for a pooled connection included).
        self.timeout = aiohttp.ClientTimeout(
            sock_connect=limits.get("connect"),
            sock_read=limits.get("read"),
            connect=limits.get("pool"),
        )
        self._urls: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}

    def url(self, path: str, params: Mapping[str, str] | None = None) -> str:
        """``path`` (and ``params``) merged with the client's base URL, as ``client.post``
        would, computed once."""
        key = (path, tuple(sorted(params.items())) if params else ())
        url = self._urls.get(key)
        if url is None:
            built = self.client.build_request("GET", path, params=params).url
            url = self._urls[key] = str(built)
        return url

    def with_headers(self, extra: Mapping[str, str]) -> dict[str, str]:
        """The client's headers with ``extra`` on top, to build once and pass to :meth:`send`."""
        headers = dict(self.client.headers.items())
        headers["accept-encoding"] = "gzip, deflate"  # what aiohttp decodes without extras
        headers.update(extra)
        return headers

    async def send(
        self,
        method: str,
        url: str,
        content: bytes,
        *,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> DirectResponse:
        """Send and return the response, its body read unless ``stream`` (then the caller
        must ``aclose()`` it). Raises :class:`httpx.HTTPError` subclasses."""
        if type(content) is bytes:
            # orjson's output keeps the buffer it was written into (4 KB at least, several
            # times the text for long prompts), and the request, body included, lives as
            # long as its response: for a stream, as long as the stream. An exact-size copy
            # lets that buffer go now.
            content = bytes(memoryview(content))
        with map_aiohttp_exceptions():
            answer = await self.session.request(
                method,
                url,
                data=content,
                headers=self.headers if headers is None else headers,
                allow_redirects=False,
                auto_decompress=True,
                timeout=self.timeout,
            )
        response = DirectResponse(answer)
        if not stream:
            try:
                await response.aread()
            except BaseException:
                await response.aclose()
                raise
        return response


def transport_error(
    exc: httpx.HTTPError, provider: str, *, streaming: bool = False
) -> UpstreamError:
    """Map an httpx exception to a retryable upstream error; never includes the URL."""
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        return UpstreamTimeout(f"provider '{provider}' timed out", provider=provider)
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout) and not streaming:
        return UpstreamConnectError(
            f"could not connect to provider '{provider}'", provider=provider
        )
    return UpstreamUnavailable(
        f"connection to provider '{provider}' failed ({type(exc).__name__})", provider=provider
    )


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, ``retry-after`` (seconds) or an HTTP date."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def error_from_response(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    provider: str,
) -> UpstreamError:
    """Turn an upstream error response into the gateway error for its status.

    Reads OpenAI's ``{"error": {message, type, code, param}}`` (and a bare ``{"message"}``);
    a body that is not JSON gets a generic message, so no HTML reaches the client.
    """
    message = f"provider '{provider}' answered with status {status}"
    code = param = None
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    error = data.get("error", data) if isinstance(data, dict) else None
    if isinstance(error, dict):
        if isinstance(error.get("message"), str):
            message = error["message"]
        code = error.get("code") if isinstance(error.get("code"), str) else None
        param = error.get("param") if isinstance(error.get("param"), str) else None
    elif isinstance(error, str):
        message = error
    return upstream_error_for_status(
        status,
        message,
        provider=provider,
        code=code,
        param=param,
        retry_after=parse_retry_after(headers),
    )


#: Turns an upstream error response (status, body, headers) into the gateway's error.
ErrorMapper = Callable[[int, bytes, Mapping[str, str]], UpstreamError]


async def checked_response(
    sending: Awaitable[Answer], *, provider: str, error_of: ErrorMapper
) -> Answer:
    """Await an upstream call and return its response when the upstream accepted it.

    A transport failure raises the matching retryable :class:`UpstreamError`; an error status
    is read, closed and raised through ``error_of``. Works for streamed and read responses.
    """
    try:
        response = await sending
    except httpx.HTTPError as exc:
        raise transport_error(exc, provider) from None
    if response.status_code >= 400:
        try:
            content = await response.aread()
        except httpx.HTTPError:
            content = b""
        finally:
            await response.aclose()
        raise error_of(response.status_code, content, response.headers)
    return response


def json_object(response: UpstreamAnswer, provider: str) -> dict[str, Any]:
    """The read response's body as a JSON object; anything else is a retryable failure."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise UpstreamUnavailable(
            f"provider '{provider}' answered with a body that is not a JSON object",
            provider=provider,
            upstream_status=response.status_code,
        )
    return body


async def post_json(
    client: httpx.AsyncClient,
    path: str,
    payload: Any,
    *,
    provider: str,
    error_of: ErrorMapper,
    **request: Any,
) -> tuple[bytes, dict[str, Any]]:
    """POST ``payload`` as JSON; return the answer's bytes and its parsed object, or raise
    the upstream error (see :func:`checked_response` and :func:`json_object`)."""
    sending = client.post(path, content=orjson.dumps(payload), **request)
    response = await checked_response(sending, provider=provider, error_of=error_of)
    return response.content, json_object(response, provider)


async def open_stream(
    client: httpx.AsyncClient, request: httpx.Request, *, provider: str, error_of: ErrorMapper
) -> httpx.Response:
    """Send ``request`` for a streamed answer; return the open response once accepted."""
    sending = client.send(request, stream=True)
    return await checked_response(sending, provider=provider, error_of=error_of)


class HTTPProvider(Provider):
    """A provider that talks JSON over one pooled client per worker: ``startup`` opens
    ``self.client`` with the JSON headers, :meth:`auth_headers` and the settings' ``headers``
    (which win); ``aclose`` closes it."""

    client: httpx.AsyncClient

    def auth_headers(self) -> dict[str, str]:
        """The headers that carry the key (never logged)."""
        return {}

    async def startup(self) -> None:
        headers = {"content-type": "application/json", "accept": "application/json"}
        headers.update(self.auth_headers())
        headers.update(self.settings.headers)
        self.client = make_http_client(self.settings, headers=headers)

    async def aclose(self) -> None:
        if hasattr(self, "client"):
            await self.client.aclose()
