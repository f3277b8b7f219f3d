"""Zero data retention as a checked promise, and the plugin allowlist."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
from plugway.errors import ConfigError
from plugway.gateway import load_gateway
from plugway.hooks import hookimpl
from plugway.testing import FakeOpenAI
from sec_kit import assert_openai_error, chat


def zdr_config(upstream: FakeOpenAI, target_zdr: bool = True, extra: str = "") -> str:
    return f"""
[privacy]
zdr = true

[providers.safe]
type = "openai"
base_url = "{upstream.url}/v1"
api_key = "sk-safe-0123456789abcdef"
zdr = true

[providers.leaky]
type = "openai"
base_url = "{upstream.url}/v1"
api_key = "sk-leaky-0123456789abcdef"

[[models]]
name = "chat"
targets = [{{ provider = "safe", model = "m1" }},
           {{ provider = "leaky", model = "m2", zdr = {str(target_zdr).lower()} }}]
{extra}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plugway.toml"
    path.write_text(text)
    return path


def test_undeclared_plugin_refuses_start(tmp_path: Path, primary: FakeOpenAI) -> None:
    logger_plugin = types.ModuleType("chatty_logger")

    @hookimpl
    def post_response(ctx: object) -> None: ...

    logger_plugin.post_response = post_response  # type: ignore[attr-defined]
    path = _write(tmp_path, zdr_config(primary))
    with pytest.raises(ConfigError) as refused:
        load_gateway(path, extra_plugins=[("chatty_logger", logger_plugin)], environ={})
    assert any(
        "plugin 'chatty_logger'" in p and "PLUGWAY_RETAINS_CONTENT" in p
        for p in refused.value.problems
    )
    logger_plugin.PLUGWAY_RETAINS_CONTENT = False  # type: ignore[attr-defined]
    load_gateway(path, extra_plugins=[("chatty_logger", logger_plugin)], environ={})


def test_target_without_zdr_refuses_start(tmp_path: Path, primary: FakeOpenAI) -> None:
    with pytest.raises(ConfigError) as refused:
        load_gateway(_write(tmp_path, zdr_config(primary, target_zdr=False)), environ={})
    assert any(
        p.startswith("models[0].targets[1]") and "leaky/m2" in p for p in refused.value.problems
    )


def test_zdr_routes_only_to_zdr_targets(primary: FakeOpenAI, start_gateway: object) -> None:
    gw = start_gateway(zdr_config(primary))  # type: ignore[operator]
    assert chat(gw, None).status_code == 200
    assert primary.requests[-1].body["model"] == "m1"
    # addressing a provider without zdr directly is refused, not served
    assert_openai_error(chat(gw, None, model="leaky/m9"), 503)
    assert chat(gw, None, model="safe/m9").status_code == 200
    assert all(
        r.body["model"] != "m9" or r.headers["authorization"].endswith("abcdef")
        for r in primary.requests
    )
    plugins = __import__("httpx").get(gw.url + "/-/plugins").json()["plugins"]
    assert all(p["retains_content"] is False for p in plugins)


def test_allowlist(tmp_path: Path, primary: FakeOpenAI) -> None:
    base = zdr_config(primary).replace("zdr = true\n", "zdr = false\n", 1)
    allowed = base + '\n[plugins]\nallow = ["openai", "fallback", "failure_policy"]\n'
    gw = load_gateway(_write(tmp_path, allowed), environ={})
    names = {info.name for info in gw.plugins.infos}
    assert names == {"openai", "fallback", "failure_policy"}
    assert "request_logger" in gw.describe_plugins()["disabled"]
    with pytest.raises(ConfigError) as refused:
        load_gateway(_write(tmp_path, base + '\n[plugins]\nallow = ["nope"]\n'), environ={})
    assert "plugins.allow" in str(refused.value)
