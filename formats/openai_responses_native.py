"""OpenAI Responses served natively: the :class:`NativeResponses` protocol a provider implements
when its host serves ``POST /v1/responses`` itself, the pure reading of a Responses event
stream that such a provider's pass-through stream needs (usage, the final response object, an
in-band error), and the conversions a pass-through needs around it: a host's Response as the
canonical chat answer plugins read (:func:`chat_of_response`), a stored conversation as input
items for a host that cannot resolve ``previous_response_id`` (:func:`chat_to_input_items`), and
the canonical view of a request only a native host can serve (:func:`lenient_chat_request`).

The inbound ``/v1/responses`` endpoint passes a client's body through (``model`` replaced) to a
target whose provider implements :class:`NativeResponses` and says, through
:meth:`NativeResponses.serves_responses`, that its host has the endpoint; every other target is
translated through chat completions (:mod:`plugway.formats.openai_responses`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import orjson
from plugway.context import RequestContext, Target
from plugway.formats.openai_responses import (
    input_to_chat_messages,
    output_to_chat_messages,
    usage_to_chat,
)
from plugway.provider import ChunkStream, ProviderResponse
from plugway.sse import iter_data

#: The event types that end a Responses stream.
TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponsesEventStream(ChunkStream):
    """A Responses SSE stream forwarded whole and untouched (``event:`` and ``data:`` lines as
    the host sent them). ``usage`` is chat-shaped (for cost and limits), ``response`` the final
    Response object from the terminal event once the stream has ended, ``error`` an error event
    that was forwarded after the first byte."""

    response: dict[str, Any] | None = None


@runtime_checkable
class NativeResponses(Protocol):
    """What a provider offers to serve Responses requests natively.

    ``responses`` answers with the host's Response object (``raw`` its exact bytes);
    ``responses_stream`` returns once the host accepted the stream. An in-band ``error`` or
    ``response.failed`` event before anything was forwarded raises a retryable
    :class:`~plugway.errors.UpstreamStreamBroken`; a later one is forwarded as it is and
    recorded in the stream's ``error``."""

    def serves_responses(self, target: Target) -> bool:
        """Whether this provider's host serves ``/v1/responses`` for ``target``."""
        ...

    async def responses(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse: ...

    async def responses_stream(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ResponsesEventStream: ...


def native_responses(provider: object, target: Target) -> NativeResponses | None:
    """``provider`` as :class:`NativeResponses` when it serves Responses for ``target``."""
    if isinstance(provider, NativeResponses) and provider.serves_responses(target):
        return provider
    return None


class ResponsesStreamReader:
    """Reads the few events of a Responses stream that matter to the gateway, without
    touching the bytes: the terminal event's response (and its usage), the error events.
    Only events whose bytes contain a marker are parsed, so text deltas cost a substring
    search."""

    __slots__ = ("done", "error_code", "error_message", "response")

    MARKERS = (b"response.completed", b"response.incomplete", b"response.failed", b'"error"')

    def __init__(self) -> None:
        self.response: dict[str, Any] | None = None
        self.done = False
        self.error_message: str | None = None
        self.error_code: str | None = None

    def feed(self, events: bytes) -> None:
        """Inspect whole SSE events (as cut by :class:`plugway.sse.EventSplitter`)."""
        if not any(marker in events for marker in self.MARKERS):
            return
        for payload in iter_data(events):
            if not any(marker in payload for marker in self.MARKERS):
                continue
            try:
                event = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict):
                self._event(event)

    def _event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind in TERMINAL_EVENTS:
            response = event.get("response")
            if isinstance(response, dict):
                self.response = response
            self.done = True
            if kind == "response.failed":
                error = (response or {}).get("error") if isinstance(response, dict) else None
                self._error(error if isinstance(error, dict) else {})
        elif kind == "error":
            self.done = True
            error = event.get("error")
            self._error(error if isinstance(error, dict) else event)

    def _error(self, error: Mapping[str, Any]) -> None:
        message = error.get("message")
        code = error.get("code")
        self.error_message = str(message) if message else "the upstream reported an error"
        self.error_code = str(code) if code else None

    @property
    def failed(self) -> bool:
        return self.error_message is not None

    @property
    def finish_reason(self) -> str | None:
        """The chat finish reason the final response amounts to."""
        response = self.response
        if response is None:
            return None
        if response.get("status") == "incomplete":
            details = response.get("incomplete_details") or {}
            reason = details.get("reason") if isinstance(details, dict) else None
            return "content_filter" if reason == "content_filter" else "length"
        output = response.get("output")
        if isinstance(output, list) and any(
            isinstance(item, dict) and item.get("type") == "function_call" for item in output
        ):
            return "tool_calls"
        return "stop"


# -- conversions around a pass-through -----------------------------------------------------------


def chat_of_response(response: Mapping[str, Any]) -> dict[str, Any]:
    """A Response object as a chat completion answer (one choice): the view ``post_response``
    filters, cost and logs read."""
    message: dict[str, Any] = {"role": "assistant", "content": None}
    for part in output_to_chat_messages(response):
        if part.get("content"):
            message["content"] = (message["content"] or "") + str(part["content"])
        if part.get("refusal"):
            message["refusal"] = part["refusal"]
        if part.get("tool_calls"):
            message.setdefault("tool_calls", []).extend(part["tool_calls"])
    reader = ResponsesStreamReader()
    reader.response = dict(response)
    return {
        "id": response.get("id"),
        "object": "chat.completion",
        "created": response.get("created_at"),
        "model": response.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": reader.finish_reason}],
        "usage": usage_to_chat(response.get("usage")),
    }


def chat_to_input_items(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages (a stored conversation) as Responses input items: messages with their
    text and image parts, assistant tool calls as ``function_call`` items, tool messages as
    ``function_call_output`` items."""
    items: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        content = message.get("content")
        if role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": str(message.get("tool_call_id") or ""),
                    "output": content if isinstance(content, str) else _text_of(content),
                }
            )
            continue
        if role not in ("user", "assistant", "system", "developer"):
            continue
        parts = _parts(content, assistant=role == "assistant")
        if parts:
            items.append({"type": "message", "role": role, "content": parts})
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            items.append(
                {
                    "type": "function_call",
                    "call_id": str(call.get("id") or ""),
                    "name": str(function.get("name") or ""),
                    "arguments": str(function.get("arguments") or ""),
                }
            )
    return items


def _parts(content: Any, *, assistant: bool) -> list[dict[str, Any]]:
    text_type = "output_text" if assistant else "input_text"
    if isinstance(content, str):
        return [{"type": text_type, "text": content}] if content else []
    out: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else ():
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        if kind == "text":
            out.append({"type": text_type, "text": str(part.get("text") or "")})
        elif kind == "image_url" and not assistant:
            image = part.get("image_url") or {}
            entry = {"type": "input_image", "image_url": image.get("url"), "detail": "auto"}
            if image.get("detail"):
                entry["detail"] = image["detail"]
            out.append(entry)
        elif kind == "file" and not assistant:
            file = part.get("file") or {}
            out.append(
                {
                    "type": "input_file",
                    "file_data": file.get("file_data"),
                    "filename": file.get("filename"),
                }
            )
    return out


def _text_of(content: Any) -> str:
    if not isinstance(content, list):
        return "" if content is None else str(content)
    return "".join(str(p.get("text") or "") for p in content if isinstance(p, Mapping))


def input_as_items(body: Mapping[str, Any]) -> list[Any]:
    """The request's ``input`` as a list of items (a string is one user message)."""
    value = body.get("input")
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return list(value) if isinstance(value, list) else []


def lenient_chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """The canonical body of a request that only a native target can serve: its messages (what
    filters and limits read), the rest left out."""
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    messages.extend(input_to_chat_messages(body, lenient=True))
    out: dict[str, Any] = {"model": body["model"], "messages": messages}
    if body.get("stream") is True:
        out["stream"] = True
    return out
