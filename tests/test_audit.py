"""The audit trail: admin actions and request metadata, hash-chained; ``plugway audit
verify`` finds an edited, inserted or deleted record."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
from plugway.plugins.audit import verify as verify_chain
from plugway.testing import FakeOpenAI, GatewayProcess
from sec_kit import MASTER, chat, create_key, keyed_config, new_db


def verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plugway", "audit", "verify", "--path", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_audit_trail_records_and_detects_tampering(
    primary: FakeOpenAI, tmp_path: Path, start_gateway: object
) -> None:
    trail = tmp_path / "audit" / "trail.jsonl"
    db = new_db()
    cfg = tmp_path / "plugway.toml"
    cfg.write_text(keyed_config(primary, db, f'\n[plugins.audit]\npath = "{trail}"\n'))
    gw: GatewayProcess = start_gateway(cfg, env={"PLUGWAY_MASTER_KEY": MASTER})  # type: ignore[operator]
    made = create_key(gw, team="ml")
    secret_prompt = "the secret prompt text 12345"
    assert chat(gw, made["key"], text=secret_prompt).status_code == 200
    assert chat(gw, "pw-wrong").status_code == 401
    gw.stop()
    # a CLI action lands in the same chain
    subprocess.run(
        [sys.executable, "-m", "plugway", "keys", "revoke", "--config", str(cfg), made["id"]],
        check=True,
        capture_output=True,
    )
    ok = verify(trail)
    assert ok.returncode == 0, ok.stderr
    records = [orjson.loads(line) for line in trail.read_bytes().splitlines()]
    actions = [r.get("action") for r in records if r["kind"] == "admin"]
    assert actions == ["config.load", "key.create", "key.revoke"]
    requests = [r for r in records if r["kind"] == "request"]
    assert [r["status"] for r in requests] == [200, 401]
    assert requests[0]["principal"] == made["id"] and requests[0]["team"] == "ml"
    text = trail.read_text()
    assert secret_prompt not in text and made["key"] not in text and MASTER not in text

    original = trail.read_bytes()
    lines = original.splitlines()
    # edited
    edited = lines.copy()
    edited[1] = edited[1].replace(b'"ml"', b'"ops"')
    trail.write_bytes(b"\n".join(edited) + b"\n")
    tampered = verify(trail)
    assert tampered.returncode == 1 and "TAMPERED" in tampered.stderr
    assert "line 2" in tampered.stderr
    # deleted from the middle, deleted from the end, reordered
    for variant, expected in (
        (lines[:1] + lines[2:], "deleted or inserted"),
        (lines[:-1], "removed from the end"),
        ([lines[1], lines[0], *lines[2:]], "deleted or inserted"),
    ):
        trail.write_bytes(b"\n".join(variant) + b"\n")
        intact, message = verify_chain(trail)
        assert not intact and expected in message
    trail.write_bytes(original)
    assert verify_chain(trail)[0]
