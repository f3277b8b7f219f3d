"""The pure OpenAI Responses <-> chat translation (``plugway.formats.openai_responses``): golden
fixtures in each direction, streams cut at every byte boundary, every output checked against
the openai SDK's own types and its ``responses.stream()`` accumulator, malformed bodies that
must be 400s naming the field, and the openai SDK itself reading the translation over a real
loopback server.

Golden fixtures live in ``tests/fixtures/responses/*.json`` as ``{"input", "expected", ...}``.
After an intended change, ``PLUGWAY_REGEN_FIXTURES=1 pytest tests/test_responses_format.py``
rewrites ``expected``; review the diff before committing it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import openai.types.chat as ct
import openai.types.responses as rt
import orjson
import pydantic
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from openai._types import omit
from openai.lib.streaming.responses import ResponseStreamState
from openai.types.responses import response_create_params as create_params
from plugway.errors import InvalidRequest
from plugway.formats.openai_responses import (
    ChatToResponsesStream,
    NativeOnly,
    builtin_tools,
    from_chat_response,
    input_items,
    input_to_chat_messages,
    new_response_id,
    output_to_chat_messages,
    sse,
    to_chat_request,
    usage_from_chat,
    usage_to_chat,
)
from plugway.sse import DONE, EventSplitter, iter_data, sse_event
from plugway.testing import CutStream, FakeOpenAI, FakeUpstream, Reply

FIXTURES = Path(__file__).parent / "fixtures" / "responses"
REGEN = os.environ.get("PLUGWAY_REGEN_FIXTURES") == "1"
EVENTS: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(rt.ResponseStreamEvent)
ITEMS: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(rt.ResponseItem)
CHAT_PARAMS: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ct.CompletionCreateParams)
CREATE_PARAMS: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(
    create_params.ResponseCreateParamsStreaming | create_params.ResponseCreateParamsNonStreaming
)


def _stream_events(fixture: dict[str, Any]) -> list[dict[str, Any]]:
    stream = ChatToResponsesStream(
        response_id=fixture["response_id"],
        request=fixture["request"],
        created_at=fixture["created_at"],
    )
    events = stream.start()
    for chunk in fixture["input"]:
        events.extend(stream.feed(chunk))
    return events + stream.finish()


def translate(name: str, fixture: dict[str, Any]) -> Any:
    data = fixture["input"]
    if name.startswith("request"):
        return to_chat_request(data, fixture["history"])
    if name.startswith("chat_response"):
        return from_chat_response(
            data,
            response_id=fixture["response_id"],
            request=fixture["request"],
            created_at=fixture["created_at"],
        )
    if name.startswith("chat_stream"):
        return _stream_events(fixture)
    if name == "input_items":
        return input_items(data, response_id=fixture["response_id"])
    raise AssertionError(name)


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_golden_translation(path: Path) -> None:
    fixture = json.loads(path.read_text())
    got = json.loads(orjson.dumps(translate(path.stem, fixture)))
    if REGEN:
        fixture["expected"] = got
        path.write_text(json.dumps(fixture, indent=1) + "\n")
    assert got == fixture["expected"]


def _fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


# -- the golden inputs and outputs are valid for the SDK types of their side --------------------


def test_fixtures_are_valid_sdk_shapes() -> None:
    for name in ("request_to_chat", "request_minimal_to_chat", "input_items"):
        CREATE_PARAMS.validate_python(_fixture(name)["input"])
    for name in ("request_to_chat", "request_minimal_to_chat"):
        CHAT_PARAMS.validate_python(_fixture(name)["expected"])
    for name in ("chat_response_to_response", "chat_response_incomplete"):
        ct.ChatCompletion.model_validate(_fixture(name)["input"])
    for chunk in _fixture("chat_stream_to_events")["input"]:
        ct.ChatCompletionChunk.model_validate(chunk)


def test_responses_parse_as_the_sdk_response() -> None:
    response = rt.Response.model_validate(_fixture("chat_response_to_response")["expected"])
    assert response.output_text == "Checking both cities."
    assert [item.type for item in response.output] == [
        "reasoning",
        "message",
        "function_call",
        "function_call",
    ]
    calls = [item for item in response.output if isinstance(item, rt.ResponseFunctionToolCall)]
    assert [(c.call_id, c.name, json.loads(c.arguments)) for c in calls] == [
        ("call_1", "weather", {"city": "Paris"}),
        ("call_2", "forecast", {"city": "Tokyo", "days": 3}),
    ]
    assert response.usage is not None
    assert response.usage.input_tokens_details.cached_tokens == 100
    assert response.usage.output_tokens_details.reasoning_tokens == 12
    assert response.status == "completed"
    cut = rt.Response.model_validate(_fixture("chat_response_incomplete")["expected"])
    assert cut.status == "incomplete"
    assert cut.incomplete_details is not None
    assert cut.incomplete_details.reason == "max_output_tokens"
    assert cut.output_text == "Once upon a time"
    for item in _fixture("input_items")["expected"]:
        ITEMS.validate_python(item)


def _sdk_final(events: list[dict[str, Any]], tools: Any = omit) -> Any:
    """Runs the events through the SDK's own ``responses.stream()`` accumulator and returns
    the final Response it hands the caller."""
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=tools, text_format=omit)
    final = None
    for raw in events:
        for event in state.handle_event(EVENTS.validate_python(raw)):
            if event.type in ("response.completed", "response.incomplete", "response.failed"):
                final = event.response
    assert final is not None
    return final


def _plain(value: Any) -> Any:
    """An SDK object as JSON, without the ``parsed`` fields the stream helper adds."""
    if isinstance(value, pydantic.BaseModel):
        value = json.loads(value.model_dump_json())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k not in ("parsed", "parsed_arguments")}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _accumulate(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat completion a client would assemble from ``chunks``."""
    text, reasoning, calls = [], [], {}
    finish, usage, model = None, None, None
    for chunk in chunks:
        model = model or chunk.get("model")
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text.append(delta.get("content") or "")
            reasoning.append(delta.get("reasoning_content") or "")
            for call in delta.get("tool_calls") or ():
                entry = calls.setdefault(
                    call["index"],
                    {"id": call.get("id"), "type": "function", "name": "", "args": ""},
                )
                entry["name"] += call.get("function", {}).get("name") or ""
                entry["args"] += call.get("function", {}).get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if "".join(reasoning):
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["args"]},
            }
            for c in calls.values()
        ]
    return {
        "id": "chatcmpl-acc",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage,
    }


def test_stream_events_satisfy_the_sdk_accumulator_and_match_the_answer() -> None:
    fixture = _fixture("chat_stream_to_events")
    events = fixture["expected"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = _sdk_final(events, tools=fixture["request"]["tools"])
    assert final.output_text == "Checking both cities."
    same = from_chat_response(
        _accumulate(fixture["input"]),
        response_id=fixture["response_id"],
        request=fixture["request"],
        created_at=fixture["created_at"],
    )
    assert _plain(final) == _plain(rt.Response.model_validate(same))
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert (
        kinds.count("response.output_item.added") == kinds.count("response.output_item.done") == 4
    )


@pytest.mark.parametrize(
    ("chunks", "status", "reason", "text"),
    [
        (
            [
                {
                    "choices": [
                        {"index": 0, "delta": {"content": "Once upon"}, "finish_reason": "length"}
                    ]
                }
            ],
            "incomplete",
            "max_output_tokens",
            "Once upon",
        ),
        (
            [{"choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter"}]}],
            "incomplete",
            "content_filter",
            "",
        ),
        ([], "completed", None, ""),
        (
            [
                {
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"refusal": "I can't help with that."},
                            "finish_reason": "stop",
                        }
                    ]
                }
            ],
            "completed",
            None,
            "",
        ),
    ],
    ids=["length", "content_filter", "empty", "refusal"],
)
def test_stream_endings_match_the_non_streamed_answer(
    chunks: list[dict[str, Any]], status: str, reason: str | None, text: str
) -> None:
    request = {"model": "m", "input": "x", "stream": True}
    stream = ChatToResponsesStream(response_id="resp_e", request=request, created_at=5)
    events = stream.start() + [e for c in chunks for e in stream.feed(c)] + stream.finish()
    final = _sdk_final(events)
    assert events[-1]["type"] == (
        "response.completed" if status == "completed" else "response.incomplete"
    )
    assert final.status == status
    assert (final.incomplete_details.reason if final.incomplete_details else None) == reason
    assert final.output_text == text
    chat = _accumulate(chunks)
    refusal = "".join(c["choices"][0]["delta"].get("refusal") or "" for c in chunks)
    if refusal:
        chat["choices"][0]["message"]["refusal"] = refusal
    same = from_chat_response(chat, response_id="resp_e", request=request, created_at=5)
    assert _plain(final) == _plain(rt.Response.model_validate(same))
    assert stream.response == same
    if status == "incomplete":
        assert final.output[-1].status == "incomplete"


def test_failure_after_the_first_byte_is_a_response_failed_event() -> None:
    stream = ChatToResponsesStream(response_id="resp_f", request={"model": "m"}, created_at=1)
    events = stream.start()
    events += stream.feed({"choices": [{"index": 0, "delta": {"content": "partial"}}]})
    events += stream.feed(
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "id": "c", "function": {"name": "t", "arguments": '{"a"'}}
                        ]
                    },
                }
            ]
        }
    )
    events += stream.fail("upstream stream broke", "upstream_stream_broken")
    assert stream.fail("again") == [] and stream.finish() == []
    final = _sdk_final(events)
    assert events[-1]["type"] == "response.failed"
    assert final.status == "failed"
    assert final.error is not None
    assert (final.error.code, final.error.message) == ("server_error", "upstream stream broke")
    assert [item.type for item in final.output] == ["message", "function_call"]
    assert final.output[1].arguments == '{"a"'
    assert final.output[1].status == "incomplete"
    limited = ChatToResponsesStream(response_id="resp_g", request={"model": "m"}, created_at=1)
    limited.start()
    assert (
        limited.fail("slow down", "rate_limit_exceeded")[-1]["response"]["error"]["code"]
        == "rate_limit_exceeded"
    )


def test_events_validate_one_by_one_and_frame_as_sse() -> None:
    for event in _fixture("chat_stream_to_events")["expected"]:
        EVENTS.validate_python(event)
        framed = sse(event)
        assert framed.startswith(b"event: " + event["type"].encode() + b"\ndata: ")
        assert json.loads(next(iter_data(framed))) == event


def test_stream_state_attributes() -> None:
    fixture = _fixture("chat_stream_to_events")
    stream = ChatToResponsesStream(response_id="r", request=fixture["request"], created_at=1)
    for chunk in fixture["input"]:
        stream.feed(chunk)
    assert stream.finish_reason == "tool_calls"
    assert stream.usage == fixture["input"][-1]["usage"]
    override = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    stream.finish(override)
    assert stream.response["usage"] == usage_from_chat(override)
    assert stream.response["status"] == "completed"


# -- streams cut at every byte boundary ---------------------------------------------------------


def _chat_sse(chunks: list[dict[str, Any]]) -> bytes:
    return b"".join(sse_event(c) for c in chunks) + DONE


def _events_from_bytes(pieces: list[bytes], fixture: dict[str, Any]) -> list[dict[str, Any]]:
    splitter = EventSplitter()
    stream = ChatToResponsesStream(
        response_id=fixture["response_id"],
        request=fixture["request"],
        created_at=fixture["created_at"],
    )
    events = stream.start()
    for piece in pieces:
        for data in iter_data(splitter.feed(piece)):
            if data != b"[DONE]":
                events.extend(stream.feed(orjson.loads(data)))
    return events + stream.finish()


STREAM_FIXTURE = _fixture("chat_stream_to_events")
STREAM_BYTES = _chat_sse(STREAM_FIXTURE["input"])


def test_every_single_split_point_gives_the_same_events() -> None:
    whole = STREAM_FIXTURE["expected"]
    assert _events_from_bytes([STREAM_BYTES], STREAM_FIXTURE) == whole
    for k in range(1, len(STREAM_BYTES)):
        pieces = [STREAM_BYTES[:k], STREAM_BYTES[k:]]
        assert _events_from_bytes(pieces, STREAM_FIXTURE) == whole, f"split at byte {k}"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_any_byte_splits_give_the_same_events(cuts: list[int]) -> None:
    data = STREAM_BYTES
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert _events_from_bytes(pieces, STREAM_FIXTURE) == STREAM_FIXTURE["expected"]


# -- requests -------------------------------------------------------------------------------------


def test_instructions_then_history_then_input() -> None:
    history = [{"role": "user", "content": "1"}, {"role": "assistant", "content": "2"}]
    chat = to_chat_request({"model": "m", "instructions": "sys", "input": "3"}, history)
    assert chat["messages"] == [
        {"role": "system", "content": "sys"},
        *history,
        {"role": "user", "content": "3"},
    ]
    assert chat["messages"][1] is not history[0]  # the caller's history is not aliased
    only_history = to_chat_request({"model": "m"}, history)
    assert only_history["messages"] == history
    assert "stream" not in only_history


def test_a_conversation_carries_over_as_chat_history() -> None:
    """Turn 1's input and output become turn 2's history: the function call and its output
    pair up in the chat messages a chat target expects."""
    first = {
        "model": "m",
        "instructions": "not carried over",
        "input": [{"role": "user", "content": "weather in Paris?"}],
        "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}}],
    }
    answer = from_chat_response(
        {
            "model": "m",
            "choices": [
                {
                    "message": {
                        "role": "assistant",
                        "content": "Looking it up.",
                        "tool_calls": [
                            {
                                "id": "call_9",
                                "type": "function",
                                "function": {"name": "weather", "arguments": "{}"},
                            }
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
        },
        response_id="resp_1",
        request=first,
        created_at=1,
    )
    history = input_to_chat_messages(first) + output_to_chat_messages(answer)
    second = {
        "model": "m",
        "previous_response_id": "resp_1",
        "input": [{"type": "function_call_output", "call_id": "call_9", "output": "sunny"}],
    }
    assert to_chat_request(second, history)["messages"] == [
        {"role": "user", "content": "weather in Paris?"},
        {
            "role": "assistant",
            "content": "Looking it up.",
            "tool_calls": [
                {
                    "id": "call_9",
                    "type": "function",
                    "function": {"name": "weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_9", "content": "sunny"},
    ]


def test_refusals_and_reasoning_in_history() -> None:
    response = {
        "output": [
            {"type": "reasoning", "id": "rs", "summary": []},
            {"type": "message", "content": [{"type": "refusal", "refusal": "no"}]},
            {"type": "web_search_call", "id": "ws"},
        ]
    }
    assert output_to_chat_messages(response) == [
        {"role": "assistant", "content": None, "refusal": "no"}
    ]
    body = {
        "model": "m",
        "input": [
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
            {"role": "user", "content": "why"},
        ],
    }
    assert to_chat_request(body)["messages"][0] == {
        "role": "assistant",
        "content": None,
        "refusal": "no",
    }


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"text": {"format": {"type": "json_object"}}},
            {"response_format": {"type": "json_object"}},
        ),
        ({"text": {"format": {"type": "text"}}}, {}),
        ({"some_future_field": None, "prompt": None, "conversation": None}, {}),
        (
            {"tool_choice": "required", "parallel_tool_calls": True},
            {"tool_choice": "required", "parallel_tool_calls": True},
        ),
        (
            {
                "tool_choice": {
                    "type": "allowed_tools",
                    "mode": "auto",
                    "tools": [{"type": "function", "name": "t"}],
                }
            },
            {
                "tool_choice": {
                    "type": "allowed_tools",
                    "allowed_tools": {
                        "mode": "auto",
                        "tools": [{"type": "function", "function": {"name": "t"}}],
                    },
                }
            },
        ),
        ({"reasoning": {"effort": "high"}}, {"reasoning_effort": "high"}),
        (
            {"max_output_tokens": 64, "temperature": 1, "top_p": 0.5},
            {"max_completion_tokens": 64, "temperature": 1, "top_p": 0.5},
        ),
        (
            {
                "metadata": {"a": "b"},
                "store": False,
                "prompt_cache_key": "x",
                "max_tool_calls": 3,
                "stream_options": {"include_obfuscation": False},
            },
            {},
        ),
    ],
)
def test_fields(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    body = {"model": "m", "input": "x", "tools": [{"type": "function", "name": "t"}], **fields}
    chat = to_chat_request(body)
    assert {k: v for k, v in chat.items() if k not in ("model", "messages", "tools")} == expected
    CHAT_PARAMS.validate_python(chat)


def test_tool_settings_need_tools() -> None:
    chat = to_chat_request(
        {"model": "m", "input": "x", "tool_choice": "none", "parallel_tool_calls": False}
    )
    assert set(chat) == {"model", "messages"}


# -- refused: malformed (InvalidRequest) or only served natively (NativeOnly) ------------------


def _m(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "input": "x", **fields}


def _in(*items: Any) -> dict[str, Any]:
    return {"model": "m", "input": list(items)}


def _user(*parts: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(parts)}


MALFORMED = [
    ([1], None),
    ({"input": "x"}, "model"),
    ({"model": 3, "input": "x"}, "model"),
    ({"model": "m"}, "input"),
    ({"model": "m", "input": []}, "input"),
    ({"model": "m", "input": 5}, "input"),
    (_in("hi"), "input[0]"),
    (_in({"content": "x"}), "input[0].type"),
    (_in({"role": "wizard", "content": "x"}), "input[0].role"),
    (_in({"role": "user", "content": 5}), "input[0].content"),
    (
        _in({"role": "user", "content": "ok"}, _user({"type": "input_text", "text": 1})),
        "input[1].content[0].text",
    ),
    (_in(_user("text")), "input[0].content[0]"),
    (_in(_user({"type": "input_audio"})), "input[0].content[0].type"),
    (_in(_user({"type": "output_text", "text": "x"})), "input[0].content[0].type"),
    (_in(_user({"type": "input_image"})), "input[0].content[0].image_url"),
    (_in(_user({"type": "input_image", "image_url": 7})), "input[0].content[0].image_url"),
    (
        _in(_user({"type": "input_image", "image_url": "u", "detail": "max"})),
        "input[0].content[0].detail",
    ),
    (_in(_user({"type": "input_file", "file_data": "JVBERi0="})), "input[0].content[0].file_data"),
    (_in(_user({"type": "input_file"})), "input[0].content[0].file_data"),
    (
        _in(
            _user(
                {
                    "type": "input_file",
                    "file_data": "data:application/pdf;base64,QQ==",
                    "filename": 1,
                }
            )
        ),
        "input[0].content[0].filename",
    ),
    (
        _in({"role": "system", "content": [{"type": "input_image", "image_url": "u"}]}),
        "input[0].content[0]",
    ),
    (
        _in({"role": "assistant", "content": [{"type": "input_image", "image_url": "u"}]}),
        "input[0].content[0].type",
    ),
    (
        _in({"role": "assistant", "content": [{"type": "output_text", "text": None}]}),
        "input[0].content[0].text",
    ),
    (_in({"type": "function_call", "name": "t", "arguments": "{}"}), "input[0].call_id"),
    (_in({"type": "function_call", "call_id": "c", "arguments": "{}"}), "input[0].name"),
    (
        _in({"type": "function_call", "call_id": "c", "name": "t", "arguments": {}}),
        "input[0].arguments",
    ),
    (_in({"type": "function_call_output", "output": "x"}), "input[0].call_id"),
    (_in({"type": "function_call_output", "call_id": "c", "output": 3}), "input[0].output"),
    (
        _in({"type": "function_call_output", "call_id": "c", "output": [{"type": "input_text"}]}),
        "input[0].output[0].text",
    ),
    (_m(instructions=["x"]), "instructions"),
    (_m(tools={}), "tools"),
    (_m(tools=["t"]), "tools[0]"),
    (_m(tools=[{"type": "function"}]), "tools[0].name"),
    (_m(tools=[{"type": "function", "name": "t", "parameters": "{}"}]), "tools[0].parameters"),
    (_m(tools=[{"type": "function", "name": "t", "strict": "yes"}]), "tools[0].strict"),
    (_m(tools=[{"type": "function", "name": "t", "description": 1}]), "tools[0].description"),
    (_m(tools=[{"name": "t"}]), "tools[0].type"),
    (_m(tool_choice="sometimes"), "tool_choice"),
    (_m(tool_choice=3), "tool_choice"),
    (_m(tool_choice={"type": "function"}), "tool_choice.name"),
    (_m(tool_choice={"type": "allowed_tools", "mode": "all", "tools": []}), "tool_choice.mode"),
    (_m(tool_choice={"type": "allowed_tools", "mode": "auto", "tools": "t"}), "tool_choice.tools"),
    (_m(parallel_tool_calls="no"), "parallel_tool_calls"),
    (_m(text="json"), "text"),
    (_m(text={"format": {"type": "yaml"}}), "text.format.type"),
    (_m(text={"format": {"type": "json_schema", "schema": {}}}), "text.format.name"),
    (_m(text={"format": {"type": "json_schema", "name": "n", "schema": []}}), "text.format.schema"),
    (
        _m(text={"format": {"type": "json_schema", "name": "n", "schema": {}, "strict": 1}}),
        "text.format.strict",
    ),
    (_m(text={"verbosity": "loud"}), "text.verbosity"),
    (_m(reasoning={"effort": 3}), "reasoning.effort"),
    (_m(reasoning="high"), "reasoning"),
    (_m(max_output_tokens=0), "max_output_tokens"),
    (_m(max_output_tokens=True), "max_output_tokens"),
    (_m(max_output_tokens=1.5), "max_output_tokens"),
    (_m(temperature="hot"), "temperature"),
    (_m(temperature=True), "temperature"),
    (_m(top_p=[1]), "top_p"),
    (_m(user=1), "user"),
    (_m(service_tier=2), "service_tier"),
    (_m(stream="yes"), "stream"),
    (_m(store="no"), "store"),
    (_m(previous_response_id=5), "previous_response_id"),
    (_m(include="all"), "include"),
    (_m(include=[1]), "include[0]"),
    (_m(truncation="sometimes"), "truncation"),
    (_m(metadata=[]), "metadata"),
    (_m(metadata={"k": 1}), "metadata.k"),
    (_m(top_logprobs=-1), "top_logprobs"),
    (_m(top_logprobs=21), "top_logprobs"),
    (_m(top_logprobs=2.0), "top_logprobs"),
]


@pytest.mark.parametrize(("body", "param"), MALFORMED, ids=[p or "body" for _, p in MALFORMED])
def test_malformed_requests_are_400s_naming_the_field(body: Any, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as caught:
        to_chat_request(body)
    assert not isinstance(caught.value, NativeOnly)
    assert caught.value.param == param
    assert caught.value.status == 400
    if param:
        assert caught.value.message.startswith(param.split("[")[0])


NATIVE = [
    (_m(tools=[{"type": "web_search"}]), "tools[0]", "unsupported_tool"),
    (
        _m(tools=[{"type": "function", "name": "t"}, {"type": "mcp", "server_label": "x"}]),
        "tools[1]",
        "unsupported_tool",
    ),
    (
        _m(tools=[{"type": "function", "name": "t", "defer_loading": True}]),
        "tools[0].defer_loading",
        None,
    ),
    (_m(tool_choice={"type": "web_search_preview"}), "tool_choice", "unsupported_tool"),
    (
        _m(
            tool_choice={
                "type": "allowed_tools",
                "mode": "auto",
                "tools": [{"type": "file_search"}],
            }
        ),
        "tool_choice.tools[0]",
        "unsupported_tool",
    ),
    (_in(_user({"type": "input_image", "file_id": "file-1"})), "input[0].content[0].file_id", None),
    (_in(_user({"type": "input_file", "file_id": "file-1"})), "input[0].content[0].file_id", None),
    (
        _in(_user({"type": "input_file", "file_url": "https://x/y.pdf"})),
        "input[0].content[0].file_url",
        None,
    ),
    (_in({"type": "item_reference", "id": "msg_1"}), "input[0].type", None),
    (
        _in({"role": "user", "content": "x"}, {"type": "web_search_call", "id": "ws"}),
        "input[1].type",
        None,
    ),
    (_m(prompt={"id": "pmpt_1"}), "prompt", None),
    (_m(conversation="conv_1"), "conversation", None),
    (_m(frobnicate=True), "frobnicate", "unknown_parameter"),
]


@pytest.mark.parametrize(("body", "param", "code"), NATIVE, ids=[p for _, p, _ in NATIVE])
def test_what_only_the_native_api_serves_is_refused_by_name(
    body: dict[str, Any], param: str, code: str | None
) -> None:
    with pytest.raises(NativeOnly) as caught:
        to_chat_request(body)
    assert caught.value.param == param
    assert caught.value.code == code
    assert caught.value.status == 400
    assert "native Responses API" in caught.value.message


def test_builtin_tools_are_listed_for_the_endpoint() -> None:
    body = {
        "tools": [
            {"type": "function", "name": "t"},
            {"type": "web_search"},
            {"type": "mcp"},
            "junk",
            {"type": 3},
            {"name": "no type"},
        ]
    }
    assert builtin_tools(body) == ["web_search", "mcp"]
    assert builtin_tools({"model": "m"}) == []
    assert builtin_tools({"tools": "x"}) == []


def test_lenient_history_leaves_out_what_only_the_native_api_reads() -> None:
    body = _in(
        {"role": "user", "content": "look"},
        {"type": "web_search_call", "id": "ws"},
        _user({"type": "input_file", "file_id": "file-1"}),
        {"role": "assistant", "content": "done"},
    )
    assert input_to_chat_messages(body, lenient=True) == [
        {"role": "user", "content": "look"},
        {"role": "assistant", "content": "done"},
    ]
    with pytest.raises(NativeOnly):
        input_to_chat_messages(body)
    with pytest.raises(InvalidRequest) as caught:
        input_to_chat_messages(_in({"role": "user", "content": 1}), lenient=True)
    assert caught.value.param == "input[0].content"


# -- arbitrary bodies only ever raise InvalidRequest --------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = sorted(
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
        "store",
        "metadata",
        "include",
        "truncation",
        "previous_response_id",
        "top_logprobs",
        "prompt",
    }
)
PART_TYPES = st.sampled_from(
    ["input_text", "input_image", "input_file", "output_text", "refusal", "x"]
)
ITEM_TYPES = st.sampled_from(
    ["message", "function_call", "function_call_output", "reasoning", "item_reference"]
)
TEXT = st.text(max_size=5)
PART = st.fixed_dictionaries(
    {"type": PART_TYPES},
    optional={
        "text": TEXT | JSON,
        "image_url": TEXT | JSON,
        "file_data": st.just("data:application/pdf;base64,QQ==") | TEXT | JSON,
        "file_id": TEXT | JSON,
        "detail": st.sampled_from(["auto", "low", "high"]) | JSON,
        "refusal": TEXT | JSON,
        "filename": TEXT | JSON,
    },
)
#: Items mostly right at their own level, so that the parts inside them vary too (``BODY``
#: and ``JSON`` bodies cover wrong roles and ids).
ITEM = st.fixed_dictionaries(
    {
        "type": ITEM_TYPES,
        "role": st.sampled_from(["user", "assistant", "system", "developer"]),
        "call_id": TEXT,
        "name": TEXT,
    },
    optional={
        "content": TEXT | st.lists(PART, max_size=3) | st.lists(JSON, max_size=2),
        "arguments": TEXT | JSON,
        "output": TEXT | st.lists(PART, max_size=2),
    },
)
TOOL = st.fixed_dictionaries(
    {"type": st.sampled_from(["function", "web_search"]) | JSON},
    optional={
        "name": st.text(max_size=4) | JSON,
        "parameters": JSON,
        "strict": JSON,
        "description": JSON,
    },
)
BODY = st.fixed_dictionaries(
    {
        "model": st.just("m") | JSON,
        "input": st.text(max_size=5) | st.lists(ITEM | JSON, max_size=4) | JSON,
    },
    optional={
        **{k: JSON for k in FIELDS if k not in ("model", "input")},
        "tools": st.lists(TOOL | JSON, max_size=3) | JSON,
        "text": st.fixed_dictionaries(
            {
                "format": st.fixed_dictionaries(
                    {"type": st.sampled_from(["json_schema", "json_object", "text"]) | JSON},
                    optional={"name": JSON, "schema": JSON, "strict": JSON},
                )
                | JSON
            },
            optional={"verbosity": JSON},
        )
        | JSON,
    },
)


def _only_invalid_request(body: Any) -> None:
    try:
        chat = to_chat_request(body)
    except InvalidRequest:
        pass
    else:
        json.loads(orjson.dumps(chat))
    with contextlib.suppress(InvalidRequest):
        input_to_chat_messages(body, lenient=True)
    input_items(body)
    builtin_tools(body)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_arbitrary_json_bodies_only_raise_invalid_request(body: Any) -> None:
    _only_invalid_request(body if isinstance(body, dict) else {"input": body})
    _only_invalid_request({"model": "m", "input": body})


#: Bodies whose top level is right, so that the items, parts and tools are what varies.
ITEMS_BODY = st.fixed_dictionaries(
    {"model": st.just("m"), "input": st.lists(ITEM, min_size=1, max_size=4)},
    optional={
        "tools": st.lists(TOOL, max_size=2),
        "tool_choice": st.sampled_from(["auto", "required"])
        | st.fixed_dictionaries(
            {"type": st.sampled_from(["function", "allowed_tools"])},
            optional={"name": JSON, "mode": JSON, "tools": JSON},
        ),
    },
)


@settings(max_examples=200, deadline=None)
@given(BODY)
def test_near_valid_bodies_only_raise_invalid_request(body: dict[str, Any]) -> None:
    _only_invalid_request(body)


@settings(max_examples=300, deadline=None)
@given(ITEMS_BODY)
def test_bodies_with_any_items_only_raise_invalid_request(body: dict[str, Any]) -> None:
    _only_invalid_request(body)


LOGPROB = st.fixed_dictionaries(
    {"token": st.text(max_size=3) | JSON, "logprob": st.floats(-5, 0) | JSON},
    optional={"bytes": JSON, "top_logprobs": st.lists(JSON, max_size=2) | JSON},
)
CHUNK = st.fixed_dictionaries(
    {},
    optional={
        "model": JSON,
        "usage": JSON,
        "choices": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "index": st.just(0) | JSON,
                    "finish_reason": st.sampled_from(["stop", "length", "tool_calls"]) | JSON,
                    "logprobs": st.fixed_dictionaries(
                        {"content": st.lists(LOGPROB | JSON, max_size=2) | JSON}
                    )
                    | JSON,
                    "delta": st.fixed_dictionaries(
                        {},
                        optional={
                            "content": st.text(max_size=4) | JSON,
                            "refusal": st.text(max_size=4) | JSON,
                            "reasoning_content": st.text(max_size=4) | JSON,
                            "tool_calls": st.lists(
                                st.fixed_dictionaries(
                                    {},
                                    optional={
                                        "index": st.integers(0, 2) | JSON,
                                        "id": JSON,
                                        "function": st.fixed_dictionaries(
                                            {},
                                            optional={
                                                "name": JSON,
                                                "arguments": st.text(max_size=4) | JSON,
                                            },
                                        )
                                        | JSON,
                                    },
                                )
                                | JSON,
                                max_size=2,
                            )
                            | JSON,
                        },
                    )
                    | JSON,
                },
            )
            | JSON,
            max_size=2,
        )
        | JSON,
    },
)


@settings(max_examples=150, deadline=None)
@given(st.lists(CHUNK | JSON, max_size=8))
def test_any_chunks_give_events_the_sdk_accepts(chunks: list[Any]) -> None:
    """Whatever an upstream streams, the client gets a well-formed event sequence."""
    stream = ChatToResponsesStream(response_id="resp_h", request={"model": "m"}, created_at=1)
    events = stream.start() + [e for c in chunks for e in stream.feed(c)] + stream.finish()
    _sdk_final(json.loads(orjson.dumps(events)))
    rt.Response.model_validate(stream.response)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["model", "choices", "usage"]), JSON)
    | st.fixed_dictionaries(
        {
            "choices": st.lists(
                st.fixed_dictionaries({"message": JSON, "finish_reason": JSON}), max_size=1
            )
        }
    )
)
def test_any_chat_answer_gives_a_response_the_sdk_accepts(chat: dict[str, Any]) -> None:
    response = from_chat_response(chat, response_id="resp_h", request={"model": "m"}, created_at=1)
    rt.Response.model_validate(response)
    output_to_chat_messages(response)


# -- usage ------------------------------------------------------------------------------------


def test_usage_both_ways() -> None:
    chat = {
        "prompt_tokens": 120,
        "completion_tokens": 45,
        "total_tokens": 165,
        "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 7},
        "completion_tokens_details": {"reasoning_tokens": 12},
    }
    responses = usage_from_chat(chat)
    assert responses == {
        "input_tokens": 120,
        "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 7},
        "output_tokens": 45,
        "output_tokens_details": {"reasoning_tokens": 12},
        "total_tokens": 165,
    }
    rt.ResponseUsage.model_validate(responses)
    assert usage_to_chat(responses) == chat
    assert usage_from_chat(None) is None and usage_to_chat(None) is None
    assert usage_to_chat({"input_tokens": 2, "output_tokens": 3}) == {
        "prompt_tokens": 2,
        "completion_tokens": 3,
        "total_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def test_input_items_have_unique_ids() -> None:
    items = input_items({"input": "hi"})
    assert items[0]["type"] == "message" and items[0]["content"] == [
        {"type": "input_text", "text": "hi"}
    ]
    ITEMS.validate_python(items[0])
    ids = [i["id"] for i in _fixture("input_items")["expected"]]
    assert len(set(ids)) == len(ids) and "fco_given" in ids
    assert input_items({"input": "a"})[0]["id"] != input_items({"input": "a"})[0]["id"]


# -- the openai SDK reads the translation over a real loopback server ---------------------------


class ResponsesOverChat(FakeUpstream):
    """A loopback server answering ``/v1/responses`` by translating the request to chat, asking
    :class:`FakeOpenAI`'s chat wire format, and translating the answer back: the openai SDK's
    ``responses.create``/``responses.stream`` parse exactly what this module produces."""

    chat = FakeOpenAI()

    def answer(self, request: web.Request, body: Any, behaviour: Reply | CutStream) -> Any:
        chat = self.chat.answer(request, to_chat_request(body), behaviour)
        return from_chat_response(
            chat, response_id="resp_loop", request=body, created_at=1700000000
        )

    def stream_events(
        self, request: web.Request, body: Any, behaviour: Reply | CutStream
    ) -> Iterator[bytes]:
        stream = ChatToResponsesStream(response_id="resp_loop", request=body, created_at=1700000000)
        yield from (sse(e) for e in stream.start())
        splitter = EventSplitter()
        for piece in self.chat.stream_events(request, to_chat_request(body), behaviour):
            for data in iter_data(splitter.feed(piece)):
                if data != b"[DONE]":
                    yield from (sse(e) for e in stream.feed(orjson.loads(data)))
        yield from (sse(e) for e in stream.finish())

    def error_body(self, status: int, message: str, code: str | None) -> Any:
        return self.chat.error_body(status, message, code)


@pytest.fixture(scope="module")
def client() -> Iterator[openai.OpenAI]:
    with ResponsesOverChat() as server:
        yield openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test", max_retries=0)


TOOL_BODY = {
    "model": "gpt-4.1-mini",
    "input": [{"role": "user", "content": "weather in Paris?"}],
    "tools": [
        {
            "type": "function",
            "name": "weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": False,
            },
            "strict": True,
        }
    ],
    "tool_choice": "required",
}


def test_sdk_create_and_stream_text(client: Any) -> None:
    created = client.responses.create(model="gpt-4.1-mini", input="one two three", instructions="x")
    assert created.output_text == "echo: one two three"
    assert (
        created.usage.input_tokens == 11 and created.usage.input_tokens_details.cached_tokens == 3
    )
    with client.responses.stream(model="gpt-4.1-mini", input="one two three") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text
    assert final.output_text.strip() == "echo: one two three"  # the fake streams word by word
    assert final.usage.total_tokens == 18


def test_sdk_create_and_stream_function_calls(client: Any) -> None:
    created = client.responses.create(**TOOL_BODY)
    with client.responses.stream(**TOOL_BODY) as stream:
        final = stream.get_final_response()
    for response in (created, final):
        call = response.output[-1]
        assert call.type == "function_call"
        assert (call.name, json.loads(call.arguments)) == ("weather", {"city": "Paris"})
        assert call.call_id
    assert final.output[-1].parsed_arguments == {"city": "Paris"}


def test_sdk_sees_a_cut_answer_as_incomplete(client: Any) -> None:
    created = client.responses.create(model="m", input="one two three four", max_output_tokens=2)
    assert created.status == "incomplete"
    assert created.incomplete_details.reason == "max_output_tokens"
    with client.responses.stream(
        model="m", input="one two three four", max_output_tokens=2
    ) as stream:
        events = [e.type for e in stream]
    assert events[-1] == "response.incomplete"


def test_late_arguments_for_a_closed_call_are_not_lost() -> None:
    def call(index: int, args: str, name: str | None = None) -> dict[str, Any]:
        fn: dict[str, Any] = {"arguments": args}
        head: dict[str, Any] = {"index": index, "function": fn}
        if name:
            fn["name"] = name
            head["id"] = f"call_{index}"
        return {"choices": [{"index": 0, "delta": {"tool_calls": [head]}}]}

    chunks = [call(0, '{"a":', "one"), call(1, "{}", "two"), call(0, " 1}")]
    stream = ChatToResponsesStream(response_id="resp_l", request={"model": "m"}, created_at=1)
    events = stream.start() + [e for c in chunks for e in stream.feed(c)] + stream.finish()
    final = _sdk_final(events)
    assert [(c.name, c.arguments) for c in final.output] == [("one", '{"a": 1}'), ("two", "{}")]
    done = [e["item"]["arguments"] for e in events if e["type"] == "response.output_item.done"]
    assert done == ['{"a":', '{"a": 1}', "{}"]  # closed again at the end, in output order


def test_logprobs_when_asked() -> None:
    body = _m(include=["message.output_text.logprobs"], top_logprobs=2)
    chat = to_chat_request(body)
    assert (chat["logprobs"], chat["top_logprobs"]) == (True, 2)
    assert "logprobs" not in to_chat_request(_m(include=["reasoning.encrypted_content"]))
    assert to_chat_request(_m(top_logprobs=1))["logprobs"] is True
    first = {
        "token": "Hi",
        "logprob": -0.1,
        "bytes": [72, 105],
        "top_logprobs": [
            {"token": "Hi", "logprob": -0.1, "bytes": [72, 105]},
            {"token": "Hey", "logprob": -2.5, "bytes": None},
        ],
    }
    second = {"token": "!", "logprob": -0.3, "bytes": None, "top_logprobs": []}
    chunks = [
        {"choices": [{"index": 0, "delta": {"content": "Hi"}, "logprobs": {"content": [first]}}]},
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": "!"},
                    "logprobs": {"content": [second]},
                    "finish_reason": "stop",
                }
            ]
        },
    ]
    stream = ChatToResponsesStream(response_id="resp_lp", request=body, created_at=1)
    events = stream.start() + [e for c in chunks for e in stream.feed(c)] + stream.finish()
    final = _sdk_final(events)
    text = final.output[0].content[0]
    assert [(lp.token, lp.bytes) for lp in text.logprobs] == [("Hi", [72, 105]), ("!", [33])]
    assert [t.bytes for t in text.logprobs[0].top_logprobs] == [[72, 105], [72, 101, 121]]
    deltas = [e["logprobs"] for e in events if e["type"] == "response.output_text.delta"]
    assert deltas[0] == [
        {
            "token": "Hi",
            "logprob": -0.1,
            "top_logprobs": [{"token": "Hi", "logprob": -0.1}, {"token": "Hey", "logprob": -2.5}],
        }
    ]
    answer = {
        "model": "m",
        "choices": [
            {
                "message": {"role": "assistant", "content": "Hi!"},
                "logprobs": {"content": [first, second]},
                "finish_reason": "stop",
            }
        ],
    }
    same = from_chat_response(answer, response_id="resp_lp", request=body, created_at=1)
    assert _plain(final) == _plain(rt.Response.model_validate(same))


def test_the_model_named_is_the_one_asked_for_unless_given() -> None:
    chat = {"model": "upstream-model-2025", "choices": [{"message": {"content": "x"}}]}
    request = {"model": "alias"}
    assert (
        from_chat_response(chat, response_id="r", request=request, created_at=1)["model"] == "alias"
    )
    given = from_chat_response(chat, response_id="r", request=request, created_at=1, model="m2")
    assert given["model"] == "m2"
    stream = ChatToResponsesStream(response_id="r", request=request, created_at=1, model="m2")
    events = stream.start() + stream.feed({"model": "upstream-model-2025", "choices": []})
    events += stream.finish()
    assert {e["response"]["model"] for e in events if "response" in e} == {"m2"}
    rid = new_response_id()
    assert rid.startswith("resp_") and len(rid) == 53 and rid != new_response_id()


def _extras(model: Any, where: str = "") -> list[str]:
    """Fields of ``model`` (recursively) that its SDK type does not declare."""
    if isinstance(model, list):
        return [x for i, item in enumerate(model) for x in _extras(item, f"{where}[{i}]")]
    if not isinstance(model, pydantic.BaseModel):
        return []
    found = [f"{where}.{key}" for key in model.model_extra or {}]
    for name in type(model).model_fields:
        found += _extras(getattr(model, name), f"{where}.{name}")
    return found


def test_no_field_is_made_up() -> None:
    """Every field sent is one the SDK's types declare (the SDK would keep a misspelt one
    silently as an extra)."""
    for name in ("chat_response_to_response", "chat_response_incomplete"):
        # ``store`` is in OpenAI's Response objects though this SDK's type leaves it out
        assert _extras(rt.Response.model_validate(_fixture(name)["expected"])) == [".store"]
    for event in _fixture("chat_stream_to_events")["expected"]:
        allowed = [".response.store"] if "response" in event else []
        assert _extras(EVENTS.validate_python(event)) == allowed, event["type"]
    for item in _fixture("input_items")["expected"]:
        assert _extras(ITEMS.validate_python(item)) == []
    stream = ChatToResponsesStream(response_id="resp_x", request={"model": "m"}, created_at=1)
    stream.start()
    stream.feed({"choices": [{"index": 0, "delta": {"refusal": "no"}}]})
    for event in stream.fail("broken"):
        assert _extras(EVENTS.validate_python(event)) in ([], [".response.store"])


# namespace tools (Codex sends one on every request) --------------------------------------------

_NAMESPACED = _m(
    tools=[
        {"type": "function", "name": "shell", "parameters": {"type": "object"}},
        {
            "type": "namespace",
            "name": "agents",
            "description": "sub-agents",
            "tools": [
                {"type": "function", "name": "spawn", "description": "start one"},
                {"type": "function", "name": "wait", "parameters": {"type": "object"}},
            ],
        },
    ]
)


def test_namespace_tools_are_flattened_and_calls_split_back() -> None:
    chat = to_chat_request(_NAMESPACED)
    names = [t["function"]["name"] for t in chat["tools"]]
    assert names == ["shell", "agents__spawn", "agents__wait"]
    assert chat["tools"][1]["function"]["description"] == "start one"
    assert builtin_tools(_NAMESPACED) == []
    answer = {
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "agents__spawn", "arguments": "{}"},
                        },
                        {
                            "id": "c2",
                            "type": "function",
                            "function": {"name": "shell", "arguments": "{}"},
                        },
                    ],
                },
            }
        ]
    }
    response = from_chat_response(answer, response_id="resp_ns", request=_NAMESPACED, created_at=1)
    calls = [item for item in response["output"] if item["type"] == "function_call"]
    assert [(c["name"], c.get("namespace")) for c in calls] == [
        ("spawn", "agents"),
        ("shell", None),
    ]
    rt.Response.model_validate(response)
    # the next turn sends the call back with its namespace: flattened again for chat
    history = output_to_chat_messages(response)
    assert history[0]["tool_calls"][0]["function"]["name"] == "agents__spawn"
    again = to_chat_request(
        {
            **_NAMESPACED,
            "input": [
                {**calls[0], "type": "function_call"},
                {"type": "function_call_output", "call_id": "c1", "output": "ok"},
            ],
        }
    )
    assert again["messages"][0]["tool_calls"][0]["function"]["name"] == "agents__spawn"


def test_streamed_namespaced_call_is_split_back() -> None:
    stream = ChatToResponsesStream(response_id="resp_ns", request=_NAMESPACED, created_at=1)
    events = stream.feed(
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "agents__wait", "arguments": '{"a"'},
                            }
                        ]
                    },
                }
            ]
        }
    )
    events += stream.feed(
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]},
                    "finish_reason": "tool_calls",
                }
            ]
        }
    )
    events += stream.finish()
    added = next(e for e in events if e["type"] == "response.output_item.added")
    assert (added["item"]["name"], added["item"]["namespace"]) == ("wait", "agents")
    final = events[-1]["response"]["output"][0]
    assert (final["name"], final["namespace"], final["arguments"]) == ("wait", "agents", '{"a": 1}')
    rt.Response.model_validate(events[-1]["response"])


@pytest.mark.parametrize(
    ("tools", "param", "native"),
    [
        (
            [
                {"type": "function", "name": "a__b"},
                {
                    "type": "namespace",
                    "name": "a",
                    "description": "",
                    "tools": [{"type": "function", "name": "b"}],
                },
            ],
            "tools[1].tools[0].name",
            False,
        ),
        (
            [{"type": "namespace", "name": "a", "description": "", "tools": 3}],
            "tools[0].tools",
            False,
        ),
        (
            [
                {
                    "type": "namespace",
                    "name": "a",
                    "description": "",
                    "tools": [{"type": "custom", "name": "x"}],
                }
            ],
            "tools[0].tools[0]",
            True,
        ),
    ],
)
def test_bad_namespace_tools_are_refused_naming_the_field(
    tools: list[Any], param: str, native: bool
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        to_chat_request(_m(tools=tools))
    assert caught.value.param == param
    assert isinstance(caught.value, NativeOnly) is native
