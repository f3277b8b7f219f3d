"""Master key, virtual keys, the admin API and the keys CLI, through the real gateway."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx
import openai
import pytest
from plugway.testing import FakeOpenAI, GatewayProcess
from sec_kit import MASTER, assert_openai_error, chat, create_key, keyed_config, new_db


@pytest.fixture(scope="module")
def keyed(primary: FakeOpenAI) -> Iterator[GatewayProcess]:
    with GatewayProcess(keyed_config(primary, new_db()), env={"PLUGWAY_MASTER_KEY": MASTER}) as gw:
        yield gw


def test_requests_need_a_key(keyed: GatewayProcess) -> None:
    error = assert_openai_error(chat(keyed, None), 401)
    assert error["type"] == "authentication_error"
    assert_openai_error(chat(keyed, "pw-not-a-real-key"), 401)
    assert_openai_error(httpx.get(keyed.base_url + "/models"), 401)
    assert httpx.get(keyed.url + "/health").status_code == 200


def test_master_key_and_virtual_key(keyed: GatewayProcess, primary: FakeOpenAI) -> None:
    assert chat(keyed, MASTER).status_code == 200
    created = create_key(keyed, team="ml", name="svc", models=["chat"], metadata={"owner": "ana"})
    assert created["key"].startswith("pw-") and len(created["key"]) > 40
    client = openai.OpenAI(base_url=keyed.base_url, api_key=created["key"], max_retries=0)
    answer = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "yo"}]
    )
    assert answer.choices[0].message.content == "echo: yo"
    # the client's key never goes upstream: only the provider's own
    sent = primary.requests[-1].headers
    assert sent["authorization"] == "Bearer sk-provider-canary-PROVIDERSECRET123"
    assert created["key"] not in str(sent) and MASTER not in str(sent)
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="other", messages=[{"role": "user", "content": "yo"}])
    # other SDK header styles carry keys too
    for header in ("x-api-key", "api-key"):
        response = httpx.post(
            keyed.base_url + "/chat/completions",
            headers={header: created["key"]},
            json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
        )
        assert response.status_code == 200


def test_list_shows_no_secret_and_revoke_works(keyed: GatewayProcess) -> None:
    created = create_key(keyed, team="ops")
    listed = httpx.get(
        keyed.url + "/admin/keys",
        params={"team": "ops"},
        headers={"authorization": f"Bearer {MASTER}"},
    )
    assert listed.status_code == 200
    assert created["key"] not in listed.text
    assert [k["id"] for k in listed.json()["data"]] == [created["id"]]
    assert "key" not in listed.json()["data"][0]
    assert chat(keyed, created["key"]).status_code == 200
    revoked = httpx.delete(
        keyed.url + f"/admin/keys/{created['id']}", headers={"authorization": f"Bearer {MASTER}"}
    )
    assert revoked.json() == {"id": created["id"], "revoked": True}
    assert_openai_error(chat(keyed, created["key"]), 401)
    again = httpx.delete(
        keyed.url + f"/admin/keys/{created['id']}", headers={"authorization": f"Bearer {MASTER}"}
    )
    assert_openai_error(again, 404)


def test_expired_key_is_refused(keyed: GatewayProcess) -> None:
    created = create_key(keyed, team="t", expires_in=-1)
    error = assert_openai_error(chat(keyed, created["key"]), 401)
    assert error["code"] == "key_expired"


def test_admin_api_needs_the_master_key(keyed: GatewayProcess) -> None:
    virtual = create_key(keyed, team="t")["key"]
    for key in (None, virtual, "wrong"):
        headers = {} if key is None else {"authorization": f"Bearer {key}"}
        response = httpx.post(keyed.url + "/admin/keys", json={"team": "x"}, headers=headers)
        assert_openai_error(response, 401)
        assert virtual not in response.text
    bad = httpx.post(
        keyed.url + "/admin/keys",
        json={"team": "x", "limits": {"rpm": -1}},
        headers={"authorization": f"Bearer {MASTER}"},
    )
    assert_openai_error(bad, 400)


def test_keys_cli_create_list_revoke(
    tmp_path: object, primary: FakeOpenAI, start_gateway: object
) -> None:
    db = new_db()
    run = [sys.executable, "-m", "plugway", "keys"]
    made = subprocess.run(
        [*run, "create", "--db", str(db), "--team", "cli", "--rpm", "5", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    import orjson

    record = orjson.loads(made.stdout)
    listed = subprocess.run(
        [*run, "list", "--db", str(db)], capture_output=True, text=True, check=True
    ).stdout
    assert record["id"] in listed and record["key"] not in listed and "live" in listed
    gw = start_gateway(keyed_config(primary, db), env={"PLUGWAY_MASTER_KEY": MASTER})  # type: ignore[operator]
    assert chat(gw, record["key"]).status_code == 200
    subprocess.run([*run, "revoke", "--db", str(db), record["id"]], check=True, capture_output=True)
    assert (
        "revoked"
        in subprocess.run(
            [*run, "list", "--db", str(db)], capture_output=True, text=True, check=False
        ).stdout
    )
    # revocation from another process reaches the gateway within cache_seconds
    import time

    deadline = time.monotonic() + 5
    while chat(gw, record["key"]).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert_openai_error(chat(gw, record["key"]), 401)
    # the store holds digests only
    import sqlite3

    rows = sqlite3.connect(db).execute("SELECT * FROM keys").fetchall()
    assert record["key"] not in str(rows)


def test_no_master_key_means_loopback_only(primary: FakeOpenAI) -> None:
    gw = GatewayProcess(keyed_config(primary, new_db()), args=["--host", "0.0.0.0"])
    with pytest.raises(RuntimeError) as failed:
        gw.start()
    assert "no key is configured" in str(failed.value)
    assert "PLUGWAY_MASTER_KEY" in str(failed.value)


def test_no_master_key_banner_says_loopback(primary: FakeOpenAI, start_gateway: object) -> None:
    gw = start_gateway(keyed_config(primary, new_db()))  # type: ignore[operator]
    assert "loopback only" in gw.output()
    assert chat(gw, None).status_code == 200


def test_anthropic_messages_endpoint_uses_the_same_keys(keyed: GatewayProcess) -> None:
    import anthropic

    created = create_key(keyed, team="claude", models=["chat"])
    client = anthropic.Anthropic(base_url=keyed.url, api_key=created["key"], max_retries=0)
    answer = client.messages.create(
        model="chat", max_tokens=20, messages=[{"role": "user", "content": "hey"}]
    )
    assert answer.content[0].text == "echo: hey"  # type: ignore[union-attr]
    anonymous = httpx.post(
        keyed.url + "/v1/messages",
        json={"model": "chat", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
    )
    assert anonymous.status_code == 401
    assert anonymous.json()["type"] == "error"  # Anthropic's error shape, not OpenAI's
    with pytest.raises(anthropic.PermissionDeniedError):
        client.messages.create(
            model="other", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
