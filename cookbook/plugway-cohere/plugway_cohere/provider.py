"""The ``cohere`` provider type: Cohere's v2 Chat API behind plugway's OpenAI endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx
import orjson
from plugway import ChunkStream, ProviderResponse, RequestContext, Target, hookimpl
from plugway.errors import UpstreamError, UpstreamStreamBroken
from plugway.sse import EventSplitter, iter_data, sse_event
from plugway.upstream import HTTPProvider, checked_response, error_from_response, json_object

from plugway_cohere.translate import StreamTranslator, from_cohere, to_cohere


class CohereProvider(HTTPProvider):
    """JSON over plugway's pooled client (``HTTPProvider``); the key rides in a bearer header."""

    def auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.settings.api_key}"}

    def _error(self, status: int, content: bytes, headers: Mapping[str, str]) -> UpstreamError:
        return error_from_response(status, content, headers, self.name)

    async def _send(self, payload: dict[str, Any], stream: bool) -> httpx.Response:
        accept = "text/event-stream" if stream else "application/json"
        request = self.client.build_request(
            "POST", "/v2/chat", content=orjson.dumps(payload), headers={"accept": accept}
        )
        sending = self.client.send(request, stream=stream)
        return await checked_response(sending, provider=self.name, error_of=self._error)

    async def chat(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        response = await self._send(to_cohere(dict(body), target.model), stream=False)
        data = json_object(response, self.name)
        return ProviderResponse(body=from_cohere(data, target.model))

    async def chat_stream(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ChunkStream:
        payload = {**to_cohere(dict(body), target.model), "stream": True}
        response = await self._send(payload, stream=True)
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return CohereStream(response, self.name, StreamTranslator(target.model), include_usage)


class CohereStream(ChunkStream):
    def __init__(
        self,
        response: httpx.Response,
        provider: str,
        translator: StreamTranslator,
        include_usage: bool,
    ) -> None:
        self.response, self.provider = response, provider
        self.translator, self.include_usage = translator, include_usage

    async def __aiter__(self) -> AsyncIterator[bytes]:
        splitter = EventSplitter()
        try:
            async for data in self.response.aiter_bytes():
                out = b"".join(
                    sse_event(chunk)
                    for payload in iter_data(splitter.feed(data))
                    for chunk in self.translator.feed(orjson.loads(payload))
                )
                if out:
                    yield out
        except httpx.HTTPError as exc:
            raise UpstreamStreamBroken(
                f"the stream from provider '{self.provider}' broke ({type(exc).__name__})",
                provider=self.provider,
            ) from None
        if self.translator.finish_reason is None:
            raise UpstreamStreamBroken(
                f"the stream from provider '{self.provider}' ended before it was complete",
                provider=self.provider,
            )
        self.finish_reason, self.usage = self.translator.finish_reason, self.translator.usage
        if self.include_usage:
            yield sse_event({**self.translator.base, "choices": [], "usage": self.usage})

    async def aclose(self) -> None:
        await self.response.aclose()


@hookimpl
def register_providers(register: Callable[..., None]) -> None:
    register("cohere", CohereProvider, base_url="https://api.cohere.com")
