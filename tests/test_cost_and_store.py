"""Cost, the request store, its reports and the traces, end to end: the real gateway in front
of a fake OpenAI upstream that answers with known usage, driven by httpx and the openai SDK.

Known usage makes every cost exact: each token class has its own price on its target, and the
expected dollars are worked out by hand in the tests.
"""

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
from aiohttp import web
from plugway.testing import FakeAnthropic, FakeGemini, FakeOpenAI, GatewayProcess, Status

CANARY = "CANARY-7f3a9c-do-not-store"

#: Upstream model -> the usage the fake reports for it (OpenAI's shape, as every provider
#: translates its own into).
USAGES: dict[str, dict[str, Any]] = {
    "m-plain": {"prompt_tokens": 250_000, "completion_tokens": 50_000},
    "m-cached": {
        "prompt_tokens": 250_000,
        "completion_tokens": 50_000,
        "prompt_tokens_details": {"cached_tokens": 200_000},
    },
    "m-reasoning": {
        "prompt_tokens": 100_000,
        "completion_tokens": 60_000,
        "completion_tokens_details": {"reasoning_tokens": 50_000},
    },
    # Anthropic-shaped after translation: cache reads and writes inside prompt_tokens.
    "m-written": {
        "prompt_tokens": 300_000,
        "completion_tokens": 20_000,
        "prompt_tokens_details": {"cached_tokens": 120_000, "cache_write_tokens": 80_000},
    },
    "m-second": {"prompt_tokens": 1_000_000, "completion_tokens": 0},
    # Priced from the shipped table (gpt-4o-mini), at OpenAI's real token counts' scale.
    "gpt-4o-mini-2024-07-18": {
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 3},
    },
}
for _usage in USAGES.values():
    _usage["total_tokens"] = _usage["prompt_tokens"] + _usage["completion_tokens"]

#: Model asked -> USD, worked out by hand from USAGES and the prices in CONFIG.
EXPECTED = {
    "plain": 250_000 * 2 / 1e6 + 50_000 * 8 / 1e6,  # 0.50 + 0.40
    "cached": 50_000 * 2 / 1e6 + 200_000 * 0.5 / 1e6 + 50_000 * 8 / 1e6,  # 0.10 + 0.10 + 0.40
    "reasoning": 100_000 * 2 / 1e6 + 10_000 * 8 / 1e6 + 50_000 * 10 / 1e6,  # 0.20+0.08+0.50
    "written": (100_000 * 3 + 120_000 * 0.3 + 80_000 * 3.75 + 20_000 * 15) / 1e6,  # 0.936
    # The price table's gpt-4o-mini: 11 prompt (3 cached), 7 completion.
    "table": (8 * 0.15 + 3 * 0.075 + 7 * 0.60) / 1e6,
    "failover": 1_000_000 * 0.25 / 1e6,  # served by the second target at its price
    # Gemini's own usageMetadata, translated by the gemini provider: FakeGemini counts words.
    # Prompt "one two three four five": 5 tokens, 2 of them cached; answer "echo: one two
    # three four five": 6 tokens, plus 5 thinking tokens billed as reasoning.
    "gemini": (3 * 10_000 + 2 * 1_000 + 6 * 20_000 + 5 * 30_000) / 1e6,
    # Anthropic's own usage, translated by the anthropic provider: FakeAnthropic reports 11
    # uncached input, 3 cache-read, 5 cache-write and 7 output tokens.
    "anthropic": (11 * 30_000 + 3 * 3_000 + 5 * 37_500 + 7 * 150_000) / 1e6,
}
TEXTS = {"gemini": "one two three four five"}


class UsageFake(FakeOpenAI):
    """FakeOpenAI that reports USAGES[model] instead of its fixed usage."""

    def answer(self, request: web.Request, body: Any, behaviour: Any) -> Any:
        out = super().answer(request, body, behaviour)
        if isinstance(out, dict) and body.get("model") in USAGES:
            out["usage"] = USAGES[body["model"]]
        return out

    def stream_events(self, request: web.Request, body: Any, behaviour: Any) -> Iterator[bytes]:
        for event in super().stream_events(request, body, behaviour):
            if b'"usage":{' in event and body.get("model") in USAGES:
                chunk = orjson.loads(event.removeprefix(b"data: "))
                chunk["usage"] = USAGES[body["model"]]
                yield b"data: " + orjson.dumps(chunk) + b"\n\n"
            else:
                yield event


def config(
    upstream: FakeOpenAI, gemini: FakeGemini, anthropic: FakeAnthropic, store: Path, spans: Path
) -> str:
    base = f'type = "openai"\nbase_url = "{upstream.url}/v1"\napi_key = "sk-test-0123456789"'
    return f"""
[providers.up]
{base}
timeout = 3

[providers.first]
{base}
timeout = 3

[providers.fake]
type = "fake"

[providers.claude]
type = "anthropic"
base_url = "{anthropic.url}"
api_key = "sk-ant-test-0123456789"
timeout = 3

[[models]]
name = "anthropic"
targets = [{{ provider = "claude", model = "claude-sonnet-4-5", price = {{ input = 30000.0, cached_input = 3000.0, cache_write = 37500.0, output = 150000.0 }} }}]

[providers.google]
type = "gemini"
base_url = "{gemini.url}"
api_key = "gemini-test-key-0123456789"
timeout = 3

[[models]]
name = "gemini"
targets = [{{ provider = "google", model = "gemini-2.5-flash", price = {{ input = 10000.0, cached_input = 1000.0, output = 20000.0, reasoning = 30000.0 }} }}]

[[models]]
name = "plain"
targets = [{{ provider = "up", model = "m-plain", price = {{ input = 2.0, output = 8.0 }} }}]

[[models]]
name = "cached"
targets = [{{ provider = "up", model = "m-cached", price = {{ input = 2.0, cached_input = 0.5, output = 8.0 }} }}]

[[models]]
name = "reasoning"
targets = [{{ provider = "up", model = "m-reasoning", price = {{ input = 2.0, output = 8.0, reasoning = 10.0 }} }}]

[[models]]
name = "written"
targets = [{{ provider = "up", model = "m-written", price = {{ input = 3.0, cached_input = 0.3, cache_write = 3.75, output = 15.0 }} }}]

[[models]]
name = "table"
targets = [{{ provider = "up", model = "gpt-4o-mini-2024-07-18" }}]

[[models]]
name = "failover"
targets = [
  {{ provider = "first", model = "m-first", price = {{ input = 100.0, output = 100.0 }} }},
  {{ provider = "up", model = "m-second", price = {{ input = 0.25, output = 1.0 }} }},
]

[providers.ds]
type = "deepseek"
base_url = "{upstream.url}/v1"
api_key = "sk-test-0123456789"

[[models]]
name = "cheapest"
strategy = "lowest-cost"
targets = [
  {{ provider = "up", model = "gpt-4o" }},
  {{ provider = "ds", model = "deepseek-chat" }},
]

[[models]]
name = "unpriced"
targets = [{{ provider = "up", model = "m-plain" }}]

[plugins.store]
path = "{store}"
flush_interval = 0.05

[plugins.otel]
enabled = true
exporter = "file"
file = "{spans}"
export_delay = 0.05
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[UsageFake]:
    with UsageFake() as fake:
        yield fake


@pytest.fixture(scope="module")
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as fake:
        yield fake


@pytest.fixture(scope="module")
def anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("observed")
    return {"store": folder / "requests.db", "spans": folder / "spans.jsonl"}


@pytest.fixture(scope="module")
def gw(
    upstream: UsageFake, gemini: FakeGemini, anthropic: FakeAnthropic, paths: dict[str, Path]
) -> Iterator[GatewayProcess]:
    text = config(upstream, gemini, anthropic, paths["store"], paths["spans"])
    with GatewayProcess(text) as gateway:
        yield gateway


def rows(store: Path, request_ids: list[str], timeout: float = 5.0) -> dict[str, dict[str, Any]]:
    """The store rows of these requests, waiting for the background writer."""
    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, dict[str, Any]] = {}
        if store.exists():
            conn = sqlite3.connect(store)
            conn.row_factory = sqlite3.Row
            marks = ",".join("?" * len(request_ids))
            for row in conn.execute(
                f"SELECT * FROM requests WHERE request_id IN ({marks})", request_ids
            ):
                found[row["request_id"]] = dict(row)
            conn.close()
        if len(found) == len(request_ids) or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def spans(path: Path, trace_filter: Any, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = []
        if path.exists():
            found = [s for s in map(orjson.loads, path.read_text().splitlines()) if trace_filter(s)]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def chat(
    gw: GatewayProcess,
    model: str,
    *,
    stream: bool = False,
    usage: bool = False,
    text: str = "hello",
) -> tuple[httpx.Response, bytes]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": text}]}
    if stream:
        body["stream"] = True
        if usage:
            body["stream_options"] = {"include_usage": True}
    with (
        httpx.Client(timeout=10) as client,
        client.stream("POST", gw.base_url + "/chat/completions", json=body) as response,
    ):
        data = response.read()
    return response, data


def log_record(gw: GatewayProcess, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for record in gw.request_logs():
            if record["request_id"] == request_id:
                return record
        time.sleep(0.02)
    raise AssertionError(f"no log line for {request_id}")


@pytest.mark.parametrize(
    "model", ["plain", "cached", "reasoning", "written", "table", "gemini", "anthropic"]
)
def test_cost_of_each_usage_shape_to_the_cent(
    gw: GatewayProcess, paths: dict[str, Path], model: str
) -> None:
    expected, text = EXPECTED[model], TEXTS.get(model, "hello")
    plain, _ = chat(gw, model, text=text)
    with_usage, streamed = chat(gw, model, stream=True, usage=True, text=text)
    without_usage, streamed_bare = chat(gw, model, stream=True, text=text)
    assert plain.status_code == with_usage.status_code == without_usage.status_code == 200
    # Non-streamed: the header carries the cost; streams cannot (their headers went first).
    assert float(plain.headers["x-plugway-cost"]) == pytest.approx(expected, abs=1e-12)
    assert "x-plugway-cost" not in with_usage.headers
    # The client that did not ask for stream usage does not get the usage chunk.
    assert b'"usage":{' in streamed and b'"usage":{' not in streamed_bare
    ids = [r.headers["x-request-id"] for r in (plain, with_usage, without_usage)]
    stored = rows(paths["store"], ids)
    assert len(stored) == 3
    for request_id in ids:
        record = log_record(gw, request_id)
        row = stored[request_id]
        assert round(record["cost"], 2) == round(expected, 2)
        assert record["cost"] == pytest.approx(expected, abs=1e-12)
        assert row["cost"] == pytest.approx(expected, abs=1e-12)
        assert row["model"] == model and row["status"] == 200 and row["attempts"] == 1


def test_anthropic_messages_endpoint_is_priced_too(
    gw: GatewayProcess, paths: dict[str, Path]
) -> None:
    response = httpx.post(
        gw.url + "/v1/messages",
        headers={"anthropic-version": "2023-06-01"},
        json={
            "model": "anthropic",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "hello"}],
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["cache_creation_input_tokens"] == 5
    assert float(response.headers["x-plugway-cost"]) == pytest.approx(EXPECTED["anthropic"])
    request_id = response.headers["x-request-id"]
    row = rows(paths["store"], [request_id])[request_id]
    assert row["endpoint"] == "messages"
    assert row["cost"] == pytest.approx(EXPECTED["anthropic"])
    assert (row["input_tokens"], row["cached_tokens"], row["cache_write_tokens"]) == (11, 3, 5)


def test_stored_tokens_by_class_and_stream_timings(
    gw: GatewayProcess, paths: dict[str, Path]
) -> None:
    response, _ = chat(gw, "written", stream=True)
    row = rows(paths["store"], [response.headers["x-request-id"]])[response.headers["x-request-id"]]
    assert (
        row["input_tokens"],
        row["cached_tokens"],
        row["cache_write_tokens"],
        row["output_tokens"],
        row["reasoning_tokens"],
    ) == (100_000, 120_000, 80_000, 20_000, 0)
    assert row["stream"] == 1 and row["provider"] == "up" and row["upstream_model"] == "m-written"
    assert row["ttft_ms"] is not None and row["latency_ms"] >= row["ttft_ms"] > 0
    assert row["finish_reason"] == "stop"
    routing = orjson.loads(row["routing"])
    assert routing["plan"] == ["up/m-written"] and routing["strategy"] == "fallback"


def test_failover_is_priced_at_the_target_that_served(
    gw: GatewayProcess, upstream: UsageFake, paths: dict[str, Path]
) -> None:
    upstream.script(Status(503))
    client = openai.OpenAI(base_url=gw.base_url, api_key="client-key", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="failover", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-plugway-attempts"] == "2"
    assert float(raw.headers["x-plugway-cost"]) == pytest.approx(EXPECTED["failover"])
    request_id = raw.headers["x-request-id"]
    row = rows(paths["store"], [request_id])[request_id]
    assert (row["attempts"], row["failovers"], row["provider"]) == (2, 1, "up")
    attempts = orjson.loads(row["routing"])["attempts"]
    assert [a["target"] for a in attempts] == ["first/m-first", "up/m-second"]
    assert [a["outcome"] for a in attempts] == ["error", "ok"]


def test_lowest_cost_routing_uses_the_price_table(gw: GatewayProcess) -> None:
    response, _ = chat(gw, "cheapest")
    assert response.status_code == 200
    # Neither target has a price in the config: the table says deepseek-chat is cheaper.
    assert response.headers["x-plugway-provider"] == "ds"
    usage = {"prompt_tokens": 11, "completion_tokens": 7}  # FakeOpenAI's, 3 of 11 cached
    expected = (8 * 0.28 + 3 * 0.028 + usage["completion_tokens"] * 0.42) / 1e6
    assert float(response.headers["x-plugway-cost"]) == pytest.approx(expected)


def test_target_without_a_price_is_logged_unpriced(gw: GatewayProcess) -> None:
    response, _ = chat(gw, "unpriced")
    assert response.status_code == 200
    assert "x-plugway-cost" not in response.headers
    assert log_record(gw, response.headers["x-request-id"])["cost"] is None
    assert "no price for up/m-plain" in gw.output()


def plugway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plugway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_usage_and_whatif_reports(
    gw: GatewayProcess, upstream: UsageFake, paths: dict[str, Path], tmp_path: Path
) -> None:
    ids = [chat(gw, model)[0].headers["x-request-id"] for model in ("plain", "cached", "plain")]
    rows(paths["store"], ids)
    conn = sqlite3.connect(paths["store"])
    stored = {
        m: (n, c)
        for m, n, c in conn.execute(
            "SELECT model, COUNT(*), SUM(cost) FROM requests GROUP BY model"
        )
    }
    errors = dict(
        conn.execute("SELECT model, SUM(status >= 400) FROM requests GROUP BY model").fetchall()
    )
    conn.close()

    done = plugway("usage", "--db", str(paths["store"]), "--by", "model", "--json")
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)
    for model, (count, cost) in stored.items():
        group = report["groups"][model]
        assert group["requests"] == count
        assert group["errors"] == errors[model]
        assert group["cost"] == pytest.approx(cost or 0.0, abs=1e-9)
    assert report["total"]["requests"] == sum(n for n, _ in stored.values())
    assert report["groups"]["plain"]["latency_ms"]["p50"] is not None

    assert gw.config_path is not None  # the store is found from the gateway's own config
    by_config = plugway("usage", "--config", str(gw.config_path), "--json")
    assert by_config.returncode == 0, by_config.stderr
    assert orjson.loads(by_config.stdout)["total"] == report["total"]

    table = plugway("usage", "--db", str(paths["store"]), "--by", "provider", "--since", "1h")
    assert table.returncode == 0, table.stderr
    assert "p99 ms" in table.stdout and "\nup " in table.stdout and "TOTAL" in table.stdout

    other = tmp_path / "other.toml"
    other.write_text(f"""
[providers.cheap]
type = "openai"
base_url = "{upstream.url}/v1"
api_key = "sk-other-0123456789"

[[models]]
name = "plain"
targets = [{{ provider = "cheap", model = "m-cheap", price = {{ input = 1.0, output = 1.0 }} }}]
""")
    done = plugway("whatif", "--db", str(paths["store"]), "--config", str(other), "--json")
    assert done.returncode == 0, done.stderr
    whatif = orjson.loads(done.stdout)
    plain_lines = [line for line in whatif["lines"] if line["model"] == "plain"]
    assert {line["would"] for line in plain_lines} == {"cheap/m-cheap"}
    plain_count = stored["plain"][0]
    # USAGES["m-plain"]: 250k prompt + 50k completion at $1/M each = $0.30 a request.
    assert sum(line["whatif_cost"] for line in plain_lines) == pytest.approx(0.30 * plain_count)
    assert sum(line["requests"] for line in plain_lines) == plain_count
    cached_lines = [line for line in whatif["lines"] if line["model"] == "cached"]
    assert {line["would"] for line in cached_lines} == {"(model_not_found)"}
    # Totals compare what the other config can route; the rest is counted apart.
    assert whatif["actual_cost"] == pytest.approx(stored["plain"][1])
    assert whatif["whatif_cost"] == pytest.approx(0.30 * plain_count)
    assert whatif["compared_requests"] == plain_count
    assert whatif["unroutable_requests"] == whatif["requests"] - plain_count
    assert whatif["unroutable_cost"] == pytest.approx(
        sum(c or 0.0 for m, (_, c) in stored.items() if m != "plain")
    )

    # A lowest-cost config without prices of its own ranks its targets by the price table.
    table_priced = tmp_path / "lowest.toml"
    table_priced.write_text(f"""
[providers.oai]
type = "openai"
base_url = "{upstream.url}/v1"
api_key = "sk-other-0123456789"

[providers.ds]
type = "deepseek"
api_key = "sk-other-0123456789"

[[models]]
name = "plain"
strategy = "lowest-cost"
targets = [{{ provider = "oai", model = "gpt-4o" }}, {{ provider = "ds", model = "deepseek-chat" }}]
""")
    done = plugway("whatif", "--db", str(paths["store"]), "--config", str(table_priced), "--json")
    assert done.returncode == 0, done.stderr
    lowest = orjson.loads(done.stdout)
    assert {line["would"] for line in lowest["lines"] if line["model"] == "plain"} == {
        "ds/deepseek-chat"
    }
    # 250k prompt at $0.28/M + 50k completion at $0.42/M = $0.091 a request.
    assert lowest["whatif_cost"] == pytest.approx(0.091 * plain_count)

    text = plugway("whatif", "--db", str(paths["store"]), "--config", str(other))
    assert text.returncode == 0 and "what-if cost" in text.stdout and "difference:" in text.stdout
    bad = plugway("usage", "--db", str(paths["store"]), "--since", "yesterday")
    assert bad.returncode == 2 and "--since: 'yesterday' is not a duration" in bad.stderr


def test_spans_follow_the_incoming_traceparent(
    gw: GatewayProcess, upstream: UsageFake, paths: dict[str, Path]
) -> None:
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    upstream.script(Status(503))
    response = httpx.post(
        gw.base_url + "/chat/completions",
        headers={"traceparent": f"00-{trace_id}-{parent_id}-01"},
        json={
            "model": "failover",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 64,
            "temperature": 0.5,
        },
    )
    assert response.status_code == 200
    found = spans(paths["spans"], lambda s: s["context"]["trace_id"] == "0x" + trace_id, 3)
    assert len(found) == 3
    server = next(s for s in found if s["kind"] == "SpanKind.SERVER")
    clients = sorted(
        (s for s in found if s["kind"] == "SpanKind.CLIENT"),
        key=lambda s: s["attributes"]["plugway.attempt.number"],
    )
    assert server["parent_id"] == "0x" + parent_id
    assert server["name"] == "chat failover"
    attributes = server["attributes"]
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "failover"
    assert attributes["gen_ai.response.model"] == "m-second"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.usage.input_tokens"] == 1_000_000
    assert attributes["gen_ai.usage.output_tokens"] == 0
    assert attributes["gen_ai.request.max_tokens"] == 64
    assert attributes["gen_ai.request.temperature"] == 0.5
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert attributes["plugway.cost_usd"] == pytest.approx(EXPECTED["failover"])
    assert attributes["plugway.request_id"] == response.headers["x-request-id"]
    assert [c["name"] for c in clients] == ["chat m-first", "chat m-second"]
    assert all(c["parent_id"] == server["context"]["span_id"] for c in clients)
    assert clients[0]["attributes"]["error.type"] == "UpstreamUnavailable"
    assert clients[0]["status"]["status_code"] == "ERROR"
    assert clients[0]["attributes"]["server.address"] == "127.0.0.1"
    assert clients[1]["attributes"]["gen_ai.usage.input_tokens"] == 1_000_000
    assert "error.type" not in clients[1]["attributes"]


def test_streams_get_a_span_with_time_to_first_chunk(
    gw: GatewayProcess, paths: dict[str, Path]
) -> None:
    response, _ = chat(gw, "reasoning", stream=True)
    request_id = response.headers["x-request-id"]
    found = spans(
        paths["spans"], lambda s: s["attributes"].get("plugway.request_id") == request_id, 1
    )
    attributes = found[0]["attributes"]
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert attributes["gen_ai.usage.reasoning.output_tokens"] == 50_000


def test_canary_in_prompts_is_in_no_log_row_metric_or_span(
    gw: GatewayProcess, upstream: UsageFake, paths: dict[str, Path]
) -> None:
    text = f"my secret is {CANARY}, keep it"
    ids = [
        chat(gw, "plain", text=text)[0].headers["x-request-id"],
        chat(gw, "cached", text=text, stream=True, usage=True)[0].headers["x-request-id"],
    ]
    upstream.script(Status(503), Status(400, message=f"bad request near {CANARY}"))
    failed, _ = chat(gw, "failover", text=text)
    assert failed.status_code == 400
    ids.append(failed.headers["x-request-id"])
    missing, _ = chat(gw, "no-such-model", text=text)
    assert missing.status_code == 404
    embedding = httpx.post(gw.base_url + "/embeddings", json={"model": "fake/e", "input": CANARY})
    assert embedding.status_code == 200
    assert len(rows(paths["store"], ids)) == 3
    for request_id in ids:
        spans(
            paths["spans"],
            lambda s, r=request_id: s["attributes"].get("plugway.request_id") == r,
            1,
        )
    time.sleep(0.2)  # the last batch of spans and rows
    assert CANARY in text
    assert CANARY not in gw.output()
    conn = sqlite3.connect(paths["store"])
    dump = "\n".join(conn.iterdump())
    conn.close()
    assert CANARY not in dump
    assert CANARY not in paths["spans"].read_text()
    assert CANARY not in httpx.get(gw.url + "/metrics").text
    assert CANARY not in httpx.get(gw.url + "/-/dashboard/data").text
