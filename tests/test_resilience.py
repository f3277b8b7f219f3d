"""Failover, retries, cool-down, deadlines, hedging and the routing trace, through the real
gateway against fake OpenAI upstreams with scripted failures. Assertions are on statuses,
attempt records and what the upstreams saw, never on wall time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from plugway.testing import (
    Behaviour,
    CutStream,
    FakeOpenAI,
    GatewayProcess,
    Hang,
    Reply,
    Reset,
    Status,
)


def resilience_config(primary: FakeOpenAI, backup: FakeOpenAI) -> str:
    providers = "".join(
        f"""
[providers.{name}]
type = "openai"
base_url = "{fake.url}/v1"
api_key = "sk-{name}-secret-0123456789"
timeout = {timeout}
"""
        for name, fake, timeout in (
            ("primary", primary, 0.5),
            ("backup", backup, 0.5),
            ("slow", primary, 5),
        )
    )
    return (
        providers
        + """
[routing]
deadline = 8

[plugins.routing]
# failures in one test must not cool a target down for the next: each model below uses its
# own upstream model names, so its breakers are its own; thresholds are out of reach here
health = { consecutive_failures = 1000, min_requests = 100000 }
retry = { budget_min = 1000 }

[[models]]
name = "chat"
targets = [{ provider = "primary", model = "p-chat" }, { provider = "backup", model = "b-chat" }]

[[models]]
name = "retry"
retry = { attempts = 2, base = 0.01, cap = 0.05 }
targets = [{ provider = "primary", model = "p-retry" }, { provider = "backup", model = "b-retry" }]

[[models]]
name = "solo"
targets = [{ provider = "primary", model = "p-solo" }]

[[models]]
name = "cool"
targets = [{ provider = "primary", model = "p-cool" }, { provider = "backup", model = "b-cool" }]

[[models]]
name = "auto"
strategy = "rules"
targets = [
  { provider = "primary", model = "p-cheap", tags = ["cheap"] },
  { provider = "backup", model = "b-tools", tags = ["tools"] },
]
rules = [
  { tools = true, use = ["tools"] },
  { header = { "X-Tier" = "gold" }, use = ["tools", "cheap"] },
  { max_prompt_tokens = 1000, use = ["cheap"] },
]

[[models]]
name = "probe"
targets = [{ provider = "slow", model = "s-probe" }, { provider = "backup", model = "b-probe" }]

[[models]]
name = "tight"
deadline = 1
targets = [{ provider = "slow", model = "s-tight" }, { provider = "backup", model = "b-tight" }]

[[models]]
name = "hedged"
hedge = { after = 0.2 }
targets = [{ provider = "slow", model = "s-hedge" }, { provider = "backup", model = "b-hedge" }]

[[models]]
name = "big"
fallbacks = { content_filter = ["backup"] }
targets = [
  { provider = "primary", model = "p-small", context_window = 8000 },
  { provider = "primary", model = "p-large", context_window = 128000 },
  { provider = "backup", model = "b-huge", context_window = 1000000 },
]

[[models]]
name = "regional"
targets = [
  { provider = "primary", model = "p-us", region = "us" },
  { provider = "backup", model = "b-eu", region = "eu" },
]
"""
    )


@pytest.fixture(scope="module")
def gw(primary: FakeOpenAI, backup: FakeOpenAI) -> Iterator[GatewayProcess]:
    with GatewayProcess(resilience_config(primary, backup)) as gateway:
        yield gateway


def post(
    gw: GatewayProcess,
    model: str,
    *,
    stream: bool = False,
    debug: bool = True,
    headers: dict[str, str] | None = None,
    **body: Any,
) -> httpx.Response:
    payload = {"model": model, "messages": [{"role": "user", "content": "hello"}], **body}
    if stream:
        payload["stream"] = True
    sent = {"x-plugway-debug": "route"} if debug else {}
    sent.update(headers or {})
    return httpx.post(gw.base_url + "/chat/completions", json=payload, headers=sent, timeout=20)


def record(gw: GatewayProcess, request_id: str) -> dict[str, Any]:
    for _ in range(200):
        for line in gw.request_logs():
            if line["request_id"] == request_id:
                return line
        time.sleep(0.02)
    raise AssertionError(f"no log record for {request_id}")


def outcomes(gw: GatewayProcess, response: httpx.Response) -> list[str]:
    line = record(gw, response.headers["x-request-id"])
    return [f"{a['target']}:{a['outcome']}" for a in line["attempts"]]


@pytest.mark.parametrize(
    "failure",
    [
        Status(500),
        Status(502),
        Status(503),
        Status(429),
        Status(408),
        Hang(),
        Reset(),
        Status(200, body=b"<html>not json</html>", content_type="text/html"),
    ],
    ids=["500", "502", "503", "429", "408", "hang", "reset", "not-json"],
)
def test_each_failure_class_fails_over(
    gw: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI, failure: Behaviour
) -> None:
    primary.script(failure)
    response = post(gw, "chat")
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "echo: hello"
    assert response.headers["x-plugway-provider"] == "backup"
    assert response.headers["x-plugway-attempts"] == "2"
    assert outcomes(gw, response) == ["primary/p-chat:error", "backup/b-chat:ok"]
    assert [r.body["model"] for r in backup.requests] == ["b-chat"]


def test_a_refusal_is_answered_not_failed_over(
    gw: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    primary.script(Status(400, message="bad tool schema", code="invalid_value"))
    response = post(gw, "chat")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_value"
    assert backup.requests == []


def test_retries_the_same_target_with_backoff_before_failing_over(
    gw: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    primary.script(Status(503), Reset())
    response = post(gw, "retry")
    assert response.status_code == 200
    assert response.headers["x-plugway-provider"] == "primary"
    line = record(gw, response.headers["x-request-id"])
    assert [a["outcome"] for a in line["attempts"]] == ["error", "error", "ok"]
    assert len(primary.requests) == 3 and backup.requests == []
    # retries exhausted: the next target
    primary.reset()
    primary.script(Status(503), Status(503), Status(503))
    response = post(gw, "retry")
    assert response.headers["x-plugway-provider"] == "backup"
    assert outcomes(gw, response) == ["primary/p-retry:error"] * 3 + ["backup/b-retry:ok"]


def test_retry_after_is_honoured_on_the_last_target(
    gw: GatewayProcess, primary: FakeOpenAI
) -> None:
    primary.script(Status(429, retry_after=0.2), Reply())
    response = post(gw, "solo")
    assert response.status_code == 200
    assert outcomes(gw, response) == ["primary/p-solo:error", "primary/p-solo:ok"]
    # a retry-after that does not fit the deadline is passed on to the client instead
    primary.script(Status(429, retry_after=30))
    response = post(gw, "solo")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "upstream_rate_limited"
    assert response.headers["retry-after"] == "30"
    assert response.headers["x-should-retry"] == "false"
    assert outcomes(gw, response) == ["primary/p-solo:error"]


def test_a_429_retry_after_cools_the_target_down(
    gw: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    primary.script(Status(429, retry_after=60))
    first = post(gw, "cool")
    assert first.headers["x-plugway-provider"] == "backup"
    seen = len(primary.requests)
    for _ in range(3):
        response = post(gw, "cool")
        assert response.headers["x-plugway-provider"] == "backup"
        assert response.headers["x-plugway-attempts"] == "1"
        assert "skipped=primary/p-cool:cooldown" in response.headers["x-plugway-route"]
    assert len(primary.requests) == seen  # the cooled target was not called again


def test_the_deadline_bounds_every_attempt(
    gw: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    # 'slow' would wait 5 s, but the model's deadline is 1 s: the attempt is cut at the
    # deadline and nothing is left for the backup
    primary.script(Hang())
    response = post(gw, "tight")
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
    assert outcomes(gw, response) == ["slow/s-tight:error"]
    line = record(gw, response.headers["x-request-id"])
    assert line["attempts"][0]["status"] == 504
    assert backup.requests == []
    assert primary.wait_for(lambda: primary.disconnects == 1)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_hedging_starts_the_next_target_and_cancels_the_loser(
    gw: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI, stream: bool
) -> None:
    primary.script(Reply(delay=4))
    response = post(gw, "hedged", stream=stream)
    assert response.status_code == 200
    assert response.headers["x-plugway-provider"] == "backup"
    if stream:
        assert b"data: [DONE]" in response.content
    line = record(gw, response.headers["x-request-id"])
    assert [(a["target"], a["outcome"], a.get("hedge", False)) for a in line["attempts"]] == [
        ("slow/s-hedge", "cancelled", False),
        ("backup/b-hedge", "ok", True),
    ]
    assert "hedged backup/b-hedge after 0.2s" in line["route"]["notes"]
    # the slow upstream saw its client go away: the loser was cancelled, not abandoned
    assert primary.wait_for(lambda: primary.disconnects == 1)
    assert primary.completed == 0


def test_no_hedge_when_the_first_target_answers_in_time(
    gw: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    response = post(gw, "hedged")
    assert response.headers["x-plugway-provider"] == "slow"
    assert outcomes(gw, response) == ["slow/s-hedge:ok"]
    assert backup.requests == []


def test_a_hedge_that_fails_leaves_the_first_attempt_running(
    gw: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    primary.script(Reply(delay=0.6))
    backup.script(Status(500))
    response = post(gw, "hedged")
    assert response.status_code == 200
    assert response.headers["x-plugway-provider"] == "slow"
    assert outcomes(gw, response) == ["slow/s-hedge:ok", "backup/b-hedge:error"]


def test_a_stream_fails_over_before_its_first_byte(
    gw: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    primary.script(Status(503))
    client = openai.OpenAI(base_url=gw.base_url, api_key="k", max_retries=0)
    stream = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "one two"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "echo: one two "
    assert len(backup.requests) == 1


def test_a_stream_never_fails_over_after_its_first_byte(
    gw: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    primary.script(CutStream(after=2))
    response = post(gw, "chat", stream=True)
    assert response.status_code == 200  # the headers had gone: the error is in-band
    assert b'"delta":{"content":"echo: "}' in response.content.replace(b", ", b",")
    assert b'"error"' in response.content and b"[DONE]" not in response.content
    assert backup.requests == []
    line = record(gw, response.headers["x-request-id"])
    assert [a["outcome"] for a in line["attempts"]] == ["broken"]


def test_context_window_falls_back_to_larger_targets(
    gw: GatewayProcess, primary: FakeOpenAI
) -> None:
    primary.script(
        Status(400, message="too long", code="context_length_exceeded"),
        Status(400, message="still too long", code="context_length_exceeded"),
    )
    response = post(gw, "big")
    assert response.status_code == 200
    assert outcomes(gw, response) == [
        "primary/p-small:error",
        "primary/p-large:error",
        "backup/b-huge:ok",
    ]


def test_content_filter_falls_back_to_the_named_targets(
    gw: GatewayProcess, primary: FakeOpenAI
) -> None:
    primary.script(Status(400, message="filtered", code="content_filter"))
    response = post(gw, "big")
    assert response.status_code == 200
    assert outcomes(gw, response) == ["primary/p-small:error", "backup/b-huge:ok"]
    assert "content filter -> backup/b-huge" in response.headers["x-plugway-route"]


def test_a_request_can_require_or_prefer_a_region(gw: GatewayProcess) -> None:
    assert post(gw, "regional").headers["x-plugway-provider"] == "primary"
    required = post(gw, "regional", headers={"x-plugway-require-region": "eu"})
    assert required.headers["x-plugway-provider"] == "backup"
    assert "skipped=primary/p-us:region!=eu" in required.headers["x-plugway-route"]
    preferred = post(gw, "regional", metadata={"prefer_region": "eu"})
    assert preferred.headers["x-plugway-provider"] == "backup"
    nowhere = post(gw, "regional", headers={"x-plugway-require-region": "ap"})
    assert nowhere.status_code == 400
    assert nowhere.json()["error"]["code"] == "region_unavailable"


def test_routing_trace_in_the_log_line_and_on_request_in_a_header(
    gw: GatewayProcess, primary: FakeOpenAI
) -> None:
    primary.script(Status(502))
    response = post(gw, "chat")
    assert response.headers["x-plugway-route"] == (
        "strategy=fallback; plan=primary/p-chat,backup/b-chat; "
        "attempts=primary/p-chat:error(502),backup/b-chat:ok(200)"
    )
    line = record(gw, response.headers["x-request-id"])
    assert line["route"] == {
        "strategy": "fallback",
        "candidates": ["primary/p-chat", "backup/b-chat"],
        "plan": ["primary/p-chat", "backup/b-chat"],
        "attempts": ["primary/p-chat:error(502)", "backup/b-chat:ok(200)"],
    }
    assert "x-plugway-route" not in post(gw, "chat", debug=False).headers


def test_concurrent_requests_all_succeed_during_a_hedged_slowdown(
    gw: GatewayProcess, primary: FakeOpenAI
) -> None:
    primary.script(*[Reply(delay=3)] * 4)

    async def run() -> list[int]:
        async with httpx.AsyncClient(timeout=20) as client:
            body = {"model": "hedged", "messages": [{"role": "user", "content": "x"}]}
            responses = await asyncio.gather(
                *[client.post(gw.base_url + "/chat/completions", json=body) for _ in range(8)]
            )
            return [r.status_code for r in responses]

    assert asyncio.run(run()) == [200] * 8
    assert primary.wait_for(lambda: primary.disconnects == 4)


def test_after_a_cooldown_one_request_probes_while_the_others_fail_over(
    gw: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    primary.script(Status(429, retry_after=0.3))
    assert post(gw, "probe").headers["x-plugway-provider"] == "backup"
    time.sleep(0.35)  # the cool-down the upstream asked for
    primary.script(Reply(delay=1))  # the probe is slow, so the others overlap it

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=20) as client:
            body = {"model": "probe", "messages": [{"role": "user", "content": "x"}]}
            headers = {"x-plugway-debug": "route"}
            url = gw.base_url + "/chat/completions"
            first = asyncio.ensure_future(client.post(url, json=body, headers=headers))
            await asyncio.sleep(0.1)  # the probe is under way
            sent = [first] + [client.post(url, json=body, headers=headers) for _ in range(3)]
            return list(await asyncio.gather(*sent))

    responses = asyncio.run(run())
    assert [r.headers["x-plugway-provider"] for r in responses] == [
        "slow",
        "backup",
        "backup",
        "backup",
    ]
    for response in responses[1:]:
        assert "skipped=slow/s-probe:probing" in response.headers["x-plugway-route"]
    # the probe succeeded: the breaker is closed again
    assert post(gw, "probe").headers["x-plugway-provider"] == "slow"


def test_rules_route_by_what_the_request_carries(gw: GatewayProcess) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    with_tools = post(gw, "auto", tools=tools)
    assert with_tools.headers["x-plugway-provider"] == "backup"
    assert "notes=rule rules[0] matched" in with_tools.headers["x-plugway-route"]
    gold = post(gw, "auto", headers={"x-tier": "gold"})
    assert gold.headers["x-plugway-route"].startswith(
        "strategy=rules; plan=backup/b-tools,primary/p-cheap;"
    )
    assert post(gw, "auto").headers["x-plugway-provider"] == "primary"
    long = post(gw, "auto", messages=[{"role": "user", "content": "x" * 8000}])
    assert "notes=no rule matched" in long.headers["x-plugway-route"]
