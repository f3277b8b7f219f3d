"""``test_hook_<name>`` for the administrative hooks (state backends, config checks, CLI
commands, audit events), through the real loader and the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hook_plugins import admin_hooks
from plugway.errors import ConfigError
from plugway.gateway import load_gateway
from plugway.testing import run_plugway
from plugway.testing.gateway_process import plugin_site

PLUGIN = Path(admin_hooks.__file__)
MODELS = """
[providers.local]
type = "fake"

[[models]]
name = "{name}"
targets = [{{ provider = "local", model = "m" }}]
"""


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "plugway.toml"
    path.write_text(text)
    return load_gateway(path, extra_plugins=[("admin_hooks", admin_hooks)], environ={})


def test_hook_register_state_backends(tmp_path: Path) -> None:
    gateway = load(tmp_path, '[state]\nbackend = "hooktest_state"\n' + MODELS.format(name="chat"))
    assert isinstance(gateway.state, admin_hooks.RecordingBackend)  # type: ignore[attr-defined]


def test_hook_check_config(tmp_path: Path) -> None:
    load(tmp_path, MODELS.format(name="chat"))
    with pytest.raises(ConfigError) as refused:
        load(tmp_path, MODELS.format(name="forbidden"))
    assert (
        "models.forbidden: the hook test refuses this name; use another one"
        in refused.value.problems
    )


def test_hook_register_commands(tmp_path: Path) -> None:
    done = run_plugway(
        "hooktest-hello", "world", pythonpath=plugin_site([PLUGIN], tmp_path / "site")
    )
    assert (done.returncode, done.stdout.strip()) == (3, "hello world"), done.stderr


def test_hook_audit_event(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    config = tmp_path / "plugway.toml"
    config.write_text(
        f'[plugins.keys]\ndb = "{tmp_path / "keys.db"}"\n' + MODELS.format(name="chat")
    )
    done = run_plugway(
        "keys",
        "create",
        "--config",
        str(config),
        "--team",
        "blue",
        "--json",
        env={"HOOKTEST_AUDIT_FILE": str(audit)},
        pythonpath=plugin_site([PLUGIN], tmp_path / "site"),
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [e["action"] for e in events] == ["key.create"]
    assert events[0]["team"] == "blue"
    assert json.loads(done.stdout)["key"] not in audit.read_text()
