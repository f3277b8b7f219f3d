"""OpenAI Chat Completions, the canonical request form: what a body must look like before the
gateway reads, routes or translates it.

:func:`validate_chat_request` checks the fields the gateway reads or translates, with the
types OpenAI's published schema gives them, and raises :class:`InvalidRequest` naming the
field path and what is expected (``messages[2].tool_calls[0].function.arguments must be a
string``), as OpenAI answers such a body with a 400. It checks types, not values OpenAI
might later refuse (model limits, schema contents); unknown fields, unknown content part
types and ``null`` for optional fields pass, so a same-format upstream sees them untouched.
It walks the body once with no allocation beyond the error it raises.

:func:`refuse_untranslatable` is for translations to another API: a field the target cannot
honour is refused, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from plugway.errors import InvalidRequest

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
TOOL_CHOICES = frozenset({"none", "auto", "required"})
RESPONSE_FORMATS = frozenset({"text", "json_object", "json_schema"})

#: Top-level fields and the type each must have when present and not null.
_NUMBERS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
_INTEGERS = ("n", "max_tokens", "max_completion_tokens", "seed", "top_logprobs")
_BOOLEANS = ("logprobs", "parallel_tool_calls", "store")
_STRINGS = ("user", "reasoning_effort", "service_tier", "prompt_cache_key", "safety_identifier")
_OBJECTS = ("stream_options", "logit_bias", "metadata", "audio", "prediction")


def _fail(path: str, expected: str) -> InvalidRequest:
    return InvalidRequest(f"{path} must be {expected}", param=path)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_chat_request(body: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidRequest` (param = the field path) when a field the gateway reads
    or translates does not have the type OpenAI's schema gives it. ``model`` and ``stream``
    are checked by the door's body reader."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty array of messages", param="messages")
    for i, message in enumerate(messages):
        if type(message) is dict:
            # The common shapes in a few lookups, with no call: a plain text message, a tool
            # result; anything else gets the full check.
            role = message.get("role")
            content = message.get("content")
            if type(content) is str and type(role) is str:
                size = len(message)
                if size == 2 and role in _PLAIN_ROLES:
                    continue
                if size == 3 and role == "tool" and type(message.get("tool_call_id")) is str:
                    continue
        _message(message, i)
    for name in _NUMBERS:
        value = body.get(name)
        if value is not None and not _is_number(value):
            raise _fail(name, "a number")
    for name in _INTEGERS:
        value = body.get(name)
        if value is not None and not _is_int(value):
            raise _fail(name, "an integer")
    n = body.get("n")
    if n is not None and n < 1:
        raise _fail("n", "an integer of at least 1")
    for name in _BOOLEANS:
        value = body.get(name)
        if value is not None and not isinstance(value, bool):
            raise _fail(name, "true or false")
    for name in _STRINGS:
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise _fail(name, "a string")
    for name in _OBJECTS:
        value = body.get(name)
        if value is not None and not isinstance(value, dict):
            raise _fail(name, "an object")
    _stop(body.get("stop"))
    options = body.get("stream_options")
    if options is not None:
        usage = options.get("include_usage")
        if usage is not None and not isinstance(usage, bool):
            raise _fail("stream_options.include_usage", "true or false")
    bias = body.get("logit_bias")
    if bias:
        for token, weight in bias.items():
            if not _is_number(weight):
                raise _fail(f"logit_bias.{token}", "a number")
    modalities = body.get("modalities")
    if modalities is not None and (
        not isinstance(modalities, list) or not all(isinstance(m, str) for m in modalities)
    ):
        raise _fail("modalities", "an array of strings")
    _tools(body.get("tools"))
    _tool_choice(body.get("tool_choice"))
    _response_format(body.get("response_format"))


def _stop(stop: Any) -> None:
    if stop is None or isinstance(stop, str):
        return
    if not isinstance(stop, list):
        raise _fail("stop", "a string or an array of strings")
    for j, item in enumerate(stop):
        if not isinstance(item, str):
            raise _fail(f"stop[{j}]", "a string")


_PLAIN_ROLES = frozenset({"system", "developer", "user"})


def _message(message: Any, i: int) -> None:
    # Field paths are only built for an error: most messages are checked in a few lookups.
    if not isinstance(message, dict):
        raise _fail(f"messages[{i}]", "an object with a role")
    role = message.get("role")
    content = message.get("content")
    if type(content) is str and type(role) is str and role in _PLAIN_ROLES and len(message) == 2:
        return  # the common case: {"role": "user", "content": "..."}
    if not isinstance(role, str) or role not in ROLES:
        raise _fail(
            f"messages[{i}].role", "one of 'system', 'developer', 'user', 'assistant', 'tool'"
        )
    name = message.get("name")
    if name is not None and not isinstance(name, str):
        raise _fail(f"messages[{i}].name", "a string")
    if role == "assistant":
        if content is not None and not isinstance(content, str):
            _content(content, i)
        calls = message.get("tool_calls")
        if calls is not None:
            _tool_calls(calls, i)
        refusal = message.get("refusal")
        if refusal is not None and not isinstance(refusal, str):
            raise _fail(f"messages[{i}].refusal", "a string")
        return
    if role == "function":
        if content is not None and not isinstance(content, str):
            raise _fail(f"messages[{i}].content", "a string")
        return
    if content is None:
        raise InvalidRequest(
            f"messages[{i}].content is required for a {role} message",
            param=f"messages[{i}].content",
        )
    if not isinstance(content, str):
        _content(content, i)
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise _fail(f"messages[{i}].tool_call_id", "a string (the id of the tool call answered)")


def _content(content: Any, i: int) -> None:
    if not isinstance(content, list):
        raise _fail(f"messages[{i}].content", "a string or an array of content parts")
    for j, part in enumerate(content):
        if type(part) is dict and part.get("type") == "text" and type(part.get("text")) is str:
            continue  # the common case
        _part(part, f"messages[{i}].content[{j}]")


def _part(part: Any, where: str) -> None:
    if not isinstance(part, dict):
        raise _fail(where, "an object with a type")
    kind = part.get("type")
    if not isinstance(kind, str):
        raise _fail(f"{where}.type", "a string")
    if kind == "text":
        if not isinstance(part.get("text"), str):
            raise _fail(f"{where}.text", "a string")
    elif kind == "refusal":
        if not isinstance(part.get("refusal"), str):
            raise _fail(f"{where}.refusal", "a string")
    elif kind == "image_url":
        image = part.get("image_url")
        if not isinstance(image, dict):
            raise _fail(f"{where}.image_url", "an object with a url")
        if not isinstance(image.get("url"), str):
            raise _fail(f"{where}.image_url.url", "a string")
        detail = image.get("detail")
        if detail is not None and not isinstance(detail, str):
            raise _fail(f"{where}.image_url.detail", "a string")
    elif kind == "input_audio":
        audio = part.get("input_audio")
        if not isinstance(audio, dict):
            raise _fail(f"{where}.input_audio", "an object with data and format")
        for key in ("data", "format"):
            if not isinstance(audio.get(key), str):
                raise _fail(f"{where}.input_audio.{key}", "a string")
    elif kind == "file":
        file = part.get("file")
        if not isinstance(file, dict):
            raise _fail(f"{where}.file", "an object")
        for key in ("file_data", "file_id", "filename"):
            value = file.get(key)
            if value is not None and not isinstance(value, str):
                raise _fail(f"{where}.file.{key}", "a string")


def _tool_calls(calls: Any, i: int) -> None:
    if not isinstance(calls, list):
        raise _fail(f"messages[{i}].tool_calls", "an array of tool calls")
    for j, call in enumerate(calls):
        if type(call) is dict:
            function = call.get("function")
            if (
                type(function) is dict
                and type(call.get("id")) is str
                and call.get("type", "function") == "function"
                and type(function.get("name")) is str
                and type(function.get("arguments")) is str
            ):
                continue  # the common case
        _tool_call(call, f"messages[{i}].tool_calls[{j}]")


def _tool_call(call: Any, where: str) -> None:
    if not isinstance(call, dict):
        raise _fail(where, "an object")
    if not isinstance(call.get("id"), str):
        raise _fail(f"{where}.id", "a string")
    kind = call.get("type", "function")
    if kind == "custom":
        custom = call.get("custom")
        if not isinstance(custom, dict) or not isinstance(custom.get("name"), str):
            raise _fail(f"{where}.custom.name", "a string")
        return
    if kind != "function":
        raise _fail(f"{where}.type", "'function' or 'custom'")
    function = call.get("function")
    if not isinstance(function, dict):
        raise _fail(f"{where}.function", "an object with name and arguments")
    if not isinstance(function.get("name"), str):
        raise _fail(f"{where}.function.name", "a string")
    if not isinstance(function.get("arguments"), str):
        raise _fail(f"{where}.function.arguments", "a string")


def _tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise _fail("tools", "an array of tools")
    for j, tool in enumerate(tools):
        where = f"tools[{j}]"
        if not isinstance(tool, dict):
            raise _fail(where, "an object")
        kind = tool.get("type")
        if kind == "custom":
            custom = tool.get("custom")
            if not isinstance(custom, dict) or not isinstance(custom.get("name"), str):
                raise _fail(f"{where}.custom.name", "a string")
            continue
        if kind != "function":
            raise _fail(f"{where}.type", "'function' or 'custom'")
        function = tool.get("function")
        if not isinstance(function, dict):
            raise _fail(f"{where}.function", "an object with a name")
        if not isinstance(function.get("name"), str):
            raise _fail(f"{where}.function.name", "a string")
        description = function.get("description")
        if description is not None and not isinstance(description, str):
            raise _fail(f"{where}.function.description", "a string")
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise _fail(f"{where}.function.parameters", "an object (a JSON Schema)")
        strict = function.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise _fail(f"{where}.function.strict", "true or false")


def _tool_choice(choice: Any) -> None:
    if choice is None:
        return
    if isinstance(choice, str):
        if choice not in TOOL_CHOICES:
            raise _fail("tool_choice", "'none', 'auto', 'required' or a named tool")
        return
    if not isinstance(choice, dict):
        raise _fail("tool_choice", "'none', 'auto', 'required' or a named tool")
    kind = choice.get("type")
    if kind == "function":
        function = choice.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _fail("tool_choice.function.name", "a string")
    elif not isinstance(kind, str):
        raise _fail("tool_choice.type", "a string")


def _response_format(fmt: Any) -> None:
    if fmt is None:
        return
    if not isinstance(fmt, dict):
        raise _fail("response_format", "an object with a type")
    kind = fmt.get("type")
    if not isinstance(kind, str) or kind not in RESPONSE_FORMATS:
        raise _fail("response_format.type", "one of 'text', 'json_object', 'json_schema'")
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict):
            raise _fail("response_format.json_schema", "an object with a name and a schema")
        if not isinstance(spec.get("name"), str):
            raise _fail("response_format.json_schema.name", "a string")
        schema = spec.get("schema")
        if schema is not None and not isinstance(schema, dict):
            raise _fail("response_format.json_schema.schema", "an object (a JSON Schema)")
        strict = spec.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise _fail("response_format.json_schema.strict", "true or false")


def refuse_untranslatable(body: Mapping[str, Any], api: str, fields: Iterable[str]) -> None:
    """Refuse a request to a target of another ``api`` when it sets one of ``fields`` (to
    anything but ``null``, ``false``, ``0`` or empty), which that API cannot honour: the
    client must not get an answer to a different request than it sent."""
    for name in fields:
        value = body.get(name)
        if value is None or value is False or value == 0 or value in ("", [], {}):
            continue
        raise InvalidRequest(
            f"{name} cannot be translated for {api} models; leave it out, or route this "
            f"request to an OpenAI-format target",
            param=name,
        )
