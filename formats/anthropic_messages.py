"""Pure translation between OpenAI Chat Completions and Anthropic Messages, both directions,
non-streamed and streamed. No I/O: the ``anthropic`` provider (OpenAI in, Anthropic upstream)
and the inbound ``/v1/messages`` endpoint (Anthropic in, any upstream) both use it.

Outbound (OpenAI request -> Anthropic request -> OpenAI response):
:func:`openai_to_anthropic_request`, :func:`anthropic_to_openai_response`,
:class:`AnthropicToOpenAIStream`.

Inbound (Anthropic request -> OpenAI request -> Anthropic response):
:func:`anthropic_to_openai_request`, :func:`openai_to_anthropic_response`,
:class:`OpenAIToAnthropicStream`.

What does not translate (documented, not silently wrong): OpenAI ``n`` > 1,
``response_format`` other than text, and the OpenAI-only fields in :data:`UNTRANSLATABLE`
(``logprobs``, ``seed``, ``reasoning_effort`` ...) are refused with a 400 naming the field; Anthropic ``top_k``, ``thinking``, ``cache_control`` and server
tools have no OpenAI form (``top_k``/``thinking``/``cache_control`` are dropped, server tools
are refused with a 400).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs
import orjson
from plugway.errors import InvalidRequest
from plugway.formats.common import loads_object, parse_data_url
from plugway.formats.openai_chat import refuse_untranslatable, validate_chat_request
from plugway.sse import EventSplitter, iter_data, sse_event

if TYPE_CHECKING:
    from plugway.context import RequestContext, Target
    from plugway.provider import ChunkStream

ANTHROPIC_VERSION = "2023-06-01"

#: Anthropic stop_reason -> OpenAI finish_reason.
FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

#: OpenAI finish_reason -> Anthropic stop_reason.
STOP_REASONS: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

#: Output-token limits by model-name prefix (longest prefix wins), used as ``max_tokens`` when
#: an OpenAI client sends none: Anthropic requires it, and asking for the model's whole output
#: limit never costs more (billing counts tokens produced, not asked for).
MODEL_OUTPUT_LIMITS: dict[str, int] = {
    "claude-opus-4-1": 32000,
    "claude-opus-4": 32000,
    "claude-sonnet-4": 64000,
    "claude-haiku-4": 64000,
    "claude-3-7-sonnet": 64000,
    "claude-3-5-sonnet": 8192,
    "claude-3-5-haiku": 8192,
    "claude-3-opus": 4096,
    "claude-3-haiku": 4096,
}
FALLBACK_MAX_TOKENS = 4096
#: OpenAI fields an Anthropic model cannot honour: a request setting one is refused.
UNTRANSLATABLE = (
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "reasoning_effort",
    "audio",
    "prediction",
)
#: Anthropic ``metadata.user_id`` becomes OpenAI ``user`` only up to this length (OpenAI-style
#: hosts cap it; Claude Code sends a long JSON blob there, which is dropped).
MAX_USER_LENGTH = 64


def default_max_tokens(model: str) -> int:
    """The output limit of ``model`` (by longest known prefix), else 4096."""
    best = ""
    for prefix in MODEL_OUTPUT_LIMITS:
        if model.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return MODEL_OUTPUT_LIMITS[best] if best else FALLBACK_MAX_TOKENS


# -- usage -------------------------------------------------------------------------------------


def anthropic_usage_to_openai(usage: Mapping[str, Any]) -> dict[str, Any]:
    """Anthropic usage -> OpenAI usage. ``prompt_tokens`` counts every input token (uncached,
    read from cache, written to cache); cache reads go to ``prompt_tokens_details.cached_tokens``
    and cache writes to ``prompt_tokens_details.cache_write_tokens``."""
    uncached = _int(usage.get("input_tokens"))
    read = _int(usage.get("cache_read_input_tokens"))
    written = _int(usage.get("cache_creation_input_tokens"))
    output = _int(usage.get("output_tokens"))
    prompt = uncached + read + written
    return {
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
        "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": written},
    }


def openai_usage_to_anthropic(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    """OpenAI usage -> Anthropic usage (the inverse of :func:`anthropic_usage_to_openai`)."""
    usage = usage or {}
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    read = _int(details.get("cached_tokens"))
    written = _int(details.get("cache_write_tokens"))
    return {
        "input_tokens": max(0, _int(usage.get("prompt_tokens")) - read - written),
        "output_tokens": _int(usage.get("completion_tokens")),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
    }


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# -- OpenAI request -> Anthropic request -------------------------------------------------------


def openai_to_anthropic_request(
    body: Mapping[str, Any], model: str, max_tokens_default: int | None = None
) -> dict[str, Any]:
    """An OpenAI Chat Completions body as an Anthropic Messages body for ``model``.

    System and developer messages become the top-level ``system`` (text blocks, keeping
    ``cache_control``); consecutive messages of one role (tool results included) merge into
    one turn; ``max_tokens`` is ``max_completion_tokens``, ``max_tokens`` or the model's output
    limit. A request that breaks OpenAI's schema, or sets a field Anthropic cannot honour
    (:data:`UNTRANSLATABLE`, ``response_format`` other than text, ``n`` > 1, ``temperature``
    above 1, no message with content once empty texts are left out), raises
    :class:`InvalidRequest` naming the field: nothing is silently dropped.
    """
    _refuse_untranslatable(body)
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InvalidRequest("'messages' must be an array", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{i}] must be an object", param=f"messages[{i}]")
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_text_blocks(message.get("content"), f"messages[{i}].content"))
            continue
        if role == "user":
            blocks = _user_blocks(message.get("content"), f"messages[{i}].content")
            _append_turn(turns, "user", blocks)
        elif role == "assistant":
            _append_turn(turns, "assistant", _assistant_blocks(message, i))
        elif role == "tool":
            _append_turn(turns, "user", [_tool_result(message, i)])
        else:
            raise InvalidRequest(
                f"messages[{i}].role {role!r} is not one of system, developer, user, "
                "assistant, tool",
                param=f"messages[{i}].role",
            )
    if not turns:
        # Empty texts are left out (Anthropic refuses empty text blocks), which may leave none.
        raise InvalidRequest(
            "messages must hold a user or assistant message with content: Anthropic models "
            "refuse a conversation with none",
            param="messages",
        )
    out: dict[str, Any] = {"model": model}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    out["max_tokens"] = (
        max_tokens
        if isinstance(max_tokens, int)
        else max_tokens_default or default_max_tokens(model)
    )
    if system:
        out["system"] = system
    out["messages"] = [_collapse(turn) for turn in turns]
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = stop
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        out["tools"] = [_tool_definition(tool, j) for j, tool in enumerate(tools)]
        choice = _tool_choice(body.get("tool_choice"))
        if body.get("parallel_tool_calls") is False and choice.get("type") != "none":
            choice["disable_parallel_tool_use"] = True
        if choice != {"type": "auto"}:
            out["tool_choice"] = choice
    user = body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    if body.get("stream") is True:
        out["stream"] = True
    return out


def _refuse_untranslatable(body: Mapping[str, Any]) -> None:
    """Refuse what breaks OpenAI's schema or has no faithful Anthropic form."""
    validate_chat_request(body)
    n = body.get("n")
    if isinstance(n, int) and n > 1:
        raise InvalidRequest(
            "Anthropic models answer one choice per request; 'n' must be 1", param="n"
        )
    refuse_untranslatable(body, "Anthropic", UNTRANSLATABLE)
    fmt = body.get("response_format")
    if fmt is not None and fmt.get("type") != "text":
        raise InvalidRequest(
            "response_format json_object and json_schema cannot be translated for Anthropic "
            "models; leave it out, or route this request to an OpenAI-format target",
            param="response_format.type",
        )
    temperature = body.get("temperature")
    if isinstance(temperature, (int, float)) and temperature > 1:
        # OpenAI's range is 0 to 2, Anthropic's 0 to 1: no faithful scaling exists.
        raise InvalidRequest("Anthropic models take a temperature from 0 to 1", param="temperature")
    modalities = body.get("modalities")
    if modalities and modalities != ["text"]:
        raise InvalidRequest(
            "Anthropic models answer in text only; modalities must be ['text']",
            param="modalities",
        )


def _append_turn(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": list(blocks)})


def _collapse(turn: dict[str, Any]) -> dict[str, Any]:
    """A turn of one plain text block is sent as a string, the shape most clients send."""
    content = turn["content"]
    if len(content) == 1 and content[0].get("type") == "text" and len(content[0]) == 2:
        return {"role": turn["role"], "content": content[0]["text"]}
    return turn


def _text_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        if content is None:
            return []
        raise InvalidRequest(f"{where} must be a string or an array of parts", param=where)
    blocks = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text":
            if part.get("text"):
                blocks.append(_with_cache_control({"type": "text", "text": part["text"]}, part))
        else:
            raise InvalidRequest(f"{where} may only hold text parts here", param=where)
    return blocks


def _with_cache_control(block: dict[str, Any], part: Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(part.get("cache_control"), dict):
        block["cache_control"] = part["cache_control"]
    return block


def _user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str) or content is None:
        return _text_blocks(content, where)
    if not isinstance(content, list):
        raise InvalidRequest(f"{where} must be a string or an array of parts", param=where)
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                blocks.append(_with_cache_control({"type": "text", "text": part["text"]}, part))
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise InvalidRequest(
                    f"{where}[{j}].image_url.url must be a string", param=f"{where}[{j}]"
                )
            blocks.append(_with_cache_control({"type": "image", "source": _source(url)}, part))
        elif kind == "file":
            blocks.append(_document(part, f"{where}[{j}]"))
        else:
            raise InvalidRequest(
                f"{where}[{j}] has type {kind!r}; Anthropic models take text, image_url and "
                "file parts",
                param=f"{where}[{j}]",
            )
    return blocks


def _source(url: str) -> dict[str, Any]:
    data = parse_data_url(url)
    if data is not None:
        return {"type": "base64", "media_type": data[0], "data": data[1]}
    return {"type": "url", "url": url}


def _document(part: Mapping[str, Any], where: str) -> dict[str, Any]:
    file = part.get("file")
    data = file.get("file_data") if isinstance(file, dict) else None
    parsed = parse_data_url(data) if isinstance(data, str) else None
    if parsed is None:
        raise InvalidRequest(f"{where}.file.file_data must be a base64 data URL", param=where)
    return {
        "type": "document",
        "source": {"type": "base64", "media_type": parsed[0], "data": parsed[1]},
    }


def _assistant_blocks(message: Mapping[str, Any], i: int) -> list[dict[str, Any]]:
    content = message.get("content")
    where = f"messages[{i}].content"
    if isinstance(content, list):
        content = [p for p in content if not (isinstance(p, dict) and p.get("type") == "refusal")]
    blocks = _text_blocks(content, where)
    for j, call in enumerate(message.get("tool_calls") or []):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise InvalidRequest(
                f"messages[{i}].tool_calls[{j}] needs a function name",
                param=f"messages[{i}].tool_calls[{j}]",
            )
        arguments = loads_object(fn.get("arguments"))
        if arguments is None:
            raise InvalidRequest(
                f"messages[{i}].tool_calls[{j}].function.arguments must be a JSON object",
                param=f"messages[{i}].tool_calls[{j}].function.arguments",
            )
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{i}_{j}",
                "name": fn["name"],
                "input": arguments,
            }
        )
    return blocks


def _tool_result(message: Mapping[str, Any], i: int) -> dict[str, Any]:
    tool_call_id = message.get("tool_call_id")
    if not isinstance(tool_call_id, str):
        raise InvalidRequest(
            f"messages[{i}].tool_call_id is required for a tool message",
            param=f"messages[{i}].tool_call_id",
        )
    content = message.get("content")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_call_id}
    if isinstance(content, str):
        block["content"] = content
    elif isinstance(content, list):
        block["content"] = _user_blocks(content, f"messages[{i}].content")
    return block


def _tool_definition(tool: Any, j: int) -> dict[str, Any]:
    fn = tool.get("function") if isinstance(tool, dict) else None
    if (
        not isinstance(tool, dict)
        or tool.get("type", "function") != "function"
        or not isinstance(fn, dict)
        or not isinstance(fn.get("name"), str)
    ):
        raise InvalidRequest(f"tools[{j}] must be a function tool with a name", param=f"tools[{j}]")
    out: dict[str, Any] = {"name": fn["name"]}
    if fn.get("description"):
        out["description"] = fn["description"]
    schema = fn.get("parameters")
    out["input_schema"] = (
        schema if isinstance(schema, dict) else {"type": "object", "properties": {}}
    )
    return out


def _tool_choice(choice: Any) -> dict[str, Any]:
    if choice is None or choice == "auto":
        return {"type": "auto"}
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict):
        fn = choice.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return {"type": "tool", "name": fn["name"]}
    raise InvalidRequest(
        "tool_choice must be 'auto', 'none', 'required' or a named function", param="tool_choice"
    )


# -- Anthropic response -> OpenAI response -----------------------------------------------------


def anthropic_to_openai_response(
    message: Mapping[str, Any], created: int | None = None
) -> dict[str, Any]:
    """An Anthropic ``message`` as an OpenAI ``chat.completion``."""
    texts: list[str] = []
    thinking: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "thinking":
            thinking.append(block.get("thinking", ""))
        elif kind == "tool_use":
            tool_calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
    out_message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not tool_calls else None,
        "refusal": None,
    }
    if thinking:
        out_message["reasoning_content"] = "".join(thinking)
    if tool_calls:
        out_message["tool_calls"] = tool_calls
    stop = message.get("stop_reason")
    return {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": message.get("model"),
        "choices": [
            {
                "index": 0,
                "message": out_message,
                "finish_reason": FINISH_REASONS.get(stop, "stop") if stop else None,
                "logprobs": None,
            }
        ],
        "usage": anthropic_usage_to_openai(message.get("usage") or {}),
    }


# -- Anthropic stream -> OpenAI chunks ---------------------------------------------------------


class AnthropicStreamError(Exception):
    """An ``error`` event in an Anthropic stream."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


class AnthropicToOpenAIStream:
    """Turns Anthropic stream events (parsed ``data`` objects) into OpenAI chunk dicts.

    Every chunk has the id and ``created`` of ``message_start``; the first carries the role;
    a tool call's first chunk carries its ``index`` (0, 1, ... among tool calls), id and name,
    later ones the argument fragments in order. ``usage`` (OpenAI-shaped) and
    ``finish_reason`` are known once ``message_delta`` arrived; ``done`` once ``message_stop``.
    An ``error`` event raises :class:`AnthropicStreamError`. Work per event is constant.
    """

    def __init__(self, include_usage: bool = False, created: int | None = None) -> None:
        self.include_usage = include_usage
        self.created = created
        self.id = ""
        self.model = ""
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.done = False
        self._raw_usage: dict[str, Any] = {}
        self._tools: dict[int, int] = {}  # Anthropic block index -> OpenAI tool-call index

    def feed(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        if kind == "content_block_delta":
            return self._delta(event)
        if kind == "message_start":
            message = event.get("message") or {}
            self.id = message.get("id") or ""
            self.model = message.get("model") or ""
            if self.created is None:
                self.created = int(time.time())
            self._raw_usage = dict(message.get("usage") or {})
            self.usage = anthropic_usage_to_openai(self._raw_usage)
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self._tools[event.get("index", 0)] = len(self._tools)
                call = {
                    "index": index,
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""},
                }
                return [self._chunk({"tool_calls": [call]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "message_delta":
            stop = (event.get("delta") or {}).get("stop_reason")
            if stop:
                self.finish_reason = FINISH_REASONS.get(stop, "stop")
            # message_delta usage is cumulative: it replaces what message_start said.
            self._raw_usage.update(
                {k: v for k, v in (event.get("usage") or {}).items() if v is not None}
            )
            self.usage = anthropic_usage_to_openai(self._raw_usage)
            return [self._chunk({}, self.finish_reason)] if stop else []
        if kind == "message_stop":
            self.done = True
            if self.include_usage and self.usage is not None:
                return [{**self._base(), "choices": [], "usage": self.usage}]
            return []
        if kind == "error":
            error = event.get("error") or {}
            raise AnthropicStreamError(
                str(error.get("type") or "api_error"),
                str(error.get("message") or "the upstream stream failed"),
            )
        return []  # ping, content_block_stop, and event types added later

    def _delta(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        delta = event.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            return [self._chunk({"content": delta.get("text", "")})]
        if kind == "input_json_delta":
            part = delta.get("partial_json") or ""
            index = self._tools.get(event.get("index", 0))
            if not part or index is None:
                return []
            return [
                self._chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
            ]
        if kind == "thinking_delta":
            return [self._chunk({"reasoning_content": delta.get("thinking", "")})]
        return []  # signature_delta, citations_delta

    def _base(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            **self._base(),
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }


class AnthropicSSEToOpenAI:
    """Anthropic SSE bytes, cut anywhere, in; OpenAI SSE events (``data: {chunk}``) out.

    :meth:`feed` keeps an incomplete event until its end arrives, so a tool call's JSON split
    across network reads still reaches the client whole and in order; a ``ping`` becomes an SSE
    comment that keeps idle connections open. Raises :class:`AnthropicStreamError` on an
    ``error`` event and ``orjson.JSONDecodeError`` on an event that is not JSON.
    """

    def __init__(self, include_usage: bool = False, created: int | None = None) -> None:
        self.splitter = EventSplitter()
        self.translator = AnthropicToOpenAIStream(include_usage, created)

    def feed(self, data: bytes) -> bytes:
        events = self.splitter.feed(data)
        if not events:
            return b""
        out: list[bytes] = []
        for event in iter_sse_data(events):
            if event.get("type") == "ping":
                out.append(b": ping\n\n")
                continue
            out.extend(sse_event(chunk) for chunk in self.translator.feed(event))
        return b"".join(out)


# -- Anthropic request -> OpenAI request (inbound) ---------------------------------------------


def anthropic_to_openai_request(body: Mapping[str, Any], lenient: bool = False) -> dict[str, Any]:
    """An Anthropic Messages body as an OpenAI Chat Completions body (the gateway's canonical
    form). ``tool_result`` blocks become ``role: tool`` messages placed before the rest of
    their user turn; ``tool_use`` blocks become ``tool_calls``; images become ``image_url``
    parts (base64 as data URLs). Streams always ask for usage, which ``message_delta`` needs.

    Blocks and tools with no OpenAI form (server tools, URL documents, new block types) raise
    :class:`InvalidRequest`; with ``lenient`` they are left out instead (for a request that
    may still pass through to an Anthropic target untranslated). A malformed request raises
    either way.
    """
    messages: list[dict[str, Any]] = []
    system = _system_text(body.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise InvalidRequest(
            "messages: a non-empty array of messages is required", param="messages"
        )
    for i, message in enumerate(raw_messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant", "system"):
            raise InvalidRequest(
                f"messages.{i}.role must be 'user' or 'assistant'", param=f"messages.{i}.role"
            )
        if role == "system":  # a mid-conversation system message (a beta Claude Code uses)
            text = _system_text(message.get("content"))
            if text:
                messages.append({"role": "system", "content": text})
        elif role == "user":
            messages.extend(_inbound_user(message.get("content"), i, lenient))
        else:
            messages.append(_inbound_assistant(message.get("content"), i))
    out: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    if isinstance(body.get("max_tokens"), int):
        out["max_tokens"] = body["max_tokens"]
    if body.get("stop_sequences"):
        out["stop"] = body["stop_sequences"]
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        translated = [_inbound_tool(tool, j, lenient) for j, tool in enumerate(tools)]
        if any(translated):
            out["tools"] = [tool for tool in translated if tool is not None]
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and out.get("tools"):
        kind = choice.get("type")
        if kind == "tool":
            out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        else:
            out["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}.get(
                str(kind), "auto"
            )
        if choice.get("disable_parallel_tool_use") is True:
            out["parallel_tool_calls"] = False
    metadata = body.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(user_id, str) and 0 < len(user_id) <= MAX_USER_LENGTH:
        out["user"] = user_id
    if body.get("stream") is True:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return "\n\n".join(
            b.get("text", "") for b in system if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def _untranslatable(lenient: bool, message: str, param: str) -> None:
    if not lenient:
        raise InvalidRequest(message, param=param)


def _inbound_user(content: Any, i: int, lenient: bool = False) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise InvalidRequest(
            f"messages.{i}.content must be a string or an array of blocks",
            param=f"messages.{i}.content",
        )
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_result":
            result = block.get("content")
            tools.append(
                {
                    "role": "tool",
                    "tool_call_id": block.get("tool_use_id"),
                    "content": _tool_result_text(result),
                }
            )
            # OpenAI tool messages hold text only: a result's images (a screenshot, a file
            # read) follow in the user message after the tool messages.
            for item in result if isinstance(result, list) else ():
                url = (
                    _image_url(item)
                    if isinstance(item, dict) and item.get("type") == "image"
                    else None
                )
                if url is not None:
                    parts.append({"type": "image_url", "image_url": {"url": url}})
        elif kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            url = _image_url(block)
            if url is None:
                _untranslatable(
                    lenient,
                    f"messages.{i}.content.{j}: image source must be base64 or url",
                    f"messages.{i}.content.{j}",
                )
                continue
            parts.append({"type": "image_url", "image_url": {"url": url}})
        elif kind == "document":
            source = block.get("source") or {}
            if source.get("type") == "base64":
                parts.append(
                    {
                        "type": "file",
                        "file": {
                            "file_data": f"data:{source.get('media_type')};base64,{source.get('data')}"
                        },
                    }
                )
            elif source.get("type") == "text":
                parts.append({"type": "text", "text": source.get("data", "")})
            else:
                _untranslatable(
                    lenient,
                    f"messages.{i}.content.{j}: only base64 and text documents can go to "
                    "this model",
                    f"messages.{i}.content.{j}",
                )
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            _untranslatable(
                lenient,
                f"messages.{i}.content.{j}: block type {kind!r} cannot go to this model",
                f"messages.{i}.content.{j}",
            )
    out = tools
    if parts:
        only_text = all(p["type"] == "text" for p in parts)
        out.append(
            {
                "role": "user",
                "content": "".join(p["text"] for p in parts)
                if only_text and len(parts) == 1
                else parts,
            }
        )
    return out


def _image_url(block: Mapping[str, Any]) -> str | None:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        return f"data:{source.get('media_type')};base64,{source.get('data')}"
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        return str(source["url"])
    return None


def _tool_result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def _inbound_assistant(content: Any, i: int) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise InvalidRequest(
            f"messages.{i}.content must be a string or an array of blocks",
            param=f"messages.{i}.content",
        )
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
    out: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        out["tool_calls"] = calls
    return out


def _inbound_tool(tool: Any, j: int, lenient: bool = False) -> dict[str, Any] | None:
    if (
        not isinstance(tool, dict)
        or tool.get("type", "custom") != "custom"
        or not isinstance(tool.get("name"), str)
    ):
        kind = tool.get("type") if isinstance(tool, dict) else None
        _untranslatable(
            lenient,
            f"tools.{j}: server tool {kind!r} is only served by Anthropic models; route this "
            "request to one",
            f"tools.{j}",
        )
        return None
    fn: dict[str, Any] = {"name": tool["name"]}
    if tool.get("description"):
        fn["description"] = tool["description"]
    fn["parameters"] = tool.get("input_schema") or {"type": "object", "properties": {}}
    return {"type": "function", "function": fn}


# -- OpenAI response -> Anthropic response (inbound) -------------------------------------------


def openai_to_anthropic_response(
    body: Mapping[str, Any], model: str, message_id: str
) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` as an Anthropic ``message`` (first choice)."""
    choices = body.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    text = message.get("content")
    if isinstance(text, list):
        text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
    if text:
        content.append({"type": "text", "text": text})
    refusal = message.get("refusal")
    if refusal:
        content.append({"type": "text", "text": refusal})
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        arguments = fn.get("arguments")
        parsed = loads_object(arguments)
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or message_id + "_tool",
                "name": fn.get("name"),
                "input": parsed if parsed is not None else {"_raw": arguments},
            }
        )
    finish = choice.get("finish_reason")
    stop = "refusal" if refusal else STOP_REASONS.get(finish or "stop", "end_turn")
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": openai_usage_to_anthropic(body.get("usage")),
    }


# -- OpenAI chunks -> Anthropic stream (inbound) -----------------------------------------------


def sse(event: Mapping[str, Any]) -> bytes:
    """One Anthropic SSE event: ``event: <type>`` and its JSON ``data``."""
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


class OpenAIToAnthropicStream:
    """Turns OpenAI chunk dicts into Anthropic stream events (dicts; :func:`sse` frames them).

    ``message_start`` comes with the first chunk (input usage 0: OpenAI reports usage at the
    end); text and each tool call get their own content block, opened and closed in order;
    :meth:`finish` closes the open block and sends ``message_delta`` (stop reason, the whole
    usage) and ``message_stop``. Work per chunk is constant.
    """

    def __init__(self, model: str, message_id: str) -> None:
        self.model = model
        self.message_id = message_id
        self.started = False
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self._index = -1  # the open Anthropic block, -1 when none
        self._open: str | None = None  # "text" | "tool:<openai index>"

    def feed(self, chunk: Mapping[str, Any]) -> list[dict[str, Any]]:
        out = self._start()
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                if self._open != "text":
                    out.extend(self._open_block("text", {"type": "text", "text": ""}))
                out.append(self._delta({"type": "text_delta", "text": text}))
            for call in delta.get("tool_calls") or ():
                key = f"tool:{call.get('index', 0)}"
                fn = call.get("function") or {}
                if self._open != key:
                    block: dict[str, Any] = {
                        "type": "tool_use",
                        "id": call.get("id") or f"toolu_{key[5:]}",
                        "name": fn.get("name") or "",
                        "input": {},
                    }
                    out.extend(self._open_block(key, block))
                if fn.get("arguments"):
                    out.append(
                        self._delta({"type": "input_json_delta", "partial_json": fn["arguments"]})
                    )
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return out

    def finish(self) -> list[dict[str, Any]]:
        out = self._start()
        out.extend(self._close())
        stop = STOP_REASONS.get(self.finish_reason or "stop", "end_turn")
        out.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": openai_usage_to_anthropic(self.usage),
            }
        )
        out.append({"type": "message_stop"})
        return out

    def _start(self) -> list[dict[str, Any]]:
        if self.started:
            return []
        self.started = True
        return [
            {
                "type": "message_start",
                "message": {
                    "id": self.message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                },
            }
        ]

    def _open_block(self, key: str, block: dict[str, Any]) -> list[dict[str, Any]]:
        out = self._close()
        self._index += 1
        self._open = key
        out.append({"type": "content_block_start", "index": self._index, "content_block": block})
        return out

    def _close(self) -> list[dict[str, Any]]:
        if self._open is None:
            return []
        self._open = None
        return [{"type": "content_block_stop", "index": self._index}]

    def _delta(self, delta: dict[str, Any]) -> dict[str, Any]:
        return {"type": "content_block_delta", "index": self._index, "delta": delta}


# -- errors ------------------------------------------------------------------------------------

#: HTTP status -> Anthropic error type, for errors the gateway answers in Anthropic's shape.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_error_body(
    status: int, message: str, request_id: str | None = None
) -> dict[str, Any]:
    """Anthropic's error envelope for an error with ``status`` (and the ``request_id`` field
    Anthropic adds beside ``error``)."""
    error_type = ERROR_TYPES.get(status) or (
        "invalid_request_error" if status < 500 else "api_error"
    )
    body: dict[str, Any] = {"type": "error", "error": {"type": error_type, "message": message}}
    if request_id is not None:
        body["request_id"] = request_id
    return body


def iter_sse_data(events: bytes) -> Iterator[dict[str, Any]]:
    """The JSON ``data`` object of each whole SSE event in ``events`` (Anthropic events carry
    their type inside the data, so the ``event:`` line is not needed)."""
    for payload in iter_data(events):
        if payload == b"[DONE]":
            continue
        value = orjson.loads(payload)
        if isinstance(value, dict):
            yield value


# -- native pass-through: what a provider offers to serve Messages as they are ---------------


@attrs.define(slots=True)
class NativeMessage:
    """A non-streamed native answer: the upstream's bytes and the parsed message."""

    raw: bytes
    body: dict[str, Any]


@runtime_checkable
class NativeMessages(Protocol):
    """What a provider offers to serve Anthropic Messages requests natively. The inbound
    ``/v1/messages`` endpoint passes requests through to targets whose provider has these.

    ``messages_stream`` yields Anthropic's own SSE events, whole and untouched; an ``error``
    event it forwarded after the first byte is recorded in the stream's ``error``."""

    async def messages(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> NativeMessage: ...

    async def messages_stream(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ChunkStream: ...

    async def count_tokens(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> dict[str, Any]: ...


# -- models: GET /v1/models in Anthropic's shape -------------------------------------------------

#: Anthropic's page size when a client sends no ``limit``, and the largest it accepts.
MODELS_PAGE_DEFAULT = 20
MODELS_PAGE_MAX = 1000


def speaks_anthropic(headers: Mapping[str, str]) -> bool:
    """Whether a request comes from an Anthropic client: its SDKs always send
    ``anthropic-version``; OpenAI clients never do."""
    return "anthropic-version" in headers


def model_info(model_id: str, created: int) -> dict[str, Any]:
    """One ``ModelInfo`` (``type: "model"``, ``created_at`` in RFC 3339)."""
    return {
        "type": "model",
        "id": model_id,
        "display_name": model_id,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
        "lifecycle": "active",
    }


def models_page(model_ids: list[str], created: int, query: Mapping[str, str]) -> dict[str, Any]:
    """A page of ``GET /v1/models`` as Anthropic answers it (``data``, ``has_more``,
    ``first_id``, ``last_id``), honouring ``limit``, ``after_id`` and ``before_id``. An id the
    list does not hold as a cursor, or a ``limit`` outside 1-1000, is a client error."""
    raw_limit = query.get("limit")
    limit = MODELS_PAGE_DEFAULT
    if raw_limit is not None:
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MODELS_PAGE_MAX:
            raise InvalidRequest(
                f"limit: must be an integer from 1 to {MODELS_PAGE_MAX}", param="limit"
            )
        limit = int(raw_limit)
    after, before = query.get("after_id"), query.get("before_id")
    for name, cursor in (("after_id", after), ("before_id", before)):
        if cursor is not None and cursor not in model_ids:
            raise InvalidRequest(f"{name}: no model '{cursor}' in this list", param=name)
    if before is not None:
        end = model_ids.index(before)
        start = max(0, end - limit)
        has_more = start > 0
    else:
        start = model_ids.index(after) + 1 if after is not None else 0
        end = min(len(model_ids), start + limit)
        has_more = end < len(model_ids)
    ids = model_ids[start:end]
    return {
        "data": [model_info(model_id, created) for model_id in ids],
        "has_more": has_more,
        "first_id": ids[0] if ids else None,
        "last_id": ids[-1] if ids else None,
    }


# -- checking an inbound Messages request ------------------------------------------------------

_NUMBERS = ("temperature", "top_p")


def _bad(path: str, expected: str) -> InvalidRequest:
    return InvalidRequest(f"{path}: must be {expected}", param=path)


def validate_messages_request(body: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidRequest` (param = the field path, Anthropic's dotted style:
    ``messages.2.content.0.text``) when a field the gateway reads or translates has not the
    type Anthropic's API gives it. Types only; unknown fields and block types pass (to an
    Anthropic target untouched; a translation refuses what it cannot carry)."""
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        _blocks(system, "system", text_only=True)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(
            "messages: a non-empty array of messages is required", param="messages"
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _bad(f"messages.{i}", "an object with role and content")
        if message.get("role") not in ("user", "assistant", "system"):
            raise _bad(f"messages.{i}.role", "'user' or 'assistant'")
        content = message.get("content")
        if not isinstance(content, str):
            _blocks(content, f"messages.{i}.content")
    for name in _NUMBERS:
        value = body.get(name)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise _bad(name, "a number")
    top_k = body.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool)):
        raise _bad("top_k", "an integer")
    stops = body.get("stop_sequences")
    if stops is not None and (
        not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)
    ):
        raise _bad("stop_sequences", "an array of strings")
    _messages_tools(body.get("tools"))
    choice = body.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict) or not isinstance(choice.get("type"), str):
            raise _bad("tool_choice", "an object with a type")
        if choice["type"] == "tool" and not isinstance(choice.get("name"), str):
            raise _bad("tool_choice.name", "a string")
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise _bad("metadata", "an object")
        user_id = metadata.get("user_id")
        if user_id is not None and not isinstance(user_id, str):
            raise _bad("metadata.user_id", "a string")


def _blocks(content: Any, path: str, text_only: bool = False) -> None:
    if not isinstance(content, list):
        raise _bad(path, "a string or an array of content blocks")
    for j, block in enumerate(content):
        where = f"{path}.{j}"
        if not isinstance(block, dict):
            raise _bad(where, "an object with a type")
        kind = block.get("type")
        if not isinstance(kind, str):
            raise _bad(f"{where}.type", "a string")
        if text_only and kind != "text":
            raise _bad(f"{where}.type", "'text'")
        if kind == "text":
            if not isinstance(block.get("text"), str):
                raise _bad(f"{where}.text", "a string")
        elif kind in ("image", "document"):
            source = block.get("source")
            if not isinstance(source, dict) or not isinstance(source.get("type"), str):
                raise _bad(f"{where}.source", "an object with a type")
            for key in ("media_type", "data", "url"):
                value = source.get(key)
                if value is not None and not isinstance(value, str):
                    raise _bad(f"{where}.source.{key}", "a string")
        elif kind == "tool_use":
            for key in ("id", "name"):
                if not isinstance(block.get(key), str):
                    raise _bad(f"{where}.{key}", "a string")
            if not isinstance(block.get("input"), dict):
                raise _bad(f"{where}.input", "an object")
        elif kind == "tool_result":
            if not isinstance(block.get("tool_use_id"), str):
                raise _bad(f"{where}.tool_use_id", "a string")
            result = block.get("content")
            if result is not None and not isinstance(result, str):
                _blocks(result, f"{where}.content")
        elif kind == "thinking" and not isinstance(block.get("thinking"), str):
            raise _bad(f"{where}.thinking", "a string")


def _messages_tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise _bad("tools", "an array of tools")
    for j, tool in enumerate(tools):
        where = f"tools.{j}"
        if not isinstance(tool, dict):
            raise _bad(where, "an object")
        if tool.get("type", "custom") not in ("custom", None):
            continue  # a server tool: the translation refuses it for other targets
        if not isinstance(tool.get("name"), str):
            raise _bad(f"{where}.name", "a string")
        description = tool.get("description")
        if description is not None and not isinstance(description, str):
            raise _bad(f"{where}.description", "a string")
        schema = tool.get("input_schema")
        if schema is not None and not isinstance(schema, dict):
            raise _bad(f"{where}.input_schema", "an object (a JSON Schema)")
