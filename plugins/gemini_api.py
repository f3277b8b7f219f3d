"""The Gemini API as an inbound door, so Google's clients (the ``google-genai`` SDKs with
``base_url`` set, the Gemini CLI with ``GOOGLE_GEMINI_BASE_URL``) work through the gateway
and reach any target:

- ``POST /v1beta/models/{model}:generateContent``;
- ``POST /v1beta/models/{model}:streamGenerateContent``: ``alt=sse`` gives server-sent events
  (``data: {GenerateContentResponse}``), without it the JSON array Google streams;
- ``POST /v1beta/models/{model}:countTokens``: forwarded to a Gemini target, else estimated;
- ``GET /v1beta/models`` and ``GET /v1beta/models/{model}``: the gateway's routes.

The three ``POST`` methods are served under ``/v1/models/`` too (the SDK given only a
``base_url`` uses API version ``v1``); ``GET /v1/models`` stays OpenAI's list.

The key is the ``x-goog-api-key`` header or, as Google allows, the ``key=`` query parameter
(the keys plugin reads both; the query value is redacted wherever a URL is logged). A request
is translated to the canonical chat body (:mod:`plugway.formats.gemini`) and goes through the
pipeline like chat: ``pre_route`` (keys, limits, budgets, filters), routing, the attempt walk
with failover, ``post_response`` (cost, logs, audit). Errors come in Google's shape
``{"error": {"code", "message", "status"}}``.

Pass-through: when a target's provider serves the Gemini API natively
(:class:`plugway.formats.gemini.NativeGemini`, the ``gemini`` provider does) and no
``pre_route`` impl changed the canonical body (a redaction must reach the upstream), the
client's body goes to it as it is, with only the model (in the path) replaced, and its answer
bytes come back untouched; streams also need no ``stream_chunk`` impl. What only Gemini
serves (built-in tools such as ``googleSearch``, ``cachedContent``) passes through to a Gemini
target and is a 400 for any other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import unquote

import attrs
import orjson
from plugway import pipeline
from plugway.app import decision_headers, read_body
from plugway.app import error_response as core_error_response
from plugway.app import failed as core_failed
from plugway.config import Config
from plugway.context import RequestContext, Target, new_request_id
from plugway.errors import GatewayError, InvalidRequest, NotFound
from plugway.formats import gemini as fmt
from plugway.gateway import Gateway
from plugway.hooks import hookimpl
from plugway.provider import ChunkStream, Provider, ProviderResponse
from plugway.redact import redact
from plugway.sse import iter_data
from sanic import HTTPResponse, Request, Sanic

#: Writes no prompt or completion text anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False

PREFIX = "/v1beta/models"
V1_PREFIX = "/v1/models"
ENDPOINT = "gemini.generateContent"
COUNT_ENDPOINT = "gemini.countTokens"
JSON = "application/json"
METHODS = ("generateContent", "streamGenerateContent", "countTokens")


@hookimpl
def register_routes(app: Sanic[Any, Any], config: Config) -> None:
    app.add_route(list_models, PREFIX, methods=["GET"], name="gemini_models")
    app.add_route(get_model, PREFIX + "/<name:path>", methods=["GET"], name="gemini_model")
    app.add_route(call, PREFIX + "/<name:path>", methods=["POST"], name="gemini_call")
    # The google-genai SDK given only a base_url asks for API version v1.
    # (named like the core's GET /v1/models/<model_id:path>: one path, one parameter name)
    app.add_route(call_v1, V1_PREFIX + "/<model_id:path>", methods=["POST"], name="gemini_call_v1")


# -- parsing -----------------------------------------------------------------------------------


def client_headers(request: Request) -> Mapping[str, str]:
    """The request's headers; a ``key=`` query parameter counts as ``x-goog-api-key`` when
    no key header was sent (what the keys plugin authenticates in ``pre_route``)."""
    key = request.args.get("key")
    if not key or any(
        request.headers.get(name) for name in ("authorization", "x-api-key", "x-goog-api-key")
    ):
        return request.headers
    headers = {name.lower(): value for name, value in request.headers.items()}
    headers["x-goog-api-key"] = key
    return headers


@attrs.define
class Inbound:
    """A parsed Gemini request: the client's body, its canonical chat form, a second copy of
    that form to tell whether a plugin changed it, and why it has no faithful chat form (if
    so)."""

    body: dict[str, Any]
    ctx: RequestContext
    snapshot: dict[str, Any]
    untranslatable: InvalidRequest | None = None

    def body_unchanged(self) -> bool:
        return self.ctx.body == self.snapshot

    def canonical_body(self) -> dict[str, Any]:
        if self.untranslatable is not None:
            raise self.untranslatable
        return self.ctx.body


def split_name(name: str) -> tuple[str, str]:
    """``{model}:{method}`` from the path; an unknown method is a 404."""
    model, sep, method = unquote(name).rpartition(":")
    if not sep or not model or method not in METHODS:
        raise NotFound(f"Method not found: {PREFIX}/{name}")
    return model.removeprefix("models/"), method


def parse(request: Request, model: str, method: str) -> Inbound:
    """The client's JSON body and its chat form; a client's mistake is a 400 naming the
    field."""
    body, sent_model, _ = read_body(request, default_model=model)
    if body.pop("model") != model or sent_model != model:
        raise InvalidRequest("model: unknown field (the model is named in the URL)", param="model")
    stream = method == "streamGenerateContent"
    source = fmt.count_request_body(body) if method == "countTokens" else body
    try:
        canonical = fmt.chat_from_gemini_request(source, model, stream=stream)
        untranslatable: InvalidRequest | None = None
    except fmt.GeminiNativeOnly as exc:
        canonical = fmt.chat_from_gemini_request(source, model, stream=stream, lenient=True)
        untranslatable = exc
    ctx = RequestContext(
        endpoint=COUNT_ENDPOINT if method == "countTokens" else ENDPOINT,
        body=canonical,
        headers=client_headers(request),
        model=model,
        stream=stream,
        client_ip=request.remote_addr or request.ip,
    )
    snapshot = fmt.chat_from_gemini_request(
        source, model, stream=stream, lenient=untranslatable is not None
    )
    ctx.state["inbound_body"] = body
    ctx.state["canonical_lossy"] = untranslatable is not None
    return Inbound(body, ctx, snapshot, untranslatable)


def native(provider: Provider) -> fmt.NativeGemini | None:
    return provider if isinstance(provider, fmt.NativeGemini) else None


def response_id(ctx: RequestContext) -> str:
    return ctx.request_id.removeprefix("req_")


# -- POST /v1beta/models/{model}:{method} --------------------------------------------------------


async def call(request: Request, name: str) -> HTTPResponse | None:
    gw: Gateway = request.app.ctx.gateway
    try:
        model, method = split_name(name)
        inbound = parse(request, model, method)
    except GatewayError as exc:
        return error_response(exc, new_request_id())
    if method == "countTokens":
        return await count_tokens(gw, inbound)
    if inbound.ctx.stream:
        await serve_stream(request, gw, inbound, sse=request.args.get("alt") == "sse")
        return None
    return await serve_complete(gw, inbound)


async def call_v1(request: Request, model_id: str) -> HTTPResponse | None:
    return await call(request, model_id)


@attrs.define
class Answer:
    response: ProviderResponse  # chat-shaped, what post_response sees
    raw: bytes | None = None  # the upstream's Gemini bytes when passed through


def _chat_of_native(data: Mapping[str, Any], model: str, provider: str) -> dict[str, Any]:
    """The chat form of a native answer, for the plugins that read it; a blocked prompt (no
    candidates) still has its usage."""
    try:
        return fmt.from_gemini_response(data, model=model, provider=provider)
    except GatewayError:
        chat: dict[str, Any] = {"choices": [], "model": model}
        usage = fmt.usage_from_gemini(data.get("usageMetadata"))
        if usage is not None:
            chat["usage"] = usage
        return chat


async def serve_complete(gw: Gateway, inbound: Inbound) -> HTTPResponse:
    ctx = inbound.ctx
    try:
        await pipeline.route(gw, ctx)
        passthrough = inbound.body_unchanged()

        async def attempt(provider: Provider, target: Target) -> Answer:
            upstream = native(provider) if passthrough else None
            if upstream is not None:
                answer = await upstream.generate_content(ctx, target, inbound.body)
                chat = _chat_of_native(answer.body, target.model, target.provider)
                return Answer(ProviderResponse(chat), answer.raw)
            return Answer(await provider.chat(ctx, target, inbound.canonical_body()))

        answer = await pipeline.attempt_plan(gw, ctx, attempt)
        ctx.usage = answer.response.usage
        choices = answer.response.body.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            ctx.finish_reason = choices[0].get("finish_reason")
    except GatewayError as exc:
        return failed(gw, ctx, exc)
    except asyncio.CancelledError:
        ctx.status, ctx.ended = 499, time.monotonic()
        gw.spawn(gw.hooks.notify("post_response", ctx=ctx, response=None))
        raise
    ctx.status, ctx.ended = 200, time.monotonic()
    refusal = await pipeline.observe_success(gw, ctx, answer.response)
    if refusal is not None:
        return error_response(refusal, ctx.request_id, decision_headers(ctx))
    if answer.raw is not None and not answer.response.replaced:
        body = answer.raw
    else:
        body = orjson.dumps(
            fmt.gemini_from_chat_response(
                answer.response.body, model=ctx.model, response_id=response_id(ctx)
            )
        )
    return HTTPResponse(body, status=200, headers=decision_headers(ctx), content_type=JSON)


class TranslatedStream(ChunkStream):
    """A chat chunk stream from any provider, as Gemini ``alt=sse`` events. The
    ``stream_chunk`` hook sees the chat chunks first when a plugin implements it."""

    def __init__(self, gw: Gateway, ctx: RequestContext, inner: ChunkStream) -> None:
        self.gw = gw
        self.ctx = ctx
        self.inner = inner
        self.translator = fmt.ChatToGeminiStream(model=ctx.model, response_id=response_id(ctx))

    async def __aiter__(self) -> AsyncIterator[bytes]:
        translator = self.translator
        async for chunks in pipeline.chat_chunks(self.gw, self.ctx, self.inner):
            out = [fmt.gemini_sse(event) for chunk in chunks for event in translator.feed(chunk)]
            if out:
                yield b"".join(out)
        if translator.usage is None and self.inner.usage is not None:
            translator.usage = dict(self.inner.usage)
        self.usage = translator.usage
        self.finish_reason = translator.finish_reason or self.inner.finish_reason
        yield b"".join(fmt.gemini_sse(event) for event in translator.finish())

    async def aclose(self) -> None:
        await self.inner.aclose()


class ArrayFraming:
    """Re-frames whole ``alt=sse`` events as Google's JSON-array stream."""

    def __init__(self) -> None:
        self.framer = fmt.JsonArrayFramer()

    def frame(self, events: bytes) -> bytes:
        return b"".join(self.framer.frame(payload) for payload in iter_data(events))

    def close(self) -> bytes:
        return self.framer.close()


async def serve_stream(  # noqa: PLR0915 - one linear request path, like the core's
    request: Request, gw: Gateway, inbound: Inbound, *, sse: bool
) -> None:
    ctx = inbound.ctx
    try:
        await pipeline.route(gw, ctx)
        passthrough = inbound.body_unchanged() and not gw.hooks.has("stream_chunk")

        async def attempt(provider: Provider, target: Target) -> ChunkStream:
            upstream = native(provider) if passthrough else None
            if upstream is not None:
                return await upstream.stream_generate_content(ctx, target, inbound.body)
            inner = await provider.chat_stream(ctx, target, inbound.canonical_body())
            return TranslatedStream(gw, ctx, inner)

        opened = await pipeline.open_plan(gw, ctx, attempt)
    except GatewayError as exc:
        await request.respond(failed(gw, ctx, exc))
        return
    except asyncio.CancelledError:
        ctx.status, ctx.ended = 499, time.monotonic()
        gw.spawn(gw.hooks.notify("post_response", ctx=ctx, response=None))
        raise
    headers = decision_headers(ctx)
    pipeline.sse_headers(headers)
    framing = None if sse else ArrayFraming()
    response = await request.respond(
        status=200,
        headers=headers,
        content_type="text/event-stream" if sse else "application/json; charset=UTF-8",
    )

    def framed(data: bytes) -> bytes:
        return data if framing is None else framing.frame(data)

    try:
        await response.send(framed(opened.first))
        ctx.first_token_at = time.monotonic()
        async for data in opened.events:
            await response.send(framed(data))
        ctx.status = 200
    except asyncio.CancelledError:
        ctx.status = 499
        raise
    except Exception as exc:
        error = (
            exc
            if isinstance(exc, GatewayError)
            else GatewayError("the gateway failed unexpectedly; the error is in its log")
        )
        ctx.error, ctx.status = error, error.status
        attempt_record = ctx.final_attempt
        if attempt_record is not None:
            attempt_record.outcome, attempt_record.error = "broken", error
        await response.send(
            framed(fmt.gemini_sse(fmt.gemini_error_body(error.status, error.message)))
        )
    finally:
        if opened.stream.error is not None:
            ctx.error = opened.stream.error
            if ctx.status == 200:
                ctx.status = ctx.error.status
        await pipeline.close_quietly(opened.stream)
        ctx.usage = opened.stream.usage
        ctx.finish_reason = opened.stream.finish_reason
        ctx.ended = time.monotonic()
        gw.spawn(gw.hooks.notify("post_response", ctx=ctx, response=None))
    if framing is not None:
        await response.send(framing.close())
    await response.eof()


# -- countTokens -------------------------------------------------------------------------------


async def count_tokens(gw: Gateway, inbound: Inbound) -> HTTPResponse:
    ctx = inbound.ctx
    try:
        await pipeline.route(gw, ctx)

        async def attempt(provider: Provider, target: Target) -> dict[str, Any]:
            upstream = native(provider)
            if upstream is not None:
                body = native_count_body(inbound, target)
                return await upstream.count_tokens(ctx, target, body)
            return {"totalTokens": fmt.estimate_chat_tokens(ctx.body)}

        counted = await pipeline.attempt_plan(gw, ctx, attempt)
        ctx.status, ctx.ended = 200, time.monotonic()
        gw.spawn(gw.hooks.notify("post_response", ctx=ctx, response=None))
    except GatewayError as exc:
        return failed(gw, ctx, exc)
    return HTTPResponse(orjson.dumps(counted), headers=decision_headers(ctx), content_type=JSON)


def native_count_body(inbound: Inbound, target: Target) -> dict[str, Any]:
    """The client's ``countTokens`` body for a Gemini target: a ``generateContentRequest``
    names the target's model, as Google requires it to match the path."""
    body = dict(inbound.body)
    for key in ("generateContentRequest", "generate_content_request"):
        inner = body.get(key)
        if isinstance(inner, dict) and "model" in inner:
            body[key] = {**inner, "model": f"models/{target.model}"}
    return body


# -- GET /v1beta/models ------------------------------------------------------------------------


def model_info(name: str) -> dict[str, Any]:
    """One ``Model`` in the Gemini API's shape."""
    return {
        "name": f"models/{name}",
        "baseModelId": name,
        "version": "001",
        "displayName": name,
        "description": "served by plugway",
        "supportedGenerationMethods": list(METHODS),
    }


async def list_models(request: Request) -> HTTPResponse:
    gw: Gateway = request.app.ctx.gateway
    names = gw.router.model_names()
    return HTTPResponse(
        orjson.dumps({"models": [model_info(name) for name in names]}), content_type=JSON
    )


async def get_model(request: Request, name: str) -> HTTPResponse:
    gw: Gateway = request.app.ctx.gateway
    model = unquote(name).removeprefix("models/")
    try:
        gw.router.resolve(model)
    except GatewayError as exc:
        return error_response(
            NotFound(f"models/{model} is not found", code=exc.code), new_request_id()
        )
    return HTTPResponse(orjson.dumps(model_info(model)), content_type=JSON)


# -- errors ------------------------------------------------------------------------------------


def error_response(
    error: GatewayError, request_id: str, headers: Mapping[str, str] | None = None
) -> HTTPResponse:
    """Google's error envelope, with the core's headers."""
    body = orjson.dumps(fmt.gemini_error_body(error.status, redact(error.message)))
    return core_error_response(error, request_id, headers, body)


def failed(gw: Gateway, ctx: RequestContext, error: GatewayError) -> HTTPResponse:
    return core_failed(gw, ctx, error, render=error_response)


@hookimpl
def render_error(request: Request, error: GatewayError, request_id: str) -> HTTPResponse | None:
    """The framework's own errors (413, 404, 405 ...) on this plugin's paths, in its shape."""
    if request.path.startswith("/v1beta/") or (
        request.method == "POST" and request.path.startswith(V1_PREFIX + "/")
    ):
        return error_response(error, request_id)
    return None
