"""A fake of Cohere's v2 Chat API on loopback, for plugway's conformance suite and tests.

``POST /v2/chat``: JSON answers (``id``, ``finish_reason``, ``message`` with ``content``
blocks or ``tool_calls``, ``usage`` with ``billed_units`` and ``tokens``) or, with
``"stream": true``, SSE events (``event: <type>`` and ``data: {...}``): ``message-start``,
``content-start``, ``content-delta``..., ``content-end`` or ``tool-call-start``,
``tool-call-delta``..., ``tool-call-end``, then ``message-end`` with the finish reason and
usage; no ``[DONE]``. Errors are ``{"id", "message"}``. Like the real API it refuses a missing
bearer key (401) and fields or roles it does not know (400), so translation mistakes fail.

It echoes the last user message (``echo: ...``), calls the first tool with
``{"city": "Paris"}`` when ``tool_choice`` is ``REQUIRED``, and cuts the text at
``max_tokens`` words with ``MAX_TOKENS``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web
from plugway.testing import FakeUpstream
from plugway.testing.fake_upstream import CutStream, Reply

FIELDS = frozenset(
    {
        "model",
        "messages",
        "tools",
        "tool_choice",
        "stream",
        "max_tokens",
        "temperature",
        "p",
        "k",
        "seed",
        "stop_sequences",
        "frequency_penalty",
        "presence_penalty",
        "response_format",
        "documents",
        "citation_options",
        "safety_mode",
        "logprobs",
        "strict_tools",
        "thinking",
    }
)
ROLES = frozenset({"system", "user", "assistant", "tool"})
USAGE = {
    "billed_units": {"input_tokens": 9, "output_tokens": 6},
    "tokens": {"input_tokens": 12, "output_tokens": 6},
}


class Invalid(Exception):
    pass


def check(request: web.Request, body: Any) -> None:
    if not request.headers.get("authorization", "").lower().startswith("bearer "):
        raise PermissionError("no api key supplied")
    if not isinstance(body, dict) or not body.get("messages") or not body.get("model"):
        raise Invalid("invalid request: model and messages are required")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise Invalid(
            f"invalid request: unknown field: parameter '{unknown[0]}' is not a valid field"
        )
    for i, m in enumerate(body["messages"]):
        if m.get("role") not in ROLES:
            raise Invalid(f"invalid request: messages[{i}].role must be one of {sorted(ROLES)}")
        if m["role"] == "tool" and not m.get("tool_call_id"):
            raise Invalid(f"invalid request: messages[{i}].tool_call_id is required")
    if body.get("tool_choice") not in (None, "REQUIRED", "NONE"):
        raise Invalid("invalid request: tool_choice must be REQUIRED or NONE")


class FakeCohere(FakeUpstream):
    def error_body(self, status: int, message: str, code: str | None) -> Any:
        return {"id": str(uuid.uuid4()), "message": message}

    async def _respond(self, request: web.Request, body: Any, behaviour: Any) -> web.StreamResponse:
        if isinstance(behaviour, Reply | CutStream):
            try:
                check(request, body)
            except PermissionError as exc:
                return web.json_response(self.error_body(401, str(exc), None), status=401)
            except Invalid as exc:
                return web.json_response(self.error_body(400, str(exc), None), status=400)
        return await super()._respond(request, body, behaviour)

    def _plan(
        self, body: Any, behaviour: Reply | CutStream
    ) -> tuple[str, dict[str, Any] | None, str]:
        """(text, tool call, finish reason)."""
        tools = body.get("tools") or []
        if tools and body.get("tool_choice") == "REQUIRED":
            call = {
                "id": "get_weather_" + uuid.uuid4().hex[:8],
                "type": "function",
                "function": {
                    "name": tools[0]["function"]["name"],
                    "arguments": '{"city": "Paris"}',
                },
            }
            return "", call, "TOOL_CALL"
        said = next(
            (m.get("content") for m in reversed(body["messages"]) if m["role"] == "user"), ""
        )
        text = (
            behaviour.text if isinstance(behaviour, Reply) and behaviour.text else f"echo: {said}"
        )
        words = text.split(" ")
        limit = body.get("max_tokens")
        if isinstance(limit, int) and limit < len(words):
            return " ".join(words[:limit]), None, "MAX_TOKENS"
        return text, None, "COMPLETE"

    def answer(self, request: web.Request, body: Any, behaviour: Reply | CutStream) -> Any:
        text, call, finish = self._plan(body, behaviour)
        message: dict[str, Any] = {"role": "assistant"}
        if call:
            message["tool_plan"] = "I will call the weather tool."
            message["tool_calls"] = [call]
        else:
            message["content"] = [{"type": "text", "text": text}]
        return {
            "id": str(uuid.uuid4()),
            "finish_reason": finish,
            "message": message,
            "usage": USAGE,
        }

    def stream_events(
        self, request: web.Request, body: Any, behaviour: Reply | CutStream
    ) -> Iterator[bytes]:
        def event(kind: str, **fields: Any) -> bytes:
            return (
                b"event: "
                + kind.encode()
                + b"\ndata: "
                + orjson.dumps({"type": kind, **fields})
                + b"\n\n"
            )

        text, call, finish = self._plan(body, behaviour)
        start = {
            "message": {
                "role": "assistant",
                "content": [],
                "tool_plan": "",
                "tool_calls": [],
                "citations": [],
            }
        }
        yield event("message-start", id=str(uuid.uuid4()), delta=start)
        if call:
            yield event("tool-plan-delta", delta={"message": {"tool_plan": "I will call it."}})
            fn = call["function"]
            first = {**call, "function": {"name": fn["name"], "arguments": ""}}
            yield event("tool-call-start", index=0, delta={"message": {"tool_calls": first}})
            for part in ('{"ci', 'ty": "Pa', 'ris"}'):
                yield event(
                    "tool-call-delta",
                    index=0,
                    delta={"message": {"tool_calls": {"function": {"arguments": part}}}},
                )
            yield event("tool-call-end", index=0)
        else:
            yield event(
                "content-start",
                index=0,
                delta={"message": {"content": {"type": "text", "text": ""}}},
            )
            for i, word in enumerate(text.split(" ")):
                piece = word if i == 0 else " " + word
                yield event(
                    "content-delta", index=0, delta={"message": {"content": {"text": piece}}}
                )
            yield event("content-end", index=0)
        yield event("message-end", delta={"finish_reason": finish, "usage": USAGE})
