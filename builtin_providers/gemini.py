"""The ``gemini`` provider: Google's Gemini API (``generativelanguage.googleapis.com``).

``base_url`` is the host, as in Google's SDKs; the gateway adds
``/{api_version}/models/{model}:generateContent`` (``:streamGenerateContent?alt=sse`` for
streams, ``:embedContent`` / ``:batchEmbedContents`` for embeddings). The key travels in the
``x-goog-api-key`` header only, never in the URL, so it cannot reach a log line or an error
through a URL. The translation itself lives in :mod:`plugway.formats.gemini`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import quote

import attrs
import httpx
import orjson
from plugway.builtin_providers.media_http import HTTPVideoBytes, call_json, open_download
from plugway.context import RequestContext, Target
from plugway.errors import InvalidRequest, UpstreamError, UpstreamStreamBroken
from plugway.formats import gemini as fmt
from plugway.formats import gemini_images, gemini_veo
from plugway.formats.openai_embeddings import embeddings_body
from plugway.formats.openai_images import images_body
from plugway.formats.video_jobs import JobState, VideoRequest
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


@attrs.define(kw_only=True)
class GeminiSettings(ProviderSettings):
    #: The REST version in the path: ``v1beta`` (every feature) or ``v1``.
    api_version: str = "v1beta"


class GeminiProvider(HTTPProvider):
    settings_class = GeminiSettings
    settings: GeminiSettings

    def auth_headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.settings.api_key} if self.settings.api_key else {}

    def _path(self, model: str, method: str) -> str:
        return f"/{self.settings.api_version}/{quote(fmt.model_path(model), safe='/')}:{method}"

    def _error(self, status: int, content: bytes, headers: Mapping[str, str]) -> UpstreamError:
        try:
            data = orjson.loads(content) if content else None
        except orjson.JSONDecodeError:
            data = None
        return fmt.error_from_gemini(
            status, data, headers, self.name, retry_after=parse_retry_after(headers)
        )

    async def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        _, data = await post_json(
            self.client, path, payload, provider=self.name, error_of=self._error
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
        response = await open_stream(self.client, request, provider=self.name, error_of=self._error)
        translator = fmt.StreamTranslator(
            model=target.model, include_usage=include_usage, provider=self.name
        )
        return GeminiChunkStream(response, translator, self.name)

    # -- native Gemini API (fmt.NativeGemini): the inbound /v1beta door passes bodies through --

    async def generate_content(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> fmt.NativeAnswer:
        raw, data = await post_json(
            self.client,
            self._path(target.model, "generateContent"),
            body,
            provider=self.name,
            error_of=self._error,
        )
        return fmt.NativeAnswer(raw, data)

    async def stream_generate_content(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ChunkStream:
        request = self.client.build_request(
            "POST",
            self._path(target.model, "streamGenerateContent"),
            params={"alt": "sse"},
            content=orjson.dumps(body),
            headers={"accept": "text/event-stream"},
        )
        response = await open_stream(self.client, request, provider=self.name, error_of=self._error)
        return NativeGeminiStream(response, self.name)

    async def count_tokens(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        return await self._post(self._path(target.model, "countTokens"), dict(body))

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

    # -- images (plugway.formats.openai_images.ImageGeneration) ---------------------------------

    async def images(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        """Imagen through ``:predict``; Gemini image models through ``:generateContent``, one
        call per image asked for."""
        prompt = str(body.get("prompt") or "")
        n = body.get("n") if isinstance(body.get("n"), int) else 1
        assert isinstance(n, int)
        if gemini_images.is_imagen(target.model):
            payload = gemini_images.to_imagen_request(prompt, n, body.get("size"))
            data = await self._post(self._path(target.model, "predict"), payload)
            images = gemini_images.from_imagen(data)
        else:
            path = self._path(target.model, "generateContent")
            request = gemini_images.to_image_content_request(prompt)
            answers = await asyncio.gather(*(self._post(path, request) for _ in range(n)))
            images = [image for a in answers for image in gemini_images.from_image_content(a)]
        if not images:
            raise UpstreamError(
                f"provider '{self.name}' returned no image (filtered by its safety settings?)",
                provider=self.name,
            )
        response_format = body.get("response_format")
        return ProviderResponse(
            body=images_body(
                images,
                int(time.time()),
                response_format if isinstance(response_format, str) else None,
            )
        )

    # -- Veo video jobs (plugway.formats.video_jobs.VideoJobs) ---------------------------------

    async def video_submit(
        self, ctx: RequestContext, target: Target, request: VideoRequest
    ) -> JobState:
        if gemini_veo.image_is_url(request):
            raise InvalidRequest(
                "Veo takes the input image inline: send input_reference as an upload or a "
                "data: URL",
                param="input_reference",
            )
        payload = gemini_veo.to_veo_request(request)
        data = await self._post(self._path(target.model, "predictLongRunning"), payload)
        return gemini_veo.from_operation(data)

    async def video_poll(self, target: Target, provider_id: str) -> JobState:
        path = f"/{self.settings.api_version}/{quote(provider_id, safe='/')}"
        data = await call_json(self.client, "GET", path, provider=self.name, error_of=self._error)
        return gemini_veo.from_operation(data)

    async def video_content(self, target: Target, job: JobState) -> HTTPVideoBytes:
        if job.video_url is None:
            raise InvalidRequest("the operation has no video", code="video_not_ready")
        # The file URI is on the API host and needs the key: never handed to a client.
        return await open_download(
            self.client, job.video_url, provider=self.name, error_of=self._error
        )

    async def video_delete(self, target: Target, provider_id: str) -> None:
        """Veo's operations and files expire on their own; there is nothing to delete."""


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


class NativeGeminiStream(ChunkStream):
    """Gemini's own ``alt=sse`` events, whole and untouched; each event's ``usageMetadata``
    and ``finishReason`` are read as they pass (one JSON parse per event), and an in-band
    ``error`` event is recorded in ``error`` after it is forwarded."""

    def __init__(self, response: httpx.Response, provider: str) -> None:
        self.response = response
        self.provider = provider
        self._splitter = EventSplitter()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.response.aiter_bytes():
                events = self._splitter.feed(chunk)
                if events:
                    self._observe(events)
                    yield events
        except httpx.HTTPError as exc:
            raise UpstreamStreamBroken(
                f"the stream from provider '{self.provider}' broke ({type(exc).__name__})",
                provider=self.provider,
            ) from None
        tail = self._splitter.pending
        if tail.strip():
            events = self._splitter.feed(b"\r\n\r\n")
            self._observe(events)
            yield events

    def _observe(self, events: bytes) -> None:
        for payload in iter_data(events):
            try:
                data = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(data, dict):
                continue
            if isinstance(data.get("error"), dict):
                error = data["error"]
                status = error.get("code") if isinstance(error.get("code"), int) else 500
                self.error = fmt.error_from_gemini(status, data, {}, self.provider)
            usage = fmt.usage_from_gemini(data.get("usageMetadata"))
            if usage is not None:
                self.usage = usage
            for candidate in data.get("candidates") or ():
                if isinstance(candidate, dict) and candidate.get("finishReason"):
                    parts = (candidate.get("content") or {}).get("parts") or ()
                    calls = any(isinstance(p, dict) and "functionCall" in p for p in parts)
                    self.finish_reason = fmt.finish_reason(candidate["finishReason"], calls)

    async def aclose(self) -> None:
        await self.response.aclose()


@hookimpl
def register_providers(register: Callable[..., None]) -> None:
    register("gemini", GeminiProvider, base_url="https://generativelanguage.googleapis.com")
