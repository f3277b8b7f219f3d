"""The ``anthropic`` provider: Anthropic's Messages API behind the gateway's OpenAI format.

``chat``/``chat_stream`` translate OpenAI Chat Completions to Messages and back (the pure
translation is :mod:`plugway.formats.anthropic_messages`). ``messages``,
``messages_stream`` and ``count_tokens`` are the native calls (:class:`NativeMessages`): the
inbound ``/v1/messages`` endpoint uses them (through the
:class:`plugway.formats.anthropic_messages.NativeMessages` protocol) to pass an Anthropic request through with only
``model`` replaced when the plan's target is a provider that offers them.

``base_url`` is the host (``https://api.anthropic.com``), as in Anthropic's SDKs; the provider
adds ``/v1/messages``. The key goes in ``x-api-key``; ``anthropic-version`` is the client's
when it sent one, else ``2023-06-01``; a client's ``anthropic-beta`` is passed through.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import attrs
import httpx
import orjson
from plugway.context import RequestContext, Target
from plugway.errors import (
    ContentFiltered,
    ContextWindowExceeded,
    UpstreamError,
    UpstreamStreamBroken,
    upstream_error_for_status,
)
from plugway.formats.anthropic_messages import (
    ANTHROPIC_VERSION,
    FINISH_REASONS,
    AnthropicSSEToOpenAI,
    AnthropicStreamError,
    NativeMessage,
    anthropic_to_openai_response,
    anthropic_usage_to_openai,
    openai_to_anthropic_request,
)
from plugway.hooks import hookimpl
from plugway.provider import ChunkStream, ProviderResponse, ProviderSettings
from plugway.sse import EventSplitter, iter_data
from plugway.upstream import (
    HTTPProvider,
    open_stream,
    parse_retry_after,
    post_json,
)

#: Writes no prompt or completion text anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False

MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"

# "Output blocked by content filtering policy" is a 400 that another model may not give.
_CONTENT_FILTER = re.compile(r"content filtering policy|blocked by content filter", re.IGNORECASE)
# Anthropic says "prompt is too long: N tokens > M maximum" and "input length and `max_tokens`
# exceed context limit: ..." when the context window is exceeded.
_CONTEXT_WINDOW = re.compile(
    r"prompt is too long|exceed context limit|context window", re.IGNORECASE
)


@attrs.define(kw_only=True)
class AnthropicSettings(ProviderSettings):
    #: ``anthropic-version`` sent when the client sent none.
    anthropic_version: str = ANTHROPIC_VERSION
    #: ``max_tokens`` when an OpenAI client sends none; unset means the model's output limit.
    default_max_tokens: int | None = None


def error_from_anthropic(
    status: int, body: bytes, headers: Mapping[str, str], provider: str
) -> UpstreamError:
    """Map an Anthropic error response (``{"type":"error","error":{"type","message"}}``) to the
    gateway's error tree: 429 and 529/5xx are retryable, a too-long prompt is
    :class:`ContextWindowExceeded`, "Output blocked by content filtering policy" is
    :class:`ContentFiltered`, other 4xx are final. The Anthropic error type is the code."""
    message = f"provider '{provider}' answered with status {status}"
    error_type: str | None = None
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        if isinstance(error.get("message"), str):
            message = error["message"]
        if isinstance(error.get("type"), str):
            error_type = error["type"]
    retry_after = parse_retry_after(headers)
    if status == 400 and _CONTEXT_WINDOW.search(message):
        return ContextWindowExceeded(message, provider=provider, upstream_status=status)
    if status == 400 and _CONTENT_FILTER.search(message):
        return ContentFiltered(message, provider=provider, upstream_status=status)
    return upstream_error_for_status(
        status, message, provider=provider, code=error_type, retry_after=retry_after
    )


def stream_error(exc: AnthropicStreamError, provider: str) -> UpstreamError:
    """The gateway error for an ``error`` event inside an accepted stream."""
    message = f"provider '{provider}' failed mid-stream ({exc.error_type}): {exc.message}"
    return UpstreamStreamBroken(message, provider=provider, code=exc.error_type)


class AnthropicProvider(HTTPProvider):
    settings_class = AnthropicSettings
    settings: AnthropicSettings

    def auth_headers(self) -> dict[str, str]:
        return {"x-api-key": self.settings.api_key} if self.settings.api_key else {}

    def _request_headers(self, ctx: RequestContext, stream: bool) -> dict[str, str]:
        headers = {
            "anthropic-version": ctx.headers.get("anthropic-version")
            or self.settings.anthropic_version
        }
        beta = ctx.headers.get("anthropic-beta")
        if beta:
            headers["anthropic-beta"] = beta
        if stream:
            headers["accept"] = "text/event-stream"
        return headers

    # -- OpenAI format in and out --------------------------------------------------------------

    def _translate(self, body: Mapping[str, Any], target: Target) -> dict[str, Any]:
        return openai_to_anthropic_request(body, target.model, self.settings.default_max_tokens)

    async def chat(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        payload = self._translate(body, target)
        payload.pop("stream", None)
        native = await self._post(ctx, MESSAGES_PATH, payload)
        return ProviderResponse(body=anthropic_to_openai_response(native.body))

    async def chat_stream(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ChunkStream:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        payload = {**self._translate(body, target), "stream": True}
        response = await self._open_stream(ctx, payload)
        return AnthropicChunkStream(response, self.name, AnthropicSSEToOpenAI(include_usage))

    # -- native Messages -----------------------------------------------------------------------

    async def messages(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> NativeMessage:
        payload = {**body, "model": target.model}
        payload.pop("stream", None)
        return await self._post(ctx, MESSAGES_PATH, payload)

    async def messages_stream(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ChunkStream:
        response = await self._open_stream(ctx, {**body, "model": target.model, "stream": True})
        return NativeEventStream(response, self.name)

    async def count_tokens(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        payload = {**body, "model": target.model}
        for key in (
            "max_tokens",
            "stream",
            "stop_sequences",
            "temperature",
            "top_p",
            "top_k",
            "metadata",
            "service_tier",
        ):
            payload.pop(key, None)
        return (await self._post(ctx, COUNT_TOKENS_PATH, payload)).body

    # -- HTTP ----------------------------------------------------------------------------------

    async def _post(self, ctx: RequestContext, path: str, payload: Any) -> NativeMessage:
        raw, body = await post_json(
            self.client,
            path,
            payload,
            provider=self.name,
            error_of=self._error,
            headers=self._request_headers(ctx, False),
        )
        return NativeMessage(raw=raw, body=body)

    async def _open_stream(self, ctx: RequestContext, payload: Any) -> httpx.Response:
        request = self.client.build_request(
            "POST",
            MESSAGES_PATH,
            content=orjson.dumps(payload),
            headers=self._request_headers(ctx, True),
        )
        return await open_stream(self.client, request, provider=self.name, error_of=self._error)

    def _error(self, status: int, content: bytes, headers: Mapping[str, str]) -> UpstreamError:
        return error_from_anthropic(status, content, headers, self.name)


class AnthropicChunkStream(ChunkStream):
    """An Anthropic SSE body translated into OpenAI chunk events as it arrives."""

    def __init__(
        self, response: httpx.Response, provider: str, decoder: AnthropicSSEToOpenAI
    ) -> None:
        self.response = response
        self.provider = provider
        self.decoder = decoder

    async def __aiter__(self) -> AsyncIterator[bytes]:
        decoder, translator = self.decoder, self.decoder.translator
        try:
            async for data in self.response.aiter_bytes():
                out = decoder.feed(data)
                self.usage, self.finish_reason = translator.usage, translator.finish_reason
                if out:
                    yield out
        except AnthropicStreamError as exc:
            raise stream_error(exc, self.provider) from None
        except orjson.JSONDecodeError:
            raise UpstreamStreamBroken(
                f"provider '{self.provider}' sent a stream event that is not JSON",
                provider=self.provider,
            ) from None
        except httpx.HTTPError as exc:
            raise UpstreamStreamBroken(
                f"the stream from provider '{self.provider}' broke ({type(exc).__name__})",
                provider=self.provider,
            ) from None
        if not translator.done:
            raise UpstreamStreamBroken(
                f"the stream from provider '{self.provider}' ended before message_stop",
                provider=self.provider,
            )

    async def aclose(self) -> None:
        await self.response.aclose()


class NativeEventStream(ChunkStream):
    """An Anthropic SSE body forwarded as whole events, untouched. Only ``message_start`` and
    ``message_delta`` (usage, stop reason) and ``error`` events are parsed. An ``error`` event
    in the first batch of events raises :class:`UpstreamStreamBroken` (retryable: nothing has
    reached the client); a later one is forwarded as it is and recorded in ``error``."""

    def __init__(self, response: httpx.Response, provider: str) -> None:
        self.response = response
        self.provider = provider
        self._usage: dict[str, Any] = {}
        self.done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        splitter = EventSplitter()
        sent = False
        try:
            async for data in self.response.aiter_bytes():
                events = splitter.feed(data)
                if not events:
                    continue
                if b"message_" in events or b"error" in events:
                    self._inspect(events)
                    if self.error is not None and not sent:
                        # Nothing reached the client yet: fail the attempt (retryable) so
                        # the plan can move on, instead of forwarding the error.
                        raise self.error
                sent = True
                yield events
        except httpx.HTTPError as exc:
            raise UpstreamStreamBroken(
                f"the stream from provider '{self.provider}' broke ({type(exc).__name__})",
                provider=self.provider,
            ) from None
        if not self.done:
            raise UpstreamStreamBroken(
                f"the stream from provider '{self.provider}' ended before message_stop",
                provider=self.provider,
            )

    def _inspect(self, events: bytes) -> None:
        for payload in iter_data(events):
            try:
                event = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            kind = event.get("type") if isinstance(event, dict) else None
            if kind == "message_start":
                self._usage = dict((event.get("message") or {}).get("usage") or {})
                self.usage = anthropic_usage_to_openai(self._usage)
            elif kind == "message_delta":
                self._usage.update(
                    {k: v for k, v in (event.get("usage") or {}).items() if v is not None}
                )
                self.usage = anthropic_usage_to_openai(self._usage)
                stop = (event.get("delta") or {}).get("stop_reason")
                if stop:
                    self.finish_reason = FINISH_REASONS.get(stop, "stop")
            elif kind == "message_stop":
                self.done = True
            elif kind == "error":
                error = event.get("error") or {}
                # The error event is forwarded to the client as it is; the stream counts as
                # complete so the endpoint does not add a second error.
                self.done = True
                self.error = stream_error(
                    AnthropicStreamError(
                        str(error.get("type") or "api_error"), str(error.get("message") or "")
                    ),
                    self.provider,
                )

    async def aclose(self) -> None:
        await self.response.aclose()


@hookimpl
def register_providers(register: Callable[..., None]) -> None:
    register("anthropic", AnthropicProvider, base_url="https://api.anthropic.com")
