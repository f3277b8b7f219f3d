"""A tiny third-party cache on the ``cached_response`` hook (tests/test_cache.py): it answers
"canned?" from memory, refuses to fit "unfit" (the plan is walked), and records the bytes of
every other stream it lets through (``x-canned-seen`` on non-streamed answers)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from plugway import (
    CacheLookup,
    ChunkStream,
    Provider,
    ProviderResponse,
    ProviderSettings,
    RequestContext,
    Target,
    hookimpl,
)
from plugway.errors import InvalidRequest
from plugway.sse import sse_event

SEEN = {"streams": 0, "bytes": 0}
ANSWER = {
    "id": "chatcmpl-canned",
    "object": "chat.completion",
    "created": 1,
    "model": "canned",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "canned answer"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
}


class OneChunk(ChunkStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunk = {**ANSWER, "object": "chat.completion.chunk"}
        chunk["choices"] = [
            {"index": 0, "delta": {"content": "canned answer"}, "finish_reason": "stop"}
        ]
        yield sse_event(chunk)

    async def aclose(self) -> None:
        return None


class Canned(Provider):
    def __init__(self, fits: bool) -> None:
        super().__init__("canned", ProviderSettings(type="canned"))
        self.fits = fits

    async def chat(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        if not self.fits:
            raise InvalidRequest("no canned answer fits", code="unfit")
        return ProviderResponse(dict(ANSWER))

    async def chat_stream(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ChunkStream:
        if not self.fits:
            raise InvalidRequest("no canned answer fits", code="unfit")
        return OneChunk()


class Counted(ChunkStream):
    def __init__(self, inner: ChunkStream) -> None:
        self.inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        SEEN["streams"] += 1
        async for data in self.inner:
            SEEN["bytes"] += len(data)
            yield data
        self.usage, self.finish_reason = self.inner.usage, self.inner.finish_reason

    async def aclose(self) -> None:
        await self.inner.aclose()


class Recording(Provider):
    def __init__(self, inner: Provider) -> None:
        super().__init__(inner.name, inner.settings)
        self.inner = inner

    async def chat(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        return await self.inner.chat(ctx, target, body)

    async def chat_stream(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ChunkStream:
        return Counted(await self.inner.chat_stream(ctx, target, body))


@hookimpl
def cached_response(ctx: RequestContext) -> CacheLookup | None:
    last = ctx.body["messages"][-1].get("content") if ctx.body.get("messages") else None
    if last in ("canned?", "unfit"):
        return CacheLookup(hit=Canned(fits=last == "canned?"))
    return CacheLookup(record=Recording) if ctx.stream else None


@hookimpl
def post_response(ctx: RequestContext) -> None:
    if not ctx.stream:  # what the recorded streams so far carried, for the test to read
        ctx.response_headers["x-canned-seen"] = f"{SEEN['streams']}:{SEEN['bytes']}"
