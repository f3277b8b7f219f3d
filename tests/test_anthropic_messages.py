"""The inbound Anthropic-compatible endpoint, driven by the anthropic SDK through the real
gateway: Anthropic in, an OpenAI-format target (FakeOpenAI) or an Anthropic one (pass-through,
FakeAnthropic) behind, Anthropic out."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anthropic
import anthropic.types as at
import httpx
import orjson
import pydantic
import pytest
from conftest import ANTHROPIC_KEY, anthropic_config
from plugway.plugins.anthropic_messages import estimate_tokens
from plugway.sse import iter_data
from plugway.testing import (
    CutStream,
    ErrorEvent,
    FakeAnthropic,
    FakeOpenAI,
    GatewayProcess,
    Reply,
    Status,
)

WEATHER: Any = {
    "name": "weather",
    "description": "Weather by city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
EVENT: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(at.RawMessageStreamEvent)


def client(gw: GatewayProcess, **kwargs: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key="client-key", max_retries=0, **kwargs)


def raw_events(gw: GatewayProcess, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The SSE events of a streamed /v1/messages call, each checked against the SDK's types
    and its ``event:`` name against its ``type``."""
    response = httpx.post(gw.url + "/v1/messages", json={**body, "stream": True}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["request-id"].startswith("req_")
    events = []
    for block in response.content.split(b"\n\n"):
        if not block.strip() or block.startswith(b":"):
            continue
        name = block.split(b"\n")[0].removeprefix(b"event: ").decode()
        (payload,) = iter_data(block + b"\n\n")
        event = orjson.loads(payload)
        assert event["type"] == name
        if name != "ping":
            EVENT.validate_python(event)
        events.append(event)
    return events


# -- an OpenAI-format target behind ------------------------------------------------------------


def test_non_streamed_to_an_openai_target(
    claude_gateway: GatewayProcess, primary: FakeOpenAI
) -> None:
    raw = client(claude_gateway).messages.with_raw_response.create(
        model="gpt",
        max_tokens=50,
        system="Be terse.",
        messages=[{"role": "user", "content": "hello there"}],
        stop_sequences=["END"],
        metadata={"user_id": "u-1"},
        extra_body={"temperature": 0.5},
    )
    message = raw.parse()
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "echo: hello there"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.model == "gpt"
    # FakeOpenAI: 11 prompt tokens of which 3 cached, 7 completion
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (8, 3)
    assert message.usage.output_tokens == 7
    assert raw.headers["request-id"] == raw.headers["x-request-id"]
    assert raw.headers["x-plugway-provider"] == "oai"
    sent = primary.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.body == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "hello there"},
        ],
        "max_tokens": 50,
        "stop": ["END"],
        "temperature": 0.5,
        "user": "u-1",
    }
    assert sent.headers["authorization"] == "Bearer sk-primary-secret-0123456789"
    assert "x-api-key" not in sent.headers
    assert "client-key" not in str(sent.headers)


def test_streamed_from_an_openai_target(claude_gateway: GatewayProcess) -> None:
    with client(claude_gateway).messages.stream(
        model="gpt", max_tokens=50, messages=[{"role": "user", "content": "one two three"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: one two three "
    assert final.content[0].text == text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (11, 7)
    events = raw_events(
        claude_gateway,
        {"model": "gpt", "max_tokens": 50, "messages": [{"role": "user", "content": "a b"}]},
    )
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert set(kinds[2:-3]) == {"content_block_delta"}
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert events[0]["message"]["id"].startswith("msg_")


def test_tool_use_round_trip_with_an_openai_target(
    claude_gateway: GatewayProcess, primary: FakeOpenAI
) -> None:
    c = client(claude_gateway)
    messages: list[Any] = [{"role": "user", "content": "weather in Paris?"}]
    first = c.messages.create(
        model="gpt",
        max_tokens=50,
        messages=messages,
        tools=[WEATHER],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
    )
    assert first.stop_reason == "tool_use"
    (use,) = first.content
    assert isinstance(use, at.ToolUseBlock)
    assert (use.name, use.input) == ("weather", {"city": "Paris"})
    sent = primary.requests[-1].body
    assert sent["tool_choice"] == "required"
    assert sent["parallel_tool_calls"] is False
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Weather by city",
                "parameters": WEATHER["input_schema"],
            },
        }
    ]
    messages += [
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": use.id, "content": "18C"},
                {"type": "text", "text": "thanks"},
            ],
        },
    ]
    second = c.messages.create(model="gpt", max_tokens=50, messages=messages, tools=[WEATHER])
    assert second.content[0].text == "echo: thanks"  # type: ignore[union-attr]
    turns = primary.requests[-1].body["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "tool", "user"]
    assert turns[1]["tool_calls"][0]["id"] == use.id
    assert turns[2] == {"role": "tool", "tool_call_id": use.id, "content": "18C"}


def test_streamed_tool_use_from_an_openai_target(claude_gateway: GatewayProcess) -> None:
    with client(claude_gateway).messages.stream(
        model="gpt",
        max_tokens=50,
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "weather"},
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    (use,) = final.content
    assert isinstance(use, at.ToolUseBlock)
    assert (use.id, use.name, use.input) == ("call_1", "weather", {"city": "Paris"})


# -- an Anthropic target behind: pass-through --------------------------------------------------


PASS_BODY: Any = {
    "model": "claude",
    "max_tokens": 64,
    "system": [{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}],
    "messages": [{"role": "user", "content": [{"type": "text", "text": "hi there"}]}],
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "metadata": {"user_id": "u-1"},
    "extra_body": {"top_k": 5},
}


def wire(body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``body`` as the SDK puts it on the wire (``extra_body`` merged in)."""
    out = {k: v for k, v in body.items() if k != "extra_body"}
    return {**out, **body.get("extra_body", {}), **changes}


def test_pass_through_non_streamed(
    claude_gateway: GatewayProcess, claude_up: FakeAnthropic
) -> None:
    raw = client(claude_gateway).messages.with_raw_response.create(
        **PASS_BODY, extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"}
    )
    message = raw.parse()
    assert message.id.startswith("msg_01"), "the upstream's own answer, untouched"
    assert message.model == "claude-sonnet-4-5"
    assert message.content[0].text == "echo: hi there"  # type: ignore[union-attr]
    assert message.usage.cache_creation_input_tokens == 5
    sent = claude_up.requests[-1]
    assert sent.body == wire(PASS_BODY, model="claude-sonnet-4-5")
    assert sent.headers["x-api-key"] == ANTHROPIC_KEY
    assert sent.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert raw.headers["x-plugway-provider"] == "claude"


def test_pass_through_streamed(claude_gateway: GatewayProcess, claude_up: FakeAnthropic) -> None:
    with client(claude_gateway).messages.stream(**PASS_BODY) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: hi there"
    assert final.id.startswith("msg_01")
    assert final.usage.output_tokens == 7
    assert claude_up.requests[-1].body == wire(PASS_BODY, model="claude-sonnet-4-5", stream=True)
    events = raw_events(claude_gateway, wire(PASS_BODY))
    assert "ping" in [e["type"] for e in events], "events pass through untouched, pings too"


def test_pass_through_tool_use_streamed(claude_gateway: GatewayProcess) -> None:
    tools = [WEATHER, {"name": "forecast", "input_schema": {"type": "object"}}]
    with client(claude_gateway).messages.stream(
        model="claude",
        max_tokens=64,
        messages=[{"role": "user", "content": "x"}],
        tools=tools,
        tool_choice={"type": "any"},
    ) as stream:
        final = stream.get_final_message()
    assert [(b.name, b.input) for b in final.content] == [  # type: ignore[union-attr]
        ("weather", {"city": "Paris"}),
        ("forecast", {"city": "Tokyo", "days": 3}),
    ]


def test_failover_from_an_overloaded_anthropic_target_to_an_openai_one(
    claude_gateway: GatewayProcess, claude_up: FakeAnthropic, primary: FakeOpenAI
) -> None:
    c = client(claude_gateway)
    body: Any = {**PASS_BODY, "model": "claude-then-gpt"}
    claude_up.script(Status(529, "Overloaded"))
    raw = c.messages.with_raw_response.create(**body)
    assert raw.headers["x-plugway-provider"] == "oai"
    assert raw.parse().content[0].text == "echo: hi there"  # type: ignore[union-attr]
    claude_up.script(Status(529, "Overloaded"))
    with c.messages.stream(**body) as stream:
        assert "".join(stream.text_stream) == "echo: hi there "
    assert len(primary.requests) == 2
    assert "top_k" not in primary.requests[-1].body


def test_pass_through_stream_failing_before_any_byte_fails_over(
    claude_gateway: GatewayProcess, claude_up: FakeAnthropic, primary: FakeOpenAI
) -> None:
    claude_up.script(ErrorEvent(after=0))
    with client(claude_gateway).messages.stream(
        model="claude-then-gpt", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        assert "".join(stream.text_stream) == "echo: hi "
    assert len(primary.requests) == 1


#: The shape of a request Claude Code (2.1) sends, as captured from it: ``?beta=true``, betas,
#: cached system blocks, a mid-conversation system message, a JSON blob as metadata.user_id,
#: adaptive thinking, context management, custom tools without a ``type``.
CLAUDE_CODE_BETAS = (
    "claude-code-20250219,interleaved-thinking-2025-05-14,mid-conversation-system-2026-04-07"
)
CLAUDE_CODE_BODY: Any = {
    "max_tokens": 32000,
    "stream": True,
    "system": [
        {"type": "text", "text": "You are Claude Code."},
        {"type": "text", "text": "Be careful.", "cache_control": {"type": "ephemeral"}},
    ],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                {"type": "text", "text": "hello gateway", "cache_control": {"type": "ephemeral"}},
            ],
        },
        {"role": "system", "content": "Available agent types: claude"},
        {"role": "user", "content": "go"},
    ],
    "metadata": {"user_id": '{"device_id":"' + "d" * 64 + '","session_id":"s"}'},
    "thinking": {"type": "adaptive"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "tools": [WEATHER],
}


@pytest.mark.parametrize("model", ["claude", "gpt"])
def test_claude_code_style_request(
    claude_gateway: GatewayProcess, claude_up: FakeAnthropic, primary: FakeOpenAI, model: str
) -> None:
    """Claude Code: base URL without /v1, ``?beta=true``, its own key in ``x-api-key`` (or a
    bearer token), its betas and its body, to an Anthropic target and to an OpenAI one."""
    response = httpx.post(
        claude_gateway.url + "/v1/messages?beta=true",
        headers={
            "authorization": "Bearer client-token",
            "x-api-key": "sk-client-dummy",
            "anthropic-version": "2023-06-01",
            "anthropic-beta": CLAUDE_CODE_BETAS,
        },
        json={**CLAUDE_CODE_BODY, "model": model},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.content.count(b"event: message_stop") == 1
    assert b'"text_delta"' in response.content
    if model == "claude":
        sent = claude_up.requests[-1]
        assert sent.headers["anthropic-beta"] == CLAUDE_CODE_BETAS
        assert sent.headers["x-api-key"] == ANTHROPIC_KEY
        assert "authorization" not in sent.headers
        assert sent.body == {**CLAUDE_CODE_BODY, "model": "claude-sonnet-4-5"}
    else:
        sent = primary.requests[-1]
        assert "x-api-key" not in sent.headers
        assert sent.headers["authorization"] == "Bearer sk-primary-secret-0123456789"
        assert [m["role"] for m in sent.body["messages"]] == ["system", "user", "system", "user"]
        assert "user" not in sent.body, "a long metadata.user_id is not sent as 'user'"
        assert "thinking" not in sent.body and "context_management" not in sent.body


def test_a_route_caps_max_tokens(claude_gateway: GatewayProcess, primary: FakeOpenAI) -> None:
    c = client(claude_gateway)
    for asked, sent in ((32000, 16384), (100, 100)):
        with c.messages.stream(
            model="gpt-capped", max_tokens=asked, messages=[{"role": "user", "content": "x"}]
        ) as stream:
            stream.get_final_message()
        assert primary.requests[-1].body["max_tokens"] == sent


# -- errors ------------------------------------------------------------------------------------


def test_errors_have_anthropics_shape(claude_gateway: GatewayProcess, primary: FakeOpenAI) -> None:
    c = client(claude_gateway)
    with pytest.raises(anthropic.NotFoundError) as missing:
        c.messages.create(model="nope", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert missing.value.body["type"] == "error"  # type: ignore[index]
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    assert missing.value.request_id and missing.value.request_id.startswith("req_")
    assert missing.value.body["request_id"] == missing.value.request_id  # type: ignore[index]
    at.ErrorResponse.model_validate(missing.value.body)
    no_max = httpx.post(
        claude_gateway.url + "/v1/messages",
        json={"model": "gpt", "messages": [{"role": "user", "content": "x"}]},
    )
    assert no_max.status_code == 400
    assert no_max.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in no_max.json()["error"]["message"]
    primary.script(Status(400, "bad thing", code="invalid_value"))
    with pytest.raises(anthropic.BadRequestError) as bad:
        c.messages.create(model="gpt", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert bad.value.body["error"] == {"type": "invalid_request_error", "message": "bad thing"}  # type: ignore[index]


def test_framework_errors_on_messages_paths_have_anthropics_shape(
    claude_gateway: GatewayProcess,
) -> None:
    wrong_method = httpx.get(claude_gateway.url + "/v1/messages")
    assert wrong_method.status_code == 405
    body = wrong_method.json()
    at.ErrorResponse.model_validate(body)
    assert body["type"] == "error" and body["request_id"] == wrong_method.headers["request-id"]
    # other paths keep OpenAI's shape
    other = httpx.get(claude_gateway.url + "/v1/embeddings")  # (GET chat/completions lists)
    assert other.status_code == 405 and set(other.json()["error"]) >= {"message", "code"}


def test_server_tools_to_an_openai_target_are_a_400(claude_gateway: GatewayProcess) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client(claude_gateway).messages.create(
            model="gpt",
            max_tokens=5,
            messages=[{"role": "user", "content": "x"}],
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
        )
    assert "web_search_20250305" in caught.value.message


def test_server_tools_pass_through_to_an_anthropic_target(
    claude_gateway: GatewayProcess, claude_up: FakeAnthropic
) -> None:
    search: Any = {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}
    for model in ("claude", "claude-then-gpt"):
        message = client(claude_gateway).messages.create(
            model=model,
            max_tokens=20,
            messages=[{"role": "user", "content": "news?"}],
            tools=[search, WEATHER],
        )
        assert message.content[0].text == "echo: news?"  # type: ignore[union-attr]
        assert claude_up.requests[-1].body["tools"] == [search, WEATHER]
    claude_up.script(Status(529, "Overloaded"))
    with pytest.raises(anthropic.BadRequestError) as caught:
        client(claude_gateway).messages.create(
            model="claude-then-gpt",
            max_tokens=20,
            messages=[{"role": "user", "content": "news?"}],
            tools=[search],
        )
    assert "web_search_20250305" in caught.value.message


def test_upstream_overload_without_backup(
    claude_gateway: GatewayProcess, claude_up: FakeAnthropic
) -> None:
    claude_up.script(Status(529, "Overloaded"))
    with pytest.raises(anthropic.InternalServerError) as caught:
        client(claude_gateway).messages.create(
            model="claude", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.status_code == 502
    assert caught.value.response.headers["x-should-retry"] == "false"


def test_rate_limited_openai_target_keeps_retry_after(
    claude_gateway: GatewayProcess, primary: FakeOpenAI
) -> None:
    primary.script(Status(429, "slow", retry_after=30))
    with pytest.raises(anthropic.APIStatusError) as caught:
        client(claude_gateway).messages.create(
            model="gpt", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.response.headers["retry-after"] == "30"
    assert caught.value.body["error"]["type"] in ("rate_limit_error", "overloaded_error")  # type: ignore[index]


def test_stream_broken_mid_way_ends_with_an_error_event(
    claude_gateway: GatewayProcess, primary: FakeOpenAI, claude_up: FakeAnthropic
) -> None:
    primary.script(CutStream(after=2))
    with (
        pytest.raises(anthropic.APIStatusError),
        client(claude_gateway).messages.stream(
            model="gpt", max_tokens=50, messages=[{"role": "user", "content": "a b c d"}]
        ) as stream,
    ):
        for _ in stream:
            pass
    claude_up.script(ErrorEvent(after=4, delay=0.2))
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client(claude_gateway).messages.stream(
            model="claude", max_tokens=50, messages=[{"role": "user", "content": "a b c d"}]
        ) as stream,
    ):
        for _ in stream:
            pass
    assert "Overloaded" in str(caught.value)
    record = log_of(claude_gateway, caught.value.response.headers["request-id"])
    assert record["endpoint"] == "messages"
    assert record["error"] == "overloaded_error"


def log_of(gw: GatewayProcess, request_id: str) -> dict[str, Any]:
    """The request log record of ``request_id`` (written just after the response ends)."""
    for _ in range(200):
        for record in gw.request_logs():
            if record["request_id"] == request_id:
                return record
        time.sleep(0.02)
    raise AssertionError(f"no log record for {request_id}")


# -- count_tokens ------------------------------------------------------------------------------


def test_count_tokens_forwarded_to_anthropic_and_estimated_otherwise(
    claude_gateway: GatewayProcess, claude_up: FakeAnthropic, primary: FakeOpenAI
) -> None:
    c = client(claude_gateway)
    messages: Any = [{"role": "user", "content": "one two three four"}]
    counted = c.messages.count_tokens(model="claude", system="be brief", messages=messages)
    assert counted.input_tokens == 4 + 2 + 3  # the fake's count: words + 3 per message
    sent = claude_up.requests[-1]
    assert sent.path == "/v1/messages/count_tokens"
    assert sent.headers["x-api-key"] == ANTHROPIC_KEY
    assert sent.body == {"model": "claude-sonnet-4-5", "system": "be brief", "messages": messages}
    estimated = c.messages.count_tokens(model="gpt", messages=messages, tools=[WEATHER])
    body = {"model": "gpt", "messages": messages, "tools": [WEATHER]}
    assert estimated.input_tokens == estimate_tokens(body)
    assert primary.requests == [], "an estimate needs no upstream call"


def test_estimate_heuristic() -> None:
    assert estimate_tokens({"messages": [{"role": "user", "content": "x" * 40}]}) == 10 + 3
    image = {"type": "image", "source": {"type": "url", "url": "u"}}
    assert estimate_tokens({"messages": [{"role": "user", "content": [image]}]}) == 1600 + 3
    tool = {"name": "t", "input_schema": {}}
    assert estimate_tokens({"messages": [], "tools": [tool]}) == (
        -(-len(orjson.dumps(tool)) // 4) + 8
    )


# -- plugins that must see or change the canonical request turn pass-through off ---------------

PKGS = Path(__file__).parent / "plugin_pkgs"


def test_a_pre_route_rewrite_reaches_an_anthropic_target(
    start_gateway: Any, claude_up: FakeAnthropic, claude_backup: FakeAnthropic, primary: FakeOpenAI
) -> None:
    gw = start_gateway(
        anthropic_config(claude_up, claude_backup, primary), pythonpath=[PKGS / "redact"]
    )
    c = client(gw)
    message = c.messages.create(
        model="claude", max_tokens=20, messages=[{"role": "user", "content": "my secret plan"}]
    )
    assert message.content[0].text == "echo: my [redacted] plan"  # type: ignore[union-attr]
    assert claude_up.requests[-1].body["messages"] == [
        {"role": "user", "content": "my [redacted] plan"}
    ]
    assert message.id.startswith("msg_") and not message.id.startswith("msg_01")
    untouched = c.messages.create(
        model="claude", max_tokens=20, messages=[{"role": "user", "content": "my plan"}]
    )
    assert untouched.id.startswith("msg_01"), "an unchanged request still passes through"


def test_stream_chunk_plugins_see_anthropic_target_streams(
    start_gateway: Any, claude_up: FakeAnthropic, claude_backup: FakeAnthropic, primary: FakeOpenAI
) -> None:
    gw = start_gateway(
        anthropic_config(claude_up, claude_backup, primary), pythonpath=[PKGS / "site"]
    )
    with client(gw).messages.stream(
        model="claude", max_tokens=20, messages=[{"role": "user", "content": "quiet words"}]
    ) as stream:
        assert "".join(stream.text_stream) == "ECHO: QUIET WORDS"
        final = stream.get_final_message()
    assert final.usage.cache_read_input_tokens == 3


def test_post_response_filters_apply_to_passed_through_answers(
    start_gateway: Any, claude_up: FakeAnthropic, claude_backup: FakeAnthropic, primary: FakeOpenAI
) -> None:
    gw = start_gateway(
        anthropic_config(claude_up, claude_backup, primary), pythonpath=[PKGS / "redact"]
    )
    c = client(gw)
    for model in ("claude", "gpt"):
        kept = c.messages.create(
            model=model, max_tokens=20, messages=[{"role": "user", "content": "fine"}]
        )
        assert kept.content[0].text == "echo: fine"  # type: ignore[union-attr]
        assert kept.id.startswith("msg_01") is (model == "claude")
        rewritten = c.messages.create(
            model=model, max_tokens=20, messages=[{"role": "user", "content": "classified"}]
        )
        assert rewritten.content[0].text == "[removed]"  # type: ignore[union-attr]
        with pytest.raises(anthropic.PermissionDeniedError) as caught:
            c.messages.create(
                model=model, max_tokens=20, messages=[{"role": "user", "content": "forbidden"}]
            )
        assert caught.value.body["error"]["type"] == "permission_error"  # type: ignore[index]


def test_a_redacted_answer_is_never_sent_as_the_upstreams_bytes(
    claude_up: FakeAnthropic, claude_backup: FakeAnthropic, primary: FakeOpenAI
) -> None:
    """The pii filter rewrites a passed-through answer in place: the door must send the
    rewritten answer, not the native bytes it holds (which still carry the address)."""
    config = (
        anthropic_config(claude_up, claude_backup, primary) + '\n[plugins.pii]\naction = "redact"\n'
    )
    claude_up.script(Reply(text="write to jane.doe@example.com"))
    with GatewayProcess(config) as gw:
        message = client(gw).messages.create(
            model="claude", max_tokens=50, messages=[{"role": "user", "content": "who?"}]
        )
    (block,) = message.content
    assert block.type == "text"
    assert "jane.doe@example.com" not in block.text and block.text.startswith("write to ")
    assert claude_up.requests[0].path == "/v1/messages"  # it was a pass-through
