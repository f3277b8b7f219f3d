"""plugway-cohere: plugway's provider conformance suite against FakeCohere, the translation
on its own, and the gateway serving Cohere through the openai SDK."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from plugway.testing import GatewayProcess
from plugway.testing.conformance import UpstreamConformance
from plugway_cohere.testing import FakeCohere
from plugway_cohere.translate import StreamTranslator, from_cohere, to_cohere


class TestCohereConformance(UpstreamConformance):
    provider_type = "cohere"
    fake_class = FakeCohere
    model = "command-a-03-2025"
    tool_arguments = {"city": "Paris"}


def test_request_translation() -> None:
    body = {
        "model": "x",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ],
        "tools": [
            {"type": "function", "function": {"name": "w", "parameters": {}}},
            {"type": "function", "function": {"name": "v", "parameters": {}}},
        ],
        "tool_choice": {"type": "function", "function": {"name": "v"}},
        "max_completion_tokens": 50,
        "top_p": 0.5,
        "stop": "END",
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "s", "schema": {"type": "object"}},
        },
    }
    out = to_cohere(body, "command-a")
    assert [m["role"] for m in out["messages"]] == ["system", "user", "assistant", "tool"]
    assert out["messages"][1]["content"] == "weather?"
    assert out["messages"][3] == {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
    assert [t["function"]["name"] for t in out["tools"]] == ["v"] and out[
        "tool_choice"
    ] == "REQUIRED"
    assert (out["max_tokens"], out["p"], out["stop_sequences"]) == (50, 0.5, ["END"])
    assert out["response_format"] == {"type": "json_object", "json_schema": {"type": "object"}}


def test_finish_reasons_and_usage() -> None:
    data: dict[str, Any] = {
        "id": "r",
        "finish_reason": "ERROR_TOXIC",
        "message": {"content": []},
        "usage": {"tokens": {"input_tokens": 4, "output_tokens": 2}},
    }
    out = from_cohere(data, "m")
    assert out["choices"][0]["finish_reason"] == "content_filter"
    assert out["usage"] == {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
    translator = StreamTranslator("m")
    translator.feed({"type": "message-start", "id": "r"})
    assert translator.feed({"type": "citation-start"}) == []
    end = translator.feed({"type": "message-end", "delta": {"finish_reason": "MAX_TOKENS"}})
    assert end[0]["choices"][0]["finish_reason"] == "length"


def test_gateway_serves_cohere(
    plugway_gateway: Callable[..., GatewayProcess], fake_upstream: Callable[..., FakeCohere]
) -> None:
    cohere = fake_upstream(FakeCohere)
    gateway = plugway_gateway(f"""
[providers.cohere]
type = "cohere"
base_url = "{cohere.url}"
api_key = "co-test-key-0123456789"

[[models]]
name = "command"
targets = [{{ provider = "cohere", model = "command-a-03-2025" }}]
""")
    reply = gateway.openai().chat.completions.create(
        model="command", messages=[{"role": "user", "content": "bonjour"}]
    )
    assert reply.choices[0].message.content == "echo: bonjour"
    sent = cohere.requests[-1]
    assert sent.path == "/v2/chat" and sent.body["model"] == "command-a-03-2025"
    assert {k.lower(): v for k, v in sent.headers.items()}[
        "authorization"
    ] == "Bearer co-test-key-0123456789"
