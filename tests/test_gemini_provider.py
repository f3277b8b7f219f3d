"""Gemini targets driven end to end: the openai SDK -> the real gateway -> a fake Gemini API
speaking the real wire format (and a fake OpenAI backup for failover)."""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest
from plugway.testing import CutStream, FakeGemini, FakeOpenAI, GatewayProcess, Status

KEY = "AIzaSyFAKE-gemini-key-0123456789abcdef"


@pytest.fixture(scope="module")
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as upstream:
        yield upstream


@pytest.fixture(autouse=True)
def _fresh(gemini: FakeGemini, backup: FakeOpenAI) -> None:
    gemini.reset()
    backup.reset()


@pytest.fixture(scope="module")
def gw(gemini: FakeGemini, backup: FakeOpenAI) -> Iterator[GatewayProcess]:
    config = f"""
[providers.google]
type = "gemini"
base_url = "{gemini.url}"
api_key = "{KEY}"
timeout = 3

[providers.backup]
type = "openai"
base_url = "{backup.url}/v1"
api_key = "sk-backup-0123456789"

[[models]]
name = "gem"
targets = [{{ provider = "google", model = "gemini-2.5-flash" }}]

[[models]]
name = "gem-with-backup"
targets = [
  {{ provider = "google", model = "gemini-2.5-flash" }},
  {{ provider = "backup", model = "gpt-4o-mini" }},
]

[[models]]
name = "gem-embed"
targets = [{{ provider = "google", model = "gemini-embedding-001" }}]

[plugins]
# Tests here fail targets on purpose, one after another on the same gateway: without the
# health plugin, one test's failures cannot put a target in cool-down for the next.
disabled = ["health"]
"""
    with GatewayProcess(config) as process:
        yield process


def client(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="client-key", max_retries=0)


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "additionalProperties": False,
                "$schema": "http://json-schema.org/draft-07/schema#",
                "properties": {
                    "city": {"type": "string"},
                    "unit": {"type": ["string", "null"], "enum": ["c", "f"]},
                },
                "required": ["city"],
            },
        },
    }
]


def test_text_with_system_prompt_and_usage(gw: GatewayProcess, gemini: FakeGemini) -> None:
    raw = client(gw).chat.completions.with_raw_response.create(
        model="gem",
        temperature=0.2,
        max_tokens=50,
        stop="END",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello gemini"},
        ],
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello gemini"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gemini-fake-001"
    usage = completion.usage
    assert usage is not None
    # "hello gemini" is 2 prompt tokens; answer 3 tokens + 5 thinking tokens
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (2, 8, 10)
    assert usage.completion_tokens_details.reasoning_tokens == 5  # type: ignore[union-attr]
    assert usage.prompt_tokens_details.cached_tokens == 2  # type: ignore[union-attr]
    assert raw.headers["x-plugway-provider"] == "google"
    sent = gemini.requests[-1]
    assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.query == {}
    assert "authorization" not in sent.headers
    assert sent.body["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert sent.body["contents"] == [{"role": "user", "parts": [{"text": "hello gemini"}]}]
    assert sent.body["generationConfig"] == {
        "temperature": 0.2,
        "maxOutputTokens": 50,
        "stopSequences": ["END"],
    }


def test_tool_call_and_tool_result_round_trip(gw: GatewayProcess, gemini: FakeGemini) -> None:
    c = client(gw)
    first = c.chat.completions.create(
        model="gem",
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=TOOLS,
        tool_choice="required",  # type: ignore[arg-type]
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "weather"  # type: ignore[union-attr]
    assert orjson.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    declaration = gemini.requests[-1].body["tools"][0]["functionDeclarations"][0]
    assert declaration["parameters"] == {
        "type": "object",
        "required": ["city"],
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "nullable": True, "enum": ["c", "f"]},
        },
    }
    assert gemini.requests[-1].body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}

    second = c.chat.completions.create(
        model="gem",
        tools=TOOLS,  # type: ignore[arg-type]
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            choice.message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'},
        ],
    )
    assert second.choices[0].message.content == "echo: weather in Paris?"
    contents = gemini.requests[-1].body["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[1]["parts"] == [
        {
            "functionCall": {"name": "weather", "args": {"city": "Paris"}},
            "thoughtSignature": "c2lnbmF0dXJl",
        }
    ]
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "weather", "response": {"temp_c": 21}}}
    ]


def test_stream_text_with_usage(gw: GatewayProcess, gemini: FakeGemini) -> None:
    stream = client(gw).chat.completions.create(
        model="gem",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4 + 5
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    sent = gemini.requests[-1]
    assert sent.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert sent.query == {"alt": "sse"}
    assert sent.headers["x-goog-api-key"] == KEY


def test_stream_without_include_usage_has_no_usage_chunk_but_logs_usage(
    gw: GatewayProcess,
) -> None:
    stream = client(gw).chat.completions.create(
        model="gem",
        messages=[{"role": "user", "content": "quiet please"}],
        stream=True,
    )
    chunks = list(stream)
    assert all(c.choices for c in chunks)
    request_id = stream.response.headers["x-request-id"]
    record = log_record(gw, request_id)
    assert record["usage"]["completion_tokens"] == 3 + 5
    assert record["usage"]["completion_tokens_details"] == {"reasoning_tokens": 5}
    assert record["finish_reason"] == "stop"


def log_record(gw: GatewayProcess, request_id: str) -> dict[str, Any]:
    """The request log line for ``request_id`` (logged just after the stream ends)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for record in gw.request_logs():
            if record["request_id"] == request_id:
                return record
        time.sleep(0.02)
    raise AssertionError(f"no log record for {request_id}")


def test_stream_tool_call_arrives_whole(gw: GatewayProcess) -> None:
    stream = client(gw).chat.completions.create(
        model="gem",
        messages=[{"role": "user", "content": "weather?"}],
        stream=True,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "weather"}},  # type: ignore[arg-type]
    )
    chunks = [c for c in stream if c.choices]
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(calls) == 1
    assert calls[0].index == 0 and calls[0].id and calls[0].id.startswith("call_")
    assert calls[0].function.name == "weather"  # type: ignore[union-attr]
    assert orjson.loads(calls[0].function.arguments) == {  # type: ignore[union-attr]
        "city": "Paris",
        "days": [1, 2],
    }
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "Checking."


def test_embeddings_sdk_default_base64_single_and_batch(
    gw: GatewayProcess, gemini: FakeGemini
) -> None:
    c = client(gw)
    single = c.embeddings.create(model="gem-embed", input="abcd")
    assert single.data[0].embedding == [4.0, 0.25, -1.5]
    assert gemini.requests[-1].path == "/v1beta/models/gemini-embedding-001:embedContent"
    assert gemini.requests[-1].body == {"content": {"parts": [{"text": "abcd"}]}}

    batch = c.embeddings.create(model="gem-embed", input=["a", "bb"], dimensions=4)
    assert [d.embedding for d in batch.data] == [[1.0, 0.25, -1.5, 0.5], [2.0, 0.25, -1.5, 0.5]]
    assert [d.index for d in batch.data] == [0, 1]
    sent = gemini.requests[-1]
    assert sent.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert sent.body["requests"][1] == {
        "model": "models/gemini-embedding-001",
        "content": {"parts": [{"text": "bb"}]},
        "outputDimensionality": 4,
    }


def test_embeddings_floats_and_raw_base64(gw: GatewayProcess) -> None:
    c = client(gw)
    floats = c.embeddings.with_raw_response.create(
        model="gem-embed", input="xy", encoding_format="float"
    )
    assert orjson.loads(floats.content)["data"][0]["embedding"] == [2.0, 0.25, -1.5]
    b64 = c.embeddings.with_raw_response.create(
        model="gem-embed", input="xy", encoding_format="base64"
    )
    encoded = orjson.loads(b64.content)["data"][0]["embedding"]
    assert struct.unpack("<3f", base64.b64decode(encoded)) == (2.0, 0.25, -1.5)


def test_invalid_argument_is_a_bad_request(gw: GatewayProcess, gemini: FakeGemini) -> None:
    gemini.script(Status(400, "Unable to submit request because it has an empty text parameter."))
    with pytest.raises(openai.BadRequestError) as info:
        client(gw).chat.completions.create(
            model="gem-with-backup", messages=[{"role": "user", "content": "x"}]
        )
    assert "empty text parameter" in info.value.message
    assert len(gemini.requests) == 1  # final: no failover to the backup


def test_context_window_overflow(gw: GatewayProcess, gemini: FakeGemini) -> None:
    gemini.script(
        Status(
            400,
            "The input token count (1200000) exceeds the maximum number of "
            "tokens allowed (1048576).",
        )
    )
    with pytest.raises(openai.BadRequestError) as info:
        client(gw).chat.completions.create(model="gem", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "context_length_exceeded"


def test_blocked_prompt_is_content_filtered(gw: GatewayProcess, gemini: FakeGemini) -> None:
    blocked = orjson.dumps(
        {
            "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
            "usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 3},
        }
    )
    gemini.script(
        Status(200, body=blocked),
        Status(200, body=b"data: " + blocked + b"\r\n\r\n", content_type="text/event-stream"),
    )
    with pytest.raises(openai.BadRequestError) as info:
        client(gw).chat.completions.create(model="gem", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "content_filter"
    with pytest.raises(openai.BadRequestError) as info:
        list(
            client(gw).chat.completions.create(
                model="gem", messages=[{"role": "user", "content": "x"}], stream=True
            )
        )
    assert info.value.code == "content_filter"


def test_rate_limit_uses_retry_info(gw: GatewayProcess, gemini: FakeGemini) -> None:
    body = orjson.dumps(
        {
            "error": {
                "code": 429,
                "message": "You exceeded your current quota.",
                "status": "RESOURCE_EXHAUSTED",
                "details": [
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.05s"}
                ],
            }
        }
    )
    gemini.script(Status(429, body=body), Status(429, body=body))
    with pytest.raises(openai.APIStatusError) as info:
        client(gw).chat.completions.create(model="gem", messages=[{"role": "user", "content": "x"}])
    # one target: retried once after RetryInfo's delay, then the client is told to slow down
    assert len(gemini.requests) == 2
    # (the gateway answers 503 once it has spent the retries a client would make)
    assert info.value.status_code == 503 and info.value.code == "upstream_rate_limited"
    assert info.value.response.headers["x-should-retry"] == "false"
    assert "google/gemini-2.5-flash: resource_exhausted (429)" in info.value.message


def test_unavailable_fails_over_to_backup(
    gw: GatewayProcess, gemini: FakeGemini, backup: FakeOpenAI
) -> None:
    gemini.script(Status(503, "The model is overloaded. Please try again later."))
    raw = client(gw).chat.completions.with_raw_response.create(
        model="gem-with-backup", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.parse().choices[0].message.content == "echo: hi"
    assert raw.headers["x-plugway-provider"] == "backup"
    assert raw.headers["x-plugway-attempts"] == "2"
    assert len(gemini.requests) == 1 and len(backup.requests) == 1


def test_key_is_never_in_a_url_or_error(gw: GatewayProcess, gemini: FakeGemini) -> None:
    gemini.script(
        Status(
            400,
            body=orjson.dumps(
                {
                    "error": {
                        "code": 400,
                        "message": "API key not valid. Please pass a valid API key.",
                        "status": "INVALID_ARGUMENT",
                        "details": [
                            {
                                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                "reason": "API_KEY_INVALID",
                                "domain": "googleapis.com",
                            }
                        ],
                    }
                }
            ),
        )
    )
    with pytest.raises(openai.AuthenticationError) as info:
        client(gw).chat.completions.create(model="gem", messages=[{"role": "user", "content": "x"}])
    assert KEY not in str(info.value.body)
    client(gw).embeddings.create(model="gem-embed", input=["a", "b"])
    list(
        client(gw).chat.completions.create(
            model="gem", messages=[{"role": "user", "content": "x"}], stream=True
        )
    )
    for request in gemini.requests:
        assert KEY not in request.path and KEY not in str(request.query)
        assert request.headers["x-goog-api-key"] == KEY
    assert KEY not in gw.output()


def test_stream_fails_over_before_the_first_byte_and_breaks_after(
    gw: GatewayProcess, gemini: FakeGemini, backup: FakeOpenAI
) -> None:
    gemini.script(Status(503, "The model is overloaded."))
    stream = client(gw).chat.completions.create(
        model="gem-with-backup", messages=[{"role": "user", "content": "a b"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "echo: a b "
    assert stream.response.headers["x-plugway-provider"] == "backup"

    gemini.script(CutStream(after=2))
    stream = client(gw).chat.completions.create(
        model="gem", messages=[{"role": "user", "content": "one two three four"}], stream=True
    )
    received = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content if chunk.choices else None)
    assert received[:2] == ["echo:", " one"]


def test_default_config_serves_gemini_when_its_key_is_set() -> None:
    from plugway.gateway import load_gateway

    gateway = load_gateway(None, environ={"GEMINI_API_KEY": KEY})
    provider = gateway.providers["gemini"]
    assert provider.settings.type == "gemini"
    assert provider.settings.base_url == "https://generativelanguage.googleapis.com"
    assert "gemini-2.5-flash" in gateway.router.routes
    assert KEY not in str(provider.public_settings())
