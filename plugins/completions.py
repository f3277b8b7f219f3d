"""OpenAI's legacy text completions, ``POST /v1/completions``, to any target.

A request is checked and turned into the canonical chat body (``ctx.body``: one ``user``
message per prompt, see :mod:`plugway.formats.openai_completions`) and goes through the normal
pipeline: ``pre_route`` (keys, limits, budgets, pii/secrets/prompt_guard, which may redact the
prompts), routing, the attempt walk with failover, and ``post_response`` (cost, metrics, store,
audit; it sees a chat-shaped answer). Errors have OpenAI's shape.

Pass-through: a target whose provider serves completions natively
(:class:`~plugway.formats.openai_completions.NativeCompletions` with ``serves_completions``:
the ``openai`` provider unless its ``completions_api = false``) gets the client's own body with
only ``model`` replaced, and its answer comes back as the host's bytes (streams: its events).
It is skipped, and the request translated instead, when a ``pre_route`` impl changed
``ctx.body`` (a redaction must reach the upstream) or, for streams, when a ``stream_chunk``
impl must see chat chunks. Other targets (``completions_api = false``, anthropic, gemini, fake)
are served through ``chat``/``chat_stream``: a list of several prompts takes one chat call per
prompt, made on the same target within one attempt (concurrently for answers, one stream after
the other for streams), and the answers are merged (choice ``prompt_index * n + choice``,
usage summed). A request chat cannot express (token-id prompts, ``suffix``, ``best_of``) is
served by native targets only; others refuse it with a 400 naming the field.

Streams fail over only until their first byte; after it an upstream failure ends the stream
with an in-band ``data: {"error": ...}`` event and no ``[DONE]``, as chat streams do.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import attrs
import orjson
from loguru import logger
from plugway import pipeline
from plugway.app import decision_headers, error_response, failed, read_body
from plugway.config import Config
from plugway.context import RequestContext, Target, new_request_id
from plugway.errors import GatewayError, InvalidRequest, UpstreamStreamBroken
from plugway.formats.openai_completions import (
    ChatToCompletionStream,
    CompletionRequest,
    NativeCompletions,
    add_usage,
    chat_to_completion,
    choice_texts,
    completion_id,
    completion_to_chat,
    completions_param,
    drop_stale_logprobs,
    merge_chat_answers,
    parse_request,
    prompt_bodies,
    prompt_text,
)
from plugway.gateway import Gateway
from plugway.hooks import hookimpl
from plugway.provider import ChunkStream, Provider, ProviderResponse
from plugway.sse import DONE, iter_data, sse_event
from sanic import HTTPResponse, Request, Sanic

#: Writes no prompt or completion text anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False

ENDPOINT = "completions"
JSON = "application/json"
T = TypeVar("T")


@hookimpl
def register_routes(app: Sanic[Any, Any], config: Config) -> None:
    for path in ("/v1/completions", "/completions"):
        app.add_route(
            completions, path, methods=["POST"], name="completions" + path.replace("/", "_")
        )


# -- parsing -----------------------------------------------------------------------------------


@attrs.define
class Inbound:
    """A checked request, its context (``ctx.body`` the canonical chat body) and a copy of
    that body to tell whether a plugin changed it."""

    request: CompletionRequest
    ctx: RequestContext
    snapshot: dict[str, Any]

    def body_unchanged(self) -> bool:
        return self.ctx.body == self.snapshot

    def chat_bodies(self) -> list[dict[str, Any]]:
        """One chat body per prompt, from ``ctx.body`` as the plugins left it; refuses a
        request that chat cannot express."""
        if self.request.untranslatable is not None:
            raise self.request.untranslatable
        return prompt_bodies(self.ctx.body)

    def echo_prompts(self, bodies: Sequence[dict[str, Any]]) -> list[str] | None:
        return [prompt_text(body) for body in bodies] if self.request.echo else None

    def translator(self, bodies: Sequence[dict[str, Any]]) -> ChatToCompletionStream:
        return ChatToCompletionStream(
            model=self.ctx.model,
            id=completion_id(self.ctx.request_id),
            n=self.request.n,
            echo_prompts=self.echo_prompts(bodies),
        )


def parse(request: Request) -> Inbound:
    body, model, stream = read_body(request)
    parsed = parse_request(body)
    ctx = RequestContext(
        endpoint=ENDPOINT,
        body=parsed.chat,
        headers=request.headers,
        model=model,
        stream=stream,
        client_ip=request.remote_addr or request.ip,
    )
    return Inbound(parsed, ctx, copy.deepcopy(parsed.chat))


def native(provider: Provider) -> NativeCompletions | None:
    if isinstance(provider, NativeCompletions) and provider.serves_completions:
        return provider
    return None


#: How many of one request's per-prompt chat calls run at once.
PROMPT_CONCURRENCY = 4


async def gather_all(calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run ``calls``, :data:`PROMPT_CONCURRENCY` at a time; when one fails, the others are
    cancelled before its error propagates (an attempt's calls succeed or fail as one)."""
    gate = asyncio.Semaphore(PROMPT_CONCURRENCY)

    async def gated(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    tasks = [asyncio.ensure_future(gated(call)) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


# -- POST /v1/completions ----------------------------------------------------------------------


async def completions(request: Request) -> HTTPResponse | None:
    gw: Gateway = request.app.ctx.gateway
    try:
        inbound = parse(request)
    except GatewayError as exc:
        return error_response(exc, new_request_id())
    if inbound.ctx.stream:
        await serve_stream(request, gw, inbound)
        return None
    return await serve_complete(gw, inbound)


@attrs.define
class Answer:
    #: Chat-shaped, what post_response sees; its ``raw`` is the host's own completion bytes
    #: when passed through.
    response: ProviderResponse
    echo_prompts: list[str] | None = None  # what to put before each choice's text


def as_completions_error(exc: GatewayError) -> GatewayError:
    """``exc`` naming the completions field the client sent where a translation for a target
    named the chat body's (``messages`` -> ``prompt``)."""
    if isinstance(exc, InvalidRequest):
        exc.param = completions_param(exc.param)
    return exc


async def serve_complete(gw: Gateway, inbound: Inbound) -> HTTPResponse:
    ctx = inbound.ctx
    try:
        await pipeline.route(gw, ctx)
        passthrough = inbound.body_unchanged()

        async def call(provider: Provider, target: Target) -> Answer:
            upstream = native(provider) if passthrough else None
            if upstream is not None:
                answer = await upstream.completions(ctx, target, inbound.request.body)
                # raw stays on the chat-shaped response: a plugin that changes the body
                # calls replace_body, which drops it, and the answer is rendered again.
                return Answer(ProviderResponse(completion_to_chat(answer.body), raw=answer.raw))
            bodies = inbound.chat_bodies()
            answers = await gather_all(
                [functools.partial(provider.chat, ctx, target, body) for body in bodies]
            )
            merged = merge_chat_answers([a.body for a in answers], inbound.request.n)
            return Answer(ProviderResponse(merged), inbound.echo_prompts(bodies))

        answer = await pipeline.attempt_plan(gw, ctx, call)
        ctx.usage = answer.response.usage
        choices = answer.response.body.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            ctx.finish_reason = choices[0].get("finish_reason")
    except GatewayError as exc:
        return failed(gw, ctx, as_completions_error(exc))
    except asyncio.CancelledError:
        ctx.status, ctx.ended = 499, time.monotonic()
        gw.spawn(gw.hooks.notify("post_response", ctx=ctx, response=None))
        raise
    ctx.status, ctx.ended = 200, time.monotonic()
    before = choice_texts(answer.response.body)
    refusal = await pipeline.observe_success(gw, ctx, answer.response)
    if refusal is not None:
        return error_response(refusal, ctx.request_id, decision_headers(ctx))
    if answer.response.raw is not None:
        body = answer.response.raw
    else:
        chat = answer.response.body
        drop_stale_logprobs(chat, before)
        model = chat.get("model")
        body = orjson.dumps(
            chat_to_completion(
                chat,
                model=model if isinstance(model, str) and model else ctx.model,
                id=completion_id(ctx.request_id),
                echo_prompts=answer.echo_prompts,
                n=inbound.request.n,
            )
        )
    return HTTPResponse(body, status=200, headers=decision_headers(ctx), content_type=JSON)


class TranslatedStream(ChunkStream):
    """Chat chunk streams, one per prompt and read one after the other, as completion
    chunks. The first stream is already open (so failover covers opening it); the next ones
    open on the same target when the previous one ends. ``stream_chunk`` impls see the chat
    chunks first. Usage is summed and sent in one closing chunk when the client asked."""

    def __init__(
        self,
        gw: Gateway,
        inbound: Inbound,
        provider: Provider,
        target: Target,
        bodies: list[dict[str, Any]],
        first: ChunkStream,
    ) -> None:
        self.gw = gw
        self.inbound = inbound
        self.provider = provider
        self.target = target
        self.bodies = bodies
        self.current = first
        self.translator = inbound.translator(bodies)
        self.rewrite = gw.hooks.has("stream_chunk")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        ctx, translator = self.inbound.ctx, self.translator
        total: dict[str, Any] | None = None
        for prompt, body in enumerate(self.bodies):
            if prompt:
                await pipeline.close_quietly(self.current)
                self.current = await self.provider.chat_stream(ctx, self.target, body)
            async for received in self.current:
                data = received
                if self.rewrite:
                    data = await pipeline.rewrite_chunks(self.gw, ctx, received)
                out: list[bytes] = []
                for payload in iter_data(data):
                    try:
                        chunk = orjson.loads(payload)
                    except orjson.JSONDecodeError:
                        raise UpstreamStreamBroken(
                            f"provider '{self.target.provider}' sent a stream event that is "
                            "not JSON",
                            provider=self.target.provider,
                        ) from None
                    if isinstance(chunk, dict):
                        out.extend(sse_event(c) for c in translator.feed(chunk, prompt))
                if out:
                    yield b"".join(out)
            total = add_usage(total, self.current.usage)
            self.finish_reason = translator.finish_reason or self.current.finish_reason
        self.usage = total
        if self.inbound.request.include_usage and total is not None:
            yield sse_event(translator.usage_chunk(total))

    async def aclose(self) -> None:
        await self.current.aclose()


async def serve_stream(  # noqa: PLR0915 - one linear request path, like the core's
    request: Request, gw: Gateway, inbound: Inbound
) -> None:
    ctx = inbound.ctx
    try:
        await pipeline.route(gw, ctx)
        passthrough = inbound.body_unchanged() and not gw.hooks.has("stream_chunk")

        async def call(provider: Provider, target: Target) -> ChunkStream:
            upstream = native(provider) if passthrough else None
            stream: ChunkStream
            if upstream is not None:
                stream = await upstream.completions_stream(ctx, target, inbound.request.body)
            else:
                bodies = inbound.chat_bodies()
                first = await provider.chat_stream(ctx, target, bodies[0])
                stream = TranslatedStream(gw, inbound, provider, target, bodies, first)
            return stream

        opened = await pipeline.open_plan(gw, ctx, call)
    except GatewayError as exc:
        await request.respond(failed(gw, ctx, as_completions_error(exc)))
        return
    except asyncio.CancelledError:
        ctx.status, ctx.ended = 499, time.monotonic()
        gw.spawn(gw.hooks.notify("post_response", ctx=ctx, response=None))
        raise
    headers = decision_headers(ctx)
    pipeline.sse_headers(headers)
    response = await request.respond(
        status=200, headers=headers, content_type="text/event-stream; charset=utf-8"
    )
    try:
        await response.send(opened.first)
        ctx.first_token_at = time.monotonic()
        async for data in opened.events:
            await response.send(data)
        await response.send(DONE)
        ctx.status = 200
    except asyncio.CancelledError:
        ctx.status = 499
        raise
    except Exception as exc:
        if isinstance(exc, GatewayError):
            error = exc
        else:
            logger.opt(exception=exc).error("unexpected error while streaming a completion")
            error = GatewayError("the gateway failed unexpectedly; the error is in its log")
        ctx.error, ctx.status = error, error.status
        attempt = ctx.final_attempt
        if attempt is not None:
            attempt.outcome, attempt.error = "broken", error
        await response.send(sse_event(error.to_body()))
    finally:
        if opened.stream.error is not None:  # an upstream error event forwarded as it was
            ctx.error = opened.stream.error
            if ctx.status == 200:
                ctx.status = ctx.error.status
        await pipeline.close_quietly(opened.stream)
        ctx.usage = opened.stream.usage
        ctx.finish_reason = opened.stream.finish_reason
        ctx.ended = time.monotonic()
        gw.spawn(gw.hooks.notify("post_response", ctx=ctx, response=None))
    await response.eof()
