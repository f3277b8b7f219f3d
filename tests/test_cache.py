"""The response cache (``[plugins.cache]``): real gateways in front of a fake OpenAI that
counts its calls, driven by the openai SDK and httpx."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from conftest import two_target_config
from plugway.testing import FakeOpenAI, GatewayProcess, Status
from sec_kit import assert_openai_error

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


def test_tool_call_streams_replay_their_deltas(cached: GatewayProcess, primary: FakeOpenAI) -> None:
    tools = [
        {
            "type": "function",
            "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    messages = unique("weather in Paris?")
    extra = {"tools": tools, "tool_choice": "required"}
    _, original = stream_deltas(cached, messages, **extra)
    headers, replayed = stream_deltas(cached, messages, **extra)
    assert headers["x-plugway-cache"] == "hit" and calls(primary) == 1

    def calls_of(chunks: list[Any]) -> tuple[str, str, str]:
        ident, name, args = "", "", ""
        for chunk in chunks:
            for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                ident += call.id or ""
                name += (call.function.name or "") if call.function else ""
                args += (call.function.arguments or "") if call.function else ""
        return ident, name, args

    assert calls_of(replayed) == calls_of(original) == ("call_1", "weather", '{"city": "Paris"}')
    whole = cached.openai().chat.completions.create(model="chat", messages=messages, **extra)
    assert whole.choices[0].message.tool_calls[0].function.arguments == '{"city": "Paris"}'
    assert whole.choices[0].finish_reason == "tool_calls" and calls(primary) == 1


def test_request_controls(cached: GatewayProcess, primary: FakeOpenAI) -> None:
    def ask(
        messages: list[dict[str, Any]], headers: dict[str, str] | None = None, **extra: Any
    ) -> httpx.Response:
        return httpx.post(
            cached.base_url + "/chat/completions",
            json={"model": "chat", "messages": messages, **extra},
            headers=headers or {},
            timeout=10,
        )

    messages = unique("controls")
    assert ask(messages, {"cache-control": "no-store"}).headers["x-plugway-cache"] == "bypass"
    assert ask(messages).headers["x-plugway-cache"] == "miss"  # no-store wrote nothing
    assert ask(messages).headers["x-plugway-cache"] == "hit"
    refreshed = ask(messages, {"cache-control": "no-cache"})
    assert refreshed.headers["x-plugway-cache"] == "bypass"
    assert calls(primary) == 3
    # the refresh replaced the entry: the next hit is the refreshed answer
    hit = ask(messages)
    assert hit.headers["x-plugway-cache"] == "hit"
    assert hit.json()["id"] == refreshed.json()["id"]

    sampled = unique("sampled")
    assert ask(sampled, temperature=0.7).headers["x-plugway-cache"] == "bypass"
    assert ask(sampled, temperature=0.7).headers["x-plugway-cache"] == "bypass"
    assert ask(sampled, temperature=0).headers["x-plugway-cache"] == "miss"
    assert ask(sampled, temperature=0).headers["x-plugway-cache"] == "hit"
    assert calls(primary) == 6

    bad = ask(unique("bad ttl"), {"x-plugway-cache-ttl": "soon"})
    error = assert_openai_error(bad, 400)
    assert "x-plugway-cache-ttl" in error["message"] and calls(primary) == 6


def test_ttl_expiry(cached: GatewayProcess, primary: FakeOpenAI) -> None:
    client = cached.openai()
    messages = unique("short lived")
    short = {"x-plugway-cache-ttl": "0.5"}
    client.chat.completions.create(model="chat", messages=messages, extra_headers=short)
    again = client.chat.completions.with_raw_response.create(model="chat", messages=messages)
    assert again.headers["x-plugway-cache"] == "hit"
    time.sleep(1.0)
    late = client.chat.completions.with_raw_response.create(model="chat", messages=messages)
    assert late.headers["x-plugway-cache"] == "miss" and calls(primary) == 2
    # a TTL of 0 stores nothing
    never = unique("never stored")
    for _ in range(2):
        client.chat.completions.create(
            model="chat", messages=never, extra_headers={"x-plugway-cache-ttl": "0"}
        )
    assert calls(primary) == 4


def test_embeddings_and_anthropic_door_are_cached(
    cached: GatewayProcess, primary: FakeOpenAI
) -> None:
    client = cached.openai()
    text = f"embed me {time.monotonic_ns()}"
    first = client.embeddings.create(model="embed", input=text)
    second = client.embeddings.with_raw_response.create(model="embed", input=text)
    assert second.headers["x-plugway-cache"] == "hit"
    assert second.parse().data[0].embedding == first.data[0].embedding
    assert sum(1 for r in primary.requests if r.path.endswith("/embeddings")) == 1

    import anthropic

    claude = anthropic.Anthropic(base_url=cached.url, api_key="unused")
    messages: Any = unique("through the messages door")
    one = claude.messages.create(model="chat", max_tokens=50, messages=messages)
    two = claude.messages.with_raw_response.create(model="chat", max_tokens=50, messages=messages)
    assert two.headers["x-plugway-cache"] == "hit" and calls(primary) == 1
    assert two.parse().content[0].text == one.content[0].text  # type: ignore[union-attr]
    with claude.messages.stream(model="chat", max_tokens=50, messages=messages) as stream:
        assert stream.get_final_text() == one.content[0].text  # type: ignore[union-attr]
    assert calls(primary) == 1


def test_failures_are_not_stored(cached: GatewayProcess, primary: FakeOpenAI) -> None:
    primary.script(Status(400, "bad request"))
    messages = unique("refused upstream")
    client = cached.openai(max_retries=0)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="solo", messages=messages)
    answer = client.chat.completions.with_raw_response.create(model="solo", messages=messages)
    assert answer.headers["x-plugway-cache"] == "miss" and calls(primary) == 2


def plugway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plugway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_hit_costs_nothing_and_its_saving_is_counted(
    primary: FakeOpenAI, backup: FakeOpenAI, tmp_path: Path
) -> None:
    store = tmp_path / "requests.db"
    extra = CACHE + f'\n[plugins.store]\npath = "{store}"\nflush_interval = 0.05\n'
    with GatewayProcess(two_target_config(primary, backup, extra)) as gw:
        client = gw.openai()
        messages = unique("priced")
        miss = client.chat.completions.with_raw_response.create(model="chat", messages=messages)
        hit = client.chat.completions.with_raw_response.create(model="chat", messages=messages)
        cost = float(miss.headers["x-plugway-cost"])
        assert cost > 0 and float(hit.headers["x-plugway-cost"]) == 0
        ids = [miss.headers["x-request-id"], hit.headers["x-request-id"]]
        record = gw.request_record(ids[1])
        assert record["tags"]["cache"] == "hit" and record["cost"] == 0
        assert "priced" not in orjson.dumps(gw.request_logs()).decode()  # no prompt logged
        deadline = time.monotonic() + 10
        while True:
            text = httpx.get(gw.url + "/metrics").text
            if metric(text, 'plugway_cache_requests_total{result="hit"}') >= 1:
                break
            assert time.monotonic() < deadline, text
            time.sleep(0.05)
        assert metric(text, 'plugway_cache_requests_total{result="miss"}') == 1
        assert metric(text, "plugway_cache_saved_usd_total") == pytest.approx(cost)
        while True:
            with sqlite3.connect(store) as conn:
                rows = dict(
                    (r[0], r[1:])
                    for r in conn.execute(
                        "SELECT request_id, cache, cache_saved_usd, cost FROM requests"
                    )
                )
            if all(i in rows for i in ids):
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert rows[ids[0]][:2] == ("miss", None)
        assert rows[ids[1]][0] == "hit" and rows[ids[1]][1] == pytest.approx(cost)
        assert rows[ids[1]][2] == 0
    report = plugway("usage", "--db", str(store), "--json")
    assert report.returncode == 0, report.stderr
    total = orjson.loads(report.stdout)["total"]["cache"]
    assert total["hits"] == 1 and total["hit_rate"] == 0.5
    assert total["saved_usd"] == pytest.approx(cost)
    table = plugway("usage", "--db", str(store))
    assert "response cache: 1 hits of 2 requests (50.0% hit rate)" in table.stdout


def test_an_old_store_takes_the_new_columns(tmp_path: Path) -> None:
    from plugway.plugins.store.db import NAMES, connect

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE requests (id INTEGER PRIMARY KEY, request_id TEXT NOT NULL, ts REAL NOT NULL)"
        )
        conn.execute("INSERT INTO requests (request_id, ts) VALUES ('old', 1)")
    conn = connect(path)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(requests)")}
    assert set(NAMES) <= columns
    assert conn.execute("SELECT cache FROM requests").fetchone()[0] is None
    conn.close()
    connect(path).close()  # a second start finds nothing to add
