"""``POST /v1/responses``: OpenAI's Responses API to any route, streamed or not.

The request is translated to the canonical chat body (``ctx.body``), so ``pre_route`` plugins
(keys, limits, budgets, the pii/secrets/prompt_guard filters) see and may redact its text; it
is routed and the plan walked with ``pipeline.attempt_plan`` (failover; a stream fails over
only before its first byte, after that it ends with ``response.failed`` in band); and
``post_response`` sees a chat-shaped answer, so cost, metrics, the request store and the audit
trail cover it as they cover chat.

Per target: a provider whose host serves ``/v1/responses`` itself
(:func:`plugway.formats.openai_responses_native.native_responses`) gets the client's body
(``model`` replaced) and its answer comes back untouched, unless a ``pre_route`` plugin changed
the canonical body (a redaction must reach the upstream) or, for streams, a ``stream_chunk``
impl must see the chunks; every other target is served through chat completions. A request
only a native target can serve (built-in tools, unknown fields) is tried on the plan's native
targets only, and answered 400 when there are none.

State: see :mod:`plugway.plugins.responses` (``store``, ``previous_response_id``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import attrs
import orjson
from loguru import logger
from plugway import pipeline
from plugway.app import decision_headers, failed, read_body
from plugway.app import error_response as core_error_response
from plugway.context import RequestContext, Target, new_request_id
from plugway.errors import GatewayError, InvalidRequest
from plugway.formats.openai_responses import (
    ChatToResponsesStream,
    NativeOnly,
    builtin_tools,
    from_chat_response,
    input_items,
    output_to_chat_messages,
    responses_param,
    sse,
    to_chat_request,
)
from plugway.formats.openai_responses_native import (
    ResponsesEventStream,
    chat_of_response,
    chat_to_input_items,
    input_as_items,
    lenient_chat_request,
    native_responses,
)
from plugway.gateway import Gateway
from plugway.plugins.responses.runtime import owner_of, runtime
from plugway.plugins.responses.store import StoredResponse
from plugway.provider import ChunkStream, Provider, ProviderResponse
from sanic import HTTPResponse, Request

ENDPOINT = "responses"
JSON = "application/json"


# -- parsing -----------------------------------------------------------------------------------


@attrs.define
class Inbound:
    """A parsed Responses request: the client's body (``store`` as served), its canonical chat
    form in ``ctx.body`` and a copy of it to tell whether a plugin changed it."""

    body: dict[str, Any]
    ctx: RequestContext
    snapshot: dict[str, Any]
    #: Why the body has no chat form (built-in tools, unknown fields), if it has none.
    untranslatable: InvalidRequest | None
    #: Leading system messages in ``ctx.body`` made from ``instructions``.
    leading: int
    store: bool
    response_id: str
    created_at: int
    previous: StoredResponse | None = None
    #: This turn's input as chat messages, as the plugins left them (for the next turn).
    turn_input: list[dict[str, Any]] = attrs.field(factory=list)
    #: Whether a ``pre_route`` plugin changed the canonical body (a redaction).
    changed: bool = False
    #: Whether the client's body may go to a native target as it is.
    passthrough: bool = False
    #: The built-in tools (types) left out of ``ctx.body`` for a translated target, when the
    #: request does not force them and they are all that has no chat form.
    droppable: list[str] = attrs.field(factory=list)

    def canonical_body(self) -> dict[str, Any]:
        if self.untranslatable is not None:
            raise self.untranslatable
        return self.ctx.body

    def native_body(self, target: Target) -> dict[str, Any]:
        """The body for a native target: the client's, with the stored conversation inlined
        as input items unless that provider itself keeps the previous response."""
        previous = self.previous
        if previous is None or (
            previous.native and previous.upstream_stored and previous.provider == target.provider
        ):
            return self.body
        body = dict(self.body)
        body.pop("previous_response_id", None)
        body["input"] = chat_to_input_items(previous.messages) + input_as_items(self.body)
        return body


def without_builtin_tools(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]] | None:
    """The body without its built-in tools and their types, when that body has a chat form:
    the tools are not forced (a ``tool_choice`` naming one, or ``required`` with only those
    tools, keeps them) and nothing else needs a native target. None otherwise."""
    dropped = builtin_tools(body)
    if not dropped:
        return None
    tools = [
        t
        for t in body.get("tools") or ()
        if isinstance(t, dict) and t.get("type") in ("function", "namespace")
    ]
    if not tools and body.get("tool_choice") == "required":
        return None
    kept = {k: v for k, v in body.items() if k not in ("tools", "tool_choice")}
    if tools:
        kept["tools"] = tools
        if "tool_choice" in body:
            kept["tool_choice"] = body["tool_choice"]
    elif isinstance(body.get("tool_choice"), dict):
        return None  # it names a tool: a forced built-in one, or one not given
    try:
        to_chat_request(kept)
    except InvalidRequest:
        return None
    return kept, dropped


def parse(request: Request, gw: Gateway) -> Inbound:
    """Check the body; a client's mistake is a 400 naming the field."""
    body, model, stream = read_body(request)
    settings = runtime.settings
    store = body.get("store")
    if store is not None and not isinstance(store, bool):
        raise InvalidRequest("store must be true or false", param="store")
    if body.get("background") is True:
        raise InvalidRequest(
            "background responses are not served by this gateway; leave background out",
            param="background",
            code="unsupported_parameter",
        )
    previous = body.get("previous_response_id")
    if previous is not None and (not isinstance(previous, str) or not previous):
        raise InvalidRequest(
            "previous_response_id must be a response id", param="previous_response_id"
        )
    wants_store = store is not False
    if wants_store and gw.config.privacy.zdr:
        if settings.zdr_store != "coerce":
            raise InvalidRequest(
                "store: zero data retention is on ([privacy] zdr = true), so responses cannot "
                'be stored; send "store": false',
                param="store",
                code="store_not_allowed",
            )
        body["store"], wants_store = False, False
    droppable: list[str] = []
    try:
        canonical, untranslatable = to_chat_request(body), None
        snapshot = to_chat_request(body)
    except NativeOnly as exc:
        untranslatable = exc
        kept = without_builtin_tools(body)
        if kept is not None:  # served through chat without them, unless a native target can
            canonical, snapshot, droppable = (
                to_chat_request(kept[0]),
                to_chat_request(kept[0]),
                kept[1],
            )
        else:
            canonical, snapshot = lenient_chat_request(body), lenient_chat_request(body)
    instructions = body.get("instructions")
    ctx = RequestContext(
        endpoint=ENDPOINT,
        body=canonical,
        headers=request.headers,
        model=model,
        stream=stream,
        client_ip=request.remote_addr or request.ip,
    )
    return Inbound(
        body=body,
        ctx=ctx,
        snapshot=snapshot,
        untranslatable=untranslatable,
        leading=1 if isinstance(instructions, str) and instructions else 0,
        store=wants_store and runtime.store is not None,
        response_id="resp_" + ctx.request_id.removeprefix("req_"),
        created_at=int(ctx.started_wall),
        droppable=droppable,
    )


async def prepare(gw: Gateway, inbound: Inbound, *, stream: bool) -> None:
    """Route (``pre_route`` first), then decide pass-through, restore the conversation and
    keep to the targets that can serve the request."""
    ctx = inbound.ctx
    await pipeline.route(gw, ctx)
    inbound.changed = ctx.body != inbound.snapshot
    inbound.passthrough = not inbound.changed and not (stream and gw.hooks.has("stream_chunk"))
    messages = ctx.body.get("messages")
    if isinstance(messages, list):
        inbound.turn_input = orjson.loads(orjson.dumps(messages[inbound.leading :]))
    previous_id = inbound.body.get("previous_response_id")
    if isinstance(previous_id, str):
        inbound.previous = await load_previous(ctx, previous_id)
        if isinstance(messages, list):
            messages[inbound.leading : inbound.leading] = inbound.previous.messages
    if inbound.untranslatable is not None:
        native = [t for t in ctx.plan if native_responses(gw.providers[t.provider], t) is not None]
        if native and not inbound.passthrough:
            refused = inbound.untranslatable
            raise InvalidRequest(
                f"{refused.message} (this request cannot be passed through either: a gateway "
                "filter changed it or must read the answer as it streams)",
                param=refused.param,
                code=refused.code,
            )
        if not native and drop_builtin_tools(inbound):
            return
        if not native:
            raise inbound.untranslatable
        if len(native) < len(ctx.plan):
            ctx.trace.notes.append("native Responses targets only")
            ctx.plan = native
            ctx.trace.plan = [t.key for t in native]


#: ``[[models]] options = { hosted_tools = "refuse" }`` refuses built-in tools a route's
#: targets cannot run instead of dropping them.
HOSTED_TOOLS_OPTION = "hosted_tools"
DROPPED_TOOLS_HEADER = "x-plugway-dropped-tools"


def drop_builtin_tools(inbound: Inbound) -> bool:
    """Serve a request whose only untranslatable parts are built-in tools it does not force
    through chat without them, when no target can run them and the route does not say
    ``hosted_tools = "refuse"``: they are named in ``x-plugway-dropped-tools`` and in the
    routing trace (so in the request log). Returns whether it did."""
    ctx = inbound.ctx
    route = ctx.route
    policy = route.options.get(HOSTED_TOOLS_OPTION, "drop") if route is not None else "drop"
    if not inbound.droppable or policy == "refuse":
        return False
    names = ", ".join(dict.fromkeys(inbound.droppable))
    ctx.response_headers[DROPPED_TOOLS_HEADER] = names
    ctx.trace.notes.append(f"dropped built-in tools no target can run: {names}")
    inbound.untranslatable = None
    return True


def as_responses_error(inbound: Inbound, exc: GatewayError) -> GatewayError:
    """``exc`` naming the Responses field the client sent where a translation for a target
    named the canonical chat body's (``response_format.type`` -> ``text.format.type``)."""
    if isinstance(exc, InvalidRequest):
        exc.param = responses_param(exc.param, inbound.leading)
    return exc


async def load_previous(ctx: RequestContext, response_id: str) -> StoredResponse:
    store = runtime.store
    record = await store.get(response_id) if store is not None else None
    if record is None or record.owner != owner_of(ctx):
        raise InvalidRequest(
            f"Previous response with id '{response_id}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    return record


# -- POST /v1/responses ------------------------------------------------------------------------


async def create(request: Request) -> HTTPResponse | None:
    gw: Gateway = request.app.ctx.gateway
    try:
        inbound = parse(request, gw)
    except GatewayError as exc:
        return core_error_response(exc, new_request_id())
    if inbound.ctx.stream:
        await serve_stream(request, gw, inbound)
        return None
    return await serve_complete(gw, inbound)


@attrs.define
class Answer:
    chat: ProviderResponse  # chat-shaped, what post_response sees
    #: The host's Response object and bytes when served natively.
    native: dict[str, Any] | None = None
    raw: bytes | None = None


async def serve_complete(gw: Gateway, inbound: Inbound) -> HTTPResponse:
    ctx = inbound.ctx
    try:
        await prepare(gw, inbound, stream=False)

        async def call(provider: Provider, target: Target) -> Answer:
            upstream = native_responses(provider, target) if inbound.passthrough else None
            if upstream is not None:
                answer = await upstream.responses(ctx, target, inbound.native_body(target))
                chat = chat_of_response(answer.body)
                return Answer(ProviderResponse(chat, raw=b"native"), answer.body, answer.raw)
            return Answer(await provider.chat(ctx, target, inbound.canonical_body()))

        answer = await pipeline.attempt_plan(gw, ctx, call)
        ctx.usage = answer.chat.usage
        choices = answer.chat.body.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            ctx.finish_reason = choices[0].get("finish_reason")
    except GatewayError as exc:
        return failed(gw, ctx, as_responses_error(inbound, exc))
    except asyncio.CancelledError:
        ctx.status, ctx.ended = 499, time.monotonic()
        gw.spawn(gw.hooks.notify("post_response", ctx=ctx, response=None))
        raise
    ctx.status, ctx.ended = 200, time.monotonic()
    refusal = await pipeline.observe_success(gw, ctx, answer.chat)
    if refusal is not None:
        return core_error_response(refusal, ctx.request_id, decision_headers(ctx))
    body: bytes | None = None
    if answer.native is not None and answer.chat.raw is not None:
        response = answer.native
        if inbound.body.get("previous_response_id") != response.get("previous_response_id"):
            response["previous_response_id"] = inbound.body.get("previous_response_id")
        else:
            body = answer.raw
    else:
        response_id = inbound.response_id
        if answer.native is not None and isinstance(answer.native.get("id"), str):
            response_id = answer.native["id"]
        response = from_chat_response(
            answer.chat.body,
            response_id=response_id,
            request=inbound.body,
            created_at=inbound.created_at,
        )
    await remember(inbound, response, native=answer.native is not None)
    return HTTPResponse(
        body if body is not None else orjson.dumps(response),
        status=200,
        headers=decision_headers(ctx),
        content_type=JSON,
    )


async def remember(inbound: Inbound, response: dict[str, Any], *, native: bool) -> None:
    """Store the response and the conversation so far, when asked to. A failure to store is
    logged; the answer still goes out."""
    store = runtime.store
    response_id = response.get("id")
    if not inbound.store or store is None or not isinstance(response_id, str):
        return
    ctx = inbound.ctx
    target = ctx.served_by
    previous = inbound.previous.messages if inbound.previous is not None else []
    record = StoredResponse(
        id=response_id,
        owner=owner_of(ctx),
        response=response,
        input_items=input_items(
            # what the plugins left of the input, when they changed it (redactions)
            {"input": chat_to_input_items(inbound.turn_input)} if inbound.changed else inbound.body,
            response_id=response_id,
        ),
        messages=[*previous, *inbound.turn_input, *output_to_chat_messages(response)],
        provider=target.provider if target is not None else "",
        native=native,
        upstream_stored=native and inbound.body.get("store") is not False,
    )
    try:
        await store.put(record)
    except Exception:
        logger.opt(exception=True).error("the responses plugin failed to store {}", response_id)


# -- streams -----------------------------------------------------------------------------------


class TranslatedStream(ChunkStream):
    """A chat chunk stream from any provider, as Responses events. ``stream_chunk`` impls see
    the chat chunks first. The opening events go out with the first upstream chunk, so the
    plan can still fail over while the upstream has sent nothing."""

    def __init__(self, gw: Gateway, inbound: Inbound, inner: ChunkStream) -> None:
        self.gw = gw
        self.ctx = inbound.ctx
        self.inner = inner
        self.translator = ChatToResponsesStream(
            response_id=inbound.response_id, request=inbound.body, created_at=inbound.created_at
        )

    async def __aiter__(self) -> AsyncIterator[bytes]:
        translator = self.translator
        async for chunks in pipeline.chat_chunks(self.gw, self.ctx, self.inner):
            out = [sse(event) for chunk in chunks for event in translator.feed(chunk)]
            if out:
                yield b"".join(out)
        self.usage = translator.usage or self.inner.usage
        self.finish_reason = translator.finish_reason or self.inner.finish_reason
        yield b"".join(sse(event) for event in translator.finish(self.usage))

    async def aclose(self) -> None:
        await self.inner.aclose()


async def serve_stream(  # noqa: PLR0915 - one linear request path, like the core's
    request: Request, gw: Gateway, inbound: Inbound
) -> None:
    ctx = inbound.ctx
    try:
        await prepare(gw, inbound, stream=True)

        async def call(provider: Provider, target: Target) -> ChunkStream:
            upstream = native_responses(provider, target) if inbound.passthrough else None
            stream: ChunkStream
            if upstream is not None:
                stream = await upstream.responses_stream(ctx, target, inbound.native_body(target))
            else:
                inner = await provider.chat_stream(ctx, target, inbound.canonical_body())
                stream = TranslatedStream(gw, inbound, inner)
            return stream

        opened = await pipeline.open_plan(gw, ctx, call)
    except GatewayError as exc:
        await request.respond(failed(gw, ctx, as_responses_error(inbound, exc)))
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
    stream = opened.stream
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
        error = (
            exc
            if isinstance(exc, GatewayError)
            else GatewayError("the gateway failed unexpectedly; the error is in its log")
        )
        if not isinstance(exc, GatewayError):
            logger.opt(exception=exc).error("unexpected error while streaming a response")
        ctx.error, ctx.status = error, error.status
        attempt = ctx.final_attempt
        if attempt is not None:
            attempt.outcome, attempt.error = "broken", error
        await response.send(failure_events(stream, error))
    finally:
        # A passed-through stream forwards an upstream error event as it is; record it even
        # when the client hung up on reading it.
        if stream.error is not None:
            ctx.error = stream.error
            if ctx.status == 200:
                ctx.status = ctx.error.status
        await pipeline.close_quietly(stream)
        ctx.usage = stream.usage
        ctx.finish_reason = stream.finish_reason
        ctx.ended = time.monotonic()
        gw.spawn(gw.hooks.notify("post_response", ctx=ctx, response=None))
    if ctx.status == 200:
        final = final_response(stream)
        if final is not None:
            await remember(inbound, final, native=isinstance(stream, ResponsesEventStream))
    await response.eof()


def final_response(stream: ChunkStream) -> dict[str, Any] | None:
    """The finished Response object of a stream that ended well, if it has one."""
    if isinstance(stream, TranslatedStream):
        return stream.translator.response if stream.translator.done else None
    if isinstance(stream, ResponsesEventStream):
        return stream.response
    return None


def failure_events(stream: ChunkStream, error: GatewayError) -> bytes:
    """What ends a stream that broke after its first byte: ``response.failed`` for a
    translated stream (its sequence numbers continue), an ``error`` event for a passed-through
    one (whose events the gateway does not count)."""
    if isinstance(stream, TranslatedStream):
        return b"".join(sse(e) for e in stream.translator.fail(error.message, error.code))
    return sse(
        {
            "type": "error",
            "code": error.code or "server_error",
            "message": error.message,
            "param": None,
            "sequence_number": 0,
        }
    )
