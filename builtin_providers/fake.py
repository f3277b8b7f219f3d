"""The ``fake`` provider: real answers with no network and no key.

It makes ``plugway serve`` useful on a fresh machine and gives tests and demos a provider that
behaves like one: chat (streamed or not, with tool calls when the client requires one),
usage counted in whitespace-separated tokens, and deterministic embeddings (floats or base64).
It checks a request as OpenAI does (:mod:`plugway.formats.openai_chat`,
:mod:`plugway.formats.openai_embeddings`) and refuses a malformed one as an upstream 400 that
names the field (``messages[0].content[0].text must be a string``).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import attrs
from plugway.context import RequestContext, Target
from plugway.errors import InvalidRequest, UpstreamRejected
from plugway.formats import openai_moderations
from plugway.formats.openai_chat import validate_chat_request
from plugway.formats.openai_embeddings import embeddings_body, validate_embeddings_request
from plugway.formats.video_jobs import JobState, VideoRequest
from plugway.hooks import hookimpl
from plugway.provider import ChunkStream, Provider, ProviderResponse, ProviderSettings
from plugway.sse import sse_event

#: Writes no prompt or completion text anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False


@attrs.define(kw_only=True)
class FakeSettings(ProviderSettings):
    #: Seconds before answering, and between streamed chunks.
    delay: float = 0.0
    chunk_delay: float = 0.0
    dimensions: int = 16
    #: Polls before a fake video job is completed, and the size of its video in bytes.
    video_polls: int = 2
    video_bytes: int = 4096


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _count(text: str) -> int:
    return len(text.split())


def _prompt_tokens(body: Mapping[str, Any]) -> int:
    messages = body.get("messages") or []
    return sum(_count(_text_of(m.get("content"))) for m in messages if isinstance(m, dict)) or 1


def _reply(body: Mapping[str, Any], model: str) -> tuple[str, str]:
    """The answer and its finish reason: ``length`` when ``max_tokens`` (or
    ``max_completion_tokens``), counted in words, cuts it."""
    messages = body.get("messages") or []
    last = next(
        (m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), {}
    )
    said = " ".join(_text_of(last.get("content")).split()[:40])
    text = f"Hello from plugway's fake provider ({model}). You said: {said}"
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(limit, int) and limit > 0 and len(text.split(" ")) > limit:
        return " ".join(text.split(" ")[:limit]), "length"
    return text, "stop"


def _forced_tool(body: Mapping[str, Any]) -> dict[str, Any] | None:
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    if not tools or choice in (None, "auto", "none"):
        return None
    functions = [t for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)]
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return next((t for t in functions if t["function"].get("name") == name), None)
    return functions[0] if functions else None


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _checked(
    name: str, validate: Callable[[Mapping[str, Any]], None], body: Mapping[str, Any]
) -> None:
    """Refuse ``body`` as OpenAI would, as an upstream 400 naming the field."""
    try:
        validate(body)
    except InvalidRequest as exc:
        raise UpstreamRejected(
            exc.message, provider=name, upstream_status=400, param=exc.param
        ) from None


class FakeProvider(Provider):
    settings_class = FakeSettings
    settings: FakeSettings
    requires_api_key = False

    def __init__(self, name: str, settings: ProviderSettings) -> None:
        super().__init__(name, settings)
        #: Polls seen per fake video job, in this worker.
        self._polls: dict[str, int] = {}

    async def chat(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        _checked(self.name, validate_chat_request, body)
        if self.settings.delay:
            await asyncio.sleep(self.settings.delay)
        tool = _forced_tool(body)
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        if tool is not None:
            message["tool_calls"] = [
                {
                    "id": "call_" + uuid.uuid4().hex[:24],
                    "type": "function",
                    "function": {"name": tool["function"]["name"], "arguments": "{}"},
                }
            ]
            finish, completion = "tool_calls", 1
        else:
            message["content"], finish = _reply(body, target.model)
            completion = _count(message["content"])
        return ProviderResponse(
            body={
                "id": "chatcmpl-" + uuid.uuid4().hex,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": target.model,
                "choices": [
                    {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
                ],
                "usage": _usage(_prompt_tokens(body), completion),
            }
        )

    async def chat_stream(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ChunkStream:
        _checked(self.name, validate_chat_request, body)
        if self.settings.delay:
            await asyncio.sleep(self.settings.delay)
        return FakeStream(body, target.model, self.settings.chunk_delay)

    async def embeddings(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        _checked(self.name, validate_embeddings_request, body)
        inputs = body.get("input")
        items = [inputs] if isinstance(inputs, str) else list(inputs or [])
        dims = body.get("dimensions") if isinstance(body.get("dimensions"), int) else None
        size = dims or self.settings.dimensions
        vectors = [embed(str(item), size) for item in items]
        tokens = sum(_count(str(item)) for item in items)
        return ProviderResponse(
            body=embeddings_body(
                vectors,
                model=target.model,
                encoding_format=body.get("encoding_format"),
                prompt_tokens=tokens,
            )
        )

    async def moderations(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        """Flags ``violence`` for inputs naming one of :data:`VIOLENT_WORDS`, nothing else."""
        results = [
            openai_moderations.result(
                ["violence"] if VIOLENT_WORDS & set(text.lower().split()) else [], kind
            )
            for kind, text in openai_moderations.inputs(body)
        ]
        return ProviderResponse(
            body=openai_moderations.moderation_body(
                "modr-" + ctx.request_id.removeprefix("req_"), target.model, results
            )
        )

    # -- video jobs (plugway.formats.video_jobs.VideoJobs) -------------------------------------

    async def video_submit(
        self, ctx: RequestContext, target: Target, request: VideoRequest
    ) -> JobState:
        """A job that completes after ``video_polls`` polls, or fails when the prompt says
        ``[fail]``. Its id carries the outcome and duration, so any worker can poll it."""
        outcome = "f" if "[fail]" in request.prompt else "c"
        seconds = request.seconds or 4
        job_id = f"fakevid_{outcome}{seconds}_{uuid.uuid4().hex[:16]}"
        self._polls[job_id] = 0
        return JobState(provider_id=job_id, status="queued", seconds=seconds, size=request.size)

    async def video_poll(self, target: Target, provider_id: str) -> JobState:
        polls = self._polls.get(provider_id, 0) + 1
        self._polls[provider_id] = polls
        outcome = provider_id.removeprefix("fakevid_").partition("_")[0]
        seconds = int(outcome[1:]) if outcome[1:].isdigit() else 4
        if polls < self.settings.video_polls:
            progress = 100 * polls // self.settings.video_polls
            return JobState(provider_id, "in_progress", progress=progress, seconds=seconds)
        if outcome.startswith("f"):
            error = {"code": "content_policy_violation", "message": "the fake job failed"}
            return JobState(provider_id, "failed", error=error, seconds=seconds)
        return JobState(provider_id, "completed", progress=100, seconds=seconds)

    async def video_content(self, target: Target, job: JobState) -> FakeVideoBytes:
        return FakeVideoBytes(job.provider_id, self.settings.video_bytes)

    async def video_delete(self, target: Target, provider_id: str) -> None:
        self._polls.pop(provider_id, None)

    async def images(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        """``n`` copies of a 1x1 PNG, as ``b64_json`` (or ``url``, a data: URL)."""
        count = body.get("n")
        n = count if isinstance(count, int) and not isinstance(count, bool) else 1
        as_url = body.get("response_format") == "url"
        item = {"url": "data:image/png;base64," + TINY_PNG} if as_url else {"b64_json": TINY_PNG}
        return ProviderResponse(
            body={"created": int(time.time()), "data": [dict(item) for _ in range(n)]}
        )


#: A 1x1 transparent PNG, base64.
TINY_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


class FakeVideoBytes:
    """``size`` deterministic bytes (a function of the job id), made piece by piece."""

    content_type = "video/mp4"

    def __init__(self, job_id: str, size: int) -> None:
        self.block = hashlib.sha256(job_id.encode()).digest() * 2048  # 64 KiB
        self.size = size

    @property
    def content_length(self) -> int | None:
        return self.size

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        left = self.size
        while left > 0:
            piece = self.block[: min(left, len(self.block))]
            left -= len(piece)
            yield piece

    async def aclose(self) -> None:
        return None


#: Words the fake provider's moderation flags as violence.
VIOLENT_WORDS = frozenset({"kill", "attack", "shoot"})


def embed(text: str, size: int) -> list[float]:
    """A deterministic unit-ish vector for ``text``."""
    digest = hashlib.sha256(text.encode()).digest()
    while len(digest) < size:
        digest += hashlib.sha256(digest).digest()
    return [round((b - 127.5) / 127.5, 6) for b in digest[:size]]


class FakeStream(ChunkStream):
    def __init__(self, body: Mapping[str, Any], model: str, chunk_delay: float) -> None:
        self.body, self.model, self.chunk_delay = body, model, chunk_delay
        options = body.get("stream_options")
        self.include_usage = isinstance(options, dict) and options.get("include_usage") is True

    async def __aiter__(self) -> AsyncIterator[bytes]:
        base = {
            "id": "chatcmpl-" + uuid.uuid4().hex,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return sse_event(
                {
                    **base,
                    "choices": [
                        {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
                    ],
                }
            )

        yield chunk({"role": "assistant", "content": ""})
        tool = _forced_tool(self.body)
        if tool is not None:
            yield chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_" + uuid.uuid4().hex[:24],
                            "type": "function",
                            "function": {"name": tool["function"]["name"], "arguments": ""},
                        }
                    ]
                }
            )
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})
            finish, completion = "tool_calls", 1
        else:
            text, finish = _reply(self.body, self.model)
            words = text.split(" ")
            for i, word in enumerate(words):
                if self.chunk_delay:
                    await asyncio.sleep(self.chunk_delay)
                yield chunk({"content": word if i == 0 else " " + word})
            completion = len(words)
        yield chunk({}, finish)
        self.finish_reason = finish
        self.usage = _usage(_prompt_tokens(self.body), completion)
        if self.include_usage:
            yield sse_event({**base, "choices": [], "usage": self.usage})

    async def aclose(self) -> None:
        return None


@hookimpl
def register_providers(register: Callable[..., None]) -> None:
    register("fake", FakeProvider)
