"""Pure translation between OpenAI Chat Completions (plugway's canonical format) and Cohere's
v2 Chat API. No I/O: the provider module does the HTTP."""

from __future__ import annotations

import time
from typing import Any

FINISH = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
    "ERROR_TOXIC": "content_filter",
}


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def to_cohere(body: dict[str, Any], model: str) -> dict[str, Any]:
    """An OpenAI chat request -> a Cohere ``POST /v2/chat`` body."""
    messages: list[dict[str, Any]] = []
    for m in body.get("messages") or []:
        role = m.get("role")
        if role in ("system", "developer"):
            messages.append({"role": "system", "content": _text(m.get("content"))})
        elif role == "user":
            messages.append({"role": "user", "content": _text(m.get("content"))})
        elif role == "assistant":
            out: dict[str, Any] = {"role": "assistant"}
            if m.get("tool_calls"):
                out["tool_calls"] = [
                    {"id": c["id"], "type": "function", "function": dict(c["function"])}
                    for c in m["tool_calls"]
                ]
                if m.get("content"):
                    out["tool_plan"] = _text(m["content"])
            else:
                out["content"] = _text(m.get("content"))
            messages.append(out)
        elif role == "tool":
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": m.get("tool_call_id"),
                    "content": _text(m.get("content")),
                }
            )
    out = {"model": model, "messages": messages}
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if tools:
        if isinstance(choice, dict):
            name = (choice.get("function") or {}).get("name")
            tools = [t for t in tools if (t.get("function") or {}).get("name") == name]
            choice = "required"
        out["tools"] = [{"type": "function", "function": t["function"]} for t in tools]
        if choice in ("required", "none"):
            out["tool_choice"] = choice.upper()
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit:
        out["max_tokens"] = limit
    for ours, theirs in (
        ("temperature", "temperature"),
        ("top_p", "p"),
        ("seed", "seed"),
        ("frequency_penalty", "frequency_penalty"),
        ("presence_penalty", "presence_penalty"),
    ):
        if body.get(ours) is not None:
            out[theirs] = body[ours]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_object":
        out["response_format"] = {"type": "json_object"}
    elif fmt.get("type") == "json_schema":
        out["response_format"] = {
            "type": "json_object",
            "json_schema": (fmt.get("json_schema") or {}).get("schema", {}),
        }
    return out


def usage_of(usage: Any) -> dict[str, int]:
    tokens = (usage or {}).get("tokens") or (usage or {}).get("billed_units") or {}
    prompt, completion = int(tokens.get("input_tokens") or 0), int(tokens.get("output_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def from_cohere(data: dict[str, Any], model: str) -> dict[str, Any]:
    """A Cohere chat response -> an OpenAI ``chat.completion``."""
    message = data.get("message") or {}
    out: dict[str, Any] = {"role": "assistant", "content": None}
    text = "".join(
        p.get("text", "") for p in message.get("content") or [] if p.get("type") == "text"
    )
    if text:
        out["content"] = text
    if message.get("tool_calls"):
        out["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {
                    "name": c["function"]["name"],
                    "arguments": c["function"].get("arguments") or "{}",
                },
            }
            for c in message["tool_calls"]
        ]
    return {
        "id": "chatcmpl-" + str(data.get("id", "")),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": out,
                "finish_reason": FINISH.get(data.get("finish_reason", ""), "stop"),
            }
        ],
        "usage": usage_of(data.get("usage")),
    }


class StreamTranslator:
    """Cohere stream events -> OpenAI ``chat.completion.chunk`` dicts, one event at a time.
    ``finish_reason`` and ``usage`` are set once ``message-end`` has been seen."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.base: dict[str, Any] = {}
        self.calls = -1
        self.finish_reason: str | None = None
        self.usage: dict[str, int] | None = None

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**self.base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        message = ((event.get("delta") or {}).get("message")) or {}
        if kind == "message-start":
            self.base = {
                "id": "chatcmpl-" + str(event.get("id", "")),
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": self.model,
            }
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content-delta":
            return [self._chunk({"content": (message.get("content") or {}).get("text", "")})]
        if kind == "tool-call-start":
            self.calls += 1
            call = message.get("tool_calls") or {}
            fn = call.get("function") or {}
            delta = {
                "index": self.calls,
                "id": call.get("id"),
                "type": "function",
                "function": {"name": fn.get("name"), "arguments": fn.get("arguments") or ""},
            }
            return [self._chunk({"tool_calls": [delta]})]
        if kind == "tool-call-delta":
            fn = (message.get("tool_calls") or {}).get("function") or {}
            return [
                self._chunk(
                    {
                        "tool_calls": [
                            {
                                "index": self.calls,
                                "function": {"arguments": fn.get("arguments", "")},
                            }
                        ]
                    }
                )
            ]
        if kind == "message-end":
            delta = event.get("delta") or {}
            self.finish_reason = FINISH.get(delta.get("finish_reason", ""), "stop")
            self.usage = usage_of(delta.get("usage"))
            return [self._chunk({}, self.finish_reason)]
        return []  # content-start/-end, tool-plan-delta, tool-call-end, citations
