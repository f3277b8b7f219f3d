"""What the endpoint needs around a native (passed-through) Responses call that the formats
module does not give: the canonical chat view of a host's Response object (for ``post_response``
plugins, cost and the request log) and a stored conversation turned back into Responses input
items (history for a native target that cannot resolve ``previous_response_id`` itself)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from plugway.formats.openai_responses import output_to_chat_messages, usage_to_chat
from plugway.formats.openai_responses_native import ResponsesStreamReader


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
