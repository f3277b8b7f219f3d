"""Keys never leak: canary keys (provider, master, virtual, client headers, ``key=``
queries) are driven through successes and every kind of failure, then searched for in every
log line, response body and header, ``/-/plugins``, ``plugway check`` and the key store."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import httpx
from plugway.testing import FakeOpenAI, GatewayProcess, Status
from sec_kit import MASTER, chat, create_key, keyed_config, new_db

PROVIDER = "sk-provider-canary-PROVIDERSECRET123"
CLIENT = "client-canary-CLIENTSECRET-42"


def test_no_key_anywhere(primary: FakeOpenAI, start_gateway: object, tmp_path: object) -> None:
    db = new_db()
    store_db = db.parent / "requests.db"
    gw: GatewayProcess = start_gateway(  # type: ignore[operator]
        keyed_config(
            primary,
            db,
            f'[plugins.store]\npath = "{store_db}"\nflush_interval = 0.05\n'
            f'[plugins.audit]\npath = "{db.parent / "audit.jsonl"}"\n',
        ),
        env={"PLUGWAY_MASTER_KEY": MASTER},
        args=["--log-level", "DEBUG"],
    )
    virtual = create_key(gw, team="t")["key"]
    canaries = [PROVIDER, MASTER, virtual, CLIENT]
    seen: list[str] = []

    def record(response: httpx.Response) -> None:
        seen.append(response.text)
        seen.append(str(dict(response.headers)))

    # successes and refusals with keys in every header SDKs use
    record(chat(gw, virtual))
    for header in ("authorization", "x-api-key", "api-key", "x-goog-api-key"):
        value = f"Bearer {CLIENT}" if header == "authorization" else CLIENT
        record(
            httpx.post(
                gw.base_url + f"/chat/completions?key={CLIENT}",
                headers={header: value},
                json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
            )
        )
    # the upstream refuses the provider key, echoing it; fails with it in a 500 body
    primary.script(
        Status(401, f"Incorrect API key provided: {PROVIDER}"),
        Status(500, f"internal: key {PROVIDER} failed"),
        Status(400, f"bad request for {PROVIDER}"),
    )
    for _ in range(3):
        record(chat(gw, virtual))
    # keys where keys do not belong: the model name, the body, a broken body
    record(chat(gw, virtual, model=virtual))
    record(chat(gw, virtual, model=MASTER))
    record(
        httpx.post(
            gw.base_url + "/chat/completions",
            content=f'{{"model": "{CLIENT}',
            headers={"authorization": f"Bearer {virtual}"},
        )
    )
    record(
        httpx.get(
            gw.url + f"/-/plugins?key={CLIENT}", headers={"authorization": f"Bearer {virtual}"}
        )
    )
    record(httpx.get(gw.base_url + "/models", headers={"authorization": f"Bearer {virtual}"}))
    record(httpx.get(gw.url + "/admin/keys", headers={"authorization": f"Bearer {MASTER}"}))
    record(httpx.get(gw.url + "/metrics", headers={"authorization": f"Bearer {virtual}"}))
    assert "plugway_" in seen[-2]  # the metrics page was really read
    gw.request_logs(wait_for=12)
    checked = subprocess.run(
        [sys.executable, "-m", "plugway", "check", str(gw.config_path)],
        capture_output=True,
        text=True,
        env={"PLUGWAY_MASTER_KEY": MASTER, "PATH": ""},
        check=True,
    )
    assert "OK" in checked.stdout and "PROVIDERSECRET" not in checked.stdout
    seen.append(checked.stdout + checked.stderr)
    seen.append(str(sqlite3.connect(db).execute("SELECT * FROM keys").fetchall()))
    store = sqlite3.connect(store_db)
    tables = [t for (t,) in store.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert tables
    for table in tables:
        seen.append(str(store.execute(f"SELECT * FROM {table}").fetchall()))
    gw.stop()
    seen.append(gw.output())
    seen.append((db.parent / "audit.jsonl").read_text())
    everything = "\n".join(seen)
    assert "Incorrect API key" not in everything or PROVIDER not in everything
    for canary in canaries:
        assert canary not in everything, canary
    # and the leak-prone paths were really exercised
    assert "refused the gateway's credentials" in everything
    assert "[REDACTED]" in gw.output() or "[REDACTED]" in everything


def test_redaction_patterns() -> None:
    from plugway.redact import redact, register_secret

    register_secret("odd-shaped-secret-value")
    text = redact(
        "Authorization: Bearer abcdefgh12345 x-api-key: k1 "
        "url https://h/v1/models?key=AIzaSyXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX&a=1 "
        "and odd-shaped-secret-value, {'api-key': 'zz'}"
    )
    for leaked in ("abcdefgh12345", "k1 ", "AIzaSy", "odd-shaped", "'zz'"):
        assert leaked not in text
    assert redact("a plain sentence about a key ring") == "a plain sentence about a key ring"
