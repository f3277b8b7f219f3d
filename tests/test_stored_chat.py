"""Stored chat completions (``store: true`` on ``/v1/chat/completions``) served back through the
openai SDK's ``client.chat.completions.list / retrieve / update / delete`` and
``messages.list``: to an OpenAI-format target, an Anthropic target and the fake provider,
streamed and not; filters and pages; tenants; two workers; Redis; zero data retention."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from plugway.testing import FakeAnthropic, FakeGemini, FakeOpenAI, GatewayProcess
from sec_kit import MASTER, RedisServer, assert_openai_error, create_key, keyed_config, new_db


def config(
    primary: FakeOpenAI, claude_up: FakeAnthropic, gemini: FakeGemini, db: Path, extra: str = ""
) -> str:
    return f"""
[providers.oai]
type = "openai"
base_url = "{primary.url}/v1"
api_key = "sk-oai-0123456789abcdef"

[providers.claude]
type = "anthropic"
base_url = "{claude_up.url}"
api_key = "sk-ant-0123456789abcdef"

[providers.fake]
type = "fake"

[providers.google]
type = "gemini"
base_url = "{gemini.url}"
api_key = "AIzaSyFAKE-gemini-key-0123456789abcdef"

[[models]]
name = "gem"
targets = [{{ provider = "google", model = "gemini-2.5-flash" }}]

[[models]]
name = "gpt"
targets = [{{ provider = "oai", model = "gpt-4o-mini" }}]

[[models]]
name = "claude"
targets = [{{ provider = "claude", model = "claude-sonnet-4-5" }}]

[[models]]
name = "fake"
targets = [{{ provider = "fake", model = "m" }}]

[plugins.responses]
db = "{db}"
{extra}
"""


@pytest.fixture(scope="module")
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def gw(
    primary: FakeOpenAI,
    claude_up: FakeAnthropic,
    gemini: FakeGemini,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    db = tmp_path_factory.mktemp("stored") / "responses.db"
    with GatewayProcess(config(primary, claude_up, gemini, db)) as gateway:
        yield gateway


def eventually(read: Any) -> Any:
    """A streamed answer is stored once its stream ended, just after the client saw its end."""
    for _ in range(100):
        try:
            return read()
        except openai.NotFoundError:
            time.sleep(0.02)
    return read()


def create(client: openai.OpenAI, model: str, stream: bool, **extra: Any) -> tuple[str, str]:
    """A stored chat completion; its id and text as the client got them."""
    messages: Any = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": f"hello {model}"}]},
    ]
    if not stream:
        answer = client.chat.completions.create(model=model, messages=messages, store=True, **extra)
        return answer.id, answer.choices[0].message.content or ""
    chunks = list(
        client.chat.completions.create(
            model=model, messages=messages, store=True, stream=True, **extra
        )
    )
    ids = {chunk.id for chunk in chunks}
    assert len(ids) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return ids.pop(), text


@pytest.mark.parametrize("model", ["gpt", "claude", "gem", "fake"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_store_retrieve_update_delete(
    gw: GatewayProcess, claude_up: FakeAnthropic, gemini: FakeGemini, model: str, stream: bool
) -> None:
    client = gw.openai()
    tag = f"{model}-{stream}"
    completion_id, text = create(client, model, stream, metadata={"run": tag, "kind": "t"})
    if model in ("claude", "gem"):  # translated: store and metadata are the gateway's business
        sent = (claude_up if model == "claude" else gemini).requests[-1].body
        assert "store" not in sent and "metadata" not in sent
    stored = eventually(lambda: client.chat.completions.retrieve(completion_id))
    assert stored.id == completion_id
    assert stored.choices[0].message.content == text and text
    assert stored.metadata == {"run": tag, "kind": "t"}
    messages = client.chat.completions.messages.list(completion_id)
    assert [m.role for m in messages.data] == ["system", "user"]
    assert [m.id for m in messages.data] == [f"{completion_id}-0", f"{completion_id}-1"]
    assert messages.data[1].content == f"hello {model}"
    assert messages.data[1].content_parts is not None
    assert messages.data[0].content_parts is None
    listed = client.chat.completions.list(metadata={"run": tag})
    assert [c.id for c in listed.data] == [completion_id]
    updated = client.chat.completions.update(completion_id, metadata={"run": tag, "seen": "y"})
    assert updated.metadata == {"run": tag, "seen": "y"}
    assert client.chat.completions.retrieve(completion_id).metadata == {"run": tag, "seen": "y"}
    assert client.chat.completions.list(metadata={"run": tag, "kind": "t"}).data == []
    deleted = client.chat.completions.delete(completion_id)
    assert deleted.deleted is True and deleted.object == "chat.completion.deleted"
    assert deleted.id == completion_id
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.retrieve(completion_id)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.messages.list(completion_id)


def test_passed_through_answer_keeps_the_upstreams_id(
    gw: GatewayProcess, primary: FakeOpenAI
) -> None:
    client = gw.openai()
    answer = client.chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "hi"}], store=True
    )
    assert primary.requests[-1].body["store"] is True  # passed through as before
    assert client.chat.completions.retrieve(answer.id).id == answer.id
    assert answer.id.startswith("chatcmpl")


def test_store_absent_or_false_keeps_nothing(gw: GatewayProcess) -> None:
    client = gw.openai()
    kept = {c.id for c in client.chat.completions.list(limit=100).data}
    for store in (None, False):
        extra: dict[str, Any] = {} if store is None else {"store": store}
        answer = client.chat.completions.create(
            model="fake", messages=[{"role": "user", "content": "x"}], **extra
        )
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.retrieve(answer.id)
        stream = client.chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "x"}], stream=True, **extra
        )
        assert list(stream)
    assert {c.id for c in client.chat.completions.list(limit=100).data} == kept


def test_list_filters_and_pages(gw: GatewayProcess) -> None:
    client = gw.openai()
    ids = [create(client, "fake", False, metadata={"batch": "pages"})[0] for _ in range(5)]
    other = create(client, "gpt", False, metadata={"batch": "pages"})[0]
    first = client.chat.completions.list(model="m", metadata={"batch": "pages"}, limit=2)
    assert [c.id for c in first.data] == ids[:2] and first.has_more is True
    by_alias = client.chat.completions.list(model="gpt", metadata={"batch": "pages"})
    assert [c.id for c in by_alias.data] == [other]  # the name asked for, or the answer's
    every = [c.id for c in client.chat.completions.list(metadata={"batch": "pages"}, limit=2)]
    assert every == [*ids, other]  # the SDK follows after= through the pages
    newest = client.chat.completions.list(
        metadata={"batch": "pages"}, order="desc", limit=3, after=other
    )
    assert [c.id for c in newest.data] == ids[::-1][:3]
    raw = httpx.get(
        gw.base_url + "/chat/completions",
        params={"metadata[batch]": "pages", "model": "gpt-4o-mini"},
    ).json()
    assert raw["object"] == "list" and raw["has_more"] is False
    assert raw["first_id"] == raw["last_id"] == other
    messages = client.chat.completions.messages.list(ids[0], limit=1, order="desc")
    assert [m.role for m in messages.data] == ["user"] and messages.has_more is True
    bad = httpx.get(gw.base_url + "/chat/completions", params={"limit": "500"})
    assert assert_openai_error(bad, 400)["param"] == "limit"
    bad = httpx.get(gw.base_url + "/chat/completions", params={"after": "chatcmpl-nope"})
    assert assert_openai_error(bad, 400)["param"] == "after"


def test_bad_store_and_metadata_name_their_field(gw: GatewayProcess) -> None:
    url = gw.base_url + "/chat/completions"
    body: dict[str, Any] = {"model": "fake", "messages": [{"role": "user", "content": "x"}]}
    refused = httpx.post(url, json={**body, "store": "yes"})
    assert assert_openai_error(refused, 400)["param"] == "store"
    refused = httpx.post(url, json={**body, "store": True, "metadata": {"a": 1}})
    assert assert_openai_error(refused, 400)["param"] == "metadata.a"
    created = httpx.post(url, json={**body, "store": True}).json()
    refused = httpx.post(url + "/" + created["id"], json={"metadata": {}, "model": "x"})
    assert assert_openai_error(refused, 400)["param"] == "model"


def test_with_the_response_cache_both_record_a_stream(
    primary: FakeOpenAI, claude_up: FakeAnthropic, gemini: FakeGemini, tmp_path: Path
) -> None:
    extra = "\n[plugins.cache]\nenabled = true\n"
    with GatewayProcess(config(primary, claude_up, gemini, tmp_path / "r.db", extra)) as cached:
        client = cached.openai()
        seen = []
        for _ in range(2):
            with client.chat.completions.with_streaming_response.create(
                model="fake",
                messages=[{"role": "user", "content": "cache me"}],
                store=True,
                stream=True,
                metadata={"cached": "yes"},
            ) as response:
                seen.append(response.headers["x-plugway-cache"])
                chunks = list(response.parse())
            completion_id = chunks[0].id
            stored = eventually(lambda cid=completion_id: client.chat.completions.retrieve(cid))
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert stored.choices[0].message.content == text and text
        assert seen == ["miss", "hit"]  # the cache recorded the first stream too
        listed = client.chat.completions.list(metadata={"cached": "yes"})
        assert len({c.id for c in listed.data}) == len(listed.data) >= 1


# -- tenants -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed(primary: FakeOpenAI) -> Iterator[GatewayProcess]:
    with GatewayProcess(
        keyed_config(primary, new_db()), env={"PLUGWAY_MASTER_KEY": MASTER}
    ) as gateway:
        yield gateway


def test_another_tenants_completion_is_not_found(keyed: GatewayProcess) -> None:
    alice = keyed.openai(api_key=create_key(keyed, team="a")["key"])
    teammate = keyed.openai(api_key=create_key(keyed, team="a")["key"])
    bob = keyed.openai(api_key=create_key(keyed, team="b")["key"])
    answer = alice.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "secret"}], store=True
    )
    assert teammate.chat.completions.retrieve(answer.id).id == answer.id
    for attempt in (
        lambda: bob.chat.completions.retrieve(answer.id),
        lambda: bob.chat.completions.messages.list(answer.id),
        lambda: bob.chat.completions.update(answer.id, metadata={"x": "y"}),
        lambda: bob.chat.completions.delete(answer.id),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert bob.chat.completions.list().data == []
    assert [c.id for c in alice.chat.completions.list().data] == [answer.id]
    wrong = keyed.openai(api_key="sk-wrong-key-0123456789")
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.list()
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.retrieve(answer.id)
    assert httpx.get(keyed.base_url + "/chat/completions").status_code == 401


def test_doors_are_in_the_request_log(keyed: GatewayProcess) -> None:
    key = create_key(keyed, team="logged")
    headers = {"authorization": f"Bearer {key['key']}"}
    seen = httpx.get(keyed.base_url + "/chat/completions", headers=headers)
    missing = httpx.get(keyed.base_url + "/chat/completions/chatcmpl-gone", headers=headers)
    assert assert_openai_error(missing, 404)["param"] == "completion_id"
    for response, status in ((seen, 200), (missing, 404)):
        record = log_of(keyed, response.headers["x-request-id"])
        assert record["endpoint"] == "chat.completions.stored" and record["status"] == status
        assert record["principal"] == key["id"] and record["tags"] == {"team": "logged"}
    assert key["key"] not in str(log_of(keyed, seen.headers["x-request-id"]))


def log_of(gw: GatewayProcess, request_id: str) -> dict[str, Any]:
    for _ in range(200):
        for record in gw.request_logs():
            if record["request_id"] == request_id:
                return dict(record)
        time.sleep(0.02)
    raise AssertionError(f"no log record for {request_id}")


# -- shared state ------------------------------------------------------------------------------


def single(primary: FakeOpenAI, extra: str = "") -> str:
    return f"""
[providers.oai]
type = "openai"
base_url = "{primary.url}/v1"
api_key = "sk-oai-0123456789abcdef"

[[models]]
name = "gpt"
targets = [{{ provider = "oai", model = "gpt-4o-mini" }}]
{extra}
"""


def store_over(gateways: list[GatewayProcess], count: int) -> list[str]:
    """``count`` stored completions made over ``gateways`` on new connections."""
    ids = []
    for n in range(count):
        gateway = gateways[n % len(gateways)]
        response = httpx.post(
            gateway.base_url + "/chat/completions",
            headers={"connection": "close"},
            json={
                "model": "gpt",
                "messages": [{"role": "user", "content": f"n{n}"}],
                "store": True,
                "metadata": {"n": str(n)},
            },
        )
        assert response.status_code == 200, response.text
        ids.append(response.json()["id"])
    return ids


def read_over(gateways: list[GatewayProcess], ids: list[str]) -> None:
    for n, completion_id in enumerate(ids):
        client = gateways[(n + 1) % len(gateways)].openai(default_headers={"connection": "close"})
        assert client.chat.completions.retrieve(completion_id).metadata == {"n": str(n)}
        assert client.chat.completions.list(metadata={"n": str(n)}).data[0].id == completion_id


def test_across_two_workers(primary: FakeOpenAI, tmp_path: Path, start_gateway: Any) -> None:
    extra = f'\n[plugins.responses]\ndb = "{tmp_path / "responses.db"}"\n'
    gateway = start_gateway(single(primary, extra), args=["--workers", "2"])
    ids = store_over([gateway], 6)
    read_over([gateway], ids)


def test_across_two_gateways_on_redis(primary: FakeOpenAI) -> None:
    with RedisServer() as redis_server:
        extra = f'\n[state]\nbackend = "redis"\nurl = "{redis_server.url}"\n'
        with (
            GatewayProcess(single(primary, extra)) as one,
            GatewayProcess(single(primary, extra)) as two,
        ):
            ids = store_over([one, two], 4)
            read_over([one, two], ids)
            listed = one.openai().chat.completions.list(order="desc", limit=3)
            assert [c.id for c in listed.data] == ids[::-1][:3] and listed.has_more
            assert two.openai().chat.completions.delete(ids[0]).deleted
            assert [c.id for c in one.openai().chat.completions.list()] == ids[1:]
        import redis

        client = redis.Redis.from_url(redis_server.url)
        keys = client.keys("*chatcmpl-store:rec:*")
        assert len(keys) == 3
        assert 0 < client.ttl(keys[0]) <= 30 * 86400


# -- zero data retention -----------------------------------------------------------------------


def zdr(primary: FakeOpenAI, db: Path, extra: str = "") -> str:
    return f"""
[privacy]
zdr = true

[providers.safe]
type = "openai"
base_url = "{primary.url}/v1"
api_key = "sk-safe-0123456789abcdef"
zdr = true

[[models]]
name = "gpt"
targets = [{{ provider = "safe", model = "m1" }}]

[plugins.responses]
db = "{db}"
{extra}
"""


def test_zdr_refuses_to_store(primary: FakeOpenAI, tmp_path: Path, start_gateway: Any) -> None:
    db = tmp_path / "responses.db"
    gateway = start_gateway(zdr(primary, db))
    calls = len(primary.requests)
    for stream in (False, True):
        refused = httpx.post(
            gateway.base_url + "/chat/completions",
            json={
                "model": "gpt",
                "messages": [{"role": "user", "content": "keep"}],
                "store": True,
                "stream": stream,
            },
        )
        error = assert_openai_error(refused, 400)
        assert error["param"] == "store" and "zdr" in error["message"]
    assert len(primary.requests) == calls
    client = gateway.openai()
    answer = client.chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "x"}], store=False
    )
    assert answer.id
    assert client.chat.completions.list().data == []
    assert not db.exists()


def test_zdr_coerces_store_to_false(
    primary: FakeOpenAI, tmp_path: Path, start_gateway: Any
) -> None:
    db = tmp_path / "responses.db"
    gateway = start_gateway(zdr(primary, db, 'zdr_store = "coerce"'))
    client = gateway.openai()
    answer = client.chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "x"}], store=True
    )
    assert primary.requests[-1].body["store"] is False  # nor does the host keep it
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.retrieve(answer.id)
    assert list(
        client.chat.completions.create(
            model="gpt", messages=[{"role": "user", "content": "x"}], store=True, stream=True
        )
    )
    assert client.chat.completions.list().data == []
    assert not db.exists()


def test_served_without_the_v1_prefix(gw: GatewayProcess) -> None:
    """As the core serves chat (found by openai-python's generated tests, whose base URL has
    no /v1)."""
    bare = openai.OpenAI(base_url=gw.url, api_key="sk-test", max_retries=0)
    done = bare.chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "no prefix"}], store=True
    )
    assert bare.chat.completions.retrieve(done.id).id == done.id
    assert done.id in [c.id for c in bare.chat.completions.list()]
