"""A fake Anthropic upstream: the Messages API's real wire format on loopback.

It serves ``POST /v1/messages`` (JSON, or SSE with Anthropic's event sequence: message_start,
content_block_start, ping, text_delta / input_json_delta deltas, content_block_stop,
message_delta with cumulative usage, message_stop) and ``POST /v1/messages/count_tokens``.
Like the real API it refuses a request without ``x-api-key`` (401) or ``anthropic-version``,
with unknown top-level fields, without ``max_tokens``, with a ``system`` role message, with
empty text blocks, or whose tool results do not answer the previous turn's tool uses (400),
so translation mistakes fail loudly. Errors have Anthropic's body
``{"type":"error","error":{"type","message"},"request_id"}``; 529 is ``overloaded_error``.

What it answers: with ``tool_choice`` ``{"type":"tool"}`` a call of that tool; with ``any``
a call of the first tool, and of the second too (a parallel call) unless
``disable_parallel_tool_use``; after tool results, ``"results: <their text>"``; otherwise
``"echo: <last user text>"``. Stop sequences and ``max_tokens`` (counted in words) cut the text
with the matching ``stop_reason``. Usage is fixed: 11 input, 5 cache-write, 3 cache-read and
7 output tokens.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import attrs
import orjson
from aiohttp import web
from plugway.testing.fake_upstream import Behaviour, CutStream, FakeUpstream, Reply


@attrs.frozen
class ErrorEvent:
    """Stream ``after`` events, then an ``error`` event (``overloaded_error`` by default) and
    the end of the stream, as Anthropic does when it fails after accepting a stream."""

    after: int = 3
    error_type: str = "overloaded_error"
    message: str = "Overloaded"
    #: Seconds to wait before the error event, so the events before it reach the client first.
    delay: float = 0.0


USAGE = {
    "input_tokens": 11,
    "cache_creation_input_tokens": 5,
    "cache_read_input_tokens": 3,
    "output_tokens": 7,
}

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

REQUEST_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "metadata",
        "thinking",
        "service_tier",
        "container",
        "mcp_servers",
        "context_management",
        "output_format",
        "output_config",
        "inference_geo",
        "cache_control",
        "diagnostics",
        "speed",
        "user_profile_id",
        "workspace_id",
    }
)
COUNT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "thinking",
        "mcp_servers",
        "context_management",
        "output_format",
        "output_config",
    }
)


#: The beta under which the API takes ``role: "system"`` messages inside the conversation.
MID_SYSTEM_BETA = "mid-conversation-system"


class Invalid(Exception):
    """A request the real API would refuse with 400."""


def sse(event: dict[str, Any]) -> bytes:
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [
        b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text"
    ]


class FakeAnthropic(FakeUpstream):
    """Anthropic's Messages API. Scripts take :class:`ErrorEvent` besides the base behaviours."""

    def script(self, *behaviours: Behaviour | ErrorEvent) -> None:
        with self._lock:
            self._script.extend(behaviours)  # type: ignore[arg-type]

    def error_body(self, status: int, message: str, code: str | None) -> Any:
        return {
            "type": "error",
            "error": {"type": code or ERROR_TYPES.get(status, "api_error"), "message": message},
            "request_id": "req_fake_" + uuid.uuid4().hex[:12],
        }

    def _error(self, status: int, message: str) -> web.Response:
        return web.Response(
            body=orjson.dumps(self.error_body(status, message, None)),
            status=status,
            content_type="application/json",
        )

    async def _respond(
        self, request: web.Request, body: Any, behaviour: Behaviour | ErrorEvent
    ) -> web.StreamResponse:
        if "x-api-key" not in request.headers:
            return self._error(401, "x-api-key header is required")
        if "anthropic-version" not in request.headers:
            return self._error(400, "anthropic-version: header is required")
        if request.path not in ("/v1/messages", "/v1/messages/count_tokens"):
            return self._error(404, f"Not found: {request.path}")
        counting = request.path.endswith("/count_tokens")
        try:
            self.validate(body, counting, request.headers.get("anthropic-beta", ""))
        except Invalid as exc:
            return self._error(400, str(exc))
        if counting and isinstance(behaviour, Reply):
            return web.json_response({"input_tokens": self.count(body)})
        if isinstance(behaviour, ErrorEvent):
            response = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await response.prepare(request)
            for sent, event in enumerate(self.stream_events(request, body, Reply())):
                if sent >= behaviour.after:
                    break
                await response.write(event)
            if behaviour.delay:
                await asyncio.sleep(behaviour.delay)
            await response.write(
                sse(
                    {
                        "type": "error",
                        "error": {"type": behaviour.error_type, "message": behaviour.message},
                    }
                )
            )
            await response.write_eof()
            return response
        return await super()._respond(request, body, behaviour)

    # -- what the real API checks --------------------------------------------------------------

    def validate(self, body: Any, counting: bool, betas: str = "") -> None:
        if not isinstance(body, dict):
            raise Invalid("request body must be a JSON object")
        extra = set(body) - (COUNT_FIELDS if counting else REQUEST_FIELDS)
        if extra:
            raise Invalid(f"{sorted(extra)[0]}: Extra inputs are not permitted")
        if not isinstance(body.get("model"), str):
            raise Invalid("model: Field required")
        if not counting:
            max_tokens = body.get("max_tokens")
            if not isinstance(max_tokens, int) or max_tokens < 1:
                raise Invalid("max_tokens: Field required")
        temperature = body.get("temperature")
        if temperature is not None and not 0 <= temperature <= 1:
            raise Invalid("temperature: Input should be less than or equal to 1")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise Invalid("messages: Field required")
        pending: set[str] = set()
        for i, message in enumerate(messages):
            role = message.get("role")
            roles = (
                ("user", "assistant", "system")
                if MID_SYSTEM_BETA in betas
                else (
                    "user",
                    "assistant",
                )
            )
            if role not in roles:
                raise Invalid(
                    f'messages.{i}.role: Unexpected role "{role}". The Messages API '
                    'accepts a top-level `system` parameter, not "system" as an '
                    "input message role."
                )
            content = message.get("content")
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            results = set()
            for j, block in enumerate(blocks):
                kind = block.get("type")
                if kind == "text" and not block.get("text"):
                    raise Invalid(
                        f"messages.{i}.content.{j}.text: text content blocks must be non-empty"
                    )
                if kind == "tool_result":
                    if role != "user" or block.get("tool_use_id") not in pending:
                        raise Invalid(
                            f"messages.{i}.content.{j}: unexpected `tool_use_id` "
                            "found in `tool_result` blocks. Each `tool_result` block "
                            "must have a corresponding `tool_use` block in the "
                            "previous message."
                        )
                    results.add(block["tool_use_id"])
                if kind == "image":
                    source = block.get("source") or {}
                    if source.get("type") not in ("base64", "url") or (
                        source.get("type") == "base64" and not source.get("media_type")
                    ):
                        raise Invalid(f"messages.{i}.content.{j}.source: invalid image source")
            if pending and results != pending:
                raise Invalid(
                    f"messages.{i}: `tool_use` ids were found without `tool_result` "
                    "blocks immediately after"
                )
            pending = (
                {b["id"] for b in blocks if b.get("type") == "tool_use"}
                if role == "assistant"
                else set()
            )
        for j, tool in enumerate(body.get("tools") or []):
            custom = tool.get("type", "custom") == "custom"  # server tools have no schema
            if "name" not in tool or (custom and "input_schema" not in tool):
                raise Invalid(f"tools.{j}.input_schema: Field required")

    def count(self, body: Any) -> int:
        words = sum(len(t.split()) for m in body["messages"] for t in _texts(m["content"]))
        system = body.get("system")
        words += sum(len(t.split()) for t in _texts(system)) if system else 0
        return words + 3 * len(body["messages"])

    # -- what it answers -----------------------------------------------------------------------

    def plan(self, body: Any, behaviour: Reply | CutStream) -> dict[str, Any]:
        """The answer's content blocks, stop reason and stop sequence."""
        tools = body.get("tools") or []
        choice = body.get("tool_choice") or {}
        calls: list[dict[str, Any]] = []
        if tools and choice.get("type") == "tool":
            calls = [{"name": choice["name"], "input": {"city": "Paris"}}]
        elif tools and choice.get("type") == "any":
            calls = [{"name": tools[0]["name"], "input": {"city": "Paris"}}]
            if len(tools) > 1 and not choice.get("disable_parallel_tool_use"):
                calls.append({"name": tools[1]["name"], "input": {"city": "Tokyo", "days": 3}})
        if calls:
            blocks = [
                {
                    "type": "tool_use",
                    "id": f"toolu_{i}_{uuid.uuid4().hex[:8]}",
                    "name": c["name"],
                    "input": c["input"],
                }
                for i, c in enumerate(calls)
            ]
            return {"content": blocks, "stop_reason": "tool_use", "stop_sequence": None}
        last = body["messages"][-1]
        content = last["content"]
        results = (
            [b for b in content if b.get("type") == "tool_result"]
            if isinstance(content, list)
            else []
        )
        if isinstance(behaviour, Reply) and behaviour.text is not None:
            text = behaviour.text
        elif results:
            text = "results: " + " ".join(" ".join(_texts(r.get("content"))) for r in results)
        else:
            text = "echo: " + " ".join(_texts(content))
        stop_reason, stop_sequence = "end_turn", None
        for seq in body.get("stop_sequences") or []:
            if seq in text:
                text, stop_reason, stop_sequence = text[: text.index(seq)], "stop_sequence", seq
        words = text.split(" ")
        if len(words) > body["max_tokens"]:
            text, stop_reason = " ".join(words[: body["max_tokens"]]), "max_tokens"
        return {
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
        }

    def answer(self, request: web.Request, body: Any, behaviour: Reply | CutStream) -> Any:
        return {
            "id": "msg_01" + uuid.uuid4().hex[:20],
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            **self.plan(body, behaviour),
            "usage": dict(USAGE),
        }

    def stream_events(
        self, request: web.Request | None, body: Any, behaviour: Reply | CutStream
    ) -> Iterator[bytes]:
        plan = self.plan(body, behaviour)
        start_usage = {**USAGE, "output_tokens": 1}
        yield sse(
            {
                "type": "message_start",
                "message": {
                    "id": "msg_01" + uuid.uuid4().hex[:20],
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
            }
        )
        for index, block in enumerate(plan["content"]):
            if block["type"] == "text":
                yield sse(
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    }
                )
                if index == 0:
                    yield sse({"type": "ping"})
                words = block["text"].split(" ")
                for k, word in enumerate(words):
                    piece = word if k == len(words) - 1 else word + " "
                    if piece:
                        yield sse(
                            {
                                "type": "content_block_delta",
                                "index": index,
                                "delta": {"type": "text_delta", "text": piece},
                            }
                        )
            else:
                yield sse(
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {
                            "type": "tool_use",
                            "id": block["id"],
                            "name": block["name"],
                            "input": {},
                        },
                    }
                )
                yield sse(
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": ""},
                    }
                )
                encoded = orjson.dumps(block["input"]).decode()
                for k in range(0, len(encoded), 5):
                    yield sse(
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {
                                "type": "input_json_delta",
                                "partial_json": encoded[k : k + 5],
                            },
                        }
                    )
            yield sse({"type": "content_block_stop", "index": index})
        yield sse(
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": plan["stop_reason"],
                    "stop_sequence": plan["stop_sequence"],
                },
                "usage": dict(USAGE),
            }
        )
        yield sse({"type": "message_stop"})
