"""Pure translation between OpenAI Chat Completions and Google's Gemini API (``generateContent``,
``streamGenerateContent?alt=sse``, ``embedContent``, ``batchEmbedContents``). No I/O here: the
``gemini`` provider does the HTTP, this module does the shapes, so both directions can be tested
with golden fixtures.

Field names follow the REST API's camelCase JSON (the form ``googleapis/python-genai`` sends).
Request-side mistakes the client made (a tool message answering no earlier call, token-id
embedding inputs) raise :class:`~plugway.errors.InvalidRequest`; what Gemini answers that the
gateway must refuse (a blocked prompt, an error object) raises the matching upstream error.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson
from plugway.errors import (
    ContentFiltered,
    ContextWindowExceeded,
    InvalidRequest,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamStreamBroken,
    upstream_error_for_status,
)
from plugway.formats.openai_chat import refuse_untranslatable, validate_chat_request
from plugway.sse import EventSplitter, iter_data, sse_event

#: OpenAI fields a Gemini model cannot honour: a request setting one is refused.
UNTRANSLATABLE = ("logit_bias", "audio", "prediction", "reasoning_effort")

# -- finish reasons and usage ------------------------------------------------------------------

#: Gemini ``FinishReason`` -> OpenAI ``finish_reason`` (STOP with a function call is
#: ``tool_calls``, decided where the parts are known).
FINISH_REASONS: Mapping[str, str] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "MODEL_ARMOR": "content_filter",
    "LANGUAGE": "stop",
    "OTHER": "stop",
    "MALFORMED_FUNCTION_CALL": "stop",
    "UNEXPECTED_TOOL_CALL": "stop",
    "TOO_MANY_TOOL_CALLS": "stop",
    "MISSING_THOUGHT_SIGNATURE": "stop",
    "IMAGE_OTHER": "stop",
    "NO_IMAGE": "stop",
    "FINISH_REASON_UNSPECIFIED": "stop",
}


def finish_reason(reason: Any, has_tool_calls: bool) -> str:
    """OpenAI's finish reason for a candidate's Gemini ``finishReason``."""
    mapped = FINISH_REASONS.get(str(reason), "stop")
    if mapped == "stop" and has_tool_calls:
        return "tool_calls"
    return mapped


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def usage_from_gemini(meta: Any) -> dict[str, Any] | None:
    """OpenAI usage from ``usageMetadata``. Thinking tokens are billed as output, so they are
    counted into ``completion_tokens`` and reported again as ``reasoning_tokens``; cached
    context tokens are part of the prompt and reported as ``cached_tokens``."""
    if not isinstance(meta, Mapping):
        return None
    prompt = _int(meta.get("promptTokenCount")) + _int(meta.get("toolUsePromptTokenCount"))
    thoughts = _int(meta.get("thoughtsTokenCount"))
    completion = _int(meta.get("candidatesTokenCount")) + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": _int(meta.get("cachedContentTokenCount"))},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


# -- JSON schema cleaning ----------------------------------------------------------------------

#: What Gemini's ``Schema`` (a subset of OpenAPI 3.0) accepts; anything else is rejected with
#: 400 "Invalid JSON payload received. Unknown name ...", so it is dropped.
_SCHEMA_KEYS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "items",
        "minimum",
        "maximum",
    }
)
_REF = re.compile(r"^#/(?:\$defs|definitions)/(.+)$")


def clean_schema(schema: Any, defs: Mapping[str, Any] | None = None, depth: int = 0) -> Any:
    """A JSON schema Gemini accepts: local ``$ref`` inlined, ``type: [T, "null"]`` as
    ``nullable``, ``const`` as a one-value ``enum``, ``oneOf`` as ``anyOf``, and keys Gemini
    rejects (``additionalProperties``, ``$schema``, ``strict``, ...) removed."""
    if not isinstance(schema, Mapping):
        return schema
    if defs is None:
        defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    if depth > 32:  # a recursive $ref: Gemini cannot express it, stop expanding
        return {"type": "object"}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        match = _REF.match(ref)
        target = defs.get(match.group(1)) if match else None
        if isinstance(target, Mapping):
            merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            return clean_schema(merged, defs, depth + 1)
        return {"type": "object"}
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, list):
            kinds = [k for k in value if k != "null"]
            if len(kinds) < len(value):
                out["nullable"] = True
            if kinds:
                out["type"] = kinds[0]
        elif key == "const":
            out["enum"] = [value]
        elif key in ("anyOf", "oneOf") and isinstance(value, list):
            options = [clean_schema(v, defs, depth + 1) for v in value]
            if any(o.get("type") == "null" for o in options if isinstance(o, dict)):
                out["nullable"] = True
                options = [
                    o for o in options if not (isinstance(o, dict) and o.get("type") == "null")
                ]
            if len(options) == 1 and isinstance(options[0], dict):
                out.update(options[0])
            elif options:
                out["anyOf"] = options
        elif key == "properties" and isinstance(value, Mapping):
            out["properties"] = {k: clean_schema(v, defs, depth + 1) for k, v in value.items()}
        elif key == "items":
            out["items"] = clean_schema(value, defs, depth + 1)
        elif key in _SCHEMA_KEYS:
            out[key] = value
    if out.get("enum") is not None and out.get("type", "string") == "string":
        out["enum"] = [str(v) for v in out["enum"]]
        out.setdefault("type", "string")
    return out


# -- requests ----------------------------------------------------------------------------------

#: Tool-call ids carry Gemini's ``thoughtSignature`` after this marker, so a client that sends
#: the conversation back (as OpenAI clients do) returns it to Gemini, which requires it on
#: function calls of thinking models.
_SIGNATURE_MARK = "__sig__"


def tool_call_id(signature: Any = None) -> str:
    """A synthesised OpenAI tool-call id (Gemini's function calls have none we can rely on)."""
    base = "call_" + uuid.uuid4().hex[:24]
    if isinstance(signature, str) and signature:
        return base + _SIGNATURE_MARK + signature
    return base


def _signature_of(call_id: Any) -> str | None:
    if isinstance(call_id, str) and _SIGNATURE_MARK in call_id:
        return call_id.split(_SIGNATURE_MARK, 1)[1] or None
    return None


_DATA_URL = re.compile(r"^data:([^;,]+)?((?:;[^;,]+)*?);base64,(.*)$", re.DOTALL)


def _media_part(url: str, default_mime: str) -> dict[str, Any]:
    """``inlineData`` for a base64 data URL, ``fileData`` for any other URL."""
    match = _DATA_URL.match(url)
    if match:
        data = match.group(3)
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest(
                "an image_url data URL does not hold valid base64", param="messages"
            ) from None
        return {"inlineData": {"mimeType": match.group(1) or default_mime, "data": data}}
    if url.startswith("data:"):
        raise InvalidRequest("only base64 data URLs are supported", param="messages")
    mime = mimetypes.guess_type(url.split("?", 1)[0])[0] or default_mime
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _content_parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest(
            "a message's content must be a string or a list of parts", param="messages"
        )
    parts: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        if kind == "text":
            parts.append({"text": str(part.get("text", ""))})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            if isinstance(url, str):
                parts.append(_media_part(url, "image/jpeg"))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            parts.append(
                {
                    "inlineData": {
                        "mimeType": f"audio/{audio.get('format', 'wav')}",
                        "data": audio.get("data", ""),
                    }
                }
            )
        elif kind == "file":
            file = part.get("file") or {}
            data = file.get("file_data")
            if isinstance(data, str):
                parts.append(_media_part(data, "application/pdf"))
        else:
            raise InvalidRequest(
                f"content part type {kind!r} is not supported for Gemini", param="messages"
            )
    return parts


def _tool_response(content: Any) -> dict[str, Any]:
    text = (
        content
        if isinstance(content, str)
        else " ".join(str(p.get("text", "")) for p in content or [] if isinstance(p, Mapping))
    )
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"content": text}
    return value if isinstance(value, dict) else {"content": value}


def _contents(messages: Sequence[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(``systemInstruction`` parts, ``contents``), consecutive turns of one role merged."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise InvalidRequest(f"messages[{i}] must be an object", param="messages")
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_content_parts(message.get("content")))
        elif role == "user":
            add("user", _content_parts(message.get("content")))
        elif role == "assistant":
            parts = _content_parts(message.get("content"))
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                name = str(function.get("name", ""))
                names[str(call.get("id"))] = name
                try:
                    args = orjson.loads(function.get("arguments") or "{}")
                except orjson.JSONDecodeError:
                    raise InvalidRequest(
                        f"messages[{i}].tool_calls: arguments of '{name}' are not valid JSON",
                        param="messages",
                    ) from None
                part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
                signature = _signature_of(call.get("id"))
                if signature:
                    part["thoughtSignature"] = signature
                parts.append(part)
            add("model", parts)
        elif role == "tool":
            call_id = str(message.get("tool_call_id"))
            name = names.get(call_id) or str(message.get("name") or "")
            if not name:
                raise InvalidRequest(
                    f"messages[{i}].tool_call_id {call_id!r} answers no earlier tool call",
                    param="messages",
                )
            add(
                "user",
                [
                    {
                        "functionResponse": {
                            "name": name,
                            "response": _tool_response(message.get("content")),
                        }
                    }
                ],
            )
        else:
            raise InvalidRequest(f"messages[{i}].role {role!r} is not supported", param="messages")
    return system, contents


def _check_schema_types(schema: Any, path: str, depth: int = 0) -> None:
    """A tool's JSON Schema holds schemas (objects) where it nests them, and every ``type`` is
    a type name or a list of them: Gemini refuses others with a 400 that names no field of
    the client's request. (``None``: no parameters.)"""
    if (schema is None and depth == 0) or depth > 32:
        return
    if not isinstance(schema, Mapping):
        raise InvalidRequest(f"{path} must be a JSON Schema (an object)", param=path)
    kind = schema.get("type")
    if "type" in schema and not (
        isinstance(kind, str) or (isinstance(kind, list) and all(isinstance(k, str) for k in kind))
    ):
        raise InvalidRequest(
            f"{path}.type must be a JSON Schema type name (a string)", param=f"{path}.type"
        )
    for key in ("properties", "$defs", "definitions"):
        children = schema.get(key, {})
        if not isinstance(children, Mapping):
            raise InvalidRequest(f"{path}.{key} must be an object", param=f"{path}.{key}")
        for name, child in children.items():
            _check_schema_types(child, f"{path}.{key}.{name}", depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key, [])
        if not isinstance(options, list):
            raise InvalidRequest(f"{path}.{key} must be an array", param=f"{path}.{key}")
        for k, option in enumerate(options):
            _check_schema_types(option, f"{path}.{key}[{k}]", depth + 1)
    if "items" in schema:
        _check_schema_types(schema["items"], f"{path}.items", depth + 1)


def _tools(tools: Any) -> list[dict[str, Any]]:
    declarations = []
    for j, tool in enumerate(tools or []):
        if not isinstance(tool, Mapping) or tool.get("type", "function") != "function":
            raise InvalidRequest("only function tools are supported for Gemini", param="tools")
        function = tool.get("function") or {}
        _check_schema_types(function.get("parameters"), f"tools[{j}].function.parameters")
        declaration: dict[str, Any] = {"name": function.get("name")}
        if function.get("description"):
            declaration["description"] = function["description"]
        parameters = clean_schema(function.get("parameters"))
        # An object without properties is refused by Gemini; a function without
        # parameters is declared with none.
        if isinstance(parameters, dict) and parameters.get("properties"):
            declaration["parameters"] = parameters
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}] if declarations else []


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}.get(choice)
        if mode is None:
            raise InvalidRequest(f"tool_choice {choice!r} is not supported", param="tool_choice")
        return {"functionCallingConfig": {"mode": mode}}
    if isinstance(choice, Mapping):
        name = (choice.get("function") or {}).get("name")
        if isinstance(name, str):
            return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    raise InvalidRequest(
        "tool_choice must be auto, none, required or a named function", param="tool_choice"
    )


def _generation_config(body: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    simple = (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
        ("n", "candidateCount"),
    )
    for name, gemini in simple:
        if body.get(name) is not None:
            config[gemini] = body[name]
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("logprobs"):
        config["responseLogprobs"] = True
        if body.get("top_logprobs") is not None:
            config["logprobs"] = body["top_logprobs"]
    fmt = body.get("response_format")
    if isinstance(fmt, Mapping):
        if fmt.get("type") == "json_object":
            config["responseMimeType"] = "application/json"
        elif fmt.get("type") == "json_schema":
            config["responseMimeType"] = "application/json"
            schema = (fmt.get("json_schema") or {}).get("schema")
            _check_schema_types(schema, "response_format.json_schema.schema")
            if isinstance(schema, Mapping):
                config["responseSchema"] = clean_schema(schema)
    thinking = body.get("thinking_config", body.get("thinkingConfig"))
    if isinstance(thinking, Mapping):
        config["thinkingConfig"] = dict(thinking)
    return config


def to_gemini_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """The ``generateContent`` body for an OpenAI chat completion request. A request that
    breaks OpenAI's schema, or sets a field Gemini cannot honour (:data:`UNTRANSLATABLE`),
    raises :class:`InvalidRequest` naming the field: nothing is silently dropped."""
    validate_chat_request(body)
    refuse_untranslatable(body, "Gemini", UNTRANSLATABLE)
    modalities = body.get("modalities")
    if modalities and modalities != ["text"]:
        raise InvalidRequest(
            "modalities other than ['text'] cannot be translated for Gemini models",
            param="modalities",
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty list", param="messages")
    system, contents = _contents(messages)
    if not contents:
        raise InvalidRequest(
            "messages need at least one user or assistant message for Gemini", param="messages"
        )
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
        tool_config = _tool_config(body.get("tool_choice"))
        if tool_config:
            out["toolConfig"] = tool_config
    config = _generation_config(body)
    if config:
        out["generationConfig"] = config
    for name, gemini in (
        ("safety_settings", "safetySettings"),
        ("safetySettings", "safetySettings"),
        ("cached_content", "cachedContent"),
        ("cachedContent", "cachedContent"),
    ):
        if body.get(name) is not None:
            out[gemini] = body[name]
    return out


def model_path(model: str) -> str:
    """``models/NAME`` (or ``tunedModels/NAME`` as given) for the REST path."""
    return model if "/" in model else f"models/{model}"


# -- responses ---------------------------------------------------------------------------------


def _blocked(data: Mapping[str, Any], provider: str) -> ContentFiltered | None:
    feedback = data.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, Mapping) else None
    if reason and not data.get("candidates"):
        return ContentFiltered(
            f"Gemini blocked the prompt (blockReason {reason})",
            provider=provider,
            upstream_status=200,
            param="messages",
        )
    return None


class _Message:
    """The text, thought summaries and function calls of one candidate's parts."""

    __slots__ = ("calls", "text", "thoughts")

    def __init__(self, parts: Any) -> None:
        texts: list[str] = []
        thoughts: list[str] = []
        self.calls: list[dict[str, Any]] = []
        for part in parts or []:
            if not isinstance(part, Mapping):
                continue
            if isinstance(part.get("text"), str):
                (thoughts if part.get("thought") else texts).append(part["text"])
            call = part.get("functionCall")
            if isinstance(call, Mapping):
                self.calls.append(_tool_call(call, part.get("thoughtSignature")))
        self.text = "".join(texts) if texts else None
        # Thought summaries (only sent when the request asks for them) are reported as
        # ``reasoning_content``, the field OpenAI-compatible reasoning hosts use.
        self.thoughts = "".join(thoughts) if thoughts else None


def _tool_call(call: Mapping[str, Any], signature: Any) -> dict[str, Any]:
    return {
        "id": tool_call_id(signature),
        "type": "function",
        "function": {
            "name": call.get("name", ""),
            "arguments": orjson.dumps(call.get("args") or {}).decode(),
        },
    }


def from_gemini_response(
    data: Mapping[str, Any], *, model: str, provider: str = "gemini"
) -> dict[str, Any]:
    """The OpenAI ``chat.completion`` for a ``GenerateContentResponse``."""
    blocked = _blocked(data, provider)
    if blocked:
        raise blocked
    choices = []
    for position, candidate in enumerate(data.get("candidates") or []):
        content = candidate.get("content") or {}
        parsed = _Message(content.get("parts"))
        message: dict[str, Any] = {"role": "assistant", "content": parsed.text, "refusal": None}
        if parsed.thoughts:
            message["reasoning_content"] = parsed.thoughts
        if parsed.calls:
            message["tool_calls"] = parsed.calls
        choices.append(
            {
                "index": candidate.get("index", position),
                "message": message,
                "finish_reason": finish_reason(candidate.get("finishReason"), bool(parsed.calls)),
                "logprobs": None,
            }
        )
    body: dict[str, Any] = {
        "id": "chatcmpl-" + str(data.get("responseId") or uuid.uuid4().hex),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": data.get("modelVersion") or model,
        "choices": choices,
    }
    usage = usage_from_gemini(data.get("usageMetadata"))
    if usage is not None:
        body["usage"] = usage
    return body


class StreamTranslator:
    """Turns the bytes of a ``streamGenerateContent?alt=sse`` body into OpenAI chunk events.

    ``feed`` takes bytes cut anywhere and returns whole ``data: {...}\\n\\n`` events (maybe
    none); ``close`` checks the stream ended properly and returns the usage chunk when the
    client asked for one. Gemini sends each function call whole in one event, so a tool call
    becomes one delta carrying its id, name and complete arguments. State is per candidate
    and does not grow with the stream.
    """

    def __init__(self, *, model: str, include_usage: bool, provider: str = "gemini") -> None:
        self.model = model
        self.include_usage = include_usage
        self.provider = provider
        self.id = "chatcmpl-" + uuid.uuid4().hex
        self.created = int(time.time())
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self._splitter = EventSplitter()
        self._started: set[int] = set()
        self._tool_count: dict[int, int] = {}
        self._finished: set[int] = set()
        self._id_from_upstream = False

    def feed(self, data: bytes) -> bytes:
        events = self._splitter.feed(data)
        if not events:
            return b""
        return b"".join(self._translate(payload) for payload in iter_data(events))

    def close(self) -> bytes:
        if self._splitter.pending.strip():
            # A last event without its blank line: Gemini closes the body after it.
            return self.feed(b"\n\n") + self.close()
        if not self._finished:
            raise UpstreamStreamBroken(
                f"the stream from provider '{self.provider}' ended before a finish reason",
                provider=self.provider,
            )
        if self.include_usage and self.usage is not None:
            return sse_event(self._chunk([], usage=self.usage))
        return b""

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }

    def _delta(self, index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        if index not in self._started:
            self._started.add(index)
            delta = {"role": "assistant", **delta}
            delta.setdefault("content", "")
        return sse_event(
            self._chunk(
                [{"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}]
            )
        )

    def _translate(self, payload: bytes) -> bytes:
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise UpstreamStreamBroken(
                f"provider '{self.provider}' sent a stream event that is not JSON",
                provider=self.provider,
            ) from None
        if not isinstance(data, dict):
            return b""
        if isinstance(data.get("error"), Mapping):
            raise error_from_gemini(_int(data["error"].get("code")) or 500, data, {}, self.provider)
        blocked = _blocked(data, self.provider)
        if blocked:
            raise blocked
        if not self._started:
            if data.get("responseId") and not self._id_from_upstream:
                self.id = "chatcmpl-" + str(data["responseId"])
                self._id_from_upstream = True
            if data.get("modelVersion"):
                self.model = str(data["modelVersion"])
        usage = usage_from_gemini(data.get("usageMetadata"))
        if usage is not None:
            self.usage = usage  # cumulative: the last one counts
        out: list[bytes] = []
        for position, candidate in enumerate(data.get("candidates") or []):
            out.extend(self._candidate(candidate, position))
        return b"".join(out)

    def _candidate(self, candidate: Mapping[str, Any], position: int) -> Iterator[bytes]:
        index = candidate.get("index", position)
        if not isinstance(index, int):
            index = position
        parsed = _Message((candidate.get("content") or {}).get("parts"))
        if parsed.thoughts:
            yield self._delta(index, {"reasoning_content": parsed.thoughts})
        if parsed.text:
            yield self._delta(index, {"content": parsed.text})
        for call in parsed.calls:
            slot = self._tool_count.get(index, 0)
            self._tool_count[index] = slot + 1
            yield self._delta(index, {"tool_calls": [{"index": slot, **call}]})
        reason = candidate.get("finishReason")
        if reason and index not in self._finished:
            self._finished.add(index)
            finish = finish_reason(reason, self._tool_count.get(index, 0) > 0)
            if self.finish_reason is None:
                self.finish_reason = finish
            yield self._delta(index, {}, finish)


# -- embeddings --------------------------------------------------------------------------------


def embedding_inputs(body: Mapping[str, Any]) -> list[str]:
    """The texts of an OpenAI embeddings request; token-id inputs cannot go to Gemini."""
    value = body.get("input")
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise InvalidRequest(
            "input must be a string or a list of strings for Gemini embeddings "
            "(token ids are not supported)",
            param="input",
        )
    return items


#: Gemini embedding models' largest ``outputDimensionality`` (gemini-embedding-001's 3072).
MAX_EMBEDDING_DIMENSIONS = 3072


def to_gemini_embed(body: Mapping[str, Any], model: str) -> tuple[str, dict[str, Any]]:
    """(method, body): ``embedContent`` for one input, ``batchEmbedContents`` for several."""
    texts = embedding_inputs(body)
    extra: dict[str, Any] = {}
    dimensions = body.get("dimensions")
    if isinstance(dimensions, int):
        if dimensions > MAX_EMBEDDING_DIMENSIONS:
            raise InvalidRequest(
                f"dimensions must be at most {MAX_EMBEDDING_DIMENSIONS} for Gemini models",
                param="dimensions",
            )
        extra["outputDimensionality"] = dimensions
    task = body.get("task_type", body.get("taskType"))
    if isinstance(task, str):
        extra["taskType"] = task
    if len(texts) == 1:
        return "embedContent", {"content": {"parts": [{"text": texts[0]}]}, **extra}
    return "batchEmbedContents", {
        "requests": [
            {"model": model_path(model), "content": {"parts": [{"text": t}]}, **extra}
            for t in texts
        ]
    }


def embedding_vectors(data: Mapping[str, Any]) -> list[list[float]]:
    """The vectors of an ``embedContent`` or ``batchEmbedContents`` answer, in order."""
    if isinstance(data.get("embedding"), Mapping):
        return [list(data["embedding"].get("values") or [])]
    return [
        list(e.get("values") or []) for e in data.get("embeddings") or [] if isinstance(e, Mapping)
    ]


# -- errors ------------------------------------------------------------------------------------

_CONTEXT = re.compile(
    r"input token count.*exceeds the maximum|exceeds the maximum number of tokens"
    r"|context (?:window|length)",
    re.IGNORECASE,
)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)s$")


def _retry_delay(details: Any) -> float | None:
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, Mapping) and str(detail.get("@type", "")).endswith("RetryInfo"):
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def _reasons(details: Any) -> set[str]:
    return (
        {str(d.get("reason")) for d in details if isinstance(d, Mapping) and d.get("reason")}
        if isinstance(details, list)
        else set()
    )


def error_from_gemini(
    status: int,
    data: Any,
    headers: Mapping[str, str],
    provider: str,
    retry_after: float | None = None,
) -> UpstreamError:
    """The gateway error for Gemini's ``{"error": {code, message, status, details}}``.

    429 / ``RESOURCE_EXHAUSTED`` is retryable after the ``RetryInfo`` delay when given; 5xx
    is retryable; a bad key (``API_KEY_INVALID``, sent as 400) is a credentials refusal whose
    message is not echoed; an input longer than the model's window is
    :class:`ContextWindowExceeded`; other 4xx are final.
    """
    error = data.get("error") if isinstance(data, Mapping) else None
    error = error if isinstance(error, Mapping) else {}
    raw_message = error.get("message")
    message = (
        raw_message
        if isinstance(raw_message, str)
        else f"provider '{provider}' answered with status {status}"
    )
    grpc_status = error.get("status") if isinstance(error.get("status"), str) else None
    details = error.get("details")
    code = grpc_status.lower() if grpc_status else None
    if grpc_status == "RESOURCE_EXHAUSTED" and status != 429:
        status = 429
    delay = _retry_delay(details)
    if status == 429:
        return UpstreamRateLimited(
            message,
            provider=provider,
            upstream_status=status,
            code=code or "rate_limit_exceeded",
            retry_after=delay if delay is not None else retry_after,
        )
    if "API_KEY_INVALID" in _reasons(details) or (
        status == 400 and message.startswith("API key not valid")
    ):
        status = 401
    if status == 400 and _CONTEXT.search(message):
        return ContextWindowExceeded(
            message, provider=provider, upstream_status=status, status=400, param="messages"
        )
    return upstream_error_for_status(
        status, message, provider=provider, code=code, retry_after=retry_after
    )
