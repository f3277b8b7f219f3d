"""The null proxy: the smallest Sanic pass-through with the gateway's upstream client, the
limit a Python gateway on Sanic + httpx can reach. It forwards the body bytes to the upstream
and the answer (or the stream, chunk by chunk) back, and does nothing else.

``--transport`` picks the httpx transport: ``stock`` (httpx's defaults), ``tuned`` (httpx with
pool limits raised to 1000), ``aiohttp`` (``client.post`` over ``httpx-aiohttp``: the null
proxy of the issue), ``direct`` (prebuilt ``httpx.Request`` handed straight to the same
aiohttp transport, as plugway's ``DirectSender`` does: the limit for that code path).
"""

from __future__ import annotations

import argparse
from typing import Any

import httpx
from sanic import HTTPResponse, Request, Sanic

TRANSPORTS = ("stock", "tuned", "aiohttp", "direct", "raw")


def make_client(kind: str, base_url: str) -> httpx.AsyncClient:
    common: dict[str, Any] = {"base_url": base_url, "timeout": 60.0, "trust_env": False}
    if kind == "stock":
        return httpx.AsyncClient(**common)
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    if kind == "tuned":
        return httpx.AsyncClient(limits=limits, **common)
    from httpx_aiohttp import AiohttpTransport

    return httpx.AsyncClient(transport=AiohttpTransport(limits=limits, trust_env=False), **common)


def create_app(kind: str, upstream: str) -> Sanic[Any, Any]:
    app = Sanic(f"null_{kind}")
    app.config.update({"ACCESS_LOG": False, "MOTD": False, "RESPONSE_TIMEOUT": 120})
    headers = {"content-type": "application/json", "authorization": "Bearer sk-upstream"}

    if kind == "raw":
        return raw_app(app, upstream, headers)

    @app.before_server_start
    async def start(app: Sanic[Any, Any]) -> None:
        app.ctx.client = make_client("aiohttp" if kind == "direct" else kind, upstream)
        app.ctx.url = httpx.URL(upstream.rstrip("/") + "/chat/completions")
        app.ctx.headers = httpx.Headers({**app.ctx.client.headers, **headers})
        app.ctx.timeout = {"timeout": httpx.Timeout(60.0).as_dict()}

    async def send(request: Request, stream: bool) -> httpx.Response:
        client: httpx.AsyncClient = request.app.ctx.client
        if kind != "direct":
            upstream_request = client.build_request(
                "POST", "/chat/completions", content=request.body, headers=headers
            )
            return await client.send(upstream_request, stream=stream)
        upstream_request = httpx.Request(
            "POST",
            request.app.ctx.url,
            headers=request.app.ctx.headers,
            content=request.body,
            extensions=request.app.ctx.timeout,
        )
        answer = await client._transport.handle_async_request(upstream_request)
        if not stream:
            await answer.aread()
        return answer

    @app.after_server_stop
    async def stop(app: Sanic[Any, Any]) -> None:
        await app.ctx.client.aclose()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> HTTPResponse | None:
        body = request.body
        if b'"stream":true' not in body and b'"stream": true' not in body:
            answer = await send(request, stream=False)
            return HTTPResponse(
                answer.content, status=answer.status_code, content_type="application/json"
            )
        answer = await send(request, stream=True)
        try:
            response = await request.respond(
                status=answer.status_code, content_type="text/event-stream"
            )
            async for data in answer.aiter_raw():
                await response.send(data)
            await response.eof()
        finally:
            await answer.aclose()
        return None

    return app


def raw_app(app: Sanic[Any, Any], upstream: str, headers: dict[str, str]) -> Sanic[Any, Any]:
    """The same pass-through on aiohttp's client alone."""
    import aiohttp

    url = upstream.rstrip("/") + "/chat/completions"

    @app.before_server_start
    async def start(app: Sanic[Any, Any]) -> None:
        app.ctx.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1000),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=60),
            auto_decompress=False,
        )

    @app.after_server_stop
    async def stop(app: Sanic[Any, Any]) -> None:
        await app.ctx.session.close()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> HTTPResponse | None:
        body = request.body
        session: aiohttp.ClientSession = request.app.ctx.session
        async with session.post(url, data=body) as answer:
            if b'"stream":true' not in body and b'"stream": true' not in body:
                content = await answer.read()
                return HTTPResponse(content, status=answer.status, content_type="application/json")
            response = await request.respond(status=answer.status, content_type="text/event-stream")
            async for data in answer.content.iter_any():
                await response.send(data)
            await response.eof()
        return None

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="null Sanic proxy for the bench")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:9100/v1")
    parser.add_argument("--transport", choices=TRANSPORTS, default="aiohttp")
    args = parser.parse_args()
    app = create_app(args.transport, args.upstream)
    app.run(
        host="127.0.0.1",
        port=args.port,
        single_process=True,
        access_log=False,
        motd=False,
        backlog=1024,  # as plugway's default: a burst of connections is not dropped
    )


if __name__ == "__main__":
    main()
