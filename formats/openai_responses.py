"""Pure translation between the OpenAI Responses API and the gateway's canonical form (OpenAI
Chat Completions): requests in, answers and stream events out. No I/O; the ``/v1/responses``
endpoint (and its conversation store) builds on it.

Request (:func:`to_chat_request`):

- ``input``: a string (one user message) or a list of items. ``message`` items (``type`` may be
  left out, as the SDK's ``EasyInputMessage`` does) with roles ``user``, ``system``,
  ``developer`` (-> a ``system`` message) and ``assistant``; parts ``input_text``,
  ``input_image`` (``image_url``, ``detail``), ``input_file`` (``file_data`` as a
  ``data:<type>;base64,`` URL, ``filename``), and in assistant messages ``output_text`` and
  ``refusal``. ``function_call`` items become assistant ``tool_calls`` (merged into the
  assistant message just before them, as chat holds text and calls in one message);
  ``function_call_output`` items become ``tool`` messages (images and files in a list output
  follow in a user message: chat tool messages hold text only). ``reasoning`` items are dropped:
  their summaries and encrypted content carry nothing a chat target can read back.
- ``instructions`` -> a leading system message, then ``history`` (earlier turns), then ``input``.
- ``tools``: function tools -> chat's nested form (``strict`` only when given: chat targets
  would reject a non-strict schema marked strict). A ``namespace`` tool (Codex sends one on
  every request) is flattened: each function tool inside it becomes a chat function named
  ``{namespace}__{name}`` (:data:`NAMESPACE_SEPARATOR`; a flattened name that collides with
  another tool's is a 400), ``function_call`` input items carrying ``namespace`` are
  flattened the same way, and a call the model makes to a flattened name comes back as a
  ``function_call`` item with ``name`` and ``namespace`` split again (:func:`split_call_name`),
  streamed or not. Only a name that starts with a namespace the request declared is split. ``tool_choice`` (``auto``/``none``/
  ``required``, a function, ``allowed_tools`` of functions), ``parallel_tool_calls``.
- ``text.format`` (``text``, ``json_object``, ``json_schema``) -> ``response_format``;
  ``text.verbosity`` -> ``verbosity``; ``reasoning.effort`` -> ``reasoning_effort``;
  ``max_output_tokens`` -> ``max_completion_tokens``; ``temperature``, ``top_p``, ``user``,
  ``service_tier`` as they are; ``stream`` -> ``stream`` with ``stream_options.include_usage``;
  ``top_logprobs`` or ``include: ["message.output_text.logprobs"]`` -> ``logprobs: true``
  (and ``top_logprobs``), the answer's token log probabilities then filling
  ``output_text.logprobs`` and the text delta events.

Not put into the chat body, by decision:

- the endpoint's business (type-checked here, acted on there): ``store``,
  ``previous_response_id``, ``truncation``, ``background``, ``background_options``, and
  ``include`` but for its logprobs entry (the other entries ask for built-in tools' outputs
  and encrypted reasoning, which a translated answer never holds); ``metadata`` is the
  gateway's, echoed on the Response object and never sent upstream;
- harmless to drop (they tune OpenAI's caching and abuse monitoring, or features no
  translated request has; never the answer): ``prompt_cache_key``, ``prompt_cache_retention``,
  ``prompt_cache_options``, ``safety_identifier``, ``client_metadata``, ``stream_options``
  (obfuscation padding), ``max_tool_calls`` (it limits built-in tool calls, which never
  translate), ``image`` (image generation settings), ``reasoning.summary`` /
  ``generate_summary`` (a summary is given whenever the target returns reasoning text).

Refused with :class:`NativeOnly` (an :class:`InvalidRequest`, 400) because only a target with
the native Responses API serves them, so that the endpoint may pass such a request through
instead: built-in tools (``web_search``, ``file_search``, ``code_interpreter``, ``mcp``,
``custom``, a custom tool inside a ``namespace``, ...; code ``unsupported_tool``, and :func:`builtin_tools` lists
them), a ``tool_choice`` naming one, deferred function tools, ``input_image``/``input_file``
by ``file_id`` or ``file_url``, input items other than messages, function calls, their
outputs and reasoning (``item_reference``, ``web_search_call``, ...), ``prompt``,
``conversation``, ``context_management``, ``moderation``, ``access_programs``, and any field
this module does not know, unless it is null (code ``unknown_parameter``). A malformed request (a wrong type, a
missing required field) raises :class:`InvalidRequest` with ``param`` set to the field path,
e.g. ``input[1].content[0].text``; nothing else is ever raised for a client's body.

Answer (:func:`from_chat_response`, :class:`ChatToResponsesStream`): a ``reasoning`` item (its
``summary`` holds the chat answer's ``reasoning_content``/``reasoning``), a ``message`` item
(``output_text`` with ``annotations: []`` and a ``refusal`` part when the model refused; present
when there is text or a refusal or no tool call at all) and one ``function_call`` item per tool
call, in that order. ``finish_reason`` ``length``/``content_filter`` make the response
``incomplete`` (``incomplete_details.reason`` ``max_output_tokens``/``content_filter``) and mark
its last item ``incomplete``. Item ids derive from the response id, so one answer gives the
same ids streamed or not.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

import orjson
from plugway.errors import InvalidRequest
from plugway.formats.common import parse_data_url

#: Joins a namespace and a function name in the flattened chat tool name.
NAMESPACE_SEPARATOR = "__"


class NativeOnly(InvalidRequest):
    """A well-formed Responses request that only a target with the native Responses API can
    serve (a built-in tool, a stored file, an unknown field, ...). Answered as a 400 when no such
    target is at hand; the endpoint may pass the request through to one instead."""


#: Fields the translation reads and turns into chat fields.
TRANSLATED_FIELDS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "text",
        "reasoning",
        "max_output_tokens",
        "temperature",
        "top_p",
        "user",
        "service_tier",
        "stream",
    }
)
#: Fields the endpoint acts on (state, what to include, background); not sent to chat.
ENDPOINT_FIELDS = frozenset(
    {
        "store",
        "previous_response_id",
        "include",
        "truncation",
        "background",
        "background_options",
        "metadata",
    }
)
#: Fields dropped without harm (see the module docstring).
DROPPED_FIELDS = frozenset(
    {
        "prompt_cache_key",
        "prompt_cache_retention",
        "prompt_cache_options",
        "safety_identifier",
        "client_metadata",
        "stream_options",
        "max_tool_calls",
        "image",
    }
)
#: Fields only the native Responses API serves (refused when set).
NATIVE_FIELDS = frozenset(
    {"prompt", "conversation", "context_management", "moderation", "access_programs"}
)

MESSAGE_ROLES = ("user", "assistant", "system", "developer")
IMAGE_DETAILS = ("auto", "low", "high", "original")
#: chat ``finish_reason`` -> Responses ``incomplete_details.reason``.
INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}
#: ``error.code`` values the SDK's ``ResponseError`` accepts that a gateway may send.
ERROR_CODES = frozenset({"server_error", "rate_limit_exceeded", "invalid_prompt"})
MAX_TOP_LOGPROBS = 20
#: The ``include`` entry that asks for the output text's token log probabilities.
INCLUDE_LOGPROBS = "message.output_text.logprobs"
SERVICE_TIERS = frozenset({"auto", "default", "flex", "scale", "priority"})


# -- type checks -------------------------------------------------------------------------------


def _bad(message: str, param: str | None) -> NoReturn:
    raise InvalidRequest(message, param=param)


def _native(message: str, param: str, code: str | None = None) -> NoReturn:
    raise NativeOnly(
        f"{message}; it is served only by targets with the native Responses API",
        param=param,
        code=code,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _str_or_empty(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        _bad(f"{path} must be a string", path)
    return value


def _opt_str(value: Any, path: str) -> str | None:
    return None if value is None else _str(value, path)


def _obj(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        _bad(f"{path} must be an object", path)
    return value


def _opt_bool(value: Any, path: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        _bad(f"{path} must be a boolean", path)
    return value


def _choice(value: Any, path: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        names = ", ".join(repr(a) for a in allowed)
        _bad(f"{path} must be one of {names}", path)
    return str(value)


# -- request -> chat ---------------------------------------------------------------------------


#: Chat field paths (the canonical body's) and the Responses field each was made from.
_CHAT_TO_RESPONSES = (
    ("response_format.json_schema", "text.format"),
    ("response_format", "text.format"),
    ("max_completion_tokens", "max_output_tokens"),
    ("max_tokens", "max_output_tokens"),
    ("reasoning_effort", "reasoning.effort"),
    ("verbosity", "text.verbosity"),
)


def responses_param(param: str | None, leading: int = 0) -> str | None:
    """The Responses field a chat field path (an error's ``param`` raised while the canonical
    chat body was translated for a target) was made from, so the client is told of a field it
    sent: ``response_format.type`` -> ``text.format.type``, ``tools[0].function.name`` ->
    ``tools[0].name``, ``messages[i]...`` -> ``instructions`` for the ``leading`` messages
    made from it, else ``input`` (messages and input items do not pair one to one)."""
    if param is None:
        return None
    if param == "messages" or param.startswith(("messages[", "messages.")):
        index = param[len("messages[") :].split("]")[0] if param.startswith("messages[") else ""
        if index.isdigit() and int(index) < leading:
            return "instructions"
        return "input"
    if param.startswith("tools[") and ".function" in param:
        return param.replace(".function.", ".", 1).replace(".function", "", 1)
    for chat, responses in _CHAT_TO_RESPONSES:
        if param == chat or param.startswith((chat + ".", chat + "[")):
            return responses + param[len(chat) :]
    return param


def to_chat_request(
    body: Mapping[str, Any], history: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """A Responses request -> the canonical Chat Completions body. ``history`` is the chat
    messages of earlier turns (restored from ``previous_response_id``), placed after the
    system message made from ``instructions`` and before this request's input.

    Raises :class:`InvalidRequest` with ``param`` set to the field path for what is malformed,
    and its subclass :class:`NativeOnly` for what only the native Responses API serves."""
    if not isinstance(body, Mapping):
        _bad("the request body must be a JSON object", None)
    _check_fields(body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        _bad("model is required (a string)", "model")
    messages: list[dict[str, Any]] = []
    instructions = _opt_str(body.get("instructions"), "instructions")
    if instructions:
        messages.append({"role": "system", "content": instructions})
    messages.extend(dict(message) for message in history)
    messages.extend(_input_messages(body.get("input"), lenient=False))
    if not any(m.get("role") != "system" for m in messages):
        _bad("input is required: a string or a non-empty array of input items", "input")
    out: dict[str, Any] = {"model": model, "messages": messages}
    _tool_fields(body, out)
    _output_fields(body, out)
    if _opt_bool(body.get("stream"), "stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _tool_fields(body: Mapping[str, Any], out: dict[str, Any]) -> None:
    """``tools``, ``tool_choice`` and ``parallel_tool_calls`` (chat wants the last two only
    beside tools)."""
    tools = _tools(body.get("tools"))
    choice = _tool_choice(body.get("tool_choice"))
    parallel = _opt_bool(body.get("parallel_tool_calls"), "parallel_tool_calls")
    if tools:
        out["tools"] = tools
        if choice is not None:
            out["tool_choice"] = choice
        if parallel is not None:
            out["parallel_tool_calls"] = parallel


def _output_fields(body: Mapping[str, Any], out: dict[str, Any]) -> None:
    """``text``, ``reasoning`` and the sampling settings."""
    text = body.get("text")
    if text is not None:
        text = _obj(text, "text")
        response_format = _response_format(text.get("format"))
        if response_format is not None:
            out["response_format"] = response_format
        verbosity = text.get("verbosity")
        if verbosity is not None:
            out["verbosity"] = _choice(verbosity, "text.verbosity", ("low", "medium", "high"))

    reasoning = body.get("reasoning")
    if reasoning is not None:
        reasoning = _obj(reasoning, "reasoning")
        effort = _opt_str(reasoning.get("effort"), "reasoning.effort")
        _opt_str(reasoning.get("summary"), "reasoning.summary")
        _opt_str(reasoning.get("generate_summary"), "reasoning.generate_summary")
        if effort is not None:
            out["reasoning_effort"] = effort

    max_tokens = body.get("max_output_tokens")
    if max_tokens is not None:
        if not _is_int(max_tokens) or max_tokens < 1:
            _bad("max_output_tokens must be a positive integer", "max_output_tokens")
        out["max_completion_tokens"] = max_tokens
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is not None:
            if not _is_number(value):
                _bad(f"{key} must be a number", key)
            out[key] = value
    for key in ("user", "service_tier"):
        value = _opt_str(body.get(key), key)
        if value is not None:
            out[key] = value
    top = body.get("top_logprobs")
    include = body.get("include")
    if top or (isinstance(include, list) and INCLUDE_LOGPROBS in include):
        out["logprobs"] = True
        if top:
            out["top_logprobs"] = top


def _check_fields(body: Mapping[str, Any]) -> None:
    """Refuses fields only the native API serves and fields this module does not know;
    type-checks the endpoint's fields so a malformed one is a 400 whoever reads it."""
    for key, value in body.items():
        if key in TRANSLATED_FIELDS or key in DROPPED_FIELDS:
            continue
        if key in ENDPOINT_FIELDS:
            _check_endpoint_field(key, value)
        elif key in NATIVE_FIELDS:
            if value is not None and value not in ([], {}):
                _native(f"{key} cannot be translated for this model", key)
        elif key == "top_logprobs":
            if value is not None and (not _is_int(value) or not 0 <= value <= MAX_TOP_LOGPROBS):
                _bad(f"top_logprobs must be an integer from 0 to {MAX_TOP_LOGPROBS}", key)
        elif value is not None:  # an unknown field left null asks for nothing
            _native(
                f"{key} is not a parameter this gateway can translate",
                str(key),
                code="unknown_parameter",
            )


def _check_endpoint_field(key: str, value: Any) -> None:
    if value is None:
        return
    if key in ("store", "background"):
        _opt_bool(value, key)
    elif key == "previous_response_id":
        _str(value, key)
    elif key == "truncation":
        _choice(value, key, ("auto", "disabled"))
    elif key == "include":
        if not isinstance(value, list):
            _bad("include must be an array of strings", key)
        for i, entry in enumerate(value):
            _str(entry, f"include[{i}]")
    elif key == "metadata":
        for name, entry in _obj(value, key).items():
            _str(entry, f"metadata.{name}")
    elif key == "background_options":
        _obj(value, key)


def input_to_chat_messages(
    body: Mapping[str, Any], *, lenient: bool = False
) -> list[dict[str, Any]]:
    """This request's ``input`` as chat messages, for the history of the next turn
    (``instructions`` are not carried over, as OpenAI does). With ``lenient``, items only the
    native API serves are left out instead of raising :class:`NativeOnly` (for the history of
    a request that was passed through); a malformed input raises either way."""
    if not isinstance(body, Mapping):
        _bad("the request body must be a JSON object", None)
    return _input_messages(body.get("input"), lenient=lenient)


def _input_messages(value: Any, *, lenient: bool) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        _bad("input must be a string or an array of input items", "input")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        path = f"input[{i}]"
        try:
            _input_item(out, item, path)
        except NativeOnly:
            if not lenient:
                raise
    return out


def _item_type(item: Any, path: str) -> str:
    item = _obj(item, path)
    kind = item.get("type")
    if kind is None and "role" in item:
        return "message"
    return _str(kind, f"{path}.type")


def _input_item(out: list[dict[str, Any]], item: Any, path: str) -> None:
    kind = _item_type(item, path)
    if kind == "message":
        out.extend(_message(item, path))
    elif kind == "function_call":
        name = _str(item.get("name"), f"{path}.name")
        namespace = _opt_str(item.get("namespace"), f"{path}.namespace")
        call = {
            "id": _str(item.get("call_id"), f"{path}.call_id"),
            "type": "function",
            "function": {
                "name": name if namespace is None else flat_name(namespace, name),
                "arguments": _str(item.get("arguments"), f"{path}.arguments"),
            },
        }
        last = out[-1] if out else None
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(call)
        else:
            out.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        out.extend(_function_call_output(item, path))
    elif kind == "reasoning":
        return
    else:
        _native(f"{path}.type: input item type {kind!r} cannot be translated", f"{path}.type")


def _message(item: Mapping[str, Any], path: str) -> list[dict[str, Any]]:
    role = _choice(item.get("role"), f"{path}.role", MESSAGE_ROLES)
    content = item.get("content")
    if role == "assistant":
        return [_assistant_message(content, path)]
    if isinstance(content, str):
        return [{"role": "user" if role == "user" else "system", "content": content}]
    if not isinstance(content, list):
        _bad(f"{path}.content must be a string or an array of content parts", f"{path}.content")
    parts = [_input_part(part, f"{path}.content[{j}]") for j, part in enumerate(content)]
    if role == "user":
        return [{"role": "user", "content": parts}]
    for j, part in enumerate(parts):
        if part["type"] != "text":
            where = f"{path}.content[{j}]"
            _bad(f"{where}: a {role} message holds text only", where)
    return [{"role": "system", "content": parts}]


def _input_part(part: Any, path: str) -> dict[str, Any]:
    kind = _item_type(part, path)
    if kind == "input_text":
        return {"type": "text", "text": _str(part.get("text"), f"{path}.text")}
    if kind == "input_image":
        detail = part.get("detail")
        if detail is not None:
            _choice(detail, f"{path}.detail", IMAGE_DETAILS)
        url = part.get("image_url")
        if url is None:
            if part.get("file_id") is not None:
                where = f"{path}.file_id"
                _native(f"{where}: an image by file id cannot be translated", where)
            _bad(f"{path}.image_url is required (a URL or a data URL)", f"{path}.image_url")
        image: dict[str, Any] = {"url": _str(url, f"{path}.image_url")}
        if detail is not None:
            image["detail"] = detail
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        data = part.get("file_data")
        if data is None:
            for field in ("file_id", "file_url"):
                if part.get(field) is not None:
                    where = f"{path}.{field}"
                    _native(f"{where}: a file by {field[5:]} cannot be translated", where)
            _bad(f"{path}.file_data is required (a base64 data URL)", f"{path}.file_data")
        data = _str(data, f"{path}.file_data")
        if parse_data_url(data) is None:
            _bad(
                f"{path}.file_data must be a data URL (data:<type>;base64,<data>)",
                f"{path}.file_data",
            )
        file: dict[str, Any] = {"file_data": data}
        filename = _opt_str(part.get("filename"), f"{path}.filename")
        if filename is not None:
            file["filename"] = filename
        return {"type": "file", "file": file}
    _bad(f"{path}.type: content part type {kind!r} is not valid here", f"{path}.type")


def _assistant_message(content: Any, path: str) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        _bad(f"{path}.content must be a string or an array of content parts", f"{path}.content")
    texts: list[str] = []
    refusals: list[str] = []
    for j, part in enumerate(content):
        where = f"{path}.content[{j}]"
        kind = _item_type(part, where)
        if kind in ("output_text", "input_text"):
            texts.append(_str(part.get("text"), f"{where}.text"))
        elif kind == "refusal":
            refusals.append(_str(part.get("refusal"), f"{where}.refusal"))
        else:
            _bad(f"{where}.type: {kind!r} is not valid in an assistant message", f"{where}.type")
    out: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if refusals:
        out["refusal"] = "".join(refusals)
    return out


def _function_call_output(item: Mapping[str, Any], path: str) -> list[dict[str, Any]]:
    call_id = _str(item.get("call_id"), f"{path}.call_id")
    output = item.get("output")
    if isinstance(output, str):
        return [{"role": "tool", "tool_call_id": call_id, "content": output}]
    if not isinstance(output, list):
        _bad(f"{path}.output must be a string or an array of content parts", f"{path}.output")
    parts = [_input_part(part, f"{path}.output[{j}]") for j, part in enumerate(output)]
    text = "".join(p["text"] for p in parts if p["type"] == "text")
    out: list[dict[str, Any]] = [{"role": "tool", "tool_call_id": call_id, "content": text}]
    others = [p for p in parts if p["type"] != "text"]
    if others:  # chat tool messages hold text only: images and files follow as the user's
        out.append({"role": "user", "content": others})
    return out


def builtin_tools(body: Mapping[str, Any]) -> list[str]:
    """The types of the request's tools that are not function tools (``web_search``,
    ``mcp``, ...): only a target with the native Responses API serves them. Never raises."""
    tools = body.get("tools") if isinstance(body, Mapping) else None
    if not isinstance(tools, list):
        return []
    kinds = (tool.get("type") for tool in tools if isinstance(tool, Mapping))
    return [
        kind for kind in kinds if isinstance(kind, str) and kind not in ("function", "namespace")
    ]


def request_namespaces(request: Mapping[str, Any]) -> frozenset[str]:
    """The names of the request's ``namespace`` tools (those :func:`split_call_name` splits
    off again). Never raises."""
    tools = request.get("tools") if isinstance(request, Mapping) else None
    if not isinstance(tools, list):
        return frozenset()
    return frozenset(
        tool["name"]
        for tool in tools
        if isinstance(tool, Mapping)
        and tool.get("type") == "namespace"
        and isinstance(tool.get("name"), str)
    )


def flat_name(namespace: str, name: str) -> str:
    """The chat function name of ``name`` inside ``namespace``."""
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}"


def split_call_name(name: str, namespaces: frozenset[str]) -> tuple[str, str | None]:
    """A chat function name -> (name, namespace): the inverse of :func:`flat_name` for a
    name that starts with one of ``namespaces`` and the separator (the longest such namespace
    wins), else (``name``, None)."""
    best: str | None = None
    for namespace in namespaces:
        prefix = namespace + NAMESPACE_SEPARATOR
        longer = best is None or len(namespace) > len(best)
        if longer and name.startswith(prefix) and len(name) > len(prefix):
            best = namespace
    if best is None:
        return name, None
    return name[len(best) + len(NAMESPACE_SEPARATOR) :], best


def _tools(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        _bad("tools must be an array", "tools")
    out: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for j, tool in enumerate(value):
        path = f"tools[{j}]"
        kind = _item_type(tool, path)
        if kind == "namespace":
            namespace = _str(tool.get("name"), f"{path}.name")
            inner = tool.get("tools")
            if not isinstance(inner, list):
                _bad(f"{path}.tools must be an array", f"{path}.tools")
            for k, member in enumerate(inner):
                where = f"{path}.tools[{k}]"
                _function_tool(out, seen, member, where, namespace)
            continue
        if kind != "function":
            _native(
                f"{path}: the tool type {kind!r} cannot be translated", path, "unsupported_tool"
            )
        _function_tool(out, seen, tool, path, None)
    return out


def _function_tool(
    out: list[dict[str, Any]],
    seen: dict[str, str],
    tool: Any,
    path: str,
    namespace: str | None,
) -> None:
    """Appends one function tool (inside ``namespace`` when given, flattened) to ``out``;
    ``seen`` maps the chat names given so far to their paths, to refuse a collision."""
    kind = _item_type(tool, path)
    if kind != "function":
        _native(f"{path}: the tool type {kind!r} cannot be translated", path, "unsupported_tool")
    name = _str(tool.get("name"), f"{path}.name")
    if namespace is not None:
        name = flat_name(namespace, name)
    if name in seen:
        _bad(f"{path}: the tool name {name!r} is also given by {seen[name]}", f"{path}.name")
    seen[name] = path
    fn: dict[str, Any] = {"name": name}
    description = _opt_str(tool.get("description"), f"{path}.description")
    if description is not None:
        fn["description"] = description
    parameters = tool.get("parameters")
    if parameters is not None:
        fn["parameters"] = dict(_obj(parameters, f"{path}.parameters"))
    strict = _opt_bool(tool.get("strict"), f"{path}.strict")
    if strict is not None:
        fn["strict"] = strict
    if _opt_bool(tool.get("defer_loading"), f"{path}.defer_loading"):
        where = f"{path}.defer_loading"
        _native(f"{where}: deferred tools cannot be translated", where)
    out.append({"type": "function", "function": fn})


def _tool_choice(value: Any) -> str | dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return _choice(value, "tool_choice", ("auto", "none", "required"))
    if not isinstance(value, Mapping):
        _bad("tool_choice must be 'auto', 'none', 'required' or an object", "tool_choice")
    kind = _str(value.get("type"), "tool_choice.type")
    if kind == "function":
        name = _str(value.get("name"), "tool_choice.name")
        return {"type": "function", "function": {"name": name}}
    if kind == "allowed_tools":
        mode = _choice(value.get("mode"), "tool_choice.mode", ("auto", "required"))
        listed = value.get("tools")
        if not isinstance(listed, list):
            _bad("tool_choice.tools must be an array", "tool_choice.tools")
        allowed = []
        for j, tool in enumerate(listed):
            path = f"tool_choice.tools[{j}]"
            if _item_type(tool, path) != "function":
                _native(f"{path}: only function tools can be translated", path, "unsupported_tool")
            name = _str(tool.get("name"), f"{path}.name")
            allowed.append({"type": "function", "function": {"name": name}})
        return {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": allowed}}
    _native(
        f"tool_choice: the tool type {kind!r} cannot be translated",
        "tool_choice",
        "unsupported_tool",
    )


def _response_format(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    kind = _item_type(value, "text.format")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema: dict[str, Any] = {
            "name": _str(value.get("name"), "text.format.name"),
            "schema": dict(_obj(value.get("schema"), "text.format.schema")),
        }
        description = _opt_str(value.get("description"), "text.format.description")
        if description is not None:
            schema["description"] = description
        strict = _opt_bool(value.get("strict"), "text.format.strict")
        if strict is not None:
            schema["strict"] = strict
        return {"type": "json_schema", "json_schema": schema}
    _bad(
        "text.format.type must be one of 'text', 'json_object', 'json_schema'",
        "text.format.type",
    )


# -- usage -------------------------------------------------------------------------------------


def _count(value: Any) -> int:
    return value if _is_int(value) else 0


def _details(usage: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = usage.get(key)
    return value if isinstance(value, Mapping) else {}


def usage_from_chat(usage: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Chat usage -> Responses usage (``input_tokens``, ``output_tokens``, ``total_tokens``,
    cached and cache-written input tokens, reasoning output tokens). ``None`` stays ``None``."""
    if not isinstance(usage, Mapping):
        return None
    prompt = _count(usage.get("prompt_tokens"))
    completion = _count(usage.get("completion_tokens"))
    total = usage.get("total_tokens")
    prompt_details = _details(usage, "prompt_tokens_details")
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": _count(prompt_details.get("cached_tokens")),
            "cache_write_tokens": _count(prompt_details.get("cache_write_tokens")),
        },
        "output_tokens": completion,
        "output_tokens_details": {
            "reasoning_tokens": _count(
                _details(usage, "completion_tokens_details").get("reasoning_tokens")
            )
        },
        "total_tokens": total if _is_int(total) else prompt + completion,
    }


def usage_to_chat(usage: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Responses usage -> chat usage (for the cost and metrics of passed-through answers)."""
    if not isinstance(usage, Mapping):
        return None
    prompt = _count(usage.get("input_tokens"))
    completion = _count(usage.get("output_tokens"))
    total = usage.get("total_tokens")
    input_details = _details(usage, "input_tokens_details")
    prompt_details: dict[str, Any] = {"cached_tokens": _count(input_details.get("cached_tokens"))}
    if _count(input_details.get("cache_write_tokens")):
        prompt_details["cache_write_tokens"] = input_details["cache_write_tokens"]
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total if _is_int(total) else prompt + completion,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {
            "reasoning_tokens": _count(
                _details(usage, "output_tokens_details").get("reasoning_tokens")
            )
        },
    }


# -- answer -> Response ------------------------------------------------------------------------


def new_response_id() -> str:
    """A fresh Response id: ``resp_`` and 48 hex digits, the shape of OpenAI's."""
    return "resp_" + secrets.token_hex(24)


def _item_id(prefix: str, response_id: str, index: int) -> str:
    return f"{prefix}_{response_id.removeprefix('resp_')}_{index}"


def _status(finish_reason: Any) -> tuple[str, dict[str, Any] | None]:
    reason = INCOMPLETE_REASONS.get(finish_reason) if isinstance(finish_reason, str) else None
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def _text_part(text: str, logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}


def _token_logprob(entry: Any) -> dict[str, Any] | None:
    if not isinstance(entry, Mapping):
        return None
    token, logprob, raw = entry.get("token"), entry.get("logprob"), entry.get("bytes")
    if not isinstance(token, str) or not _is_number(logprob):
        return None
    if not isinstance(raw, list) or not all(_is_int(b) for b in raw):
        raw = list(token.encode())  # hosts may send null bytes; the Responses form needs them
    return {"token": token, "bytes": raw, "logprob": logprob}


def _logprobs(choice: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A chat choice's ``logprobs.content`` in the Responses ``output_text`` form."""
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, Mapping) else None
    out: list[dict[str, Any]] = []
    for entry in content if isinstance(content, list) else ():
        token = _token_logprob(entry)
        if token is None:
            continue
        tops = entry.get("top_logprobs")
        token["top_logprobs"] = [
            top for top in map(_token_logprob, tops if isinstance(tops, list) else ()) if top
        ]
        out.append(token)
    return out


def _event_logprobs(logprobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Log probabilities in the stream events' form (no ``bytes``)."""
    return [
        {
            "token": entry["token"],
            "logprob": entry["logprob"],
            "top_logprobs": [
                {"token": top["token"], "logprob": top["logprob"]} for top in entry["top_logprobs"]
            ],
        }
        for entry in logprobs
    ]


def _refusal_part(refusal: str) -> dict[str, Any]:
    return {"type": "refusal", "refusal": refusal}


def _message_item(item_id: str, content: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _reasoning_item(item_id: str, text: str | None) -> dict[str, Any]:
    summary = [] if text is None else [{"type": "summary_text", "text": text}]
    return {"id": item_id, "type": "reasoning", "summary": summary}


def _call_item(
    item_id: str,
    call_id: str,
    name: str,
    arguments: str,
    status: str,
    namespaces: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """A ``function_call`` item; a flattened ``name`` is split into name and ``namespace``."""
    name, namespace = split_call_name(name, namespaces) if namespaces else (name, None)
    item = {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }
    if namespace is not None:
        item["namespace"] = namespace
    return item


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # content given as parts
        return "".join(
            p["text"] for p in value if isinstance(p, Mapping) and isinstance(p.get("text"), str)
        )
    return ""


def _reasoning_text(message: Mapping[str, Any]) -> str:
    for key in ("reasoning_content", "reasoning"):
        value = message.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def from_chat_response(
    chat: Mapping[str, Any],
    *,
    response_id: str,
    request: Mapping[str, Any],
    created_at: int,
    model: str | None = None,
) -> dict[str, Any]:
    """A canonical chat completion answer (its first choice) -> a Response object, the shape
    the openai SDK's ``Response`` type parses, echoing ``request``'s settings. Its ``model`` is
    ``model`` when given, else the one the request asked for (as the ``/v1/messages`` door
    answers with the client's model name, not the upstream's)."""
    choices = chat.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    choice = choice if isinstance(choice, Mapping) else {}
    message = choice.get("message")
    message = message if isinstance(message, Mapping) else {}
    status, incomplete = _status(choice.get("finish_reason"))
    output: list[dict[str, Any]] = []
    reasoning = _reasoning_text(message)
    if reasoning:
        output.append(_reasoning_item(_item_id("rs", response_id, len(output)), reasoning))
    text = _text(message.get("content"))
    refusal = message.get("refusal") if isinstance(message.get("refusal"), str) else ""
    calls = (
        [c for c in message.get("tool_calls") or () if isinstance(c, Mapping)]
        if isinstance(message.get("tool_calls"), list)
        else []
    )
    if text or refusal or not calls:
        content = [_text_part(text, _logprobs(choice))] if text or not refusal else []
        if refusal:
            content.append(_refusal_part(refusal))
        output.append(
            _message_item(_item_id("msg", response_id, len(output)), content, "completed")
        )
    for call in calls:
        index = len(output)
        fn = call.get("function")
        fn = fn if isinstance(fn, Mapping) else {}
        call_id = call.get("id")
        output.append(
            _call_item(
                _item_id("fc", response_id, index),
                call_id
                if isinstance(call_id, str) and call_id
                else _item_id("call", response_id, index),
                _str_or_empty(fn.get("name")),
                _str_or_empty(fn.get("arguments")),
                "completed",
            )
        )
    namespaces = request_namespaces(request)
    for item in output:
        if item["type"] == "function_call" and namespaces:
            name, namespace = split_call_name(item["name"], namespaces)
            if namespace is not None:
                item["name"], item["namespace"] = name, namespace
    if incomplete is not None and output and "status" in output[-1]:
        output[-1]["status"] = "incomplete"
    return response_object(
        response_id=response_id,
        request=request,
        created_at=created_at,
        status=status,
        output=output,
        usage=usage_from_chat(chat.get("usage")),
        incomplete_details=incomplete,
        model=model,
    )


def response_object(
    *,
    response_id: str,
    request: Mapping[str, Any],
    created_at: int,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    incomplete_details: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """A Response object with ``output`` and the settings of ``request`` echoed the way the
    SDK's ``Response`` type wants them (defaults where the request left them out)."""

    def echo(key: str, check: Callable[[Any], bool], default: Any = None) -> Any:
        value = request.get(key)
        return value if check(value) else default

    requested_model = request.get("model")
    text = request.get("text")
    reasoning = request.get("reasoning")
    tier = request.get("service_tier")
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": echo("background", _is_bool, False),
        "error": error,
        "incomplete_details": incomplete_details,
        "instructions": echo("instructions", _is_str),
        "max_output_tokens": echo("max_output_tokens", _is_int),
        "max_tool_calls": echo("max_tool_calls", _is_int),
        "model": model or (requested_model if isinstance(requested_model, str) else ""),
        "output": output,
        "parallel_tool_calls": echo("parallel_tool_calls", _is_bool, True),
        "previous_response_id": echo("previous_response_id", _is_str),
        "reasoning": dict(reasoning)
        if isinstance(reasoning, Mapping)
        else {"effort": None, "summary": None},
        "service_tier": tier if tier in SERVICE_TIERS else None,
        "store": echo("store", _is_bool, True),
        "temperature": echo("temperature", _is_number),
        "text": dict(text) if isinstance(text, Mapping) else {"format": {"type": "text"}},
        "tool_choice": _echo_tool_choice(request.get("tool_choice")),
        "tools": _echo_tools(request.get("tools")),
        "top_p": echo("top_p", _is_number),
        "truncation": request.get("truncation")
        if request.get("truncation") in ("auto", "disabled")
        else "disabled",
        "usage": usage,
        "user": echo("user", _is_str),
        "metadata": dict(request["metadata"])
        if isinstance(request.get("metadata"), Mapping)
        else {},
    }


def _echo_tool_choice(value: Any) -> Any:
    if isinstance(value, (str, Mapping)):
        return value
    return "auto"


def _echo_tools(value: Any) -> list[Any]:
    if not isinstance(value, list):
        return []
    out: list[Any] = []
    for tool in value:
        if isinstance(tool, Mapping) and tool.get("type") == "function":
            out.append(
                {
                    "type": "function",
                    "name": tool.get("name"),
                    "description": tool.get("description"),
                    "parameters": tool.get("parameters"),
                    "strict": tool.get("strict"),
                }
            )
        else:
            out.append(tool)
    return out


# -- chat chunks -> Responses stream events ----------------------------------------------------


def sse(event: Mapping[str, Any]) -> bytes:
    """One Responses SSE event: ``event: <type>`` and its JSON ``data``."""
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


class _Item:
    """One output item of a stream. Its text arrives in pieces, joined once when it closes;
    ``final`` is the finished item dict (``None`` while open)."""

    __slots__ = (
        "call_id",
        "final",
        "index",
        "item_id",
        "kind",
        "logprobs",
        "name",
        "part_kind",
        "parts",
        "pieces",
    )

    def __init__(self, kind: str, item_id: str, index: int) -> None:
        self.kind = kind
        self.item_id = item_id
        self.index = index
        self.pieces: list[str] = []
        self.logprobs: list[dict[str, Any]] = []  # those of a message's open output_text part
        self.parts: list[dict[str, Any]] = []  # a message's finished content parts
        self.part_kind: str | None = None  # a message's open part: "output_text" | "refusal"
        self.call_id = ""
        self.name = ""
        self.final: dict[str, Any] | None = None


class ChatToResponsesStream:
    """Chat completion chunks -> Responses stream events (dicts; :func:`sse` frames them),
    each with a ``sequence_number`` counting from 0.

    :meth:`start` gives ``response.created`` and ``response.in_progress``; :meth:`feed` takes
    one parsed chat chunk and gives the events it makes (an item opens at its first delta:
    reasoning -> a ``reasoning`` item with summary events, text and refusals -> a ``message``
    item, each chat tool call ``index`` -> a ``function_call`` item); :meth:`finish` closes
    what is open (the ``.done`` events, ``response.output_item.done``) and gives
    ``response.completed``, or ``response.incomplete`` for ``finish_reason`` ``length``/
    ``content_filter``; :meth:`fail` gives ``response.failed`` (for an error after the first
    byte). Items follow one another as OpenAI sends them: whatever is open closes when the
    next item opens. Should arguments still arrive for a call already closed (no known chat
    host interleaves calls), the call takes them, is closed again at :meth:`finish` (a second
    ``output_item.done`` for its index, which the SDK accepts) and the final response holds
    them: nothing the upstream sent is lost.

    Work per chunk is constant: text is kept as pieces and joined once, at the item's end.
    ``response`` is the latest Response object (the final one once finished or failed);
    ``usage`` is the chat-shaped usage seen in the chunks, ``finish_reason`` the chat one.
    ``model`` is as for :func:`from_chat_response`.
    """

    def __init__(
        self,
        *,
        response_id: str,
        request: Mapping[str, Any],
        created_at: int,
        model: str | None = None,
    ) -> None:
        self.response_id = response_id
        self.request = request
        self.created_at = created_at
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.done = False
        self._model = model
        self._namespaces = request_namespaces(request)
        self._sequence = 0
        self._started = False
        self._items: list[_Item] = []
        self._message: _Item | None = None
        self._reasoning: _Item | None = None
        self._calls: dict[int, _Item] = {}
        self._open: list[_Item] = []  # items opened and not closed yet, in output order
        self.response: dict[str, Any] = self._snapshot("in_progress", [])

    # public ----------------------------------------------------------------------------------

    def start(self) -> list[dict[str, Any]]:
        """``response.created`` and ``response.in_progress`` (once; later calls give [])."""
        if self._started:
            return []
        self._started = True
        return [
            self._event("response.created", response=self.response),
            self._event("response.in_progress", response=self.response),
        ]

    def feed(self, chunk: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The events one parsed chat chunk makes (preceded by :meth:`start`'s if not sent)."""
        out = self.start()
        if self.done or not isinstance(chunk, Mapping):
            return out
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            self.usage = dict(usage)
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, Mapping):
                logprobs = _logprobs(choice) if choice.get("logprobs") else []
                out.extend(self._delta(delta, logprobs))
            finish = choice.get("finish_reason")
            if isinstance(finish, str) and finish:
                self.finish_reason = finish
        return out

    def finish(self, usage: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Closes every open item and ends the response: ``response.completed`` or
        ``response.incomplete``. ``usage`` (chat-shaped) overrides what the chunks carried."""
        out = self.start()
        if self.done:
            return out
        self.done = True
        if isinstance(usage, Mapping):
            self.usage = dict(usage)
        status, incomplete = _status(self.finish_reason)
        if not self._calls and not any(item.kind == "message" for item in self._items):
            out.extend(self._open_message())  # every answer has a message or a call
            out.extend(self._open_part(self._items[-1], "output_text"))
        last = self._items[-1]
        for item in sorted(self._open, key=lambda i: i.index):
            final_status = "incomplete" if incomplete and item is last else "completed"
            out.extend(self._close(item, final_status))
        self.response = self._snapshot(
            status,
            [item.final for item in self._items if item.final is not None],
            usage_from_chat(self.usage),
            incomplete,
        )
        kind = "response.completed" if status == "completed" else "response.incomplete"
        out.append(self._event(kind, response=self.response))
        return out

    def fail(self, message: str, code: str | None = None) -> list[dict[str, Any]]:
        """``response.failed`` with ``error`` (``code`` when the SDK knows it, else
        ``server_error``); the output so far is kept, unfinished items marked incomplete."""
        out = self.start()
        if self.done:
            return out
        self.done = True
        output = [item.final or self._partial(item) for item in self._items]
        error = {"code": code if code in ERROR_CODES else "server_error", "message": message}
        self.response = self._snapshot(
            "failed", output, usage_from_chat(self.usage), None, error=error
        )
        out.append(self._event("response.failed", response=self.response))
        return out

    # items -----------------------------------------------------------------------------------

    def _delta(
        self, delta: Mapping[str, Any], logprobs: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        reasoning = _reasoning_text(delta)
        if reasoning:
            out.extend(self._reasoning_delta(reasoning))
        for key, kind in (("content", "output_text"), ("refusal", "refusal")):
            text = delta.get(key)
            if isinstance(text, str) and text:
                out.extend(self._message_delta(kind, text, logprobs))
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            if isinstance(call, Mapping):
                out.extend(self._call_delta(call))
        return out

    def _new(self, kind: str, prefix: str) -> tuple[_Item, list[dict[str, Any]]]:
        """A new item after closing the open ones, and the events of their closing."""
        out: list[dict[str, Any]] = []
        for item in list(self._open):
            out.extend(self._close(item, "completed"))
        index = len(self._items)
        new = _Item(kind, _item_id(prefix, self.response_id, index), index)
        self._items.append(new)
        self._open.append(new)
        return new, out

    def _reasoning_delta(self, text: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        item = self._reasoning
        if item is None:
            item, out = self._new("reasoning", "rs")
            self._reasoning = item
            out.append(self._added(item, _reasoning_item(item.item_id, None)))
            out.append(
                self._event(
                    "response.reasoning_summary_part.added",
                    **self._where(item),
                    summary_index=0,
                    part={"type": "summary_text", "text": ""},
                )
            )
        item.pieces.append(text)
        out.append(
            self._event(
                "response.reasoning_summary_text.delta",
                **self._where(item),
                summary_index=0,
                delta=text,
            )
        )
        return out

    def _open_message(self) -> list[dict[str, Any]]:
        item, out = self._new("message", "msg")
        self._message = item
        out.append(self._added(item, _message_item(item.item_id, [], "in_progress")))
        return out

    def _open_part(self, item: _Item, kind: str) -> list[dict[str, Any]]:
        out = self._close_part(item)
        item.part_kind = kind
        part = _text_part("") if kind == "output_text" else _refusal_part("")
        out.append(
            self._event(
                "response.content_part.added",
                **self._where(item),
                content_index=len(item.parts),
                part=part,
            )
        )
        return out

    def _message_delta(
        self, kind: str, text: str, logprobs: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self._message is None:
            out.extend(self._open_message())
        item = self._message
        assert item is not None
        if item.part_kind != kind:
            out.extend(self._open_part(item, kind))
        item.pieces.append(text)
        where = {**self._where(item), "content_index": len(item.parts)}
        if kind == "output_text":
            item.logprobs.extend(logprobs)
            out.append(
                self._event(
                    "response.output_text.delta",
                    **where,
                    delta=text,
                    logprobs=_event_logprobs(logprobs),
                )
            )
        else:
            out.append(self._event("response.refusal.delta", **where, delta=text))
        return out

    def _call_delta(self, call: Mapping[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        raw_index = call.get("index")
        index = raw_index if isinstance(raw_index, int) else 0
        fn = call.get("function")
        fn = fn if isinstance(fn, Mapping) else {}
        name = _str_or_empty(fn.get("name"))
        item = self._calls.get(index)
        if item is None:
            item, out = self._new("function_call", "fc")
            self._calls[index] = item
            call_id = call.get("id")
            item.call_id = (
                call_id
                if isinstance(call_id, str) and call_id
                else _item_id("call", self.response_id, item.index)
            )
            item.name = name
            out.append(
                self._added(
                    item,
                    _call_item(
                        item.item_id, item.call_id, name, "", "in_progress", self._namespaces
                    ),
                )
            )
        else:
            if name and not item.name:
                item.name = name
            if item.final is not None:  # late arguments for a closed call: it takes them
                item.final = None
                self._open.append(item)
        arguments = fn.get("arguments")
        if isinstance(arguments, str) and arguments:
            item.pieces.append(arguments)
            out.append(
                self._event(
                    "response.function_call_arguments.delta", **self._where(item), delta=arguments
                )
            )
        return out

    def _close_part(self, item: _Item) -> list[dict[str, Any]]:
        kind = item.part_kind
        if kind is None:
            return []
        text = "".join(item.pieces)
        item.pieces = []
        item.part_kind = None
        where = {**self._where(item), "content_index": len(item.parts)}
        if kind == "output_text":
            part = _text_part(text, item.logprobs)
            done = self._event(
                "response.output_text.done",
                **where,
                text=text,
                logprobs=_event_logprobs(item.logprobs),
            )
            item.logprobs = []
        else:
            part = _refusal_part(text)
            done = self._event("response.refusal.done", **where, refusal=text)
        item.parts.append(part)
        return [done, self._event("response.content_part.done", **where, part=part)]

    def _close(self, item: _Item, status: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        self._open.remove(item)
        if item.kind == "message":
            out.extend(self._close_part(item))
            item.final = _message_item(item.item_id, item.parts, status)
            self._message = None
        elif item.kind == "reasoning":
            text = "".join(item.pieces)
            where = {**self._where(item), "summary_index": 0}
            part = {"type": "summary_text", "text": text}
            out.append(self._event("response.reasoning_summary_text.done", **where, text=text))
            out.append(self._event("response.reasoning_summary_part.done", **where, part=part))
            item.final = _reasoning_item(item.item_id, text)
            self._reasoning = None
        else:
            arguments = "".join(item.pieces)
            out.append(
                self._event(
                    "response.function_call_arguments.done",
                    **self._where(item),
                    arguments=arguments,
                )
            )
            item.final = _call_item(
                item.item_id, item.call_id, item.name, arguments, status, self._namespaces
            )
            item.pieces = [arguments]  # kept whole, in case late arguments reopen the call
        out.append(
            self._event("response.output_item.done", output_index=item.index, item=item.final)
        )
        return out

    def _partial(self, item: _Item) -> dict[str, Any]:
        """An unfinished item as it stands (for ``response.failed``)."""
        text = "".join(item.pieces)
        if item.kind == "message":
            parts = list(item.parts)
            if item.part_kind == "output_text":
                parts.append(_text_part(text, item.logprobs))
            elif item.part_kind == "refusal":
                parts.append(_refusal_part(text))
            return _message_item(item.item_id, parts, "incomplete")
        if item.kind == "reasoning":
            return _reasoning_item(item.item_id, text)
        return _call_item(
            item.item_id, item.call_id, item.name, text, "incomplete", self._namespaces
        )

    # events ----------------------------------------------------------------------------------

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def _added(self, item: _Item, shape: dict[str, Any]) -> dict[str, Any]:
        return self._event("response.output_item.added", output_index=item.index, item=shape)

    @staticmethod
    def _where(item: _Item) -> dict[str, Any]:
        return {"item_id": item.item_id, "output_index": item.index}

    def _snapshot(
        self,
        status: str,
        output: list[dict[str, Any]],
        usage: dict[str, Any] | None = None,
        incomplete: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return response_object(
            response_id=self.response_id,
            request=self.request,
            created_at=self.created_at,
            status=status,
            output=output,
            usage=usage,
            incomplete_details=incomplete,
            error=error,
            model=self._model,
        )


# -- state: input items and history ------------------------------------------------------------

_ITEM_PREFIXES = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
}


def input_items(body: Mapping[str, Any], *, response_id: str | None = None) -> list[dict[str, Any]]:
    """The request's ``input`` normalised to a list of items, each with an ``id`` (for
    ``GET /v1/responses/{id}/input_items``): a string becomes one user message; a message's
    string content becomes one ``input_text`` (``output_text`` for the assistant) part; a
    missing ``type``/``status`` is filled in. Ids are kept when given, else derived from
    ``response_id`` (random without one). Items that are not objects are left out."""
    raw = body.get("input") if isinstance(body, Mapping) else None
    items: list[Any] = [{"role": "user", "content": raw}] if isinstance(raw, str) else raw or []
    if not isinstance(items, list):
        return []
    base = (response_id or "resp_" + secrets.token_hex(12)).removeprefix("resp_")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            continue
        entry = dict(item)
        kind = entry.get("type")
        if kind is None and "role" in entry:
            kind = entry["type"] = "message"
        if kind == "message" and isinstance(entry.get("content"), str):
            text = entry["content"]
            entry["content"] = [
                _text_part(text)
                if entry.get("role") == "assistant"
                else {"type": "input_text", "text": text}
            ]
        if not isinstance(entry.get("id"), str):
            entry["id"] = f"{_ITEM_PREFIXES.get(str(kind), 'item')}_{base}_in{i}"
        if kind in ("message", "function_call", "function_call_output"):
            entry.setdefault("status", "completed")
        out.append(entry)
    return out


def output_to_chat_messages(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A Response's ``output`` as chat messages for the next turn's history: message text
    (and refusals) and function calls in one assistant message per run of items; reasoning and
    built-in tool items are left out (a chat target cannot read them back)."""
    output = response.get("output") if isinstance(response, Mapping) else None
    messages: list[dict[str, Any]] = []
    for item in output if isinstance(output, list) else ():
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type")
        if kind == "message":
            content = item.get("content")
            parts = (
                [p for p in content if isinstance(p, Mapping)] if isinstance(content, list) else []
            )
            text = "".join(
                p["text"]
                for p in parts
                if p.get("type") == "output_text" and isinstance(p.get("text"), str)
            )
            refusal = "".join(
                p["refusal"]
                for p in parts
                if p.get("type") == "refusal" and isinstance(p.get("refusal"), str)
            )
            message: dict[str, Any] = {
                "role": "assistant",
                "content": text if text or not refusal else None,
            }
            if refusal:
                message["refusal"] = refusal
            messages.append(message)
        elif kind == "function_call":
            name = str(item.get("name") or "")
            namespace = item.get("namespace")
            call = {
                "id": str(item.get("call_id") or item.get("id") or ""),
                "type": "function",
                "function": {
                    "name": flat_name(namespace, name) if isinstance(namespace, str) else name,
                    "arguments": str(item.get("arguments") or ""),
                },
            }
            last = messages[-1] if messages else None
            if last is not None:
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    return messages
