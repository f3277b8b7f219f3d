"""The pooled HTTP client every provider instance uses, and the mapping of transport errors
and error responses into the gateway's exception tree."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
import orjson
from httpx_aiohttp import AiohttpTransport
from plugway.errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    upstream_error_for_status,
)
from plugway.provider import Provider, ProviderSettings


def make_transport(settings: ProviderSettings) -> httpx.AsyncBaseTransport:
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


class DirectSender:
    """The hot path of a provider's pooled client: a prebuilt :class:`httpx.Request` handed
    straight to the client's transport.

    ``AsyncClient.send`` does per-request work a provider's client never needs: merging the
    URL and headers, auth, redirects, event hooks, timing, and extracting cookies into a jar
    shared by every caller (7-8% of the gateway's CPU in the profile; an upstream's cookie
    should not ride along on other users' requests anyway). In the bench that is 350-440 us
    of CPU per request through ``client.post`` against 200-210 us straight to the transport.
    Requests and responses stay httpx's own types and the transport raises httpx's exceptions,
    so callers handle errors exactly as with the client. The client's headers (its defaults
    included) and timeout apply; the URL of each path is merged once.
    """

    __slots__ = ("_urls", "client", "extensions", "headers", "transport")

    def __init__(
        self,
        client: httpx.AsyncClient,
        transport: httpx.AsyncBaseTransport,
        timeout: httpx.Timeout,
    ) -> None:
        self.client = client
        self.transport = transport
        self.headers = httpx.Headers(client.headers)
        self.extensions = {"timeout": timeout.as_dict()}
        self._urls: dict[tuple[str, tuple[tuple[str, str], ...]], httpx.URL] = {}

    def url(self, path: str, params: Mapping[str, str] | None = None) -> httpx.URL:
        """``path`` (and ``params``) merged with the client's base URL, as ``client.post``
        would, computed once."""
        key = (path, tuple(sorted(params.items())) if params else ())
        url = self._urls.get(key)
        if url is None:
            url = self._urls[key] = self.client.build_request("GET", path, params=params).url
        return url

    def with_headers(self, extra: Mapping[str, str]) -> httpx.Headers:
        """The client's headers with ``extra`` on top, to build once and pass to :meth:`send`."""
        headers = httpx.Headers(self.headers)
        headers.update(extra)
        return headers

    async def send(
        self,
        method: str,
        url: httpx.URL,
        content: bytes,
        *,
        headers: httpx.Headers | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """Send and return the response, its body read unless ``stream`` (then the caller
        must ``aclose()`` it). Raises :class:`httpx.HTTPError` subclasses."""
        base = self.headers if headers is None else headers
        if type(content) is bytes:
            # orjson's output keeps the buffer it was written into (4 KB at least, several
            # times the text for long prompts), and the request, body included, lives as
            # long as its response: for a stream, as long as the stream. An exact-size copy
            # lets that buffer go now.
            content = bytes(memoryview(content))
        request = httpx.Request(
            method, url, headers=base, content=content, extensions=self.extensions
        )
        # The copy would scan every header again to choose its encoding, each time aiohttp
        # reads it; the headers it copied chose once (httpx caches it on them).
        request.headers.encoding = base.encoding
        response = await self.transport.handle_async_request(request)
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
    sending: Awaitable[httpx.Response], *, provider: str, error_of: ErrorMapper
) -> httpx.Response:
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


def json_object(response: httpx.Response, provider: str) -> dict[str, Any]:
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
