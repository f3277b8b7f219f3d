"""The request path, free of HTTP: pre_route, resolve, select_provider, then the walk over
the plan with its attempts, timeouts, failure decisions and the overall deadline."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import attrs
import httpx
import orjson
from loguru import logger
from plugway import faults
from plugway.context import Attempt, FailureAction, FailureDecision, RequestContext, Target
from plugway.errors import (
    GatewayError,
    InternalError,
    PluginFailed,
    RoutingExhausted,
    ServiceUnavailable,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamStreamBroken,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from plugway.gateway import Gateway
from plugway.provider import CacheLookup, ChunkStream, Provider, ProviderResponse
from plugway.sse import iter_data, sse_event

T = TypeVar("T")

#: The outcome of an attempt that the gateway itself broke (see :mod:`plugway.faults`): not
#: the target's failure, so health, circuits and ``plugway_target_up`` leave it out.
INTERNAL = "internal"


async def route(gw: Gateway, ctx: RequestContext) -> None:
    """Run ``pre_route``, resolve the model and let ``select_provider`` make the plan."""
    await gw.hooks.call_all("pre_route", ctx=ctx)
    ctx.route = gw.router.resolve(ctx.model)
    if ctx.route.deadline is not None:
        ctx.deadline = ctx.started + ctx.route.deadline
    ctx.env = gw.env
    ctx.trace.candidates = [t.key for t in ctx.route.targets]
    plan = await gw.hooks.call_first("select_provider", ctx=ctx, candidates=ctx.route.targets)
    unknown = [t for t in plan or () if t.provider not in gw.providers]
    if plan and not unknown and gw.config.privacy.zdr:
        # Zero data retention: whatever a strategy or routing hook chose, only targets that
        # keep no data are tried.
        plan = [t for t in plan if t.zdr or gw.providers[t.provider].settings.zdr]
    if not plan or unknown:
        detail = f" (unknown provider {unknown[0].provider!r})" if unknown else ""
        raise ServiceUnavailable(
            f"no target is available for model '{ctx.model}'{detail}", code="no_target"
        )
    ctx.plan = list(plan)
    ctx.trace.strategy = ctx.trace.strategy or "select_provider hook"
    ctx.trace.plan = [t.key for t in ctx.plan]


async def attempt_plan(
    gw: Gateway,
    ctx: RequestContext,
    operation: Callable[[Provider, Target], Awaitable[T]],
    discard: Callable[[T], Awaitable[None]] | None = None,
) -> T:
    """Try the plan's targets until one succeeds, as ``on_failure`` decides.

    First, when a plugin implements ``cached_response``, a cache may answer: ``operation``
    then runs once with the cache's provider and no attempt is made (see that hook).

    Each attempt is bounded by its provider's ``timeout`` and by what is left of the request's
    deadline. When ``hedge_delay`` answers a delay, the attempt races the next target once
    the delay passes (see that hook); ``discard`` releases a result that lost such a race.
    Raises the error of the last attempt when the policy stops on a final error, or
    :class:`RoutingExhausted` when retryable failures used up the plan or the deadline. An
    :class:`InternalError` (the gateway's own fault) is raised at once: ``on_failure`` does
    not see it, so it is neither retried, failed over, nor counted against the target.
    """
    if gw.hooks.has("cached_response"):
        lookup = await gw.hooks.call_first("cached_response", ctx=ctx)
        if isinstance(lookup, CacheLookup):
            if lookup.hit is not None and ctx.plan:
                try:
                    return await operation(lookup.hit, ctx.plan[0])
                except GatewayError as exc:
                    logger.debug("the cached answer does not fit this door ({})", exc.code)
            if lookup.record is not None:
                operation = _recorded(operation, lookup.record)
    index, tries_of_target = 0, 0
    error: GatewayError | None = None
    hedging = gw.hooks.has("hedge_delay")
    while index < len(ctx.plan):
        remaining = ctx.remaining()
        if remaining is not None and remaining <= 0:
            break
        delay = None
        if hedging and index + 1 < len(ctx.plan):
            delay = await gw.hooks.call_first("hedge_delay", ctx=ctx, target=ctx.plan[index])
        if delay is None:
            attempt, outcome = await _attempt(gw, ctx, operation, index, tries_of_target)
            if not isinstance(outcome, GatewayError):
                return outcome
            failures = [(attempt, outcome)]
        else:
            won, failures = await _race(gw, ctx, operation, index, tries_of_target, delay, discard)
            if won is not None:
                return won[0]
        internal = next((e for _, e in failures if isinstance(e, InternalError)), None)
        if internal is not None:
            # The gateway's own fault: no other target would fare better, and no failure
            # policy or health tracker may count it against this one.
            raise internal
        decision: object = None
        for attempt, error in failures:
            decision = await gw.hooks.call_first(
                "on_failure", ctx=ctx, attempt=attempt, error=error
            )
        attempt, error = failures[-1]
        if not isinstance(decision, FailureDecision):
            decision = FailureDecision.stop("no failure policy decided")
        if decision.action is FailureAction.RETRY:
            remaining = ctx.remaining()
            if remaining is not None and decision.delay >= remaining:
                break
            if decision.delay > 0:
                await asyncio.sleep(decision.delay)
            index, tries_of_target = attempt.plan_index, attempt.retry_of_target + 1
        elif decision.action is FailureAction.NEXT:
            index, tries_of_target = max(a.plan_index for a, _ in failures) + 1, 0
        else:
            break
    raise final_error(ctx, error)


def _recorded(
    operation: Callable[[Provider, Target], Awaitable[T]],
    wrap: Callable[[Provider], Provider],
) -> Callable[[Provider, Target], Awaitable[T]]:
    """``operation`` calling each provider through ``wrap`` (a cache recording a miss)."""

    async def call(provider: Provider, target: Target) -> T:
        return await operation(wrap(provider), target)

    return call


async def _attempt(
    gw: Gateway,
    ctx: RequestContext,
    operation: Callable[[Provider, Target], Awaitable[T]],
    index: int,
    tries_of_target: int,
    hedge: bool = False,
) -> tuple[Attempt, T | GatewayError]:
    """One attempt of ``ctx.plan[index]``: its result, or the error it failed with. Only
    cancellation propagates (the attempt is then recorded as "cancelled"). An exception that
    is not a GatewayError (nor a transport failure) is the gateway's fault: it comes back as
    an :class:`InternalError` with the outcome :data:`INTERNAL`."""
    target = ctx.plan[index]
    provider = gw.providers[target.provider]
    budget = provider.settings.timeout
    remaining = ctx.remaining()
    if remaining is not None:
        budget = max(0.0, min(budget, remaining))
    attempt = Attempt(
        target, len(ctx.attempts) + 1, index, tries_of_target, time.monotonic(), hedge=hedge
    )
    ctx.attempts.append(attempt)
    observed = gw.hooks.has("attempt_ended")
    if gw.hooks.has("attempt_started"):
        await gw.hooks.notify("attempt_started", ctx=ctx, attempt=attempt)
    error: GatewayError
    try:
        async with asyncio.timeout(budget):
            result = await operation(provider, target)
    except TimeoutError:
        error = UpstreamTimeout(
            f"provider '{target.provider}' did not answer within {budget:.3g}s",
            provider=target.provider,
        )
    except GatewayError as exc:
        error = exc
    except asyncio.CancelledError:
        attempt.outcome, attempt.ended = "cancelled", time.monotonic()
        if observed:
            await gw.hooks.notify("attempt_ended", ctx=ctx, attempt=attempt)
        raise
    except (ConnectionError, httpx.HTTPError) as exc:
        # A transport failure that no provider mapped is still the upstream's.
        logger.opt(exception=True).warning("provider {!r}: transport failure", target.provider)
        error = UpstreamUnavailable(
            f"provider '{target.provider}' failed ({type(exc).__name__})",
            provider=target.provider,
        )
    except Exception as exc:
        # Building the upstream request or translating its answer broke: the gateway's fault
        # (e.g. a translation meeting a body it did not expect), not the target's.
        error = faults.internal_error(
            exc, stage="attempt", plugin=provider.settings.type, request_id=ctx.request_id
        )
        attempt.outcome, attempt.error, attempt.ended = INTERNAL, error, time.monotonic()
        if observed:
            await gw.hooks.notify("attempt_ended", ctx=ctx, attempt=attempt)
        return attempt, error
    else:
        attempt.outcome, attempt.status, attempt.ended = "ok", 200, time.monotonic()
        if observed:
            await gw.hooks.notify("attempt_ended", ctx=ctx, attempt=attempt)
        return attempt, result
    attempt.outcome, attempt.error, attempt.ended = "error", error, time.monotonic()
    attempt.status = getattr(error, "upstream_status", None) or error.status
    if observed:
        await gw.hooks.notify("attempt_ended", ctx=ctx, attempt=attempt)
    return attempt, error


async def _race(
    gw: Gateway,
    ctx: RequestContext,
    operation: Callable[[Provider, Target], Awaitable[T]],
    index: int,
    tries_of_target: int,
    delay: float,
    discard: Callable[[T], Awaitable[None]] | None,
) -> tuple[tuple[T] | None, list[tuple[Attempt, GatewayError]]]:
    """A hedged attempt: ``ctx.plan[index]``, joined by ``ctx.plan[index + 1]`` if it has not
    answered after ``delay`` seconds. Returns the first success (as a 1-tuple) and every
    failure; whatever is still running when one wins is cancelled before this returns."""
    pending = {asyncio.ensure_future(_attempt(gw, ctx, operation, index, tries_of_target))}
    failures: list[tuple[Attempt, GatewayError]] = []
    won: tuple[T] | None = None
    try:
        done, _ = await asyncio.wait(pending, timeout=delay)
        if not done:
            ctx.trace.notes.append(f"hedged {ctx.plan[index + 1].key} after {delay:.3g}s")
            pending.add(asyncio.ensure_future(_attempt(gw, ctx, operation, index + 1, 0, True)))
        while pending and won is None:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=lambda t: t.result()[0].number):
                attempt, outcome = task.result()
                if isinstance(outcome, GatewayError):
                    failures.append((attempt, outcome))
                elif won is None:
                    won = (outcome,)
                elif discard is not None:
                    await discard(outcome)
        return won, failures
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)


def final_error(ctx: RequestContext, last: GatewayError | None) -> GatewayError:
    """What the client gets when the walk ends without success: a final (not retryable)
    error as it is, otherwise a RoutingExhausted naming each attempt."""
    if last is not None and not last.retryable:
        return last
    tried = "; ".join(
        f"{a.target.key}: {a.error.code if a.error and a.error.code else a.outcome}"
        + (f" ({a.status})" if a.status else "")
        for a in ctx.attempts
    )
    if not ctx.attempts:
        message = f"the deadline for model '{ctx.model}' passed before any attempt"
    else:
        count = len(ctx.attempts)
        message = (
            f"all {count} attempt{'s' if count > 1 else ''} for model '{ctx.model}' failed: {tried}"
        )
    status, code, retry_after = 502, "upstream_failed", None
    if isinstance(last, UpstreamTimeout) or last is None:
        status, code = 504, "upstream_timeout"
    elif isinstance(last, UpstreamRateLimited):
        status, code, retry_after = 503, "upstream_rate_limited", last.retry_after
    headers = {"x-should-retry": "false"}
    return RoutingExhausted(
        message, status=status, code=code, retry_after=retry_after, headers=headers
    )


async def complete(gw: Gateway, ctx: RequestContext, method: str) -> ProviderResponse:
    """A non-streamed call (``chat`` or ``embeddings``) through the whole pipeline."""
    await route(gw, ctx)

    async def call(provider: Provider, target: Target) -> ProviderResponse:
        response: ProviderResponse = await getattr(provider, method)(ctx, target, ctx.body)
        return response

    response = await attempt_plan(gw, ctx, call)
    ctx.usage = response.usage
    choices = response.body.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        ctx.finish_reason = choices[0].get("finish_reason")
    return response


async def observe_success(
    gw: Gateway, ctx: RequestContext, response: ProviderResponse
) -> GatewayError | None:
    """Run ``post_response`` for a non-streamed success before it is sent.

    A filter may rewrite ``response`` or refuse it with a GatewayError: the first refusal is
    returned (and recorded on ``ctx``), and the impls after it see ``response=None`` and the
    error, so the refusal is still logged and counted. Any other exception is the gateway's
    fault: it refuses the response as a 500 ``internal_error`` (a broken response filter must
    not let through what it was to filter), logged and counted by :mod:`plugway.faults`.
    """
    refusal: GatewayError | None = None
    for impl in gw.hooks.impls("post_response"):
        try:
            result = impl.call({"ctx": ctx, "response": None if refusal else response})
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            error = exc if isinstance(exc, GatewayError) else plugin_fault(ctx, exc, impl.plugin)
            if refusal is None:
                refusal = error
                ctx.error, ctx.status = error, error.status
    return refusal


def plugin_fault(ctx: RequestContext, exc: BaseException, plugin: str) -> GatewayError:
    """A ``post_response`` impl's unexpected exception, as the 500 the client gets."""
    logger.opt(exception=exc).error(
        "plugin {!r} failed in post_response serving request {}", plugin, ctx.request_id
    )
    error = PluginFailed(
        f"plugin '{plugin}' failed in post_response: {type(exc).__name__} "
        f"(request id {ctx.request_id}); this is the gateway's fault, and its log has the details",
        stage="post_response",
        plugin=plugin,
    )
    faults.report(error)
    return error


@attrs.define
class OpenStream:
    """A stream whose first event has arrived and not yet been sent."""

    stream: ChunkStream
    events: AsyncIterator[bytes]
    first: bytes


async def open_stream(gw: Gateway, ctx: RequestContext) -> OpenStream:
    """Route and open a chat stream, failing over until a target yields its first event.
    Nothing has been sent to the client when this returns or raises."""
    await route(gw, ctx)

    async def open_one(provider: Provider, target: Target) -> ChunkStream:
        return await provider.chat_stream(ctx, target, ctx.body)

    return await open_plan(gw, ctx, open_one)


async def open_plan(
    gw: Gateway,
    ctx: RequestContext,
    open_one: Callable[[Provider, Target], Awaitable[ChunkStream]],
) -> OpenStream:
    """Walk the routed plan with ``open_one`` opening each target's stream (in whatever format
    the door sends), failing over until one yields its first event; a hedged attempt that lost
    is closed. Every streaming door opens its streams through here."""

    async def call(provider: Provider, target: Target) -> OpenStream:
        return await first_event(await open_one(provider, target), target.provider)

    async def discard(opened: OpenStream) -> None:
        await close_quietly(opened.stream)

    return await attempt_plan(gw, ctx, call, discard)


async def first_event(stream: ChunkStream, provider: str) -> OpenStream:
    """Wait for a just-opened stream's first event. A stream that ends before sending anything
    is a retryable :class:`UpstreamStreamBroken` (nothing reached the client); on any failure
    the stream is closed before the error propagates."""
    try:
        events = aiter(stream)
        first = await anext(events)
    except StopAsyncIteration:
        await close_quietly(stream)
        raise UpstreamStreamBroken(
            f"provider '{provider}' ended the stream before sending anything", provider=provider
        ) from None
    except BaseException:
        await close_quietly(stream)
        raise
    return OpenStream(stream, events, first)


async def chat_chunks(
    gw: Gateway, ctx: RequestContext, inner: ChunkStream
) -> AsyncIterator[list[dict[str, Any]]]:
    """The parsed chat chunks of a provider's stream, one list per batch of events it yielded,
    after the ``stream_chunk`` hook when a plugin implements it (``[DONE]`` and events that
    are not objects skipped): what a door that answers in another format translates. An
    event that is not JSON is the upstream's fault, a :class:`UpstreamStreamBroken`."""
    rewrite = gw.hooks.has("stream_chunk")
    async for received in inner:
        data = await rewrite_chunks(gw, ctx, received) if rewrite else received
        chunks: list[dict[str, Any]] = []
        try:
            for payload in iter_data(data):
                if payload.strip() == b"[DONE]":
                    continue
                chunk = orjson.loads(payload)
                if isinstance(chunk, dict):
                    chunks.append(chunk)
        except orjson.JSONDecodeError:
            attempt = ctx.final_attempt
            provider = attempt.target.provider if attempt else ""
            raise UpstreamStreamBroken(
                f"provider '{provider}' sent a stream event that is not JSON", provider=provider
            ) from None
        yield chunks


def sse_headers(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` for an SSE answer: no caching, no proxy buffering."""
    headers["cache-control"] = "no-cache"
    headers["x-accel-buffering"] = "no"
    return headers


async def close_quietly(stream: ChunkStream) -> None:
    """Close an upstream stream even while the current task is being cancelled."""
    try:
        await asyncio.shield(stream.aclose())
    except (Exception, asyncio.CancelledError):
        logger.opt(exception=True).debug("closing an upstream stream failed")


async def rewrite_chunks(gw: Gateway, ctx: RequestContext, events: bytes) -> bytes:
    """Pass each chunk in ``events`` through the ``stream_chunk`` hook (only called when a
    plugin implements it)."""
    out = []
    for payload in iter_data(events):
        if payload == b"[DONE]":
            continue
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise UpstreamError("upstream sent a stream event that is not JSON") from None
        chunk = await gw.hooks.call_chain("stream_chunk", "chunk", chunk, ctx=ctx)
        out.append(sse_event(chunk))
    return b"".join(out)
