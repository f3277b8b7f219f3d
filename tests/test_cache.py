"""The response cache (``[plugins.cache]``): real gateways in front of a fake OpenAI that
counts its calls, driven by the openai SDK and httpx."""

from __future__ import annotations

import os
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
from sec_kit import MASTER, RedisServer, assert_openai_error, create_key, keyed_config, new_db

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
    # keyed on the Anthropic body as sent: top_k (which the OpenAI form drops) makes another
    # entry; extended thinking, which the OpenAI form of the answer cannot carry, is not cached
    other = claude.messages.with_raw_response.create(
        model="chat", max_tokens=50, messages=messages, extra_body={"top_k": 5}
    )
    assert other.headers["x-plugway-cache"] == "miss" and calls(primary) == 2
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    for _ in range(2):
        thought = claude.messages.with_raw_response.create(
            model="chat", max_tokens=2000, messages=messages, thinking=thinking
        )
        assert thought.headers["x-plugway-cache"] == "bypass"
    assert calls(primary) == 4


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
    store, spans = tmp_path / "requests.db", tmp_path / "spans.jsonl"
    extra = (
        CACHE
        + f"""
[plugins.store]
path = "{store}"
flush_interval = 0.05

[plugins.otel]
enabled = true
exporter = "file"
file = "{spans}"
export_delay = 0.05
"""
    )
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
        assert metric(text, 'plugway_cache_saved_usd_total{model="chat"}') == pytest.approx(cost)
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
        while True:
            found = [
                span["attributes"]
                for span in map(
                    orjson.loads, spans.read_text().splitlines() if spans.exists() else []
                )
                if span["attributes"].get("plugway.request_id") in ids
            ]
            if len(found) >= 2:
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        verdicts = {a["plugway.request_id"]: a for a in found}
        assert verdicts[ids[0]]["plugway.cache"] == "miss"
        assert verdicts[ids[1]]["plugway.cache"] == "hit"
        assert verdicts[ids[1]]["plugway.cache.saved_usd"] == pytest.approx(cost)
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


def test_two_teams_never_share_and_hits_count_as_requests(primary: FakeOpenAI) -> None:
    extra = CACHE.replace("enabled = true", 'models = ["chat"]')
    config = keyed_config(primary, new_db(), extra)
    with GatewayProcess(config, env={"PLUGWAY_MASTER_KEY": MASTER}) as gw:
        ours = create_key(gw, team="ours", limits={"rpm": 3})["key"]
        also_ours = create_key(gw, team="ours")["key"]
        theirs = create_key(gw, team="theirs")["key"]
        messages = unique("team secret")

        def ask(key: str, model: str = "chat") -> httpx.Response:
            return httpx.post(
                gw.base_url + "/chat/completions",
                json={"model": model, "messages": messages},
                headers={"authorization": f"Bearer {key}"},
                timeout=10,
            )

        assert ask(ours).headers["x-plugway-cache"] == "miss"
        assert ask(also_ours).headers["x-plugway-cache"] == "hit"
        assert ask(theirs).headers["x-plugway-cache"] == "miss"
        assert calls(primary) == 2
        # "other" is not listed in models: not cached at all
        assert "x-plugway-cache" not in ask(theirs, "other").headers
        assert "x-plugway-cache" not in ask(theirs, "other").headers
        assert calls(primary) == 4
        # a hit is a request for rate limits: the key's third request passes, the fourth not
        assert ask(ours).headers["x-plugway-cache"] == "hit"
        assert ask(ours).headers["x-plugway-cache"] == "hit"
        assert_openai_error(ask(ours), 429)
        assert calls(primary) == 4
        # a hit costs nothing against a budget: at $0.027 a call, a $0.10 budget pays for 3
        # calls; one call and four hits all pass
        budgeted = create_key(gw, team="budgeted", limits={"budget_usd": 0.1})["key"]
        for expected in ("miss", "hit", "hit", "hit", "hit"):
            answer = httpx.post(
                gw.base_url + "/chat/completions",
                json={"model": "chat", "messages": messages, "max_tokens": 10},
                headers={"authorization": f"Bearer {budgeted}"},
                timeout=10,
            )
            assert answer.status_code == 200, answer.text
            assert answer.headers["x-plugway-cache"] == expected
        assert calls(primary) == 5


def test_memory_is_bounded_by_entries_and_bytes(primary: FakeOpenAI, backup: FakeOpenAI) -> None:
    # The fake echoes the prompt, so an answer's size follows its prompt's.
    extra = CACHE + "max_entries = 2\nmax_bytes = 4000\nmax_entry_bytes = 3000\n"
    with GatewayProcess(
        two_target_config(primary, backup, extra), env={"PLUGWAY_MASTER_KEY": MASTER}
    ) as gw:
        client = gw.openai(api_key=MASTER)

        def ask(text: str) -> str:
            raw = client.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": text}]
            )
            return str(raw.headers["x-plugway-cache"])

        def stats() -> dict[str, Any]:
            answer = httpx.get(
                gw.url + "/admin/cache", headers={"authorization": f"Bearer {MASTER}"}
            )
            assert answer.status_code == 200, answer.text
            data: dict[str, Any] = answer.json()
            return data

        assert [ask(t) for t in ("a", "b", "c")] == ["miss"] * 3
        assert stats()["entries"] == 2 and stats()["evictions"] == 1
        assert [ask("c"), ask("b"), ask("a")] == ["hit", "hit", "miss"]  # a went first
        # bytes: two 1.5 KB answers do not fit in 4 KB with the small ones... the oldest go
        big = ["x" * 1500 + str(i) for i in range(3)]
        assert [ask(t) for t in big] == ["miss"] * 3
        described = stats()
        assert described["entries"] <= 2 and described["bytes"] <= 4000
        assert ask(big[2]) == "hit" and ask(big[0]) == "miss"
        # over max_entry_bytes: never stored
        huge = "y" * 3500
        assert [ask(huge), ask(huge)] == ["miss", "miss"]
        # admin needs the master key
        assert httpx.get(gw.url + "/admin/cache").status_code == 401


def redis_config(primary: FakeOpenAI, backup: FakeOpenAI, url: str) -> str:
    return two_target_config(
        primary, backup, CACHE + f'\n[state]\nbackend = "redis"\nurl = "{url}"\n'
    )


def test_redis_shares_entries_between_gateways_and_down_is_a_miss(
    primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    with RedisServer() as redis_server:
        config = redis_config(primary, backup, redis_server.url)
        with GatewayProcess(config) as one, GatewayProcess(config) as two:
            messages = unique("shared")
            first = one.openai().chat.completions.with_raw_response.create(
                model="chat", messages=messages
            )
            assert first.headers["x-plugway-cache"] == "miss"
            deadline = time.monotonic() + 10
            while True:  # the write goes to Redis off the answer's path
                second = two.openai().chat.completions.with_raw_response.create(
                    model="chat", messages=messages, stream=True
                )
                if second.headers["x-plugway-cache"] == "hit":
                    break
                list(second.parse())
                assert time.monotonic() < deadline
                time.sleep(0.05)
            text = "".join(c.choices[0].delta.content or "" for c in second.parse() if c.choices)
            assert text == first.parse().choices[0].message.content
            import redis

            with redis.Redis(port=redis_server.port) as client:
                stored = client.keys("plugway:cache:*")
                assert stored and client.pttl(stored[0]) > 0
                # compressed, and no prompt in clear
                value = client.get(stored[0])
                assert value is not None and b"shared" not in value
            redis_server.stop()
            before = calls(primary)
            for gw in (one, two):
                answer = gw.openai(max_retries=0).chat.completions.with_raw_response.create(
                    model="chat", messages=messages
                )
                assert answer.http_response.status_code == 200
                assert answer.headers["x-plugway-cache"] == "miss"
            assert calls(primary) == before + 2
            assert "shared" not in one.output()


def test_zdr_refuses_the_cache_unless_allowed_in_process(tmp_path: Path) -> None:
    from plugway.errors import ConfigError
    from plugway.gateway import load_gateway

    base = """
[privacy]
zdr = true

[providers.up]
type = "fake"
zdr = true

[[models]]
name = "chat"
targets = [{ provider = "up", model = "m" }]

[plugins.cache]
enabled = true
"""
    path = tmp_path / "zdr.toml"

    def load(extra: str) -> str:
        path.write_text(base + extra)
        try:
            load_gateway(path, environ={})
        except ConfigError as exc:
            return str(exc)
        return ""

    assert "allow_under_zdr" in load("")
    assert load("allow_under_zdr = true\n") == ""
    shared = load(
        'allow_under_zdr = true\n[state]\nbackend = "redis"\nurl = "redis://127.0.0.1:1/0"\n'
    )
    assert "plugins.cache" in shared and "cache" in shared
    # the cache off: zdr does not mind it
    path.write_text(base.replace("[plugins.cache]\nenabled = true\n", ""))
    load_gateway(path, environ={})


def test_cache_stats_and_clear_commands(primary: FakeOpenAI) -> None:
    with RedisServer() as redis_server:
        extra = CACHE + f'\n[state]\nbackend = "redis"\nurl = "{redis_server.url}"\n'
        config = keyed_config(primary, new_db(), extra)
        with GatewayProcess(config, env={"PLUGWAY_MASTER_KEY": MASTER}) as gw:
            keys = {team: create_key(gw, team=team)["key"] for team in ("red", "blue")}
            for team, key in keys.items():
                for model in ("chat", "other"):
                    httpx.post(
                        gw.base_url + "/chat/completions",
                        json={"model": model, "messages": unique(team)},
                        headers={"authorization": f"Bearer {key}"},
                        timeout=10,
                    ).raise_for_status()
            env = {"PLUGWAY_MASTER_KEY": MASTER}

            def cache(*args: str) -> dict[str, Any]:
                done = subprocess.run(
                    [sys.executable, "-m", "plugway", "cache", *args, "--url", gw.url, "--json"],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                    env={**os.environ, **env},
                )
                assert done.returncode == 0, done.stderr
                data: dict[str, Any] = orjson.loads(done.stdout)
                return data

            deadline = time.monotonic() + 10
            while cache("stats")["entries"] < 4:  # written off the answer's path
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert cache("stats", "--team", "red")["entries"] == 2
            assert cache("stats", "--model", "other")["entries"] == 2
            assert cache("clear", "--team", "red", "--model", "chat")["removed"] == 1
            assert cache("stats")["entries"] == 3
            assert cache("clear")["removed"] == 3
            assert cache("stats")["entries"] == 0
            env = {"PLUGWAY_MASTER_KEY": "wrong-master-key-0123456789"}
            refused = subprocess.run(
                [sys.executable, "-m", "plugway", "cache", "stats", "--url", gw.url],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                env={**os.environ, **env},
            )
            assert refused.returncode == 1 and "master key" in refused.stderr


class WordsFake(FakeOpenAI):
    """FakeOpenAI whose embeddings are bags of words (hashed into 64 dimensions), so
    paraphrases sharing their words are close and unrelated texts are not."""

    def _embeddings(self, body: Any) -> Any:
        import hashlib
        import re

        inputs = body.get("input")
        items = [inputs] if isinstance(inputs, str) else list(inputs)
        data = []
        for i, item in enumerate(items):
            vector = [0.0] * 64
            for word in re.findall(r"[a-z]+", str(item).lower()):
                vector[hashlib.sha256(word.encode()).digest()[0] % 64] += 1.0
            data.append({"object": "embedding", "index": i, "embedding": vector})
        return {
            "object": "list",
            "data": data,
            "model": body.get("model"),
            "usage": {"prompt_tokens": 5, "total_tokens": 5},
        }


@pytest.fixture(scope="module")
def words_upstream() -> Iterator[WordsFake]:
    with WordsFake() as upstream:
        yield upstream


@pytest.fixture
def words(words_upstream: WordsFake) -> WordsFake:
    words_upstream.reset()
    return words_upstream


def test_semantic_cache_answers_paraphrases(words: WordsFake) -> None:
    config = f"""
[providers.up]
type = "openai"
base_url = "{words.url}/v1"
api_key = "sk-words-0123456789"

[[models]]
name = "chat"
targets = [{{ provider = "up", model = "gpt-4o-mini" }}]

[[models]]
name = "embed"
targets = [{{ provider = "up", model = "text-embedding-3-small" }}]

[plugins.cache]
models = ["chat"]

[plugins.semantic_cache]
enabled = true
embedding_model = "embed"
threshold = 0.9
"""
    with GatewayProcess(config, env={"PLUGWAY_MASTER_KEY": MASTER}) as gw:
        client = gw.openai(api_key=MASTER)

        def ask(text: str, **extra: Any) -> tuple[str, str]:
            raw = client.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": text}], **extra
            )
            return raw.headers["x-plugway-cache"], raw.parse().choices[0].message.content or ""

        result, original = ask("What is the capital of France?")
        assert result == "miss" and calls(words) == 1
        # same words, other case and punctuation; one more word (cosine 0.93)
        assert ask("what is the capital of france") == ("hit", original)
        assert ask("What is the capital city of France?") == ("hit", original)
        assert calls(words) == 1
        # unrelated: a miss
        assert ask("How long should bread dough rise?")[0] == "miss"
        assert calls(words) == 2
        # other parameters: never answered from another parameter set's entry
        assert ask("what is the capital of france", max_tokens=3)[0] == "miss"
        assert calls(words) == 3
        # another system prompt is another conversation: not answered from this one
        other_system = client.chat.completions.with_raw_response.create(
            model="chat",
            messages=[
                {"role": "system", "content": "Answer in French."},
                {"role": "user", "content": "what is the capital of france"},
            ],
        )
        assert other_system.headers["x-plugway-cache"] == "miss"
        assert calls(words) == 4
        # a streamed paraphrase replays the entry
        stream = client.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "What is the capital of France, exactly?"}],
            stream=True,
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == original and calls(words) == 4
        # requests with tools are left to the exact cache
        tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
        assert ask("what is the capital of France", tools=tools)[0] == "miss"
        assert calls(words) == 5
        stats = httpx.get(gw.url + "/admin/cache", headers={"authorization": f"Bearer {MASTER}"})
        # France, bread, France with max_tokens = 3 and France in French (the tools request is
        # not indexed)
        assert stats.json()["semantic_vectors"] == 4 and stats.json()["entries"] == 5
        records = gw.request_logs(wait_for=8)
        assert "capital" not in orjson.dumps(records).decode()
        semantic = [r for r in records if r["tags"].get("cache_match") == "semantic"]
        assert len(semantic) == 3 and all(r["tags"]["cache"] == "hit" for r in semantic)


def test_semantic_cache_config_is_checked(tmp_path: Path) -> None:
    from plugway.errors import ConfigError
    from plugway.gateway import load_gateway

    path = tmp_path / "semantic.toml"
    path.write_text("""
[providers.up]
type = "fake"

[[models]]
name = "chat"
targets = [{ provider = "up", model = "m" }]

[plugins.semantic_cache]
enabled = true
embedding_model = "nowhere"
threshold = 1.5
""")
    with pytest.raises(ConfigError) as caught:
        load_gateway(path, environ={})
    text = str(caught.value)
    assert "plugins.semantic_cache.embedding_model" in text
    assert "plugins.semantic_cache.threshold" in text
    assert "turn [plugins.cache] on" in text


# -- units -------------------------------------------------------------------------------------


def test_key_ignores_what_does_not_change_the_answer_and_is_scoped() -> None:
    from plugway.context import RequestContext
    from plugway.plugins.cache.keying import cache_key

    def ctx(body: dict[str, Any], team: str | None = None, key: str | None = None) -> Any:
        made = RequestContext(endpoint="chat.completions", body=body, headers={}, principal=key)
        if team is not None:
            made.tags["team"] = team
        return made

    base = {"model": "a", "messages": QUESTION, "temperature": 0, "max_tokens": 5}
    same = {
        "max_tokens": 5,
        "temperature": 0,
        "messages": QUESTION,
        "model": "alias",
        "user": "u",
        "metadata": {"x": "1"},
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert cache_key(ctx(base), "chat", "team") == cache_key(ctx(same), "chat", "team")
    assert cache_key(ctx(base), "chat", "team") != cache_key(
        ctx({**base, "seed": 1}), "chat", "team"
    )
    assert cache_key(ctx(base), "chat", "team") != cache_key(ctx(base), "other", "team")
    red, blue = ctx(base, "red", "k1"), ctx(base, "blue", "k1")
    assert cache_key(red, "chat", "team") != cache_key(blue, "chat", "team")
    assert cache_key(red, "chat", "global") == cache_key(blue, "chat", "global")
    assert cache_key(red, "chat", "key") != cache_key(ctx(base, "red", "k2"), "chat", "key")
    # a team name cannot reach into another team's keys
    assert cache_key(ctx(base, "a:b"), "chat", "key").split(":")[3] == "a%3Ab"
    assert "France" not in cache_key(red, "chat", "team")


def test_an_entry_that_does_not_fit_the_door_hands_over_to_upstream() -> None:
    import asyncio

    from plugway.context import RequestContext, Target
    from plugway.errors import InvalidRequest
    from plugway.plugins.cache.replay import CachedProvider

    seen: list[str] = []
    entry = {"body": {"object": "list", "data": []}, "at": 0}
    provider = CachedProvider(entry, lambda ctx: seen.append(ctx.request_id))
    ctx = RequestContext(endpoint="chat.completions", body={}, headers={})
    target = Target("p", "m")
    with pytest.raises(InvalidRequest):
        asyncio.run(provider.chat(ctx, target, {}))
    assert seen == [ctx.request_id]
    moderation = CachedProvider({"body": {"id": "modr", "results": []}, "at": 0})
    assert asyncio.run(moderation.moderations(ctx, target, {})).body["id"] == "modr"


def test_assembled_stream_keeps_pieces_tools_and_usage() -> None:
    from plugway.plugins.cache.replay import ReplayStream, assemble
    from plugway.sse import iter_data

    def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
        chunk["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    parts = [
        event({"role": "assistant", "content": ""}),
        event({"content": "Hel"}) + event({"content": "lo"}),
        event(
            {"tool_calls": [{"index": 0, "id": "t", "function": {"name": "f", "arguments": ""}}]}
        ),
        event({"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}),
        event({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
        event({}, "tool_calls"),
    ]
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    assembled = assemble(parts, usage)
    assert assembled is not None
    body, pieces = assembled
    message = body["choices"][0]["message"]
    assert message["content"] == "Hello" and pieces == [["Hel", "lo"]]
    assert message["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a": 1}'}
    assert body["usage"] == usage and body["choices"][0]["finish_reason"] == "tool_calls"
    replayed = [orjson.loads(p) for p in iter_data(ReplayStream(body, pieces, True).events())]
    assert [c["choices"][0]["delta"].get("content") for c in replayed if c["choices"]][1:3] == [
        "Hel",
        "lo",
    ]
    assert replayed[-1] == {**replayed[-1], "choices": [], "usage": usage}
    # a stream that never finished, or carried an error, is not an answer to keep
    assert assemble(parts[:-1], usage) is None
    assert assemble([*parts[:2], b'data: {"error": {"message": "x"}}\n\n'], usage) is None


def test_memory_store_expires_entries_on_its_clock() -> None:
    import asyncio

    from plugway.plugins.cache.stores import MemoryStore

    now = [100.0]
    store = MemoryStore(10, 1000, clock=lambda: now[0])

    async def run() -> list[bytes | None]:
        await store.put("a", b"x", ttl=5)
        seen = [await store.get("a")]
        now[0] += 5
        seen.append(await store.get("a"))
        return seen

    assert asyncio.run(run()) == [b"x", None] and store.bytes == 0


def test_route_ttls_and_settings_are_checked() -> None:
    from plugway.plugins.cache.settings import CacheSettings, check, route_rules

    rules = route_rules(CacheSettings(models={"chat": {"ttl": 60}, "embed": {}}))
    assert rules["chat"].ttl == 60 and rules["embed"].ttl is None
    assert list(route_rules(CacheSettings(models=["a", "b"]))) == ["a", "b"]
    problems = check(
        CacheSettings(models={"chat": {"ttl": "soon"}}, scope="world", endpoints=["responses"]),
        "memory",
        zdr=False,
    )
    text = "\n".join(problems)
    assert "plugins.cache.models.chat.ttl" in text and "plugins.cache.scope" in text
    assert "plugins.cache.endpoints[0]" in text


CANNED = Path(__file__).parent / "hook_plugins" / "response_cache.py"


def test_hook_cached_response(primary: FakeOpenAI, backup: FakeOpenAI) -> None:
    """A third-party cache on the hook: hits need no attempt (streamed or not), an entry that
    does not fit the door hands over to the plan, and a miss's stream is seen as it passes."""
    with GatewayProcess(two_target_config(primary, backup), plugins=[CANNED]) as gw:
        client = gw.openai()

        def ask(text: str) -> Any:
            return client.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": text}]
            )

        hit = ask("canned?")
        assert hit.parse().choices[0].message.content == "canned answer"
        assert hit.headers["x-plugway-attempts"] == "0" and calls(primary) == 0
        stream = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "canned?"}], stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == (
            "canned answer"
        )
        unfit = ask("unfit")
        assert unfit.parse().choices[0].message.content == "echo: unfit"
        assert unfit.headers["x-plugway-attempts"] == "1" and calls(primary) == 1
        streamed = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "pass me"}], stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
        assert text.strip() == "echo: pass me"
        streams, size = ask("how many?").headers["x-canned-seen"].split(":")
        assert streams == "1" and int(size) > len(text)


def test_semantic_vectors_are_shared_through_redis(words: WordsFake) -> None:
    with RedisServer() as redis_server:
        config = f"""
[providers.up]
type = "openai"
base_url = "{words.url}/v1"
api_key = "sk-words-0123456789"

[[models]]
name = "chat"
targets = [{{ provider = "up", model = "gpt-4o-mini" }}]

[[models]]
name = "embed"
targets = [{{ provider = "up", model = "text-embedding-3-small" }}]

[state]
backend = "redis"
url = "{redis_server.url}"

[plugins.cache]
models = ["chat"]

[plugins.semantic_cache]
enabled = true
embedding_model = "embed"
threshold = 0.9
sync_interval = 0.05
"""
        env = {"PLUGWAY_MASTER_KEY": MASTER}
        with GatewayProcess(config, env=env) as one, GatewayProcess(config, env=env) as two:
            first = one.openai(api_key=MASTER).chat.completions.create(
                model="chat",
                messages=[{"role": "user", "content": "What is the capital of France?"}],
            )
            deadline = time.monotonic() + 10
            while True:  # the other gateway reads the published vector on its next sync
                stats = httpx.get(
                    two.url + "/admin/cache", headers={"authorization": f"Bearer {MASTER}"}
                ).json()
                if stats["semantic_vectors"] >= 1 and stats["entries"] >= 1:
                    break
                assert time.monotonic() < deadline, stats
                time.sleep(0.05)
            paraphrase = two.openai(api_key=MASTER).chat.completions.with_raw_response.create(
                model="chat",
                messages=[{"role": "user", "content": "what is the capital city of france"}],
            )
            assert paraphrase.headers["x-plugway-cache"] == "hit"
            assert paraphrase.parse().choices[0].message.content == first.choices[0].message.content
            assert calls(words) == 1
