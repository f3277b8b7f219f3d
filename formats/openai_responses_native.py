"""OpenAI Responses served natively: the :class:`NativeResponses` protocol a provider implements
when its host serves ``POST /v1/responses`` itself, and the pure reading of a Responses event
stream that such a provider's pass-through stream needs (usage, the final response object, an
in-band error).

The inbound ``/v1/responses`` endpoint passes a client's body through (``model`` replaced) to a
target whose provider implements :class:`NativeResponses` and says, through
:meth:`NativeResponses.serves_responses`, that its host has the endpoint; every other target is
translated through chat completions (:mod:`plugway.formats.openai_responses`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import orjson
from plugway.context import RequestContext, Target
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
