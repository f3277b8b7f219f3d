"""A provider that breaks the conformance rules on purpose (tests/test_conformance_suite.py):
its streams end with ``[DONE]`` (the core's job) and its usage does not add up."""

from collections.abc import AsyncIterator, Callable
from typing import Any

from plugway.builtin_providers.fake import FakeProvider, FakeStream
from plugway.hooks import hookimpl


class SloppyStream(FakeStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for event in super().__aiter__():
            yield event
        yield b"data: [DONE]\n\n"


class SloppyProvider(FakeProvider):
    async def chat(self, ctx: Any, target: Any, body: Any) -> Any:
        answer = await super().chat(ctx, target, body)
        answer.body["usage"]["total_tokens"] += 1
        return answer

    async def chat_stream(self, ctx: Any, target: Any, body: Any) -> Any:
        return SloppyStream(body, target.model, 0.0)


@hookimpl
def register_providers(register: Callable[..., None]) -> None:
    register("sloppy", SloppyProvider)
