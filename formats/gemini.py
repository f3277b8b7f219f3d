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
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs
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

if TYPE_CHECKING:
    from plugway.context import RequestContext, Target
    from plugway.provider import ChunkStream

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
        elif kind == "video_url":  # video understanding (as ModelArk's Seed models take it)
            video = part.get("video_url")
            url = video.get("url") if isinstance(video, Mapping) else video
            if not isinstance(url, str):
                raise InvalidRequest(
                    "a video_url part's video_url.url must be a string", param="messages"
                )
            parts.append(_media_part(url, "video/mp4"))
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


# == inbound: Gemini API requests in, Gemini answers out ======================================
#
# The ``/v1beta/models/{model}:generateContent`` door (plugins/gemini_api.py) turns a client's
# ``GenerateContentRequest`` into the canonical chat body (:func:`chat_from_gemini_request`)
# and the chat answer or chunk stream back (:func:`gemini_from_chat_response`,
# :class:`ChatToGeminiStream`).
#
# Request mapping:
#
# - ``systemInstruction`` (its text parts) -> a leading ``system`` message;
# - ``contents[]`` (``role`` ``user``, the default, or ``model``): ``text`` -> text parts
#   (``thought: true`` parts, the model's earlier thought summaries, are left out: no chat
#   target reads them back); ``inlineData`` -> ``image_url`` data URLs for ``image/*``,
#   ``input_audio`` for wav/mp3, else a ``file`` part; ``fileData`` of an image -> an
#   ``image_url`` by URL; ``functionCall`` -> assistant ``tool_calls`` (its ``id``, or one
#   made from its position; a ``thoughtSignature`` rides in the id as for Gemini targets, so
#   it reaches a Gemini target on the next turn); ``functionResponse`` -> a ``tool`` message
#   answering the call with the same ``id``, else the earliest unanswered call of that name;
# - ``tools[].functionDeclarations`` -> function tools (``parameters`` in Gemini's Schema
#   with upper-case types -> JSON schema; ``parametersJsonSchema`` as it is);
#   ``toolConfig.functionCallingConfig`` -> ``tool_choice`` (``AUTO``/``VALIDATED`` ->
#   ``auto``, ``ANY`` -> ``required`` or the one allowed function, ``NONE`` -> ``none``;
#   several ``allowedFunctionNames`` -> ``allowed_tools``);
# - ``generationConfig``: ``temperature``, ``topP``, ``maxOutputTokens``, ``stopSequences``,
#   ``candidateCount``, ``seed``, ``presencePenalty``, ``frequencyPenalty``,
#   ``responseLogprobs``/``logprobs``, ``responseMimeType`` ``application/json`` with
#   ``responseSchema``/``responseJsonSchema`` -> ``response_format``, ``thinkingConfig``
#   ``thinkingLevel`` -> ``reasoning_effort``.
#
# Dropped, by decision (they tune Gemini's own sampling, safety or billing; a Gemini target
# gets them, as the body is passed through): ``topK``, ``thinkingConfig.thinkingBudget`` /
# ``includeThoughts`` (thought summaries come back whenever the target returns reasoning),
# ``mediaResolution``, ``safetySettings``, ``labels``, and ``responseModalities`` of only
# ``TEXT``. What has no chat form (built-in tools such as ``googleSearch`` or
# ``codeExecution``, ``cachedContent``, ``executableCode`` parts, ``fileData`` that is not an
# image, non-text ``responseModalities``, ``speechConfig``, ``imageConfig``) raises
# :class:`GeminiNativeOnly`: the door passes such a request through to a Gemini target and
# refuses it (400) for any other. Malformed input raises :class:`InvalidRequest` naming the
# field path (``contents[1].parts[0].text``).

#: The gRPC status names Google's errors carry, by HTTP status.
STATUS_NAMES: Mapping[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    402: "RESOURCE_EXHAUSTED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "INVALID_ARGUMENT",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def gemini_error_body(status: int, message: str) -> dict[str, Any]:
    """Google's error envelope ``{"error": {"code", "message", "status"}}``."""
    name = STATUS_NAMES.get(status) or ("INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    return {"error": {"code": status, "message": message, "status": name}}


class GeminiNativeOnly(InvalidRequest):
    """A well-formed Gemini request that only a Gemini target serves (a built-in tool, a
    cached content, ...): passed through to one, a 400 for any other target."""


_REQUEST_FIELDS = frozenset(
    {
        "contents",
        "systemInstruction",
        "tools",
        "toolConfig",
        "generationConfig",
        "safetySettings",
        "cachedContent",
        "labels",
    }
)
_NATIVE_GENERATION = ("speechConfig", "imageConfig")
_DROPPED_GENERATION = frozenset({"topK", "mediaResolution", "enableEnhancedCivicAnswers"})
_THINKING_LEVELS: Mapping[str, str] = {
    "MINIMAL": "minimal",
    "LOW": "low",
    "MEDIUM": "medium",
    "HIGH": "high",
}


def _gbad(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(f"{param}: {message}" if param else message, param=param or None)


def _gobj(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _gbad("must be an object", path)
    return value


def _glist(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise _gbad("must be an array", path)
    return value


def _gstr(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _gbad("must be a string", path)
    return value


def schema_to_json_schema(schema: Any) -> Any:
    """Gemini's ``Schema`` (OpenAPI 3.0 subset, types often upper case as the SDKs send them)
    -> JSON schema: types lower-cased, ``nullable: true`` as a ``null`` type alternative."""
    if isinstance(schema, list):
        return [schema_to_json_schema(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            out["type"] = value.lower()
        elif key == "nullable":
            continue
        elif key == "properties" and isinstance(value, Mapping):
            out[key] = {name: schema_to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "anyOf"):
            out[key] = schema_to_json_schema(value)
        elif key == "propertyOrdering":
            continue
        else:
            out[key] = value
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _data_url(mime: str, data: str) -> str:
    return f"data:{mime};base64,{data}"


_AUDIO_FORMATS: Mapping[str, str] = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/mp3": "mp3",
    "audio/mpeg": "mp3",
}


def _user_part(part: Mapping[str, Any], path: str) -> dict[str, Any] | None:
    """A chat content part for one Gemini part of a user turn (None for a thought)."""
    if "text" in part:
        text = _gstr(part["text"], f"{path}.text")
        return None if part.get("thought") is True else {"type": "text", "text": text}
    if "inlineData" in part:
        blob = _gobj(part["inlineData"], f"{path}.inlineData")
        mime = _gstr(blob.get("mimeType"), f"{path}.inlineData.mimeType").lower()
        data = _gstr(blob.get("data"), f"{path}.inlineData.data")
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise _gbad("is not valid base64", f"{path}.inlineData.data") from None
        if mime.startswith("image/"):
            return {"type": "image_url", "image_url": {"url": _data_url(mime, data)}}
        if mime in _AUDIO_FORMATS:
            return {
                "type": "input_audio",
                "input_audio": {"data": data, "format": _AUDIO_FORMATS[mime]},
            }
        return {"type": "file", "file": {"file_data": _data_url(mime, data)}}
    if "fileData" in part:
        file = _gobj(part["fileData"], f"{path}.fileData")
        uri = _gstr(file.get("fileUri"), f"{path}.fileData.fileUri")
        mime = str(file.get("mimeType") or mimetypes.guess_type(uri.split("?", 1)[0])[0] or "")
        if mime.startswith("image/") and uri.startswith(("http://", "https://")):
            return {"type": "image_url", "image_url": {"url": uri}}
        raise GeminiNativeOnly(
            f"{path}.fileData: a file by URI ({mime or 'unknown type'}) reaches Gemini "
            "targets only",
            param=f"{path}.fileData",
        )
    for key in ("executableCode", "codeExecutionResult", "videoMetadata"):
        if key in part:
            raise GeminiNativeOnly(
                f"{path}.{key}: this part reaches Gemini targets only", param=f"{path}.{key}"
            )
    raise _gbad("must hold text, inlineData, fileData, functionCall or functionResponse", path)


class _Calls:
    """Function calls seen so far, to pair each ``functionResponse`` with its call."""

    def __init__(self) -> None:
        self.by_id: dict[str, str] = {}  # the client's call id -> the chat tool_call id
        self.pending: list[tuple[str, str]] = []  # (name, chat id) not yet answered

    def add(self, name: str, client_id: str | None, chat_id: str) -> None:
        if client_id:
            self.by_id[client_id] = chat_id
        self.pending.append((name, chat_id))

    def answer(self, name: str, client_id: str | None, path: str) -> str:
        chat_id = self.by_id.get(client_id) if client_id else None
        if chat_id is None:
            chat_id = next((c for n, c in self.pending if n == name), None)
        if chat_id is None:
            raise _gbad(f"answers no earlier functionCall named {name!r}", path)
        self.pending = [(n, c) for n, c in self.pending if c != chat_id]
        return chat_id


def _model_turn(parts: list[Any], path: str, turn: int, calls: _Calls) -> dict[str, Any] | None:
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for j, raw in enumerate(parts):
        where = f"{path}.parts[{j}]"
        part = _gobj(raw, where)
        if "functionCall" in part:
            call = _gobj(part["functionCall"], f"{where}.functionCall")
            name = _gstr(call.get("name"), f"{where}.functionCall.name")
            args = call.get("args", {})
            if args is not None:
                _gobj(args, f"{where}.functionCall.args")
            client_id = call.get("id") if isinstance(call.get("id"), str) else None
            chat_id = client_id or f"call_{turn}_{j}"
            signature = part.get("thoughtSignature")
            if isinstance(signature, str) and signature:
                chat_id = chat_id + _SIGNATURE_MARK + signature
            calls.add(name, client_id, chat_id)
            tool_calls.append(
                {
                    "id": chat_id,
                    "type": "function",
                    "function": {"name": name, "arguments": orjson.dumps(args or {}).decode()},
                }
            )
        elif "text" in part:
            text = _gstr(part["text"], f"{where}.text")
            if part.get("thought") is not True:
                texts.append(text)
        elif "functionResponse" in part:
            raise _gbad("a functionResponse belongs in a user turn", f"{where}.functionResponse")
        else:
            _user_part(part, where)  # refuses what a model turn cannot hold for chat
            raise _gbad("a model turn holds text and function calls only", where)
    if not texts and not tool_calls:
        return None
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def _user_turn(parts: list[Any], path: str, calls: _Calls) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    content: list[dict[str, Any]] = []
    for j, raw in enumerate(parts):
        where = f"{path}.parts[{j}]"
        part = _gobj(raw, where)
        if "functionResponse" in part:
            answer = _gobj(part["functionResponse"], f"{where}.functionResponse")
            name = _gstr(answer.get("name"), f"{where}.functionResponse.name")
            client_id = answer.get("id") if isinstance(answer.get("id"), str) else None
            response = answer.get("response", {})
            _gobj(response, f"{where}.functionResponse.response")
            chat_id = calls.answer(name, client_id, f"{where}.functionResponse")
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": chat_id,
                    "content": orjson.dumps(response).decode(),
                }
            )
        elif "functionCall" in part:
            raise _gbad("a functionCall belongs in a model turn", f"{where}.functionCall")
        else:
            converted = _user_part(part, where)
            if converted is not None:
                content.append(converted)
    if content:
        if all(p["type"] == "text" for p in content):
            out.append({"role": "user", "content": "".join(p["text"] for p in content)})
        else:
            out.append({"role": "user", "content": content})
    return out


def _system_text(value: Any) -> str:
    if isinstance(value, str):  # the REST API takes a Content; a bare string is forgiven
        return value
    content = _gobj(value, "systemInstruction")
    parts = _glist(content.get("parts", []), "systemInstruction.parts")
    texts = []
    for j, raw in enumerate(parts):
        part = _gobj(raw, f"systemInstruction.parts[{j}]")
        texts.append(_gstr(part.get("text"), f"systemInstruction.parts[{j}].text"))
    return "\n".join(texts)


def _declarations(value: Any) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    for i, raw in enumerate(_glist(value, "tools")):
        tool = _gobj(raw, f"tools[{i}]")
        for key in tool:
            if key != "functionDeclarations":
                raise GeminiNativeOnly(
                    f"tools[{i}].{key}: Gemini's built-in tools reach Gemini targets only",
                    param=f"tools[{i}].{key}",
                )
        for j, raw_decl in enumerate(
            _glist(tool.get("functionDeclarations", []), f"tools[{i}].functionDeclarations")
        ):
            where = f"tools[{i}].functionDeclarations[{j}]"
            decl = _gobj(raw_decl, where)
            function: dict[str, Any] = {"name": _gstr(decl.get("name"), f"{where}.name")}
            if decl.get("description") is not None:
                function["description"] = _gstr(decl["description"], f"{where}.description")
            if decl.get("parametersJsonSchema") is not None:
                function["parameters"] = dict(
                    _gobj(decl["parametersJsonSchema"], f"{where}.parametersJsonSchema")
                )
            elif decl.get("parameters") is not None:
                function["parameters"] = schema_to_json_schema(
                    _gobj(decl["parameters"], f"{where}.parameters")
                )
            else:
                function["parameters"] = {"type": "object", "properties": {}}
            tools.append({"type": "function", "function": function})
    return tools


def _choice_from_config(value: Any) -> str | dict[str, Any] | None:
    config = _gobj(value, "toolConfig")
    calling = config.get("functionCallingConfig")
    if calling is None:
        return None
    calling = _gobj(calling, "toolConfig.functionCallingConfig")
    mode = str(calling.get("mode") or "AUTO").upper()
    names = _glist(
        calling.get("allowedFunctionNames") or [],
        "toolConfig.functionCallingConfig.allowedFunctionNames",
    )
    if mode == "NONE":
        return "none"
    if mode not in ("AUTO", "ANY", "VALIDATED", "MODE_UNSPECIFIED"):
        raise _gbad(f"unknown mode {mode!r}", "toolConfig.functionCallingConfig.mode")
    chat_mode = "required" if mode == "ANY" else "auto"
    if not names:
        return chat_mode
    if len(names) == 1 and chat_mode == "required":
        return {"type": "function", "function": {"name": str(names[0])}}
    allowed = [{"type": "function", "function": {"name": str(name)}} for name in names]
    return {"type": "allowed_tools", "allowed_tools": {"mode": chat_mode, "tools": allowed}}


def _generation(value: Any, out: dict[str, Any]) -> None:
    config = _gobj(value, "generationConfig")
    simple = (
        ("temperature", "temperature"),
        ("topP", "top_p"),
        ("maxOutputTokens", "max_completion_tokens"),
        ("candidateCount", "n"),
        ("seed", "seed"),
        ("presencePenalty", "presence_penalty"),
        ("frequencyPenalty", "frequency_penalty"),
    )
    known = {key for key, _ in simple} | _DROPPED_GENERATION
    known |= {"stopSequences", "responseLogprobs", "logprobs", "responseMimeType"}
    known |= {"responseSchema", "responseJsonSchema", "thinkingConfig", "responseModalities"}
    for key in config:
        if key in _NATIVE_GENERATION:
            raise GeminiNativeOnly(
                f"generationConfig.{key} reaches Gemini targets only",
                param=f"generationConfig.{key}",
            )
        if key not in known:
            raise _gbad("unknown field", f"generationConfig.{key}")
    for key, chat in simple:
        value = config.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _gbad("must be a number", f"generationConfig.{key}")
            out[chat] = value
    stop = config.get("stopSequences")
    if stop:
        out["stop"] = [
            _gstr(s, f"generationConfig.stopSequences[{i}]")
            for i, s in enumerate(_glist(stop, "generationConfig.stopSequences"))
        ]
    if config.get("responseLogprobs") is True:
        out["logprobs"] = True
        if isinstance(config.get("logprobs"), int):
            out["top_logprobs"] = config["logprobs"]
    modalities = config.get("responseModalities")
    if modalities is not None and [
        str(m).upper() for m in _glist(modalities, "generationConfig.responseModalities")
    ] not in ([], ["TEXT"]):
        raise GeminiNativeOnly(
            "generationConfig.responseModalities: only TEXT answers come from non-Gemini targets",
            param="generationConfig.responseModalities",
        )
    mime = config.get("responseMimeType")
    if mime == "application/json":
        schema = config.get("responseJsonSchema")
        if schema is None and config.get("responseSchema") is not None:
            schema = schema_to_json_schema(
                _gobj(config["responseSchema"], "generationConfig.responseSchema")
            )
        if schema is None:
            out["response_format"] = {"type": "json_object"}
        else:
            out["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": "response",
                    "schema": dict(_gobj(schema, "generationConfig.responseJsonSchema")),
                },
            }
    elif mime not in (None, "text/plain"):
        raise _gbad(f"{mime!r} is not supported", "generationConfig.responseMimeType")
    thinking = config.get("thinkingConfig")
    if thinking is not None:
        level = _gobj(thinking, "generationConfig.thinkingConfig").get("thinkingLevel")
        if isinstance(level, str) and level.upper() in _THINKING_LEVELS:
            out["reasoning_effort"] = _THINKING_LEVELS[level.upper()]


#: Values kept as they are by :func:`camel_keys`: the client's own data and JSON schemas.
_OPAQUE_VALUES = frozenset(
    {"args", "response", "parametersJsonSchema", "responseJsonSchema", "example", "default", "enum"}
)


def _camel(key: str) -> str:
    if "_" not in key:
        return key
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def camel_keys(value: Any, *, names: bool = False) -> Any:
    """``value`` with its field names in lowerCamelCase: the REST API takes the proto field
    names too (``mime_type``, ``include_thoughts``), and the SDKs send some so. The client's
    own data (function arguments and results, JSON schemas) and the property names of a
    ``properties`` map are kept as they are."""
    if isinstance(value, list):
        return [camel_keys(item) for item in value]
    if not isinstance(value, Mapping):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = key if names else _camel(key)
        if name in _OPAQUE_VALUES and not names:
            out[name] = item
        else:
            out[name] = camel_keys(item, names=name == "properties" and not names)
    return out


def chat_from_gemini_request(
    body: Mapping[str, Any], model: str, *, stream: bool = False, lenient: bool = False
) -> dict[str, Any]:
    """A Gemini ``GenerateContentRequest`` (the model from the URL) -> the canonical chat
    body (see the section comment above). ``stream`` asks for a chunk stream with usage.

    Raises :class:`InvalidRequest` naming the field path for a malformed body and
    :class:`GeminiNativeOnly` for what only a Gemini target serves; with ``lenient`` the
    latter parts are left out instead (the body then only drives routing and the filters,
    for a request that is passed through)."""
    if not isinstance(body, Mapping):
        raise InvalidRequest("the request body must be a JSON object")
    body = camel_keys(body)
    for key in body:
        if key not in _REQUEST_FIELDS:
            raise _gbad("unknown field (Invalid JSON payload received)", key)
    if body.get("cachedContent") is not None and not lenient:
        raise GeminiNativeOnly("cachedContent reaches Gemini targets only", param="cachedContent")
    messages: list[dict[str, Any]] = []
    if body.get("systemInstruction") is not None:
        system = _system_text(body["systemInstruction"])
        if system:
            messages.append({"role": "system", "content": system})
    calls = _Calls()
    contents = _glist(body.get("contents"), "contents") if "contents" in body else None
    if not contents:
        raise _gbad("is required (a non-empty array of turns)", "contents")
    for i, raw in enumerate(contents):
        path = f"contents[{i}]"
        content = _gobj(raw, path)
        role = content.get("role") or "user"
        parts = _glist(content.get("parts"), f"{path}.parts")
        if lenient:
            parts = [p for p in parts if _chat_safe(p)]
        if role == "model":
            message = _model_turn(parts, path, i, calls)
            if message is not None:
                messages.append(message)
        elif role in ("user", "function"):  # "function": the older name of a results turn
            messages.extend(_user_turn(parts, path, calls))
        else:
            raise _gbad("must be 'user' or 'model'", f"{path}.role")
    out: dict[str, Any] = {"model": model, "messages": messages}
    if body.get("tools") is not None:
        _tool_fields(body, out, lenient=lenient)
    if body.get("generationConfig") is not None:
        config = body["generationConfig"]
        if lenient and isinstance(config, Mapping):
            config = {
                k: v
                for k, v in config.items()
                if k not in _NATIVE_GENERATION and k != "responseModalities"
            }
        _generation(config, out)
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _tool_fields(body: Mapping[str, Any], out: dict[str, Any], *, lenient: bool) -> None:
    """``tools`` and ``tool_choice`` (the latter only beside tools, as chat wants)."""
    tools_value = body["tools"]
    if lenient:
        tools_value = [
            {"functionDeclarations": t.get("functionDeclarations") or []}
            for t in _glist(tools_value, "tools")
            if isinstance(t, Mapping)
        ]
    tools = _declarations(tools_value)
    if tools:
        out["tools"] = tools
        if body.get("toolConfig") is not None:
            choice = _choice_from_config(body["toolConfig"])
            if choice is not None:
                out["tool_choice"] = choice


def _chat_safe(part: Any) -> bool:
    return not (
        isinstance(part, Mapping)
        and any(
            k in part
            for k in ("fileData", "executableCode", "codeExecutionResult", "videoMetadata")
        )
    )


# -- inbound answers ---------------------------------------------------------------------------

#: OpenAI ``finish_reason`` -> Gemini ``finishReason``.
GEMINI_FINISH: Mapping[str, str] = {
    "stop": "STOP",
    "tool_calls": "STOP",
    "function_call": "STOP",
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
}


def usage_to_gemini(usage: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``usageMetadata`` from chat usage: reasoning tokens are reported as
    ``thoughtsTokenCount`` and not again in ``candidatesTokenCount`` (the inverse of
    :func:`usage_from_gemini`)."""
    if not isinstance(usage, Mapping):
        return None
    prompt = _int(usage.get("prompt_tokens"))
    completion = _int(usage.get("completion_tokens"))
    details = usage.get("completion_tokens_details")
    thoughts = _int(details.get("reasoning_tokens")) if isinstance(details, Mapping) else 0
    prompt_details = usage.get("prompt_tokens_details")
    cached = _int(prompt_details.get("cached_tokens")) if isinstance(prompt_details, Mapping) else 0
    out = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": max(completion - thoughts, 0),
        "totalTokenCount": prompt + completion,
    }
    if thoughts:
        out["thoughtsTokenCount"] = thoughts
    if cached:
        out["cachedContentTokenCount"] = cached
    return out


def _call_part(call: Mapping[str, Any]) -> dict[str, Any]:
    """A Gemini ``functionCall`` part for a chat tool call; a signature carried in the id
    becomes the part's ``thoughtSignature`` again."""
    fn = call.get("function")
    fn = fn if isinstance(fn, Mapping) else {}
    arguments = fn.get("arguments")
    try:
        args = orjson.loads(arguments) if isinstance(arguments, str) and arguments.strip() else {}
    except orjson.JSONDecodeError:
        args = {"arguments": arguments}
    if not isinstance(args, dict):
        args = {"value": args}
    raw_id = call.get("id")
    call_id = raw_id.split(_SIGNATURE_MARK, 1)[0] if isinstance(raw_id, str) else ""
    function_call: dict[str, Any] = {"name": str(fn.get("name") or ""), "args": args}
    if call_id:
        function_call["id"] = call_id
    part: dict[str, Any] = {"functionCall": function_call}
    signature = _signature_of(raw_id)
    if signature:
        part["thoughtSignature"] = signature
    return part


def _message_parts(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for key in ("reasoning_content", "reasoning"):
        thought = message.get(key)
        if isinstance(thought, str) and thought:
            parts.append({"text": thought, "thought": True})
            break
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(
            p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str)
        )
    if isinstance(content, str) and content:
        parts.append({"text": content})
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal and not content:
        parts.append({"text": refusal})
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        if isinstance(call, Mapping):
            parts.append(_call_part(call))
    return parts


def gemini_from_chat_response(
    chat: Mapping[str, Any], *, model: str, response_id: str
) -> dict[str, Any]:
    """A chat completion -> a ``GenerateContentResponse`` (one candidate per choice,
    ``modelVersion`` the model the client asked for)."""
    candidates = []
    choices = chat.get("choices")
    for position, choice in enumerate(choices if isinstance(choices, list) else ()):
        if not isinstance(choice, Mapping):
            continue
        message = choice.get("message")
        message = message if isinstance(message, Mapping) else {}
        parts = _message_parts(message) or [{"text": ""}]
        reason = choice.get("finish_reason")
        candidates.append(
            {
                "content": {"role": "model", "parts": parts},
                "finishReason": GEMINI_FINISH.get(str(reason), "STOP"),
                "index": choice.get("index", position),
            }
        )
    out: dict[str, Any] = {
        "candidates": candidates,
        "modelVersion": model,
        "responseId": response_id,
    }
    usage = usage_to_gemini(chat.get("usage"))
    if usage is not None:
        out["usageMetadata"] = usage
    return out


class ChatToGeminiStream:
    """Chat completion chunks -> ``GenerateContentResponse`` stream events (dicts).

    Text and thought deltas become events as they arrive; tool calls are gathered (Gemini
    sends each ``functionCall`` whole) and given, with the ``finishReason`` and the
    ``usageMetadata``, by :meth:`finish`. Work per chunk is constant: argument pieces are
    joined once, at the end. ``usage`` and ``finish_reason`` are the chat ones seen."""

    def __init__(self, *, model: str, response_id: str) -> None:
        self.model = model
        self.response_id = response_id
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self._calls: dict[int, dict[str, Any]] = {}
        self._pieces: dict[int, list[str]] = {}

    def _event(self, parts: list[dict[str, Any]], **candidate: Any) -> dict[str, Any]:
        return {
            "candidates": [{"content": {"role": "model", "parts": parts}, "index": 0, **candidate}],
            "modelVersion": self.model,
            "responseId": self.response_id,
        }

    def feed(self, chunk: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The events one parsed chat chunk makes (often one, sometimes none)."""
        if isinstance(chunk.get("usage"), Mapping):
            self.usage = dict(chunk["usage"])
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return []
        parts: list[dict[str, Any]] = []
        for choice in choices:
            if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            delta = delta if isinstance(delta, Mapping) else {}
            for key in ("reasoning_content", "reasoning"):
                thought = delta.get(key)
                if isinstance(thought, str) and thought:
                    parts.append({"text": thought, "thought": True})
                    break
            text = delta.get("content")
            if isinstance(text, str) and text:
                parts.append({"text": text})
            calls = delta.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                if isinstance(call, Mapping):
                    self._gather(call)
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        return [self._event(parts)] if parts else []

    def _gather(self, call: Mapping[str, Any]) -> None:
        raw_index = call.get("index")
        index = raw_index if isinstance(raw_index, int) else len(self._calls)
        fn = call.get("function")
        fn = fn if isinstance(fn, Mapping) else {}
        held = self._calls.setdefault(index, {"id": "", "name": ""})
        self._pieces.setdefault(index, [])
        if isinstance(call.get("id"), str) and call["id"] and not held["id"]:
            held["id"] = call["id"]
        if isinstance(fn.get("name"), str) and fn["name"] and not held["name"]:
            held["name"] = fn["name"]
        if isinstance(fn.get("arguments"), str):
            self._pieces[index].append(fn["arguments"])

    def finish(self) -> list[dict[str, Any]]:
        """The last event: gathered function calls, ``finishReason`` and usage."""
        parts = [
            _call_part(
                {
                    "id": held["id"],
                    "function": {"name": held["name"], "arguments": "".join(self._pieces[i])},
                }
            )
            for i, held in sorted(self._calls.items())
        ]
        event = self._event(
            parts or [{"text": ""}],
            finishReason=GEMINI_FINISH.get(str(self.finish_reason), "STOP"),
        )
        usage = usage_to_gemini(self.usage)
        if usage is not None:
            event["usageMetadata"] = usage
        return [event]


def gemini_sse(event: Mapping[str, Any]) -> bytes:
    """One ``alt=sse`` frame, as Google sends them."""
    return b"data: " + orjson.dumps(event) + b"\r\n\r\n"


class JsonArrayFramer:
    """Frames stream events as the JSON array ``streamGenerateContent`` gives without
    ``alt=sse``: ``[`` + event, ``,`` + event ..., ``]``."""

    def __init__(self) -> None:
        self.opened = False

    def frame(self, payload: bytes) -> bytes:
        head = b"," if self.opened else b"["
        self.opened = True
        return head + payload + b"\r\n"

    def close(self) -> bytes:
        return b"]" if self.opened else b"[]"


# -- inbound: counting and pass-through --------------------------------------------------------

#: Characters per token assumed by :func:`estimate_chat_tokens`.
CHARS_PER_TOKEN = 4
#: What one image, audio clip or file counts, whatever its size.
MEDIA_TOKENS = 258


def estimate_chat_tokens(chat: Mapping[str, Any]) -> int:
    """A local estimate of a chat body's input tokens for targets that cannot count: one
    token per 4 characters (rounded up) of message text, tool-call arguments and tool
    declarations as JSON, 258 per media part (Gemini's figure for a small image), 3 per
    message."""
    chars = 0
    extra = 0
    messages = chat.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, Mapping):
            continue
        extra += 3
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, Mapping) and part.get("type") == "text":
                    chars += len(str(part.get("text", "")))
                else:
                    extra += MEDIA_TOKENS
        for call in message.get("tool_calls") or ():
            if isinstance(call, Mapping):
                chars += len(orjson.dumps(call.get("function")))
    for tool in chat.get("tools") or ():
        chars += len(orjson.dumps(tool))
    return -(-chars // CHARS_PER_TOKEN) + extra


def count_request_body(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``GenerateContentRequest`` inside a ``countTokens`` body: its
    ``generateContentRequest`` (whose own ``model`` is left out), else the body's
    ``contents`` alone."""
    body = camel_keys(body)
    inner = body.get("generateContentRequest")
    if inner is not None:
        inner = _gobj(inner, "generateContentRequest")
        return {k: v for k, v in inner.items() if k != "model"}
    for key in body:
        if key != "contents":
            raise _gbad("unknown field (Invalid JSON payload received)", key)
    return {"contents": body.get("contents")}


@attrs.define(slots=True)
class NativeAnswer:
    """A non-streamed native Gemini answer: the upstream's bytes and the parsed body."""

    raw: bytes
    body: dict[str, Any]


@runtime_checkable
class NativeGemini(Protocol):
    """What a provider offers to serve Gemini API requests natively (the ``gemini`` provider
    does). The inbound ``/v1beta`` door passes the client's body through to it with only the
    model (in the path) replaced.

    ``stream_generate_content`` yields Gemini's ``alt=sse`` events, each whole
    (``data: {...}`` and its blank line) and untouched; it records ``usage`` (chat-shaped)
    and ``finish_reason`` as they pass."""

    async def generate_content(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> NativeAnswer: ...

    async def stream_generate_content(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ChunkStream: ...

    async def count_tokens(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> dict[str, Any]: ...
