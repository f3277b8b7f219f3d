"""Answering from an entry, and recording a streamed answer on a miss.

An entry is JSON: ``{"body": <the OpenAI answer>, "deltas": [[pieces of choice 0's content],
...] | null, "cost": <USD the call cost> | null, "at": <wall time stored>}``. A streamed answer
is stored assembled (the chat completion a non-streamed request would have had), plus its
content pieces, so a streamed hit replays the deltas the original stream had.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import orjson
from plugway.context import RequestContext, Target
from plugway.errors import InvalidRequest
from plugway.provider import ChunkStream, Provider, ProviderResponse, ProviderSettings
from plugway.sse import iter_data, sse_event

# -- an entry as a provider --------------------------------------------------------------------


class CachedProvider(Provider):
    """Answers one request from one entry, in whatever form the door asks for."""

    def __init__(
        self, entry: Mapping[str, Any], unfit: Callable[[RequestContext], None] | None = None
    ) -> None:
        super().__init__("cache", ProviderSettings(type="cache"))
        self.entry = entry
        #: Called when the entry cannot answer the door (the request then goes upstream).
        self.unfit = unfit

    def _response(self, ctx: RequestContext, obj: str) -> ProviderResponse:
        body = self.entry["body"]
        if not isinstance(body, dict) or (
            body.get("object") != obj if obj else "results" not in body
        ):
            if self.unfit is not None:
                self.unfit(ctx)
            raise InvalidRequest("the cached entry is not an answer of this kind", code="cache")
        return ProviderResponse(body)

    async def chat(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        return self._response(ctx, "chat.completion")

    async def chat_stream(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ChunkStream:
        answer = self._response(ctx, "chat.completion").body
        options = body.get("stream_options")
        with_usage = isinstance(options, dict) and options.get("include_usage") is True
        return ReplayStream(answer, self.entry.get("deltas"), with_usage)

    async def embeddings(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        return self._response(ctx, "list")

    async def moderations(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        return self._response(ctx, "")  # a moderation: {"id", "model", "results"}


class ReplayStream(ChunkStream):
    """A chat completion as the SSE chunks of a stream, all in one piece: a role chunk, the
    content deltas (the original stream's pieces when it was one), tool-call deltas, the
    finish chunk and, when asked, the usage chunk."""

    def __init__(self, answer: dict[str, Any], deltas: Any, with_usage: bool) -> None:
        self.answer = answer
        self.deltas = deltas if isinstance(deltas, list) else None
        self.with_usage = with_usage
        usage = answer.get("usage")
        self.usage = usage if isinstance(usage, dict) else None

    def events(self) -> bytes:
        answer = self.answer
        base: dict[str, Any] = {
            "id": answer.get("id"),
            "object": "chat.completion.chunk",
            "created": answer.get("created"),
            "model": answer.get("model"),
        }
        if answer.get("system_fingerprint") is not None:
            base["system_fingerprint"] = answer["system_fingerprint"]
        out: list[bytes] = []

        def emit(index: int, delta: dict[str, Any], finish: str | None = None) -> None:
            choice = {"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}
            chunk = {**base, "choices": [choice]}
            if self.with_usage:
                chunk["usage"] = None
            out.append(sse_event(chunk))

        for position, choice in enumerate(answer.get("choices") or ()):
            index = choice.get("index", position)
            message = choice.get("message") or {}
            emit(index, {"role": message.get("role", "assistant"), "content": ""})
            content = message.get("content")
            pieces = self.deltas[position] if self.deltas and position < len(self.deltas) else None
            if isinstance(pieces, list) and "".join(pieces) == (content or ""):
                for piece in pieces:
                    emit(index, {"content": piece})
            elif content:
                emit(index, {"content": content})
            if message.get("refusal"):
                emit(index, {"refusal": message["refusal"]})
            for i, call in enumerate(message.get("tool_calls") or ()):
                function = call.get("function") or {}
                head = {"index": i, "id": call.get("id"), "type": call.get("type", "function")}
                emit(
                    index,
                    {
                        "tool_calls": [
                            head | {"function": {"name": function.get("name"), "arguments": ""}}
                        ]
                    },
                )
                if function.get("arguments"):
                    emit(
                        index,
                        {
                            "tool_calls": [
                                {"index": i, "function": {"arguments": function["arguments"]}}
                            ]
                        },
                    )
            self.finish_reason = choice.get("finish_reason")
            emit(index, {}, choice.get("finish_reason"))
        if self.with_usage and self.usage is not None:
            out.append(sse_event({**base, "choices": [], "usage": self.usage}))
        return b"".join(out)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.events()

    async def aclose(self) -> None:
        return None


# -- recording a miss --------------------------------------------------------------------------


class Recording:
    """Where a recorded stream leaves its bytes once it has ended whole."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] | None = None


class RecordingStream(ChunkStream):
    """A provider's stream, passed on untouched, its bytes kept (up to ``cap`` bytes in all:
    an append per event, nothing parsed) until it ends whole."""

    def __init__(self, inner: ChunkStream, sink: Recording, cap: int) -> None:
        self.inner = inner
        self.sink = sink
        self.cap = cap

    def _sync(self) -> None:
        self.usage = self.inner.usage
        self.finish_reason = self.inner.finish_reason
        self.error = self.inner.error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        parts: list[bytes] | None = []
        size = 0
        async for data in self.inner:
            if parts is not None:
                size += len(data)
                if size > self.cap:
                    parts = None
                else:
                    parts.append(data)
            yield data
        self._sync()
        if parts is not None and self.inner.error is None:
            self.sink.parts = parts

    async def aclose(self) -> None:
        await self.inner.aclose()
        self._sync()


class RecordingProvider(Provider):
    """A provider whose streams are recorded into ``sink``; everything else is the provider
    itself (its native methods, such as Anthropic pass-through, included)."""

    def __init__(self, inner: Provider, sink: Recording, cap: int) -> None:
        super().__init__(inner.name, inner.settings)
        self.inner = inner
        self.sink = sink
        self.cap = cap

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def chat(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        return await self.inner.chat(ctx, target, body)

    async def chat_stream(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ChunkStream:
        return RecordingStream(await self.inner.chat_stream(ctx, target, body), self.sink, self.cap)

    async def embeddings(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        return await self.inner.embeddings(ctx, target, body)

    async def moderations(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        return await self.inner.moderations(ctx, target, body)


def recorder(sink: Recording, cap: int) -> Callable[[Provider], Provider]:
    def wrap(provider: Provider) -> Provider:
        return RecordingProvider(provider, sink, cap)

    return wrap


# -- assembling a recorded stream --------------------------------------------------------------


def assemble(
    parts: list[bytes], usage: dict[str, Any] | None
) -> tuple[dict[str, Any], list[list[str]]] | None:
    """The chat completion a recorded stream amounts to, and each choice's content pieces;
    None when the stream is not one a replay could reproduce (an error event, no finish)."""
    head: dict[str, Any] | None = None
    choices: dict[int, dict[str, Any]] = {}
    pieces: dict[int, list[str]] = {}
    for payload in iter_data(b"".join(parts)):
        if payload == b"[DONE]":
            continue
        chunk = orjson.loads(payload)
        if not isinstance(chunk, dict) or "error" in chunk:
            return None
        if head is None:
            head = chunk
        if isinstance(chunk.get("usage"), dict):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            slot = choices.setdefault(
                index, {"role": "assistant", "content": None, "tools": {}, "finish": None}
            )
            delta = choice.get("delta") or {}
            if delta.get("role"):
                slot["role"] = delta["role"]
            if isinstance(delta.get("content"), str) and delta["content"]:
                slot["content"] = (slot["content"] or "") + delta["content"]
                pieces.setdefault(index, []).append(delta["content"])
            if isinstance(delta.get("refusal"), str) and delta["refusal"]:
                slot["refusal"] = slot.get("refusal", "") + delta["refusal"]
            for call in delta.get("tool_calls") or ():
                tool = slot["tools"].setdefault(
                    call.get("index", 0), {"id": None, "type": "function", "name": "", "args": ""}
                )
                tool["id"] = call.get("id") or tool["id"]
                function = call.get("function") or {}
                tool["name"] += function.get("name") or ""
                tool["args"] += function.get("arguments") or ""
            if choice.get("finish_reason"):
                slot["finish"] = choice["finish_reason"]
    if head is None or not choices or any(s["finish"] is None for s in choices.values()):
        return None
    out_choices = []
    for index in sorted(choices):
        slot = choices[index]
        message: dict[str, Any] = {"role": slot["role"], "content": slot["content"]}
        message["refusal"] = slot.get("refusal")
        if slot["tools"]:
            message["tool_calls"] = [
                {
                    "id": tool["id"],
                    "type": tool["type"],
                    "function": {"name": tool["name"], "arguments": tool["args"]},
                }
                for _, tool in sorted(slot["tools"].items())
            ]
        out_choices.append(
            {"index": index, "message": message, "finish_reason": slot["finish"], "logprobs": None}
        )
    body: dict[str, Any] = {
        "id": head.get("id"),
        "object": "chat.completion",
        "created": head.get("created"),
        "model": head.get("model"),
        "choices": out_choices,
    }
    if head.get("system_fingerprint") is not None:
        body["system_fingerprint"] = head["system_fingerprint"]
    if usage is not None:
        body["usage"] = usage
    return body, [pieces.get(index, []) for index in sorted(choices)]
