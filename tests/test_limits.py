"""Rate limits and budgets, exact under concurrency: in one gateway on the in-process
backend, and across two gateway processes sharing a real redis-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
from plugway.testing import FakeOpenAI, GatewayProcess, Reply
from sec_kit import MASTER, RedisServer, assert_openai_error, chat, create_key, keyed_config, new_db


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


async def burst(
    urls: list[str], key: str, count: int, model: str = "chat", max_tokens: int | None = None
) -> list[httpx.Response]:
    """``count`` concurrent requests spread over the gateways at ``urls``."""
    body: dict[str, object] = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    avoid_window_edge()
    async with httpx.AsyncClient(timeout=20) as client:
        return await asyncio.gather(
            *(
                client.post(
                    urls[i % len(urls)] + "/v1/chat/completions",
                    json=body,
                    headers={"authorization": f"Bearer {key}"},
                )
                for i in range(count)
            )
        )


def avoid_window_edge() -> None:
    """Minute windows are numbered from the epoch; a burst must not straddle two."""
    into = time.time() % 60
    if into > 55:
        time.sleep(60.2 - into)


@pytest.fixture(scope="module")
def limited(primary: FakeOpenAI) -> Iterator[GatewayProcess]:
    extra = '\n[plugins.limits.teams.capped]\nbudget_usd = 0.1\nperiod = "day"\n'
    with GatewayProcess(
        keyed_config(primary, new_db(), extra), env={"PLUGWAY_MASTER_KEY": MASTER}
    ) as gw:
        yield gw


def test_requests_per_minute_exact_under_concurrency(limited: GatewayProcess) -> None:
    key = create_key(limited, team="t", limits={"rpm": 7})["key"]
    responses = asyncio.run(burst([limited.url], key, 20))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 7 and statuses.count(429) == 13
    ok = next(r for r in responses if r.status_code == 200)
    assert ok.headers["x-ratelimit-limit-requests"] == "7"
    refused = next(r for r in responses if r.status_code == 429)
    error = assert_openai_error(refused, 429)
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"].endswith("s")


def test_per_model_limit(limited: GatewayProcess) -> None:
    key = create_key(limited, team="t", limits={"models": {"chat": {"rpm": 2}}})["key"]
    avoid_window_edge()
    assert [chat(limited, key).status_code for _ in range(3)] == [200, 200, 429]
    assert chat(limited, key, model="other").status_code == 200


def test_tokens_per_minute(limited: GatewayProcess) -> None:
    # the fake answers with 18 total tokens per call
    key = create_key(limited, team="t", limits={"tpm": 30})["key"]
    avoid_window_edge()
    assert chat(limited, key).status_code == 200
    assert chat(limited, key).status_code == 200  # 18 used < 30
    refused = chat(limited, key)  # 36 used
    assert_openai_error(refused, 429)
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"


def test_requests_in_flight(limited: GatewayProcess, primary: FakeOpenAI) -> None:
    key = create_key(limited, team="t", limits={"max_parallel": 3})["key"]
    primary.script(*[Reply(delay=0.6)] * 10)
    statuses = sorted(r.status_code for r in asyncio.run(burst([limited.url], key, 8)))
    assert statuses.count(200) == 3 and statuses.count(429) == 5
    primary.reset()
    # all released: the next three fit again
    statuses = sorted(r.status_code for r in asyncio.run(burst([limited.url], key, 3)))
    assert statuses == [200, 200, 200]


def test_key_budget_reserved_and_charged(limited: GatewayProcess) -> None:
    # price: $1000/M input, $2000/M output. Estimate for "hi" with max_tokens=10:
    # (0.5+8)*1000e-6 + 10*2000e-6 = 0.0285; real cost: 9 in, 9 out -> 0.027.
    key = create_key(limited, team="t", limits={"budget_usd": 0.1})["key"]
    statuses = sorted(
        r.status_code for r in asyncio.run(burst([limited.url], key, 8, max_tokens=10))
    )
    # reservations are exact: at most floor(0.1 / 0.0285) = 3 run at once
    assert statuses.count(200) == 3
    # after settling at real cost (3 * 0.027 = 0.081) one more estimate does not fit
    refused = chat(limited, key, max_tokens=10)
    error = assert_openai_error(refused, 429)
    assert error["type"] == "insufficient_quota" and error["code"] == "budget_exceeded"
    assert refused.headers["x-should-retry"] == "false"


def test_team_budget_spans_keys_and_streams_are_charged(limited: GatewayProcess) -> None:
    a = create_key(limited, team="capped")["key"]
    b = create_key(limited, team="capped")["key"]
    for key in (a, b, a):
        with httpx.stream(
            "POST",
            limited.base_url + "/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={
                "model": "chat",
                "stream": True,
                "max_tokens": 10,
                "messages": [{"role": "user", "content": "hi"}],
            },
        ) as r:
            assert r.status_code == 200
            r.read()
    # 3 * 0.027 charged from the streams' usage; the 4th reservation (0.0285) passes 0.1
    assert_openai_error(chat(limited, b, max_tokens=10), 429)


def test_failed_call_is_refunded(limited: GatewayProcess, primary: FakeOpenAI) -> None:
    from plugway.testing import Status

    key = create_key(limited, team="t", limits={"budget_usd": 0.03})["key"]
    primary.script(Status(400, "bad"))
    assert chat(limited, key, max_tokens=10).status_code == 400
    assert chat(limited, key, max_tokens=10).status_code == 200  # the estimate came back


def test_limit_holds_across_two_gateways_on_redis(
    primary: FakeOpenAI, redis_server: RedisServer
) -> None:
    db = new_db()
    extra = f'\n[state]\nbackend = "redis"\nurl = "{redis_server.url}"\n'
    env = {"PLUGWAY_MASTER_KEY": MASTER}
    with (
        GatewayProcess(keyed_config(primary, db, extra), env=env) as one,
        GatewayProcess(keyed_config(primary, db, extra), env=env) as two,
    ):
        key = create_key(one, team="t", limits={"rpm": 9, "budget_usd": 0.1})["key"]
        responses = asyncio.run(burst([one.url, two.url], key, 24, max_tokens=10))
        ok = [r for r in responses if r.status_code == 200]
        # rpm 9 and a budget fitting 3 reservations: the budget binds, across both
        assert len(ok) == 3
        assert {r.status_code for r in responses} == {200, 429}
        key2 = create_key(two, team="t", limits={"rpm": 9})["key"]
        responses = asyncio.run(burst([one.url, two.url], key2, 24))
        assert sorted(r.status_code for r in responses).count(200) == 9
        # the shared window is used up on both gateways
        assert chat(one, key2).status_code == 429
        assert chat(two, key2).status_code == 429
