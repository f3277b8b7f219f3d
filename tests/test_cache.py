"""The response cache (``[plugins.cache]``): real gateways in front of a fake OpenAI that
counts its calls, driven by the openai SDK and httpx."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from conftest import two_target_config
from plugway.testing import FakeOpenAI, GatewayProcess, Status
from sec_kit import MASTER, RedisServer, create_key, keyed_config, new_db

CACHE = "\n[plugins.cache]\nenabled = true\n"
QUESTION = [{"role": "user", "content": "what is the capital of France?"}]


def calls(upstream: FakeOpenAI) -> int:
    return sum(1 for r in upstream.requests if r.path.endswith("/chat/completions"))


@pytest.fixture(scope="module")
def cached(primary: FakeOpenAI, backup: FakeOpenAI) -> Iterator[GatewayProcess]:
    with GatewayProcess(two_target_config(primary, backup, CACHE)) as gw:
        yield gw


def unique(text: str) -> list[dict[str, Any]]:
    """A prompt no other test asks (the module's gateway keeps its cache between tests)."""
    return [{"role": "user", "content": f"{text} {time.monotonic_ns()}"}]


def test_identical_requests_call_upstream_once(cached: GatewayProcess, primary: FakeOpenAI) -> None:
    client = cached.openai()
    messages = unique("capital of France?")
    first = client.chat.completions.with_raw_response.create(model="chat", messages=messages)
    second = client.chat.completions.with_raw_response.create(
        model="chat", messages=messages, user="someone-else", metadata={"run": "2"}
    )
    assert calls(primary) == 1
    assert first.headers["x-plugway-cache"] == "miss"
    assert second.headers["x-plugway-cache"] == "hit"
    assert int(second.headers["age"]) >= 0
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert second.parse().usage == first.parse().usage
    # a different question is a miss
    client.chat.completions.create(model="chat", messages=unique("capital of Spain?"))
    assert calls(primary) == 2


def stream_deltas(gw: GatewayProcess, messages: list[dict[str, Any]], **extra: Any) -> Any:
    client = gw.openai()
    raw = client.chat.completions.with_raw_response.create(
        model="chat", messages=messages, stream=True, **extra
    )
    chunks = list(raw.parse())
    return raw.headers, chunks


def test_stream_replays_the_same_deltas(cached: GatewayProcess, primary: FakeOpenAI) -> None:
    messages = unique("tell me a story")
    headers, original = stream_deltas(cached, messages, stream_options={"include_usage": True})
    assert headers["x-plugway-cache"] == "miss"
    replay_headers, replayed = stream_deltas(
        cached, messages, stream_options={"include_usage": True}
    )
    assert replay_headers["x-plugway-cache"] == "hit"
    assert calls(primary) == 1

    def deltas(chunks: list[Any]) -> list[str]:
        return [
            c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
        ]

    assert deltas(replayed) == deltas(original) and len(deltas(original)) > 2
    assert replayed[-1].usage == original[-1].usage and original[-1].usage is not None
    assert [c.choices[0].finish_reason for c in replayed if c.choices][-1] == "stop"
    # without include_usage: no usage chunk
    _, plain = stream_deltas(cached, messages)
    assert all(c.usage is None for c in plain)
    assert calls(primary) == 1


def test_stream_and_non_stream_share_entries(cached: GatewayProcess, primary: FakeOpenAI) -> None:
    client = cached.openai()
    streamed_first = unique("streamed first")
    _, chunks = stream_deltas(cached, streamed_first)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    answer = client.chat.completions.with_raw_response.create(model="chat", messages=streamed_first)
    assert answer.headers["x-plugway-cache"] == "hit"
    assert answer.parse().choices[0].message.content == text
    assert answer.parse().choices[0].finish_reason == "stop"

    plain_first = unique("plain first")
    whole = client.chat.completions.create(model="chat", messages=plain_first)
    headers, chunks = stream_deltas(cached, plain_first)
    assert headers["x-plugway-cache"] == "hit"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        whole.choices[0].message.content
    )
    assert calls(primary) == 2
