"""The ``gemini`` provider: Google's Gemini API (``generativelanguage.googleapis.com``).

``base_url`` is the host, as in Google's SDKs; the gateway adds
``/{api_version}/models/{model}:generateContent`` (``:streamGenerateContent?alt=sse`` for
streams, ``:embedContent`` / ``:batchEmbedContents`` for embeddings). The key travels in the
``x-goog-api-key`` header only, never in the URL, so it cannot reach a log line or an error
through a URL. The translation itself lives in :mod:`gemini_format`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import quote

import attrs
import httpx
import orjson
from plugway.builtin_providers import gemini_format as fmt
from plugway.builtin_providers.embeddings import embeddings_body
from plugway.context import RequestContext, Target
from plugway.errors import UpstreamError, UpstreamStreamBroken, UpstreamUnavailable
from plugway.hooks import hookimpl
from plugway.provider import ChunkStream, Provider, ProviderResponse, ProviderSettings
from plugway.upstream import make_http_client, parse_retry_after, transport_error

#: Writes no prompt or completion text anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False


@attrs.define(kw_only=True)
class GeminiSettings(ProviderSettings):
    #: The REST version in the path: ``v1beta`` (every feature) or ``v1``.
    api_version: str = "v1beta"


class GeminiProvider(Provider):
    settings_class = GeminiSettings
    settings: GeminiSettings

    client: httpx.AsyncClient

    async def startup(self) -> None:
        headers = {"content-type": "application/json", "accept": "application/json"}
        if self.settings.api_key:
            headers["x-goog-api-key"] = self.settings.api_key
        headers.update(self.settings.headers)
        self.client = make_http_client(self.settings, headers=headers)

    async def aclose(self) -> None:
        if hasattr(self, "client"):
            await self.client.aclose()

    def _path(self, model: str, method: str) -> str:
        return f"/{self.settings.api_version}/{quote(fmt.model_path(model), safe='/')}:{method}"

    def _error(self, response: httpx.Response, content: bytes) -> UpstreamError:
        try:
            data = orjson.loads(content) if content else None
        except orjson.JSONDecodeError:
            data = None
        return fmt.error_from_gemini(
            response.status_code,
            data,
            response.headers,
            self.name,
            retry_after=parse_retry_after(response.headers),
        )

    async def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self.client.post(path, content=orjson.dumps(payload))
        except httpx.HTTPError as exc:
            raise transport_error(exc, self.name) from None
        if response.status_code >= 400:
            raise self._error(response, response.content)
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise UpstreamUnavailable(
                f"provider '{self.name}' answered with a body that is not a JSON object",
                provider=self.name,
                upstream_status=response.status_code,
            )
        return data

    async def chat(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        payload = fmt.to_gemini_request(body)
        data = await self._post(self._path(target.model, "generateContent"), payload)
        return ProviderResponse(
            body=fmt.from_gemini_response(data, model=target.model, provider=self.name)
        )

    async def chat_stream(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ChunkStream:
        payload = fmt.to_gemini_request(body)
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        request = self.client.build_request(
            "POST",
            self._path(target.model, "streamGenerateContent"),
            params={"alt": "sse"},
            content=orjson.dumps(payload),
            headers={"accept": "text/event-stream"},
        )
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise transport_error(exc, self.name) from None
        if response.status_code >= 400:
            try:
                content = await response.aread()
            except httpx.HTTPError:
                content = b""
            finally:
                await response.aclose()
            raise self._error(response, content)
        translator = fmt.StreamTranslator(
            model=target.model, include_usage=include_usage, provider=self.name
        )
        return GeminiChunkStream(response, translator, self.name)

    async def embeddings(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        method, payload = fmt.to_gemini_embed(body, target.model)
        data = await self._post(self._path(target.model, method), payload)
        vectors = fmt.embedding_vectors(data)
        # Gemini's embedding answers carry no token count; usage is reported as 0.
        return ProviderResponse(
            body=embeddings_body(
                vectors,
                model=target.model,
                encoding_format=body.get("encoding_format"),
            )
        )


class GeminiChunkStream(ChunkStream):
    """Translates Gemini's SSE body into OpenAI chunks as the bytes arrive."""

    def __init__(
        self, response: httpx.Response, translator: fmt.StreamTranslator, provider: str
    ) -> None:
        self.response = response
        self.translator = translator
        self.provider = provider

    async def __aiter__(self) -> AsyncIterator[bytes]:
        translator = self.translator
        try:
            async for chunk in self.response.aiter_bytes():
                events = translator.feed(chunk)
                if events:
                    self.finish_reason = translator.finish_reason
                    yield events
        except httpx.HTTPError as exc:
            raise UpstreamStreamBroken(
                f"the stream from provider '{self.provider}' broke ({type(exc).__name__})",
                provider=self.provider,
            ) from None
        tail = translator.close()
        self.usage = translator.usage
        self.finish_reason = translator.finish_reason
        if tail:
            yield tail

    async def aclose(self) -> None:
        await self.response.aclose()


@hookimpl
def register_providers(register: Callable[..., None]) -> None:
    register("gemini", GeminiProvider, base_url="https://generativelanguage.googleapis.com")
