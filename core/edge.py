"""Edge hardening for the Sanic app: TLS, CORS (off unless configured), the client address
(``X-Forwarded-For`` only behind configured proxies), header limits.

Base URLs of upstreams come from the config only: nothing here, nor anywhere in the request
path, reads an upstream host from a client's body or headers.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from plugway.config import ServerConfig
from sanic import HTTPResponse, Request, Sanic
from sanic.response import BaseHTTPResponse

#: Headers never sent back on an answer: hop-by-hop headers (RFC 9110 7.6.1) are the
#: gateway's own business and the upstream's are never copied onto a client response.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


def sanic_settings(server: ServerConfig) -> dict[str, Any]:
    """The Sanic config keys the ``[server]`` edge settings map to."""
    return {
        "REQUEST_MAX_HEADER_SIZE": server.max_header_bytes,
        # 0 proxies: X-Forwarded-For and Forwarded are ignored, the peer address is the client.
        "PROXIES_COUNT": server.forwarded_proxies,
        "REAL_IP_HEADER": None,
        "FORWARDED_SECRET": None,
    }


def ssl_context(server: ServerConfig) -> ssl.SSLContext | None:
    """The server's TLS context, or None for plain HTTP."""
    if not server.tls_cert or not server.tls_key:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if server.tls_min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    )
    context.load_cert_chain(server.tls_cert, server.tls_key)
    context.set_alpn_protocols(["http/1.1"])
    return context


def worker_tls(app: Sanic[Any, Any], server: ServerConfig) -> None:
    """Apply ``tls_min_version`` to the TLS contexts Sanic built in this worker (with several
    workers, Sanic builds them from the certificate files, with TLS 1.2 as the minimum)."""
    if not server.tls_cert:
        return
    minimum = ssl.TLSVersion.TLSv1_3 if server.tls_min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    for info in app.state.server_info:
        context = info.settings.get("ssl")
        if isinstance(context, ssl.SSLContext):
            context.minimum_version = minimum


def body_timeout_request(timeout: float) -> type[Request]:
    """The request class that cuts a client stalling while it sends its body: Sanic's request
    timeout covers the head only, and a stalled body would otherwise hold the connection until
    the response timeout (longer than every upstream deadline). The body must arrive within
    ``timeout`` seconds of the head.

    ``receive_body`` is Sanic's hook for this (it reads the body there before a handler
    runs), so there is no signal and no middleware to dispatch on every request.
    """

    class BodyTimeoutRequest(Request):
        async def receive_body(self) -> None:
            transport = self.transport
            stream = self.stream
            if self.body or transport is None or stream is None or not stream.request_body:
                await super().receive_body()  # type: ignore[no-untyped-call]
                return
            timer = asyncio.get_running_loop().call_later(timeout, transport.close)
            try:
                await super().receive_body()  # type: ignore[no-untyped-call]
            finally:
                timer.cancel()

    return BodyTimeoutRequest


def install_cors(app: Sanic[Any, Any], server: ServerConfig) -> None:
    """Answer CORS only for the configured origins (``"*"`` allows any); with none
    configured, no CORS header is ever sent and preflights get the usual 404/405."""
    origins = frozenset(server.cors_origins)
    if not origins:
        return

    def allowed(request: Request) -> str | None:
        origin = request.headers.get("origin")
        if origin is None:
            return None
        if "*" in origins:
            return "*"
        return origin if origin in origins else None

    async def preflight(request: Request) -> HTTPResponse | None:
        if request.method != "OPTIONS" or "access-control-request-method" not in request.headers:
            return None
        origin = allowed(request)
        if origin is None:
            return HTTPResponse(status=403)
        return HTTPResponse(
            status=204,
            headers={
                "access-control-allow-origin": origin,
                "access-control-allow-methods": "GET, POST, OPTIONS",
                "access-control-allow-headers": "authorization, content-type, x-api-key, api-key",
                "access-control-max-age": "600",
                "vary": "origin",
            },
        )

    async def annotate(request: Request, response: BaseHTTPResponse) -> None:
        origin = allowed(request)
        if origin is not None:
            response.headers["access-control-allow-origin"] = origin
            response.headers["vary"] = "origin"

    app.register_middleware(preflight, "request")
    app.register_middleware(annotate, "response")


def strip_hop_by_hop(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
