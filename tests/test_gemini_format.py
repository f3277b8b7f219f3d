"""OpenAI <-> Gemini translation as pure functions: golden fixtures each direction, streams cut
at every byte boundary, errors, embeddings."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from plugway.errors import (
    ContentFiltered,
    ContextWindowExceeded,
    InvalidRequest,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamStreamBroken,
    UpstreamUnavailable,
)
from plugway.formats import gemini as fmt
from plugway.testing.fake_gemini import InvalidArgument, check_request

FIXTURES = Path(__file__).parent / "fixtures" / "gemini"
_CALL_ID = re.compile(r"^call_[0-9a-f]{24}")


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / name).read_text("utf-8")))


def normalise(value: Any, expected: Any) -> Any:
    """Drop what is random (``created``; ``id`` when the fixture has none) and write
    synthesised tool-call ids as ``call_*``."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "created" or (
                key == "id" and isinstance(expected, dict) and "id" not in expected
            ):
                continue
            if key == "id" and isinstance(item, str) and _CALL_ID.match(item):
                out[key] = _CALL_ID.sub("call_*", item)
                continue
            sub = expected.get(key) if isinstance(expected, dict) else None
            out[key] = normalise(item, sub)
        return out
    if isinstance(value, list):
        subs = expected if isinstance(expected, list) else []
        return [normalise(v, subs[i] if i < len(subs) else None) for i, v in enumerate(value)]
    return value


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("request_*.json")))
def test_request_fixtures(name: str) -> None:
    fixture = load(name)
    translated = fmt.to_gemini_request(fixture["openai"])
    assert translated == fixture["gemini"]
    check_request(translated)  # and the fake Gemini API accepts it


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("response_*.json")))
def test_response_fixtures(name: str) -> None:
    fixture = load(name)
    body = fmt.from_gemini_response(fixture["gemini"], model=fixture["model"])
    assert normalise(body, fixture["openai"]) == fixture["openai"]
    assert isinstance(body["created"], int)


def sse_bytes(events: list[dict[str, Any]]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(e) + b"\r\n\r\n" for e in events)


def run_stream(fixture: dict[str, Any], pieces: list[bytes]) -> list[dict[str, Any]]:
    translator = fmt.StreamTranslator(
        model=fixture["model"], include_usage=fixture["include_usage"]
    )
    out = b"".join(translator.feed(piece) for piece in pieces) + translator.close()
    assert out.endswith(b"\n\n")
    chunks = [orjson.loads(line[6:]) for line in out.split(b"\n\n") if line]
    assert len({c["id"] for c in chunks}) == 1 and len({c["created"] for c in chunks}) == 1
    return [
        normalise(c, e) for c, e in zip(chunks, fixture["openai_chunks"], strict=False)
    ] + chunks[len(fixture["openai_chunks"]) :]


STREAMS = sorted(p.name for p in FIXTURES.glob("stream_*.json"))


@pytest.mark.parametrize("name", STREAMS)
def test_stream_fixtures_whole(name: str) -> None:
    fixture = load(name)
    assert run_stream(fixture, [sse_bytes(fixture["gemini_events"])]) == fixture["openai_chunks"]


@pytest.mark.parametrize("name", STREAMS)
def test_stream_split_at_every_boundary(name: str) -> None:
    """The upstream bytes cut in two at every position, and one byte at a time: the chunks
    (a tool call's arguments included) come out whole, in order, and the same."""
    fixture = load(name)
    data = sse_bytes(fixture["gemini_events"])
    expected = fixture["openai_chunks"]
    for cut in range(1, len(data)):
        assert run_stream(fixture, [data[:cut], data[cut:]]) == expected, cut
    assert run_stream(fixture, [data[i : i + 1] for i in range(len(data))]) == expected


def test_stream_usage_is_kept_without_a_usage_chunk() -> None:
    fixture = load("stream_max_tokens_no_usage.json")
    translator = fmt.StreamTranslator(model="m", include_usage=False)
    translator.feed(sse_bytes(fixture["gemini_events"]))
    assert translator.close() == b""
    assert translator.usage is not None and translator.usage["total_tokens"] == 5
    assert translator.finish_reason == "length"


def test_stream_last_event_without_blank_line_is_used() -> None:
    events = load("stream_max_tokens_no_usage.json")["gemini_events"]
    data = sse_bytes(events).rstrip(b"\r\n")
    translator = fmt.StreamTranslator(model="m", include_usage=False)
    out = translator.feed(data) + translator.close()
    assert b'"finish_reason":"length"' in out


def test_stream_without_finish_reason_is_broken() -> None:
    events = load("stream_max_tokens_no_usage.json")["gemini_events"][:1]
    translator = fmt.StreamTranslator(model="m", include_usage=True)
    translator.feed(sse_bytes(events))
    with pytest.raises(UpstreamStreamBroken):
        translator.close()


def test_stream_error_event_and_blocked_prompt() -> None:
    translator = fmt.StreamTranslator(model="m", include_usage=False)
    error = {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}
    with pytest.raises(UpstreamUnavailable):
        translator.feed(sse_bytes([error]))
    translator = fmt.StreamTranslator(model="m", include_usage=False)
    with pytest.raises(ContentFiltered):
        translator.feed(sse_bytes([{"promptFeedback": {"blockReason": "SAFETY"}}]))


def test_several_candidates_stream_as_several_choices() -> None:
    events = [
        {
            "candidates": [
                {"content": {"parts": [{"text": "A"}]}, "index": 0},
                {
                    "content": {"parts": [{"functionCall": {"name": "f", "args": {}}}]},
                    "index": 1,
                    "finishReason": "STOP",
                },
            ]
        },
        {
            "candidates": [
                {"content": {"parts": [{"text": "B"}]}, "index": 0, "finishReason": "STOP"}
            ]
        },
    ]
    translator = fmt.StreamTranslator(model="m", include_usage=False)
    out = translator.feed(sse_bytes(events)) + translator.close()
    chunks = [orjson.loads(line[6:]) for line in out.split(b"\n\n") if line]
    by_choice: dict[int, list[dict[str, Any]]] = {}
    for chunk in chunks:
        choice = chunk["choices"][0]
        by_choice.setdefault(choice["index"], []).append(choice)
    assert by_choice[0][0]["delta"]["role"] == "assistant"
    assert by_choice[1][0]["delta"]["role"] == "assistant"
    assert by_choice[1][0]["delta"]["tool_calls"][0]["index"] == 0
    assert by_choice[1][-1]["finish_reason"] == "tool_calls"
    assert by_choice[0][-1]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("reason", "calls", "expected"),
    [
        ("STOP", False, "stop"),
        ("STOP", True, "tool_calls"),
        ("MAX_TOKENS", True, "length"),
        ("SAFETY", False, "content_filter"),
        ("RECITATION", False, "content_filter"),
        ("BLOCKLIST", False, "content_filter"),
        ("PROHIBITED_CONTENT", False, "content_filter"),
        ("SPII", False, "content_filter"),
        ("MALFORMED_FUNCTION_CALL", False, "stop"),
        ("SOMETHING_NEW", False, "stop"),
    ],
)
def test_finish_reasons(reason: str, calls: bool, expected: str) -> None:
    assert fmt.finish_reason(reason, calls) == expected


def test_blocked_prompt_raises_content_filtered() -> None:
    with pytest.raises(ContentFiltered) as info:
        fmt.from_gemini_response({"promptFeedback": {"blockReason": "BLOCKLIST"}}, model="m")
    assert info.value.code == "content_filter" and info.value.status == 400


@pytest.mark.parametrize(
    ("messages", "fragment"),
    [
        (
            [{"role": "tool", "tool_call_id": "nope", "content": "x"}],
            "answers no earlier tool call",
        ),
        ([{"role": "system", "content": "only a system prompt"}], "at least one user"),
        (
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}
                    ],
                }
            ],
            "valid base64",
        ),
        (
            [
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{bad"},
                        }
                    ],
                }
            ],
            "not valid JSON",
        ),
        ([{"role": "wizard", "content": "x"}], "messages[0].role must be one of"),
    ],
)
def test_client_mistakes_are_invalid_requests(messages: list[Any], fragment: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        fmt.to_gemini_request({"messages": messages})
    assert fragment in info.value.message


def test_recursive_ref_terminates() -> None:
    schema = {
        "type": "object",
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {"child": {"$ref": "#/$defs/Node"}, "name": {"type": "string"}},
            }
        },
        "properties": {"root": {"$ref": "#/$defs/Node"}},
    }
    cleaned = fmt.clean_schema(schema)
    check_request(
        {
            "contents": [{"role": "user", "parts": [{"text": "x"}]}],
            "generationConfig": {"responseSchema": cleaned},
        }
    )
    assert cleaned["properties"]["root"]["properties"]["name"] == {"type": "string"}


def test_the_fake_refuses_what_gemini_refuses() -> None:
    with pytest.raises(InvalidArgument):
        check_request({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]})
    with pytest.raises(InvalidArgument):
        check_request(
            {
                "contents": [{"role": "user", "parts": [{"text": "x"}]}],
                "generationConfig": {"max_tokens": 3},
            }
        )
    with pytest.raises(InvalidArgument):
        check_request(
            {
                "contents": [{"role": "user", "parts": [{"text": "x"}]}],
                "tools": [
                    {
                        "functionDeclarations": [
                            {
                                "name": "f",
                                "parameters": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {"a": {"type": "string"}},
                                },
                            }
                        ]
                    }
                ],
            }
        )


def test_embedding_requests() -> None:
    assert fmt.to_gemini_embed({"input": "hi", "dimensions": 8}, "text-embedding-004") == (
        "embedContent",
        {"content": {"parts": [{"text": "hi"}]}, "outputDimensionality": 8},
    )
    method, body = fmt.to_gemini_embed({"input": ["a", "b"]}, "models/x")
    assert method == "batchEmbedContents"
    assert body == {
        "requests": [
            {"model": "models/x", "content": {"parts": [{"text": "a"}]}},
            {"model": "models/x", "content": {"parts": [{"text": "b"}]}},
        ]
    }
    with pytest.raises(InvalidRequest):
        fmt.to_gemini_embed({"input": [[1, 2, 3]]}, "m")
    assert fmt.embedding_vectors({"embeddings": [{"values": [1.0]}, {"values": [2.0]}]}) == [
        [1.0],
        [2.0],
    ]


def _gemini_error(code: int, status: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "status": status, "message": message, **extra}}


def test_error_mapping() -> None:
    retry = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]
    error = fmt.error_from_gemini(
        429, _gemini_error(429, "RESOURCE_EXHAUSTED", "quota", details=retry), {}, "g"
    )
    assert isinstance(error, UpstreamRateLimited) and error.retryable
    assert error.retry_after == 37.0

    for status, name in ((500, "INTERNAL"), (503, "UNAVAILABLE"), (504, "DEADLINE_EXCEEDED")):
        error = fmt.error_from_gemini(status, _gemini_error(status, name, "x"), {}, "g")
        assert isinstance(error, UpstreamUnavailable) and error.retryable

    error = fmt.error_from_gemini(400, _gemini_error(400, "INVALID_ARGUMENT", "bad field"), {}, "g")
    assert type(error) is UpstreamRejected and error.status == 400
    assert error.code == "invalid_argument" and not error.retryable

    error = fmt.error_from_gemini(
        400,
        _gemini_error(
            400,
            "INVALID_ARGUMENT",
            "The input token count (2000001) exceeds the maximum number "
            "of tokens allowed (1048576).",
        ),
        {},
        "g",
    )
    assert isinstance(error, ContextWindowExceeded) and error.code == "context_length_exceeded"

    error = fmt.error_from_gemini(
        400,
        _gemini_error(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key. AIzaXYZ",
            details=[
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
            ],
        ),
        {},
        "g",
    )
    assert error.status == 401 and "AIza" not in error.message

    error = fmt.error_from_gemini(502, None, {}, "g")
    assert isinstance(error, UpstreamUnavailable)


# -- inbound: Gemini requests in, Gemini answers out -------------------------------------------


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("inbound_request_*.json")))
def test_inbound_request_fixtures(name: str) -> None:
    fixture = load(name)
    chat = fmt.chat_from_gemini_request(
        fixture["gemini"], fixture["model"], stream=fixture["stream"]
    )
    assert chat == fixture["chat"]


def test_inbound_response_fixture() -> None:
    fixture = load("inbound_response_tool_call.json")
    out = fmt.gemini_from_chat_response(
        fixture["chat"], model=fixture["model"], response_id=fixture["response_id"]
    )
    assert out == fixture["gemini"]


def test_thought_signature_survives_a_translated_turn_to_gemini() -> None:
    """A Gemini client's model turn with a signed call, translated to chat (as for any
    target), reaches a Gemini target with the same ``thoughtSignature`` on the call."""
    fixture = load("inbound_request_sdk.json")
    chat = fmt.chat_from_gemini_request(fixture["gemini"], fixture["model"])
    outbound = fmt.to_gemini_request(chat)
    (call_part,) = outbound["contents"][1]["parts"]
    assert call_part["thoughtSignature"] == "c2ln"
    assert call_part["functionCall"] == {"name": "weather", "args": {"city": "x"}}
    check_request(outbound)


def test_inbound_stream_gathers_calls_and_ends_with_usage() -> None:
    stream = fmt.ChatToGeminiStream(model="m", response_id="r")
    chunks: list[dict[str, Any]] = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "hm"}}]},
        {"choices": [{"index": 0, "delta": {"content": "Checking"}}]},
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_9__sig__czk=",
                                "function": {"name": "weather", "arguments": '{"ci'},
                            }
                        ]
                    },
                }
            ]
        },
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "P"}'}}]},
                    "finish_reason": "tool_calls",
                }
            ]
        },
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}},
    ]
    events = [event for chunk in chunks for event in stream.feed(chunk)]
    events += stream.finish()
    parts = [p for e in events for p in e["candidates"][0]["content"]["parts"]]
    assert parts == [
        {"text": "hm", "thought": True},
        {"text": "Checking"},
        {
            "functionCall": {"name": "weather", "args": {"city": "P"}, "id": "call_9"},
            "thoughtSignature": "czk=",
        },
    ]
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert events[-1]["usageMetadata"] == {
        "promptTokenCount": 3,
        "candidatesTokenCount": 4,
        "totalTokenCount": 7,
    }
    framer = fmt.JsonArrayFramer()
    framed = b"".join(framer.frame(orjson.dumps(e)) for e in events) + framer.close()
    assert orjson.loads(framed) == events


@pytest.mark.parametrize(
    ("body", "param", "native"),
    [
        ({}, "contents", False),
        ({"contents": [{"role": "bot", "parts": []}]}, "contents[0].role", False),
        ({"contents": [{"parts": [{"text": 1}]}]}, "contents[0].parts[0].text", False),
        (
            {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "*"}}]}]},
            "contents[0].parts[0].inlineData.data",
            False,
        ),
        (
            {"contents": [{"parts": [{"functionResponse": {"name": "f", "response": {}}}]}]},
            "contents[0].parts[0].functionResponse",
            False,
        ),
        ({"contents": [{"parts": [{"text": "x"}]}], "stream": True}, "stream", False),
        (
            {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"topQ": 1}},
            "generationConfig.topQ",
            False,
        ),
        (
            {"contents": [{"parts": [{"text": "x"}]}], "tools": [{"codeExecution": {}}]},
            "tools[0].codeExecution",
            True,
        ),
        (
            {"contents": [{"parts": [{"fileData": {"fileUri": "gs://b/x.pdf"}}]}]},
            "contents[0].parts[0].fileData",
            True,
        ),
        ({"contents": [{"parts": [{"text": "x"}]}], "cachedContent": "c/1"}, "cachedContent", True),
    ],
)
def test_inbound_bad_requests_name_the_field(body: Any, param: str, native: bool) -> None:
    with pytest.raises(InvalidRequest) as caught:
        fmt.chat_from_gemini_request(body, "m")
    assert caught.value.param == param
    assert caught.value.message.startswith(param)
    assert isinstance(caught.value, fmt.GeminiNativeOnly) is native
