"""The ``anthropic`` provider, driven by the openai SDK through the real gateway to a fake
Anthropic upstream that checks requests the way the Messages API does."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from conftest import ANTHROPIC_KEY
from plugway.testing import CutStream, ErrorEvent, FakeAnthropic, GatewayProcess, Status

WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Weather by city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
FORECAST = {"type": "function", "function": {"name": "forecast", "parameters": {"type": "object"}}}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def client(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="client-key", max_retries=0)


def test_text_with_system_prompt_and_usage(
    claude_gateway: GatewayProcess, claude_up: FakeAnthropic
) -> None:
    raw = client(claude_gateway).chat.completions.with_raw_response.create(
        model="claude",
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "hello there"},
        ],
        temperature=0.3,
        top_p=0.9,
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    # 11 uncached + 3 read from cache + 5 written to it
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (19, 7)
    details = completion.usage.prompt_tokens_details
    assert details is not None and details.cached_tokens == 3
    assert details.cache_write_tokens == 5
    assert raw.headers["x-plugway-provider"] == "claude"
    sent = claude_up.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == ANTHROPIC_KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    assert "anthropic-beta" not in sent.headers
    assert sent.body == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64000,
        "system": [{"type": "text", "text": "Be terse."}],
        "messages": [{"role": "user", "content": "hello there"}],
        "temperature": 0.3,
        "top_p": 0.9,
    }


def test_anthropic_beta_and_version_pass_through(
    claude_gateway: GatewayProcess, claude_up: FakeAnthropic
) -> None:
    client(claude_gateway).chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "x"}],
        extra_headers={"anthropic-beta": "prompt-caching-2024-07-31", "x-api-key": "client-x"},
    )
    sent = claude_up.requests[-1].headers
    assert sent["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert sent["x-api-key"] == ANTHROPIC_KEY


def test_parallel_tool_calls_and_their_results(
    claude_gateway: GatewayProcess, claude_up: FakeAnthropic
) -> None:
    c = client(claude_gateway)
    messages: list[Any] = [{"role": "user", "content": "weather in Paris and Tokyo?"}]
    first = c.chat.completions.create(
        model="claude", messages=messages, tools=[WEATHER, FORECAST], tool_choice="required"
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [(call.function.name, json.loads(call.function.arguments)) for call in calls] == [  # type: ignore[union-attr]
        ("weather", {"city": "Paris"}),
        ("forecast", {"city": "Tokyo", "days": 3}),
    ]
    assert claude_up.requests[-1].body["tool_choice"] == {"type": "any"}
    assert claude_up.requests[-1].body["tools"][0] == {
        "name": "weather",
        "description": "Weather by city",
        "input_schema": WEATHER["function"]["parameters"],  # type: ignore[index]
    }
    messages.append(choice.message.model_dump(exclude_none=True))
    for call, result in zip(calls, ("18C", "24C"), strict=True):
        messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    second = c.chat.completions.create(model="claude", messages=messages, tools=[WEATHER])
    assert second.choices[0].message.content == "results: 18C 24C"
    turns = claude_up.requests[-1].body["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert [b["type"] for b in turns[1]["content"]] == ["tool_use", "tool_use"]
    assert [(b["type"], b["tool_use_id"]) for b in turns[2]["content"]] == [
        ("tool_result", calls[0].id),
        ("tool_result", calls[1].id),
    ]


def test_parallel_tool_calls_false_and_named_choice(
    claude_gateway: GatewayProcess, claude_up: FakeAnthropic
) -> None:
    c = client(claude_gateway)
    one = c.chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "x"}],
        tools=[WEATHER, FORECAST],
        tool_choice="required",
        parallel_tool_calls=False,
    )
    assert len(one.choices[0].message.tool_calls or []) == 1
    assert claude_up.requests[-1].body["tool_choice"] == {
        "type": "any",
        "disable_parallel_tool_use": True,
    }
    named = c.chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "x"}],
        tools=[WEATHER, FORECAST],
        tool_choice={"type": "function", "function": {"name": "forecast"}},
    )
    assert [t.function.name for t in named.choices[0].message.tool_calls or []] == ["forecast"]  # type: ignore[union-attr]


def test_images_stop_sequences_and_max_tokens(
    claude_gateway: GatewayProcess, claude_up: FakeAnthropic
) -> None:
    c = client(claude_gateway)
    content: Any = [
        {"type": "text", "text": "look at this STOP and that"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    stopped = c.chat.completions.create(
        model="claude", messages=[{"role": "user", "content": content}], stop="STOP"
    )
    assert stopped.choices[0].message.content == "echo: look at this "
    assert stopped.choices[0].finish_reason == "stop"
    blocks = claude_up.requests[-1].body["messages"][0]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
    }
    assert blocks[2] == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.com/cat.png"},
    }
    assert claude_up.requests[-1].body["stop_sequences"] == ["STOP"]
    cut = c.chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "a b c d e"}], max_tokens=3
    )
    assert cut.choices[0].message.content == "echo: a b"
    assert cut.choices[0].finish_reason == "length"
    assert claude_up.requests[-1].body["max_tokens"] == 3


def test_stream_text(claude_gateway: GatewayProcess) -> None:
    c = client(claude_gateway)
    for include_usage in (True, False):
        chunks = list(
            c.chat.completions.create(
                model="claude",
                messages=[{"role": "user", "content": "one two three"}],
                stream=True,
                stream_options={"include_usage": include_usage},
            )
        )
        assert len({(ch.id, ch.created) for ch in chunks}) == 1
        assert chunks[0].choices[0].delta.role == "assistant"
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        assert text == "echo: one two three"
        finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices]
        assert finishes[-1] == "stop" and finishes.count("stop") == 1
        usage_chunks = [ch for ch in chunks if ch.usage is not None]
        if include_usage:
            assert len(usage_chunks) == 1 and chunks[-1].usage is not None
            assert chunks[-1].usage.prompt_tokens == 19
            assert chunks[-1].choices == []
        else:
            assert usage_chunks == []


def test_stream_parallel_tool_calls(claude_gateway: GatewayProcess) -> None:
    stream = client(claude_gateway).chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "x"}],
        tools=[WEATHER, FORECAST],
        tool_choice="required",
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        for delta_call in chunk.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(delta_call.index, {"id": "", "name": "", "args": ""})
            if delta_call.id:
                assert not entry["id"], "the id comes once, on the first delta"
                entry["id"] = delta_call.id
            fn = delta_call.function
            if fn is not None:
                entry["name"] += fn.name or ""
                entry["args"] += fn.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert [(c["name"], json.loads(c["args"])) for c in calls.values()] == [
        ("weather", {"city": "Paris"}),
        ("forecast", {"city": "Tokyo", "days": 3}),
    ]
    assert all(c["id"].startswith("toolu_") for c in calls.values())


def test_request_log_has_usage_with_cache(claude_gateway: GatewayProcess) -> None:
    before = len(claude_gateway.request_logs())
    list(
        client(claude_gateway).chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "x"}], stream=True
        )
    )
    record = claude_gateway.request_logs(wait_for=before + 1)[-1]
    assert record["usage"]["prompt_tokens_details"] == {"cached_tokens": 3, "cache_write_tokens": 5}
    assert record["finish_reason"] == "stop"


# -- errors ------------------------------------------------------------------------------------


def test_overloaded_529_fails_over_to_the_backup(
    claude_gateway: GatewayProcess, claude_up: FakeAnthropic, claude_backup: FakeAnthropic
) -> None:
    claude_up.script(Status(529, "Overloaded"))
    raw = client(claude_gateway).chat.completions.with_raw_response.create(
        model="claude-ha", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.parse().choices[0].message.content == "echo: hi"
    assert raw.headers["x-plugway-provider"] == "claude_backup"
    assert raw.headers["x-plugway-attempts"] == "2"
    assert claude_backup.requests[-1].body["model"] == "claude-haiku-4-5"


def test_overloaded_stream_fails_over_before_the_first_byte(
    claude_gateway: GatewayProcess, claude_up: FakeAnthropic, claude_backup: FakeAnthropic
) -> None:
    claude_up.script(Status(529, "Overloaded"))
    chunks = list(
        client(claude_gateway).chat.completions.create(
            model="claude-ha", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == "echo: hi"
    assert len(claude_backup.requests) == 1


def test_overloaded_with_no_backup_is_a_5xx_the_sdk_raises(
    claude_gateway: GatewayProcess, claude_up: FakeAnthropic
) -> None:
    claude_up.script(Status(529, "Overloaded"))
    with pytest.raises(openai.InternalServerError) as caught:
        client(claude_gateway).chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 502
    assert "overloaded_error" in caught.value.message
    assert caught.value.response.headers["x-should-retry"] == "false"


def test_rate_limit_honours_retry_after_then_gives_up(
    claude_gateway: GatewayProcess, claude_up: FakeAnthropic
) -> None:
    claude_up.script(Status(429, "slow down", retry_after=0.2), Status(429, "slow down"))
    with pytest.raises(openai.InternalServerError) as caught:
        client(claude_gateway).chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 503
    assert len(claude_up.requests) == 2
    claude_up.script(Status(429, "slow down", retry_after=0.2))
    ok = client(claude_gateway).chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "hi"}]
    )
    assert ok.choices[0].message.content == "echo: hi"


def test_prompt_too_long_is_a_context_window_error(
    claude_gateway: GatewayProcess, claude_up: FakeAnthropic
) -> None:
    claude_up.script(Status(400, "prompt is too long: 210000 tokens > 200000 maximum"))
    with pytest.raises(openai.BadRequestError) as caught:
        client(claude_gateway).chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.code == "context_length_exceeded"
    assert "prompt is too long" in caught.value.message
    assert len(claude_up.requests) == 1, "a final error is not retried"


def test_content_filter_refusal_is_its_own_error(
    claude_gateway: GatewayProcess, claude_up: FakeAnthropic
) -> None:
    claude_up.script(Status(400, "Output blocked by content filtering policy"))
    with pytest.raises(openai.BadRequestError) as caught:
        client(claude_gateway).chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.code == "content_filter"


def test_bad_request_and_bad_key(claude_gateway: GatewayProcess, claude_up: FakeAnthropic) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        client(claude_gateway).chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "hi"}], temperature=1.5
        )
    assert "temperature" in bad.value.message
    claude_up.script(Status(401, f"invalid x-api-key {ANTHROPIC_KEY}"))
    with pytest.raises(openai.AuthenticationError) as auth:
        client(claude_gateway).chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "hi"}]
        )
    assert "providers.claude.api_key" in auth.value.message
    assert ANTHROPIC_KEY not in str(auth.value.body)


def test_untranslatable_request_is_a_400_before_any_upstream_call(
    claude_gateway: GatewayProcess, claude_up: FakeAnthropic
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(claude_gateway).chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "hi"}], n=2
        )
    assert caught.value.param == "n"
    assert claude_up.requests == []


def test_error_event_mid_stream_reaches_the_client_as_an_error(
    claude_gateway: GatewayProcess, claude_up: FakeAnthropic
) -> None:
    claude_up.script(ErrorEvent(after=4, delay=0.2))
    stream = client(claude_gateway).chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "one two three"}], stream=True
    )
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk)
    assert "overloaded_error" in caught.value.message
    assert received[0].choices[0].delta.role == "assistant"


def test_error_event_before_any_byte_fails_over(
    claude_gateway: GatewayProcess, claude_up: FakeAnthropic, claude_backup: FakeAnthropic
) -> None:
    claude_up.script(ErrorEvent(after=0))
    chunks = list(
        client(claude_gateway).chat.completions.create(
            model="claude-ha", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == "echo: hi"
    assert len(claude_backup.requests) == 1


def test_cut_stream_is_broken_not_silently_complete(
    claude_gateway: GatewayProcess, claude_up: FakeAnthropic
) -> None:
    claude_up.script(CutStream(after=3))
    response = httpx.post(
        claude_gateway.base_url + "/chat/completions",
        json={"model": "claude", "stream": True, "messages": [{"role": "user", "content": "a b"}]},
        timeout=10,
    )
    assert response.status_code == 200
    assert b"upstream_stream_broken" in response.content
    assert b"[DONE]" not in response.content
