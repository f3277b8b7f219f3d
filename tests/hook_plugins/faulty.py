"""A plugin with bugs on demand (tests/test_faults.py): its hooks raise a plain exception when
the request's ``x-fault`` header names them, and its ``buggy`` provider type raises a
TypeError while "translating", as a translation bug that slipped past validation would."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from plugway import ProviderResponse, RequestContext, Target, hookimpl
from plugway.builtin_providers.fake import FakeProvider
from plugway.provider import ChunkStream


def _asked(ctx: RequestContext, hook: str) -> bool:
    return ctx.headers.get("x-fault", "") == hook


class BuggyProvider(FakeProvider):
    """The fake provider, with a translation bug for any request that has ``"buggy": true``
    or the header ``x-fault: translation``."""

    async def chat(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        if body.get("buggy") is True or _asked(ctx, "translation"):
            return {}["no such key"]  # type: ignore[no-any-return]
        return await super().chat(ctx, target, body)

    async def chat_stream(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ChunkStream:
        if body.get("buggy") is True or _asked(ctx, "translation"):
            raise TypeError("a translation bug")
        return await super().chat_stream(ctx, target, body)


@hookimpl
def register_providers(register: Callable[..., None]) -> None:
    register("buggy", BuggyProvider)


@hookimpl
def pre_route(ctx: RequestContext) -> None:
    if _asked(ctx, "pre_route"):
        raise RuntimeError("a pre_route bug")


@hookimpl
def post_response(ctx: RequestContext) -> None:
    if _asked(ctx, "post_response"):
        raise RuntimeError("a post_response bug")


@hookimpl
def stream_chunk(ctx: RequestContext, chunk: dict[str, Any]) -> dict[str, Any] | None:
    if _asked(ctx, "stream_chunk") and chunk.get("choices"):
        raise RuntimeError("a stream_chunk bug")
    return None
