"""The ``openai`` provider: OpenAI's API and every host that speaks it.

This is the hot path. Request bodies pass through with only ``model`` replaced, so fields the
gateway does not know (tools, response_format, seed, logprobs, new ones) reach the upstream
untouched. Non-streamed answers are parsed once (to check they are JSON and read usage) and
sent on as the upstream's own bytes. Streams are forwarded as whole SSE events without being
parsed; only the event carrying usage (once, at the end) and the finish reason are looked at.
The gateway always asks the upstream for stream usage and drops the usage chunk again when the
client did not ask for it.

The OpenAI-compatible hosts (``azure``, ``groq``, ``mistral``, ``ollama`` ...) are provider types
made from the records in :mod:`openai_family`: the same class with other defaults and quirks
(auth header, deployment paths, fields renamed or dropped, no ``stream_options``). A host with
no quirks pays nothing for them: the body is only copied with ``model`` replaced.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import quote

import attrs
import httpx
import orjson
from plugway.builtin_providers.media_http import HTTPVideoBytes, call_json, open_download
from plugway.builtin_providers.openai_family import HOSTS, recognise
from plugway.context import RequestContext, Target
from plugway.errors import UpstreamError, UpstreamStreamBroken
from plugway.formats import openai_videos
from plugway.formats.openai_audio import AudioAnswer, Upload
from plugway.formats.openai_responses import usage_to_chat
from plugway.formats.openai_responses_native import ResponsesEventStream, ResponsesStreamReader
from plugway.formats.video_jobs import JobState, VideoRequest
from plugway.hooks import hookimpl
from plugway.provider import ChunkStream, Provider, ProviderResponse, ProviderSettings
from plugway.sse import EventSplitter, iter_data
from plugway.upstream import (
    DirectResponse,
    DirectSender,
    checked_response,
    error_from_response,
    json_object,
    make_http_client,
    make_timeout,
    make_transport,
)

#: Writes no prompt or completion text anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False


@attrs.define(kw_only=True)
class OpenAISettings(ProviderSettings):
    #: Header carrying the key, and the scheme before it ("" sends the bare key).
    auth_header: str = "authorization"
    auth_scheme: str = "Bearer"
    #: Query parameters added to every call (Azure's ``api-version``).
    query: dict[str, str] = attrs.field(factory=dict)
    organization: str | None = None
    project: str | None = None
    #: Put before each endpoint path, ``{model}`` replaced by the target's model (Azure:
    #: ``/openai/deployments/{model}``, so the target's model is the deployment name).
    path_prefix: str = ""
    #: Sent as the ``api-version`` query parameter when not empty (Azure).
    api_version: str = ""
    #: Whether the host accepts ``stream_options``. When false it is never sent (a client's
    #: is removed) and stream usage is only what the host reports on its own.
    stream_options: bool = True
    #: Request fields the host names differently, e.g. ``max_completion_tokens = "max_tokens"``.
    rename: dict[str, str] = attrs.field(factory=dict)
    #: Request fields the host refuses; removed before sending.
    drop: list[str] = attrs.field(factory=list)
    #: Error codes that mean "context window exceeded" / "refused by a content filter" here,
    #: besides OpenAI's own and the message patterns every host is checked for.
    context_codes: list[str] = attrs.field(factory=list)
    filter_codes: list[str] = attrs.field(factory=list)
    #: Whether the host serves the legacy ``/completions`` endpoint. When true,
    #: ``/v1/completions`` requests pass through to it; when false they are translated
    #: through ``/chat/completions``.
    completions_api: bool = True
    #: Whether the host serves ``/v1/responses`` (OpenAI's Responses API) itself: the inbound
    #: ``/v1/responses`` endpoint then passes requests through instead of translating them to
    #: chat completions. On by default for ``openai`` and ``azure``.
    responses_api: bool = False
    #: The Responses endpoint's own path when it is not ``path_prefix`` + ``/responses``
    #: (Azure serves it at ``/openai/v1/responses``, outside the deployment paths, without
    #: ``api-version``).
    responses_path: str = ""


_FINISH = re.compile(rb'"finish_reason":\s*"([a-z_]+)"')
_USAGE_MARK = b'"usage":{'


class OpenAIProvider(Provider):
    settings_class = OpenAISettings
    settings: OpenAISettings

    client: httpx.AsyncClient
    #: The hot path: prebuilt requests straight to the client's transport (same headers,
    #: timeout and pool as ``client``).
    direct: DirectSender
    #: Set by :meth:`startup` from the settings: the query every call carries, and whether
    #: any request quirk applies (so a host without quirks skips :meth:`_adapt`).
    _params: dict[str, str] | None = None
    _adapts: bool = False

    async def startup(self) -> None:
        s = self.settings
        transport = make_transport(s)
        self.client = make_http_client(s, headers=self._headers(), transport=transport)
        self.direct = DirectSender(self.client, transport, make_timeout(s))
        self._stream_headers = self.direct.with_headers({"accept": "text/event-stream"})
        params = dict(s.query)
        if s.api_version:
            params["api-version"] = s.api_version
        self._params = params or None
        self._adapts = bool(s.rename or s.drop or not s.stream_options)

    def _url(self, endpoint: str, model: str) -> str:
        """The full URL of ``endpoint`` for ``model``, merged once per path and cached."""
        return self.direct.url(self._path(endpoint, model), self._params)

    def _path(self, endpoint: str, model: str) -> str:
        prefix = self.settings.path_prefix
        if prefix:
            return prefix.replace("{model}", quote(model, safe="")) + endpoint
        return endpoint

    def _adapt(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Apply the host's quirks to a request body (already a copy)."""
        s = self.settings
        for old, new in s.rename.items():
            if old in payload:
                value = payload.pop(old)
                payload.setdefault(new, value)
        for name in s.drop:
            payload.pop(name, None)
        if not s.stream_options:
            payload.pop("stream_options", None)
        return payload

    def _error(self, status: int, content: bytes, headers: Mapping[str, str]) -> UpstreamError:
        error = error_from_response(status, content, headers, self.name)
        return recognise(
            error,
            context_codes=self.settings.context_codes,
            filter_codes=self.settings.filter_codes,
        )

    async def aclose(self) -> None:
        if hasattr(self, "client"):
            await self.client.aclose()

    def _headers(self) -> dict[str, str]:
        s = self.settings
        headers = {"content-type": "application/json", "accept": "application/json"}
        if s.api_key:
            headers[s.auth_header] = f"{s.auth_scheme} {s.api_key}" if s.auth_scheme else s.api_key
        if s.organization:
            headers["openai-organization"] = s.organization
        if s.project:
            headers["openai-project"] = s.project
        headers.update(s.headers)
        return headers

    async def chat(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        payload = {**body, "model": target.model}
        return await self._post_json(self._url("/chat/completions", target.model), payload)

    async def embeddings(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        payload = {**body, "model": target.model}
        return await self._post_json(self._url("/embeddings", target.model), payload)

    # -- other OpenAI endpoints, passed through as they are -------------------------------------

    async def post_endpoint(
        self, target: Target, endpoint: str, body: Mapping[str, Any]
    ) -> ProviderResponse:
        """POST ``body`` (``model`` set to the target's) to another OpenAI endpoint of this
        host (``/responses``, ``/completions`` ...) and return its JSON answer untouched in
        ``raw``. The host's quirks (``rename``, ``drop``) apply as for chat."""
        payload = {**body, "model": target.model}
        return await self._post_json(self._url(endpoint, target.model), payload)

    async def open_endpoint_stream(
        self, target: Target, endpoint: str, body: Mapping[str, Any]
    ) -> DirectResponse:
        """Open a streamed call to another OpenAI endpoint of this host; the caller reads the
        accepted response's SSE bytes and must ``aclose()`` it. Error statuses raise as for
        chat."""
        return await self._open_stream_at(self._url(endpoint, target.model), target, body)

    async def _open_stream_at(
        self, url: str, target: Target, body: Mapping[str, Any]
    ) -> DirectResponse:
        payload = {**body, "model": target.model, "stream": True}
        if self._adapts:
            payload = self._adapt(payload)
        sending = self.direct.send(
            "POST",
            url,
            orjson.dumps(payload),
            headers=self._stream_headers,
            stream=True,
        )
        return await checked_response(sending, provider=self.name, error_of=self._error)

    async def moderations(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        return await self.post_endpoint(target, "/moderations", body)

    # -- video jobs (plugway.formats.video_jobs.VideoJobs) and images -------------------------

    async def video_submit(
        self, ctx: RequestContext, target: Target, request: VideoRequest
    ) -> JobState:
        data = await self._call(
            "POST", "/videos", target, openai_videos.to_openai_json(request, target.model)
        )
        return openai_videos.from_openai_video(data)

    async def video_poll(self, target: Target, provider_id: str) -> JobState:
        data = await self._call("GET", f"/videos/{quote(provider_id, safe='')}", target)
        return openai_videos.from_openai_video(data)

    async def video_content(self, target: Target, job: JobState) -> HTTPVideoBytes:
        url = self._url(f"/videos/{quote(job.provider_id, safe='')}/content", target.model)
        return await open_download(self.client, url, provider=self.name, error_of=self._error)

    async def video_delete(self, target: Target, provider_id: str) -> None:
        await self._call("DELETE", f"/videos/{quote(provider_id, safe='')}", target)

    async def images(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        """``POST /images/generations``, passed through (``model`` replaced)."""
        return await self.post_endpoint(target, "/images/generations", body)

    # -- audio (plugway.formats.openai_audio) --------------------------------------------------

    async def speech(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> HTTPVideoBytes:
        """``POST /audio/speech``, the audio streamed back as the host sends it."""
        payload = {**body, "model": target.model}
        request = self.client.build_request(
            "POST",
            self._url("/audio/speech", target.model),
            content=orjson.dumps(payload),
            headers={"accept": "*/*"},
        )
        sending = self.client.send(request, stream=True)
        response = await checked_response(sending, provider=self.name, error_of=self._error)
        return HTTPVideoBytes(response)

    async def transcription(
        self, ctx: RequestContext, target: Target, form: Mapping[str, str], file: Upload
    ) -> AudioAnswer:
        """``POST /audio/transcriptions`` as a multipart form, the answer as it came."""
        headers = {k: v for k, v in self._headers().items() if k != "content-type"}
        request = httpx.Request(
            "POST",
            self._url("/audio/transcriptions", target.model),
            data={**form, "model": target.model},
            files={"file": (file.name, file.data, file.content_type)},
            headers=headers,
            extensions={"timeout": self.client.timeout.as_dict()},
        )
        sending = self.client.send(request)
        response = await checked_response(sending, provider=self.name, error_of=self._error)
        return AudioAnswer(
            response.content, response.headers.get("content-type", "application/json")
        )

    async def _call(
        self, method: str, endpoint: str, target: Target, payload: Any = None
    ) -> dict[str, Any]:
        return await call_json(
            self.client,
            method,
            self._url(endpoint, target.model),
            provider=self.name,
            error_of=self._error,
            payload=payload,
        )

    # -- legacy text completions (plugway.formats.openai_completions.NativeCompletions) --------

    @property
    def serves_completions(self) -> bool:
        return self.settings.completions_api

    async def completions(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        return await self.post_endpoint(target, "/completions", body)

    async def completions_stream(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ChunkStream:
        """The host's completion events, untouched; usage is always asked for (when the host
        takes ``stream_options``) so cost is known, and its chunk dropped again when the
        client did not ask for it."""
        options = body.get("stream_options")
        wants_usage = isinstance(options, dict) and options.get("include_usage") is True
        payload = {
            **body,
            "stream_options": {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            },
        }
        response = await self.open_endpoint_stream(target, "/completions", payload)
        return OpenAIChunkStream(response, self.name, keep_usage_chunk=wants_usage)

    # -- native Responses (plugway.formats.openai_responses_native.NativeResponses) -----------

    def serves_responses(self, target: Target) -> bool:
        return self.settings.responses_api

    async def responses(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        payload = {**body, "model": target.model}
        payload.pop("stream", None)
        return await self._post_json(self._responses_url(target), payload)

    async def responses_stream(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ResponsesEventStream:
        response = await self._open_stream_at(self._responses_url(target), target, body)
        return NativeResponsesStream(response, self.name)

    def _responses_url(self, target: Target) -> str:
        path = self.settings.responses_path
        if path:
            return self.direct.url(path, self.settings.query or None)
        return self._url("/responses", target.model)

    async def _post_json(self, url: str, payload: dict[str, Any]) -> ProviderResponse:
        if self._adapts:
            payload = self._adapt(payload)
        sending = self.direct.send("POST", url, orjson.dumps(payload))
        response = await checked_response(sending, provider=self.name, error_of=self._error)
        return ProviderResponse(body=json_object(response, self.name), raw=response.content)

    async def chat_stream(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ChunkStream:
        options = body.get("stream_options")
        client_wants_usage = isinstance(options, dict) and options.get("include_usage") is True
        payload = {
            **body,
            "model": target.model,
            "stream": True,
            "stream_options": {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            },
        }
        if self._adapts:
            payload = self._adapt(payload)
        sending = self.direct.send(
            "POST",
            self._url("/chat/completions", target.model),
            orjson.dumps(payload),
            headers=self._stream_headers,
            stream=True,
        )
        response = await checked_response(sending, provider=self.name, error_of=self._error)
        return OpenAIChunkStream(response, self.name, keep_usage_chunk=client_wants_usage)


class OpenAIChunkStream(ChunkStream):
    """Forwards an OpenAI-format SSE body as whole events, without parsing them."""

    def __init__(self, response: DirectResponse, provider: str, keep_usage_chunk: bool) -> None:
        self.response = response
        self.provider = provider
        self.keep_usage_chunk = keep_usage_chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        splitter = EventSplitter()
        done = False
        try:
            async for chunk in self.response.aiter_bytes():
                events = splitter.feed(chunk)
                if not events:
                    continue
                if b"[DONE]" in events:
                    events, done = _strip_done(events)
                if _USAGE_MARK in events:
                    events = self._take_usage(events)
                if b'"finish_reason":"' in events or b'"finish_reason": "' in events:
                    found = _FINISH.findall(events)
                    if found:
                        self.finish_reason = found[-1].decode()
                if events:
                    yield events
        except httpx.HTTPError as exc:
            raise UpstreamStreamBroken(
                f"the stream from provider '{self.provider}' broke ({type(exc).__name__})",
                provider=self.provider,
            ) from None
        if not done:
            raise UpstreamStreamBroken(
                f"the stream from provider '{self.provider}' ended before it was complete",
                provider=self.provider,
            )

    def _take_usage(self, events: bytes) -> bytes:
        """Record the usage chunk's usage; drop that chunk when the client did not ask."""
        kept: list[bytes] = []
        for payload in iter_data(events):
            event = b"data: " + payload + b"\n\n"
            if _USAGE_MARK in payload:
                try:
                    chunk = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    kept.append(event)
                    continue
                if isinstance(chunk.get("usage"), dict):
                    self.usage = chunk["usage"]
                    if not self.keep_usage_chunk and not chunk.get("choices"):
                        continue
            kept.append(event)
        return b"".join(kept)

    async def aclose(self) -> None:
        await self.response.aclose()


def _strip_done(events: bytes) -> tuple[bytes, bool]:
    """The events without the ``[DONE]`` event, and whether there was one."""
    payloads = list(iter_data(events))
    kept = [b"data: " + payload + b"\n\n" for payload in payloads if payload != b"[DONE]"]
    return b"".join(kept), len(kept) < len(payloads)


class NativeResponsesStream(ResponsesEventStream):
    """A host's Responses SSE body forwarded as whole events, untouched. Only the terminal
    and error events are parsed (see :class:`ResponsesStreamReader`). An error before the
    first forwarded event raises :class:`UpstreamStreamBroken` (retryable: the client has
    seen nothing); a later one is forwarded as it is and recorded in ``error``."""

    def __init__(self, response: DirectResponse, provider: str) -> None:
        self.http = response
        self.provider = provider
        self.reader = ResponsesStreamReader()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        splitter = EventSplitter()
        reader = self.reader
        sent = False
        try:
            async for chunk in self.http.aiter_bytes():
                events = splitter.feed(chunk)
                if not events:
                    continue
                reader.feed(events)
                if reader.failed:
                    error = UpstreamStreamBroken(
                        f"provider '{self.provider}' failed mid-stream: {reader.error_message}",
                        provider=self.provider,
                        code=reader.error_code,
                    )
                    if not sent:
                        raise error
                    self.error = error
                if reader.done:
                    self._finish()
                sent = True
                yield events
        except httpx.HTTPError as exc:
            raise UpstreamStreamBroken(
                f"the stream from provider '{self.provider}' broke ({type(exc).__name__})",
                provider=self.provider,
            ) from None
        if not reader.done:
            raise UpstreamStreamBroken(
                f"the stream from provider '{self.provider}' ended before it was complete",
                provider=self.provider,
            )

    def _finish(self) -> None:
        response = self.reader.response
        self.response = response
        usage = response.get("usage") if response is not None else None
        if isinstance(usage, dict):
            self.usage = usage_to_chat(usage)
        self.finish_reason = self.reader.finish_reason

    async def aclose(self) -> None:
        await self.http.aclose()


class KeylessOpenAIProvider(OpenAIProvider):
    """The same provider for local servers (Ollama, vLLM) that run without a key; one given
    in the config is still sent."""

    requires_api_key = False


@hookimpl
def register_providers(register: Callable[..., None]) -> None:
    from plugway.builtin_providers.ark import ArkProvider

    for host in HOSTS:
        provider_class: type[OpenAIProvider] = (
            OpenAIProvider if host.key_required else KeylessOpenAIProvider
        )
        if host.name == "ark":
            provider_class = ArkProvider
        register(host.name, provider_class, **host.defaults())
