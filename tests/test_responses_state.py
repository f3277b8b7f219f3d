"""``/v1/responses`` under the gateway's rules: tenants (virtual keys), limits and budgets,
the pii filter, zero data retention, and the conversation store shared by two workers (SQLite)
and by two gateways on one Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from plugway.testing import FakeOpenAI, GatewayProcess, Reply
from sec_kit import MASTER, RedisServer, assert_openai_error, create_key, keyed_config, new_db


def create(
    gw: GatewayProcess, key: str | None, *, fresh: bool = False, **body: object
) -> httpx.Response:
    """POST /v1/responses; ``fresh`` opens a new connection (so ``--workers`` spread it)."""
    headers = {} if key is None else {"authorization": f"Bearer {key}"}
    if fresh:
        headers["connection"] = "close"
    return httpx.post(gw.base_url + "/responses", json=body, headers=headers, timeout=10)


# -- tenants, limits, budgets, filters ---------------------------------------------------------


@pytest.fixture(scope="module")
def keyed(primary: FakeOpenAI) -> Iterator[GatewayProcess]:
    extra = '\n[plugins.pii]\naction = "redact"\n'
    with GatewayProcess(
        keyed_config(primary, new_db(), extra), env={"PLUGWAY_MASTER_KEY": MASTER}
    ) as gw:
        yield gw


def test_another_tenants_response_is_not_found(keyed: GatewayProcess) -> None:
    alice = keyed.openai(api_key=create_key(keyed, team="a")["key"])
    alice_teammate = keyed.openai(api_key=create_key(keyed, team="a")["key"])
    bob_key = create_key(keyed, team="b")["key"]
    bob = keyed.openai(api_key=bob_key)
    created = alice.responses.create(model="chat", input="secret plans")
    assert alice.responses.retrieve(created.id).id == created.id
    assert alice_teammate.responses.retrieve(created.id).id == created.id  # same team
    for attempt in (
        lambda: bob.responses.retrieve(created.id),
        lambda: bob.responses.input_items.list(created.id),
        lambda: bob.responses.delete(created.id),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    refused = create(keyed, bob_key, model="chat", input="x", previous_response_id=created.id)
    assert assert_openai_error(refused, 400)["code"] == "previous_response_not_found"
    with pytest.raises(openai.AuthenticationError):
        keyed.openai(api_key="sk-wrong-key-0123456789").responses.retrieve(created.id)
    assert alice.responses.retrieve(created.id).output_text == created.output_text


def test_rate_limit_and_budget_refused_at_this_door(
    keyed: GatewayProcess, primary: FakeOpenAI
) -> None:
    key = create_key(keyed, team="t", limits={"rpm": 1})["key"]
    assert create(keyed, key, model="chat", input="one").status_code == 200
    calls = len(primary.requests)
    limited = create(keyed, key, model="chat", input="two")
    assert assert_openai_error(limited, 429)["code"] == "rate_limit_exceeded"
    poor = create_key(keyed, team="t", limits={"budget_usd": 0.001})["key"]
    spent = create(keyed, poor, model="chat", input="hi", max_output_tokens=10)
    assert assert_openai_error(spent, 429)["code"] == "budget_exceeded"
    assert len(primary.requests) == calls  # neither reached the upstream


def test_pii_in_input_items_is_redacted_before_the_upstream(
    keyed: GatewayProcess, primary: FakeOpenAI
) -> None:
    client = keyed.openai(api_key=create_key(keyed, team="t")["key"])
    response = client.responses.create(
        model="chat",
        input=[
            {
                "role": "user",
                "content": [{"type": "input_text", "text": "mail ada@example.com please"}],
            }
        ],
    )
    sent = primary.requests[-1]
    # the redacted text must reach the host: translated, not passed through
    assert sent.path == "/v1/chat/completions"
    assert "ada@example.com" not in json.dumps(sent.body)
    assert "[EMAIL]" in json.dumps(sent.body)
    assert "ada@example.com" not in response.output_text
    # the stored conversation holds the redacted text too
    items = client.responses.input_items.list(response.id)
    assert "ada@example.com" not in items.model_dump_json()


def test_pii_in_a_passed_through_answer_is_redacted(
    keyed: GatewayProcess, primary: FakeOpenAI
) -> None:
    primary.script(Reply(text="write to bob@example.com today"))
    client = keyed.openai(api_key=create_key(keyed, team="t")["key"])
    response = client.responses.create(model="chat", input="who do I write to?")
    assert primary.requests[-1].path == "/v1/responses"  # nothing to redact in the input
    assert "bob@example.com" not in response.output_text
    assert "[EMAIL]" in response.output_text
    assert response.id in primary.stored_responses  # still the host's response id
    stored = client.responses.retrieve(response.id)
    assert "bob@example.com" not in stored.output_text


def test_redacted_request_with_a_builtin_tool_is_refused(
    keyed: GatewayProcess, primary: FakeOpenAI
) -> None:
    key = create_key(keyed, team="t")["key"]
    clean = create(keyed, key, model="chat", input="search", tools=[{"type": "web_search"}])
    assert clean.status_code == 200 and primary.requests[-1].path == "/v1/responses"
    calls = len(primary.requests)
    refused = create(
        keyed, key, model="chat", input="search ada@example.com", tools=[{"type": "web_search"}]
    )
    error = assert_openai_error(refused, 400)
    assert error["code"] == "unsupported_tool" and "passed through" in error["message"]
    assert len(primary.requests) == calls  # the unredacted text went nowhere


# -- zero data retention -----------------------------------------------------------------------


def zdr_config(primary: FakeOpenAI, db: Path, extra: str = "") -> str:
    return f"""
[privacy]
zdr = true

[providers.safe]
type = "openai"
base_url = "{primary.url}/v1"
api_key = "sk-safe-0123456789abcdef"
zdr = true

[[models]]
name = "chat"
targets = [{{ provider = "safe", model = "m1" }}]

[plugins.responses]
db = "{db}"
{extra}
"""


def test_zdr_refuses_to_store(primary: FakeOpenAI, tmp_path: Path, start_gateway: object) -> None:
    db = tmp_path / "responses.db"
    gw = start_gateway(zdr_config(primary, db))  # type: ignore[operator]
    refused = create(gw, None, model="chat", input="keep this")
    error = assert_openai_error(refused, 400)
    assert error["param"] == "store" and "zdr" in error["message"]
    assert create(gw, None, model="chat", input="x", store=True).status_code == 400
    assert primary.requests == []
    served = create(gw, None, model="chat", input="do not keep", store=False)
    assert served.status_code == 200 and served.json()["store"] is False
    assert httpx.get(gw.base_url + "/responses/" + served.json()["id"]).status_code == 404
    plugins = httpx.get(gw.url + "/-/plugins").json()["plugins"]
    assert all(p["retains_content"] is False for p in plugins)
    assert not db.exists()


def test_zdr_coerces_store_to_false(
    primary: FakeOpenAI, tmp_path: Path, start_gateway: object
) -> None:
    db = tmp_path / "responses.db"
    gw = start_gateway(zdr_config(primary, db, 'zdr_store = "coerce"'))  # type: ignore[operator]
    client = gw.openai()
    response = client.responses.create(model="chat", input="do not keep")
    assert response.store is False
    assert primary.requests[-1].body["store"] is False  # nor does the host
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    with client.responses.stream(model="chat", input="nor this") as stream:
        final = stream.get_final_response()
    assert final.store is False
    assert not db.exists()


def test_bad_settings_name_their_path(primary: FakeOpenAI, tmp_path: Path) -> None:
    from plugway.errors import ConfigError
    from plugway.gateway import load_gateway

    path = tmp_path / "plugway.toml"
    path.write_text(zdr_config(primary, tmp_path / "r.db", 'zdr_store = "maybe"\nttl = 0'))
    with pytest.raises(ConfigError) as refused:
        load_gateway(path, environ={})
    text = str(refused.value)
    assert "plugins.responses.zdr_store" in text and "plugins.responses.ttl" in text


# -- shared state ------------------------------------------------------------------------------


def chat_target_config(primary: FakeOpenAI, extra: str = "") -> str:
    return f"""
[providers.compat]
type = "openai"
base_url = "{primary.url}/v1"
api_key = "sk-compat-0123456789abcdef"
responses_api = false

[[models]]
name = "chat"
targets = [{{ provider = "compat", model = "m1" }}]
{extra}
"""


def chain(gateways: list[GatewayProcess], turns: int) -> str:
    """``turns`` requests, each continuing the previous one, spread over ``gateways`` on new
    connections; returns the last response id."""
    previous: str | None = None
    for turn in range(turns):
        gw = gateways[turn % len(gateways)]
        body: dict[str, object] = {"model": "chat", "input": f"turn {turn}"}
        if previous is not None:
            body["previous_response_id"] = previous
        response = create(gw, None, fresh=True, **body)
        assert response.status_code == 200, response.text
        previous = response.json()["id"]
    assert previous is not None
    return previous


def test_previous_response_id_across_two_workers(
    primary: FakeOpenAI, tmp_path: Path, start_gateway: object
) -> None:
    extra = f'\n[plugins.responses]\ndb = "{tmp_path / "responses.db"}"\n'
    gw = start_gateway(chat_target_config(primary, extra), args=["--workers", "2"])  # type: ignore[operator]
    last = chain([gw], 8)
    messages = primary.requests[-1].body["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == [
        f"turn {n}" for n in range(8)
    ]
    assert httpx.get(gw.base_url + "/responses/" + last).status_code == 200


def test_previous_response_id_across_two_gateways_on_redis(
    primary: FakeOpenAI, tmp_path: Path
) -> None:
    with RedisServer() as redis_server:
        extra = f'\n[state]\nbackend = "redis"\nurl = "{redis_server.url}"\n'
        with (
            GatewayProcess(chat_target_config(primary, extra)) as one,
            GatewayProcess(chat_target_config(primary, extra)) as two,
        ):
            last = chain([one, two], 4)
            messages = primary.requests[-1].body["messages"]
            assert [m["content"] for m in messages if m["role"] == "user"] == [
                f"turn {n}" for n in range(4)
            ]
            assert httpx.get(one.base_url + "/responses/" + last).status_code == 200
            assert httpx.delete(two.base_url + "/responses/" + last).status_code == 200
            assert httpx.get(one.base_url + "/responses/" + last).status_code == 404
        import redis

        keys = redis.Redis.from_url(redis_server.url).keys("*responses:*")
        assert keys, "the responses lived in Redis"
        ttl = redis.Redis.from_url(redis_server.url).ttl(keys[0])
        assert 0 < ttl <= 30 * 86400
