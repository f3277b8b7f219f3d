"""The pure OpenAI <-> Anthropic translation: golden fixtures in each direction, streams cut at
every byte boundary, and the shapes checked against the anthropic and openai SDK types.

Golden fixtures live in ``tests/fixtures/anthropic/*.json`` as ``{"input", "expected", ...}``.
After an intended change, ``PLUGWAY_REGEN_FIXTURES=1 pytest tests/test_anthropic_format.py``
rewrites ``expected``; review the diff before committing it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anthropic.types as at
import openai.types.chat as ot
import orjson
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from plugway.errors import InvalidRequest
from plugway.formats.anthropic_messages import (
    AnthropicSSEToOpenAI,
    AnthropicStreamError,
    AnthropicToOpenAIStream,
    OpenAIToAnthropicStream,
    anthropic_to_openai_request,
    anthropic_to_openai_response,
    default_max_tokens,
    iter_sse_data,
    openai_to_anthropic_request,
    openai_to_anthropic_response,
    sse,
)
from plugway.formats.common import loads_object, parse_data_url
from plugway.sse import EventSplitter
from plugway.testing import FakeAnthropic, Reply

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"
REGEN = os.environ.get("PLUGWAY_REGEN_FIXTURES") == "1"


def translate(name: str, fixture: dict[str, Any]) -> Any:
    data = fixture["input"]
    if name.startswith("openai_request"):
        return openai_to_anthropic_request(data, fixture["model"])
    if name == "anthropic_response_to_openai":
        return anthropic_to_openai_response(data, created=1700000000)
    if name == "anthropic_stream_to_openai":
        stream = AnthropicToOpenAIStream(fixture["include_usage"], created=1700000000)
        return [chunk for event in data for chunk in stream.feed(event)]
    if name == "anthropic_request_to_openai":
        return anthropic_to_openai_request(data)
    if name == "openai_response_to_anthropic":
        return openai_to_anthropic_response(data, fixture["model"], fixture["message_id"])
    if name == "openai_stream_to_anthropic":
        out = OpenAIToAnthropicStream(fixture["model"], fixture["message_id"])
        return [event for chunk in data for event in out.feed(chunk)] + out.finish()
    raise AssertionError(name)


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_golden_translation(path: Path) -> None:
    fixture = json.loads(path.read_text())
    got = json.loads(orjson.dumps(translate(path.stem, fixture)))
    if REGEN:
        fixture["expected"] = got
        path.write_text(json.dumps(fixture, indent=1) + "\n")
    assert got == fixture["expected"]


# -- the golden outputs are valid for the SDK types of the side they are for -------------------


def _fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def test_outputs_parse_as_sdk_types() -> None:
    completion = ot.ChatCompletion.model_validate(
        _fixture("anthropic_response_to_openai")["expected"]
    )
    assert completion.choices[0].message.tool_calls is not None
    for chunk in _fixture("anthropic_stream_to_openai")["expected"]:
        ot.ChatCompletionChunk.model_validate(chunk)
    message = at.Message.model_validate(_fixture("openai_response_to_anthropic")["expected"])
    assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(at.RawMessageStreamEvent)
    for event in _fixture("openai_stream_to_anthropic")["expected"]:
        adapter.validate_python(event)
    params: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(at.MessageCreateParams)
    params.validate_python(_fixture("openai_request_to_anthropic")["expected"])
    chat_params: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ot.CompletionCreateParams)
    chat_params.validate_python(_fixture("anthropic_request_to_openai")["expected"])


# -- requests ----------------------------------------------------------------------------------


def test_max_tokens_default_follows_the_model() -> None:
    body = {"messages": [{"role": "user", "content": "x"}]}
    assert openai_to_anthropic_request(body, "claude-sonnet-4-5")["max_tokens"] == 64000
    assert openai_to_anthropic_request(body, "claude-opus-4-1-2025")["max_tokens"] == 32000
    assert openai_to_anthropic_request(body, "claude-3-5-haiku-latest")["max_tokens"] == 8192
    assert openai_to_anthropic_request(body, "someone-elses-model")["max_tokens"] == 4096
    assert openai_to_anthropic_request(body, "claude-opus-4", 1000)["max_tokens"] == 1000
    assert default_max_tokens("claude-opus-4-1") == 32000


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, None),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        ({"type": "function", "function": {"name": "t"}}, None, {"type": "tool", "name": "t"}),
        ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
    ],
)
def test_tool_choice(choice: Any, parallel: bool | None, expected: dict[str, Any] | None) -> None:
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "t"}}],
        "tool_choice": choice,
    }
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    assert openai_to_anthropic_request(body, "claude-haiku-4-5").get("tool_choice") == expected


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "messages[0].content[0].input_audio",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "input_audio",
                                "input_audio": {"data": "QQ==", "format": "wav"},
                            }
                        ],
                    }
                ],
            },
            "messages[0].content[0]",
        ),
        ({"messages": [{"role": "user", "content": "x"}], "seed": 7}, "seed"),
        ({"messages": [{"role": "user", "content": "x"}], "logprobs": True}, "logprobs"),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_object"},
            },
            "response_format.type",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "c", "function": {"name": "t", "arguments": "{not json"}}
                        ],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "tool_choice": "sometimes",
                "tools": [{"type": "function", "function": {"name": "t"}}],
            },
            "tool_choice",
        ),
    ],
)
def test_untranslatable_requests_are_400s_naming_the_field(
    body: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        openai_to_anthropic_request(body, "claude-haiku-4-5")
    assert caught.value.param == param
    assert caught.value.status == 400


def test_tool_result_images_follow_the_tool_messages() -> None:
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "QQ=="},
    }
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "read", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [{"type": "text", "text": "a screenshot"}, image],
                    },
                ],
            },
        ],
    }
    messages = anthropic_to_openai_request(body)["messages"]
    assert messages[1:] == [
        {"role": "tool", "tool_call_id": "t1", "content": "a screenshot"},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,QQ=="}}],
        },
    ]


def test_server_tools_cannot_go_to_openai_targets() -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
    }
    with pytest.raises(InvalidRequest) as caught:
        anthropic_to_openai_request(body)
    assert caught.value.param == "tools.0"
    lenient = anthropic_to_openai_request(body, lenient=True)
    assert "tools" not in lenient
    assert lenient["messages"] == [{"role": "user", "content": "x"}]


def test_data_urls() -> None:
    assert parse_data_url("data:image/png;base64,AAAA") == ("image/png", "AAAA")
    assert parse_data_url("data:IMAGE/JPEG;name=x.jpg;base64,QQ==") == ("image/jpeg", "QQ==")
    assert parse_data_url("data:;base64,QQ==") == ("application/octet-stream", "QQ==")
    assert parse_data_url("https://example.com/x.png") is None
    assert parse_data_url("data:text/plain,hello") is None
    assert loads_object("") == {}
    assert loads_object('{"a": 1}') == {"a": 1}
    assert loads_object("[1]") is None
    assert loads_object("{") is None


# -- responses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reasons(stop_reason: str, finish: str) -> None:
    message = {
        "id": "m",
        "model": "c",
        "content": [{"type": "text", "text": "x"}],
        "stop_reason": stop_reason,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    assert anthropic_to_openai_response(message)["choices"][0]["finish_reason"] == finish
    events = [
        {"type": "message_start", "message": {"id": "m", "model": "c", "usage": {}}},
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason},
            "usage": {"output_tokens": 3},
        },
    ]
    stream = AnthropicToOpenAIStream()
    chunks = [c for e in events for c in stream.feed(e)]
    assert chunks[-1]["choices"][0]["finish_reason"] == finish
    assert stream.finish_reason == finish


def test_stream_usage_is_cumulative_and_only_sent_when_asked() -> None:
    start = {
        "type": "message_start",
        "message": {
            "id": "m",
            "model": "c",
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 4, "output_tokens": 1},
        },
    }
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn"},
        "usage": {"output_tokens": 9, "cache_creation_input_tokens": 2},
    }
    for include in (False, True):
        stream = AnthropicToOpenAIStream(include_usage=include)
        chunks = [c for e in (start, delta, {"type": "message_stop"}) for c in stream.feed(e)]
        assert stream.usage == {
            "prompt_tokens": 16,
            "completion_tokens": 9,
            "total_tokens": 25,
            "prompt_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 2},
        }
        assert stream.done
        assert (chunks[-1].get("usage") == stream.usage) is include
        assert len({(c["id"], c["created"]) for c in chunks}) == 1


def test_error_event_raises() -> None:
    stream = AnthropicToOpenAIStream()
    with pytest.raises(AnthropicStreamError) as caught:
        stream.feed(
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        )
    assert caught.value.error_type == "overloaded_error"


# -- streams cut at every byte boundary --------------------------------------------------------


def _fake_stream(body: dict[str, Any]) -> bytes:
    return b"".join(FakeAnthropic().stream_events(None, body, Reply()))


PARALLEL_TOOLS = {
    "model": "claude-haiku-4-5",
    "max_tokens": 100,
    "stream": True,
    "messages": [{"role": "user", "content": "weather?"}],
    "tools": [
        {"name": "weather", "input_schema": {"type": "object"}},
        {"name": "forecast", "input_schema": {"type": "object"}},
    ],
    "tool_choice": {"type": "any"},
}
TEXT = {
    "model": "claude-haiku-4-5",
    "max_tokens": 100,
    "stream": True,
    "messages": [{"role": "user", "content": "one two three"}],
}


def _decode(pieces: list[bytes]) -> list[dict[str, Any]]:
    decoder = AnthropicSSEToOpenAI(include_usage=True, created=1)
    out = b"".join(decoder.feed(piece) for piece in pieces)
    assert decoder.translator.done
    return list(iter_sse_data(out))


def _calls(chunks: list[dict[str, Any]]) -> dict[int, dict[str, str]]:
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            for call in choice["delta"].get("tool_calls") or ():
                entry = calls.setdefault(call["index"], {"id": call.get("id"), "args": ""})
                entry["name"] = call["function"].get("name") or entry.get("name", "")
                entry["args"] += call["function"].get("arguments", "")
    return calls


@pytest.mark.parametrize("body", [PARALLEL_TOOLS, TEXT], ids=["parallel_tools", "text"])
def test_every_single_split_point_gives_the_same_chunks(body: dict[str, Any]) -> None:
    data = _fake_stream(body)
    whole = _decode([data])
    for k in range(1, len(data)):
        assert _decode([data[:k], data[k:]]) == whole, f"split at byte {k}"


def test_tool_call_arguments_arrive_whole_and_in_order() -> None:
    calls = _calls(_decode([_fake_stream(PARALLEL_TOOLS)]))
    assert [c["name"] for c in calls.values()] == ["weather", "forecast"]
    assert [json.loads(c["args"]) for c in calls.values()] == [
        {"city": "Paris"},
        {"city": "Tokyo", "days": 3},
    ]
    assert all(c["id"] and c["id"].startswith("toolu_") for c in calls.values())


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_any_byte_splits_give_the_same_chunks(cuts: list[int]) -> None:
    data = PARALLEL_DATA
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert _decode(pieces) == PARALLEL_WHOLE


PARALLEL_DATA = _fake_stream(PARALLEL_TOOLS)
PARALLEL_WHOLE = _decode([PARALLEL_DATA])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
def test_inbound_stream_split_anywhere_reassembles_tool_calls(cuts: list[int]) -> None:
    """OpenAI chunks -> Anthropic events, the OpenAI bytes cut anywhere (as the gateway's
    splitter sees them): every tool_use block's input_json_delta joins to the whole JSON."""
    chunks = _fixture("openai_stream_to_anthropic")["input"]
    data = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks)
    points = sorted({c % (len(data) + 1) for c in cuts})
    splitter = EventSplitter()
    out = OpenAIToAnthropicStream("my-alias", "msg_gw2")
    events: list[dict[str, Any]] = []
    for a, b in zip([0, *points], [*points, len(data)], strict=True):
        for chunk in iter_sse_data(splitter.feed(data[a:b])):
            events.extend(out.feed(chunk))
    events.extend(out.finish())
    assert events == _fixture("openai_stream_to_anthropic")["expected"]
    inputs: dict[int, str] = {}
    for event in events:
        if event["type"] == "content_block_delta" and event["delta"]["type"] == "input_json_delta":
            inputs[event["index"]] = inputs.get(event["index"], "") + event["delta"]["partial_json"]
    assert [json.loads(v) for v in inputs.values()] == [{"city": "Paris"}, {}]


def test_sse_framing() -> None:
    assert sse({"type": "ping"}) == b'event: ping\ndata: {"type":"ping"}\n\n'


# -- the fake upstream speaks the SDK's types, field by field ----------------------------------


def _fields(model: type[pydantic.BaseModel]) -> set[str]:
    return set(model.model_fields)


def test_fake_anthropic_answers_match_the_sdk_types() -> None:
    fake = FakeAnthropic()
    body = dict(PARALLEL_TOOLS, stream=False)
    message = fake.answer(None, body, Reply())  # type: ignore[arg-type]
    parsed = at.Message.model_validate(message)
    assert set(message) <= _fields(at.Message)
    assert set(message["usage"]) <= _fields(at.Usage)
    for block, model in zip(message["content"], parsed.content, strict=True):
        assert set(block) <= _fields(type(model))
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(at.RawMessageStreamEvent)
    for payload in iter_sse_data(_fake_stream(PARALLEL_TOOLS) + _fake_stream(TEXT)):
        if payload["type"] == "ping":  # the SDK skips pings before parsing
            assert payload == {"type": "ping"}
            continue
        event = adapter.validate_python(payload)
        assert set(payload) <= _fields(type(event)), payload
    error = fake.error_body(529, "Overloaded", None)
    assert at.ErrorResponse.model_validate(error).error.type == "overloaded_error"
