"""Anthropic-compatible inbound endpoints: ``POST /v1/messages`` and
``POST /v1/messages/count_tokens``, so tools built on the Anthropic API (Claude Code with
``ANTHROPIC_BASE_URL=http://127.0.0.1:4000``, the ``anthropic`` SDK) work through the gateway
and reach any target.

A request is translated to the canonical OpenAI body (``ctx.body``) and goes through the normal
pipeline: ``pre_route`` (auth, limits, filters), routing, the attempt walk with failover, and
``post_response``. The answer is translated back into Anthropic's shape, streams with
Anthropic's event sequence, errors as ``{"type":"error","error":{"type","message"}}`` with a
``request-id`` header.

Pass-through: when a target's provider offers native Messages calls
(:class:`plugway.formats.anthropic_messages.NativeMessages`, the ``anthropic`` provider does),
the client's own Anthropic body goes to it with only ``model`` replaced, and its answer bytes
come back untouched: fields the gateway does not translate (``thinking``, ``cache_control``,
server tools, betas) keep working. The canonical body still drives routing and plugins;
pass-through is skipped, and the canonical body translated instead, when a ``pre_route`` impl
changed ``ctx.body`` (a redaction must reach the upstream) or, for streams, when a
``stream_chunk`` impl must see the chunks. A plan may mix native and translated targets;
failover works across them. Client credentials (``x-api-key``, ``authorization``) are never
forwarded: providers send their own keys.

A route may cap what clients ask for with ``options = { max_output_tokens = N }`` on its
``[[models]]`` entry (Claude Code asks for 32000 output tokens, more than many non-Anthropic
models take).

``count_tokens`` is forwarded to the first target when its provider is native, and otherwise
estimated locally (see :func:`estimate_tokens`).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import attrs
import orjson
from plugway import pipeline
from plugway.app import decision_headers, internal, read_body, stream_broke
from plugway.app import error_response as core_error_response
from plugway.app import failed as core_failed
from plugway.config import Config
from plugway.context import RequestContext, Target, new_request_id
from plugway.errors import GatewayError, InvalidRequest
from plugway.formats.anthropic_messages import (
    NativeMessages,
    OpenAIToAnthropicStream,
    anthropic_error_body,
    anthropic_to_openai_request,
    anthropic_to_openai_response,
    openai_to_anthropic_response,
    sse,
    validate_messages_request,
)
from plugway.gateway import Gateway
from plugway.hooks import hookimpl
from plugway.provider import ChunkStream, Provider, ProviderResponse
from sanic import HTTPResponse, Request, Sanic

#: Writes no prompt or completion text anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False

ENDPOINT = "messages"
#: ``[[models]] options = { max_output_tokens = N }`` caps ``max_tokens`` for that route.
MAX_OUTPUT_OPTION = "max_output_tokens"
COUNT_ENDPOINT = "messages.count_tokens"
JSON = "application/json"


@hookimpl
def register_routes(app: Sanic[Any, Any], config: Config) -> None:
    app.add_route(messages, "/v1/messages", methods=["POST"], name="anthropic_messages")
    app.add_route(
        count_tokens, "/v1/messages/count_tokens", methods=["POST"], name="anthropic_count_tokens"
    )


# -- parsing -----------------------------------------------------------------------------------


@attrs.define
class Inbound:
    """A parsed Anthropic request: the client's body, its canonical OpenAI form, and a second
    copy of that form to tell whether a plugin changed it."""

    body: dict[str, Any]
    ctx: RequestContext
    snapshot: dict[str, Any]
    #: Why the body has no faithful OpenAI form (server tools, ...), if it has none.
    untranslatable: InvalidRequest | None = None

    def body_unchanged(self) -> bool:
        return self.ctx.body == self.snapshot

    def cap_max_tokens(self) -> None:
        """Apply the route's ``max_output_tokens`` option: Claude Code asks for 32000 output
        tokens, more than many other models allow, so a route to them can cap it."""
        route = self.ctx.route
        cap = route.options.get(MAX_OUTPUT_OPTION) if route is not None else None
        if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0:
            for body in (self.body, self.ctx.body):
                if isinstance(body.get("max_tokens"), int) and body["max_tokens"] > cap:
                    body["max_tokens"] = cap

    def canonical_body(self) -> dict[str, Any]:
        """``ctx.body`` for a target that needs the OpenAI form; refuses the request when
        translating it would leave parts out."""
        if self.untranslatable is not None:
            raise self.untranslatable
        return self.ctx.body


def parse(request: Request, endpoint: str) -> Inbound:
    """Check the JSON body the way Anthropic does; a client's mistake is a 400."""
    body, model, stream = read_body(request)
    if endpoint == ENDPOINT:
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise InvalidRequest(
                "max_tokens: Field required (an integer of at least 1)", param="max_tokens"
            )
    validate_messages_request(body)
    try:
        canonical, untranslatable = anthropic_to_openai_request(body), None
    except InvalidRequest as exc:
        # It may still pass through to an Anthropic target; other targets get this error.
        canonical, untranslatable = anthropic_to_openai_request(body, lenient=True), exc
    ctx = RequestContext(
        endpoint=endpoint,
        body=canonical,
        headers=request.headers,
        model=model,
        stream=stream and endpoint == ENDPOINT,
        client_ip=request.remote_addr or request.ip,
    )
    snapshot = anthropic_to_openai_request(body, lenient=untranslatable is not None)
    # For plugins that key on the request (a response cache): the body as the client sent it,
    # and whether the OpenAI form leaves parts of the request or its answer out (server tools,
    # extended thinking), so that an OpenAI-form copy of the answer would not be faithful.
    ctx.state["inbound_body"] = body
    ctx.state["canonical_lossy"] = untranslatable is not None or "thinking" in body
    return Inbound(body, ctx, snapshot, untranslatable)


def message_id(ctx: RequestContext) -> str:
    return "msg_" + ctx.request_id.removeprefix("req_")


def native(provider: Provider) -> NativeMessages | None:
    return provider if isinstance(provider, NativeMessages) else None


# -- POST /v1/messages -------------------------------------------------------------------------


async def messages(request: Request) -> HTTPResponse | None:
    gw: Gateway = request.app.ctx.gateway
    try:
        inbound = parse(request, ENDPOINT)
    except GatewayError as exc:
        return error_response(exc, new_request_id())
    if inbound.ctx.stream:
        await serve_stream(request, gw, inbound)
        return None
    return await serve_complete(gw, inbound)


@attrs.define
class Answer:
    response: ProviderResponse  # OpenAI-shaped, what post_response sees
    raw: bytes | None = None  # the upstream's Anthropic bytes when passed through


async def serve_complete(gw: Gateway, inbound: Inbound) -> HTTPResponse:
    ctx = inbound.ctx
    try:
        await pipeline.route(gw, ctx)
        passthrough = inbound.body_unchanged()
        inbound.cap_max_tokens()

        async def call(provider: Provider, target: Target) -> Answer:
            upstream = native(provider) if passthrough else None
            if upstream is not None:
                answer = await upstream.messages(ctx, target, inbound.body)
                return Answer(
                    ProviderResponse(anthropic_to_openai_response(answer.body)), answer.raw
                )
            return Answer(await provider.chat(ctx, target, inbound.canonical_body()))

        answer = await pipeline.attempt_plan(gw, ctx, call)
        ctx.usage = answer.response.usage
        choices = answer.response.body.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            ctx.finish_reason = choices[0].get("finish_reason")
    except asyncio.CancelledError:
        ctx.status, ctx.ended = 499, time.monotonic()
        gw.spawn(gw.hooks.notify("post_response", ctx=ctx, response=None))
        raise
    except Exception as exc:
        return failed(gw, ctx, internal(ctx, exc))
    ctx.status, ctx.ended = 200, time.monotonic()
    refusal = await pipeline.observe_success(gw, ctx, answer.response)
    if refusal is not None:
        return error_response(refusal, ctx.request_id, decision_headers(ctx))
    if answer.raw is not None and not answer.response.replaced:
        body = answer.raw
    else:
        body = orjson.dumps(
            openai_to_anthropic_response(answer.response.body, ctx.model, message_id(ctx))
        )
    return HTTPResponse(body, status=200, headers=headers_for(ctx), content_type=JSON)


class TranslatedStream(ChunkStream):
    """An OpenAI chunk stream from any provider, as Anthropic events. The ``stream_chunk``
    hook sees the OpenAI chunks first when a plugin implements it."""

    def __init__(self, gw: Gateway, ctx: RequestContext, inner: ChunkStream) -> None:
        self.gw = gw
        self.ctx = ctx
        self.inner = inner
        self.translator = OpenAIToAnthropicStream(ctx.model, message_id(ctx))

    async def __aiter__(self) -> AsyncIterator[bytes]:
        translator = self.translator
        async for chunks in pipeline.chat_chunks(self.gw, self.ctx, self.inner):
            out = [sse(event) for chunk in chunks for event in translator.feed(chunk)]
            if out:
                yield b"".join(out)
        if translator.usage is None:
            translator.usage = self.inner.usage
        self.usage = translator.usage
        self.finish_reason = translator.finish_reason or self.inner.finish_reason
        yield b"".join(sse(event) for event in translator.finish())

    async def aclose(self) -> None:
        await self.inner.aclose()


async def serve_stream(request: Request, gw: Gateway, inbound: Inbound) -> None:
    ctx = inbound.ctx
    try:
        await pipeline.route(gw, ctx)
        passthrough = inbound.body_unchanged() and not gw.hooks.has("stream_chunk")
        inbound.cap_max_tokens()

        async def call(provider: Provider, target: Target) -> ChunkStream:
            upstream = native(provider) if passthrough else None
            if upstream is not None:
                stream = await upstream.messages_stream(ctx, target, inbound.body)
            else:
                stream = TranslatedStream(
                    gw, ctx, await provider.chat_stream(ctx, target, inbound.canonical_body())
                )
            return stream

        opened = await pipeline.open_plan(gw, ctx, call)
    except asyncio.CancelledError:
        ctx.status, ctx.ended = 499, time.monotonic()
        gw.spawn(gw.hooks.notify("post_response", ctx=ctx, response=None))
        raise
    except Exception as exc:
        await request.respond(failed(gw, ctx, internal(ctx, exc)))
        return
    headers = headers_for(ctx)
    pipeline.sse_headers(headers)
    response = await request.respond(
        status=200, headers=headers, content_type="text/event-stream; charset=utf-8"
    )
    try:
        await response.send(opened.first)
        ctx.first_token_at = time.monotonic()
        async for data in opened.events:
            await response.send(data)
        ctx.status = 200
    except asyncio.CancelledError:
        ctx.status = 499
        raise
    except Exception as exc:
        error = stream_broke(gw, ctx, exc)
        await response.send(sse(anthropic_error_body(error.status, error.message, ctx.request_id)))
    finally:
        # A passed-through stream forwards an upstream error event as it is; record it even
        # when the client hung up on reading it.
        if opened.stream.error is not None:
            ctx.error = opened.stream.error
            if ctx.status == 200:
                ctx.status = ctx.error.status
        await pipeline.close_quietly(opened.stream)
        ctx.usage = opened.stream.usage
        ctx.finish_reason = opened.stream.finish_reason
        ctx.ended = time.monotonic()
        gw.spawn(gw.hooks.notify("post_response", ctx=ctx, response=None))
    await response.eof()


# -- POST /v1/messages/count_tokens ------------------------------------------------------------


async def count_tokens(request: Request) -> HTTPResponse:
    gw: Gateway = request.app.ctx.gateway
    try:
        inbound = parse(request, COUNT_ENDPOINT)
    except GatewayError as exc:
        return error_response(exc, new_request_id())
    ctx = inbound.ctx
    try:
        await pipeline.route(gw, ctx)

        async def call(provider: Provider, target: Target) -> dict[str, Any]:
            upstream = native(provider)
            if upstream is not None:
                return await upstream.count_tokens(ctx, target, inbound.body)
            return {"input_tokens": estimate_tokens(inbound.body)}

        counted = await pipeline.attempt_plan(gw, ctx, call)
        ctx.status, ctx.ended = 200, time.monotonic()
        gw.spawn(gw.hooks.notify("post_response", ctx=ctx, response=None))
    except GatewayError as exc:
        return failed(gw, ctx, exc)
    return HTTPResponse(orjson.dumps(counted), headers=headers_for(ctx), content_type=JSON)


#: Characters per token assumed by :func:`estimate_tokens`.
CHARS_PER_TOKEN = 4
#: What one image counts, whatever its size (Anthropic's formula gives ~1600 for a
#: 1.15-megapixel image, the size it recommends).
IMAGE_TOKENS = 1600


def estimate_tokens(body: Mapping[str, Any]) -> int:
    """A local estimate of a Messages request's input tokens, for targets that cannot count.

    The heuristic: one token per 4 characters (rounded up) of every text the model reads
    (system, message text, tool-use inputs and tool results as JSON, tool names,
    descriptions and schemas as JSON), 1600 per image or document, plus 3 tokens per message
    and 8 per tool for the framing. It is an estimate (typically within ~20% for English
    prose and code); route to an Anthropic target for exact counts.
    """
    chars = 0
    extra = 0

    def visit(content: Any) -> None:
        nonlocal chars, extra
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for block in content:
                if not isinstance(block, dict):
                    continue
                kind = block.get("type")
                if kind == "text":
                    chars += len(str(block.get("text", "")))
                elif kind in ("image", "document"):
                    extra += IMAGE_TOKENS
                elif kind == "tool_use":
                    chars += len(str(block.get("name", "")))
                    chars += len(orjson.dumps(block.get("input") or {}))
                elif kind == "tool_result":
                    visit(block.get("content"))
                elif kind == "thinking":
                    chars += len(str(block.get("thinking", "")))

    visit(body.get("system"))
    for message in body.get("messages") or ():
        if isinstance(message, dict):
            extra += 3
            visit(message.get("content"))
    for tool in body.get("tools") or ():
        if isinstance(tool, dict):
            extra += 8
            chars += len(orjson.dumps(tool))
    return math.ceil(chars / CHARS_PER_TOKEN) + extra


# -- errors and headers ------------------------------------------------------------------------


def headers_for(ctx: RequestContext) -> dict[str, str]:
    headers = decision_headers(ctx)
    headers["request-id"] = ctx.request_id
    return headers


def error_response(
    error: GatewayError, request_id: str, headers: Mapping[str, str] | None = None
) -> HTTPResponse:
    """Anthropic's error envelope, with ``request-id`` besides the core's headers."""
    out = dict(headers or {})
    out["request-id"] = request_id
    body = orjson.dumps(anthropic_error_body(error.status, error.message, request_id))
    return core_error_response(error, request_id, out, body)


def failed(gw: Gateway, ctx: RequestContext, error: GatewayError) -> HTTPResponse:
    return core_failed(gw, ctx, error, render=error_response)


@hookimpl
def render_error(request: Request, error: GatewayError, request_id: str) -> HTTPResponse | None:
    """The framework's own errors (413, 404, 405 ...) on this plugin's paths, in its shape."""
    if request.path.startswith("/v1/messages"):
        return error_response(error, request_id)
    return None
