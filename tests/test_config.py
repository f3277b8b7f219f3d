"""The config contract: every mistake named by its TOML path, what is wrong and what is right,
all of them in one message, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from plugway.config import build_config, interpolate_env
from plugway.errors import ConfigError
from plugway.gateway import load_gateway
from plugway.hookcall import HookRunner
from plugway.plugin_loader import load_plugins
from plugway.registry import Registry
from plugway.testing import run_plugway

GOOD = """
[providers.primary]
type = "openai"
base_url = "http://127.0.0.1:9001/v1"
api_key = "${PRIMARY_KEY}"
timeout = 30

[providers.backup]
type = "openai"
base_url = "http://127.0.0.1:9002/v1"
api_key = "sk-backup-abcdefghijklmnop"

[[models]]
name = "chat"
strategy = "fallback"
targets = [
  { provider = "primary", model = "gpt-4o-mini" },
  { provider = "backup",  model = "gpt-4o-mini" },
]
"""


def problems_of(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "plugway.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_gateway(path, environ=environ or {})
    return caught.value.problems


def test_good_config_builds_routes(tmp_path: Path) -> None:
    path = tmp_path / "plugway.toml"
    path.write_text(GOOD)
    gateway = load_gateway(path, environ={"PRIMARY_KEY": "sk-from-env-1234567890"})
    route = gateway.router.resolve("chat")
    assert [t.key for t in route.targets] == ["primary/gpt-4o-mini", "backup/gpt-4o-mini"]
    assert gateway.config.providers["primary"].api_key == "sk-from-env-1234567890"
    assert gateway.config.providers["primary"].timeout == 30.0
    direct = gateway.router.resolve("backup/some-model")
    assert [t.key for t in direct.targets] == ["backup/some-model"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[providers.p]\ntype = "opnai"\nbase_url = "http://x/v1"\napi_key = "k"\n',
            "providers.p.type: unknown provider type 'opnai' (did you mean 'openai'?); "
            "installed provider types are: {types}",
        ),
        (
            '[providers.p]\nbase_url = "http://x/v1"\n',
            "providers.p.type: missing required field; installed provider types are: {types}",
        ),
        (
            '[providers.p]\ntype = "openai"\nbase_url = "http://x/v1"\n',
            "providers.p.api_key: missing; provider type 'openai' needs an API key, for example api_key = \"${{P_API_KEY}}\"",
        ),
        (
            '[providers.p]\ntype = "openai"\napi_key = "k"\ntimeout = "30s"\n',
            "providers.p.timeout: expected a number, got a string '30s'",
        ),
        (
            '[providers.p]\ntype = "fake"\nbase_ur = "http://x"\n',
            "providers.p: unknown field 'base_ur' (did you mean 'base_url'?); allowed fields are: "
            "type, base_url, api_key, timeout, connect_timeout, headers, models, max_connections, "
            "zdr, delay, chunk_delay, dimensions, video_polls, video_bytes",
        ),
        (
            '[providers.p]\ntype = "openai"\napi_key = "k"\nbase_url = "ftp://x"\n',
            "providers.p.base_url: 'ftp://x' is not an http(s) URL; write it as \"https://host[:port]/path\"",
        ),
        (
            '[server]\nport = "4000"\n',
            "server.port: expected an integer, got a string '4000'",
        ),
        (
            "[server]\nport = 70000\n",
            "server.port: 70000 is out of range; use 0 to 65535",
        ),
        (
            "[server]\nbacklog = 0\n",
            "server.backlog: 0 is too small; use 1 or more",
        ),
        (
            "[sever]\nport = 1\n",
            "sever: unknown section (did you mean 'server'?); allowed sections are: server, routing, providers, models, plugins, state, privacy, mcp",
        ),
        (
            '[providers.fake]\ntype = "fake"\n[[models]]\nname = "m"\ntargets = [{ provider = "fak", model = "x" }]\n',
            "models[0].targets[0].provider: no provider named 'fak' (did you mean 'fake'?); configured providers are: fake",
        ),
        (
            '[providers.fake]\ntype = "fake"\n[[models]]\nname = "m"\nstrategy = "fallbak"\ntargets = [{ provider = "fake", model = "x" }]\n',
            "models[0].strategy: unknown strategy 'fallbak' (did you mean 'fallback'?); installed strategies are: {strategies}",
        ),
        (
            '[providers.fake]\ntype = "fake"\n[[models]]\ntargets = [{ provider = "fake", model = "x" }]\n',
            "models[0].name: missing required field",
        ),
        (
            '[providers.fake]\ntype = "fake"\n[[models]]\nname = "m"\ntargets = []\n',
            "models[0].targets: empty; give at least one target",
        ),
        (
            '[providers.fake]\ntype = "fake"\n[[models]]\nname = "m"\ntargets = [{ provider = "fake", model = "x", wieght = 2 }]\n',
            "models[0].targets[0]: unknown field 'wieght' (did you mean 'weight'?); allowed fields are: provider, model, weight, price, region, tags, context_window, zdr",
        ),
        (
            '[providers.fake]\ntype = "fake"\n[[models]]\nname = "m"\ntargets = [{ provider = "fake", model = "x" }]\n'
            '[[models]]\nname = "m"\ntargets = [{ provider = "fake", model = "y" }]\n',
            "models[1].name: 'm' is already the name of models[0]; model names must be unique",
        ),
        (
            '[providers.p]\ntype = "openai"\napi_key = "${MISSING_KEY}"\n',
            "providers.p.api_key: environment variable MISSING_KEY is not set; set it, or write ${{MISSING_KEY:-default}} to give a default",
        ),
        (
            '[plugins]\ndisabled = ["no_such_plugin"]\n',
            "plugins.disabled: no installed plugin is named 'no_such_plugin'; installed plugins are: "
            "{plugins}",
        ),
        (
            "[plugins.nope]\nx = 1\n",
            "plugins.nope: no installed plugin takes settings named 'nope'; {settings}",
        ),
    ],
)
def test_each_mistake_is_named_exactly(tmp_path: Path, text: str, expected: str) -> None:
    registry = _registry()
    tables = sorted(set(registry.settings) - registry.sections)  # [mcp] is not [plugins.mcp]
    settings = (
        f"plugins with settings are: {', '.join(tables)}"
        if tables
        else "no plugins with settings are installed"
    )
    names = sorted(info.name for info in load_plugins().infos)
    expected = expected.format(
        types=", ".join(sorted(registry.providers)),
        plugins=", ".join(names),
        settings=settings,
        strategies=", ".join(sorted(registry.strategies)),
    )
    assert expected in problems_of(tmp_path, text)


def _registry() -> Registry:
    return Registry.collect(HookRunner(load_plugins().pm))


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        '[server]\nport = "x"\n[providers.p]\ntype = "opnai"\n'
        '[[models]]\nname = "m"\ntargets = [{ provider = "q", model = "x" }]\n',
    )
    assert [p.split(":")[0] for p in problems] == [
        "server.port",
        "providers.p.type",
        "models[0].targets[0].provider",
    ]


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nport = 1")
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML: .*line 1"):
        load_gateway(bad)
    with pytest.raises(ConfigError, match=r"nowhere.toml: no such config file"):
        load_gateway(tmp_path / "nowhere.toml")


def test_env_interpolation_with_defaults() -> None:
    problems: list[str] = []
    data = {"a": "${X}", "b": ["${Y:-fallback}", "pre-${X}-post"], "c": 3}
    out = interpolate_env(data, {"X": "1"}, problems=problems)
    assert out == {"a": "1", "b": ["fallback", "pre-1-post"], "c": 3}
    assert problems == []


def test_build_config_rejects_non_table_sections() -> None:
    registry = _registry()
    with pytest.raises(ConfigError) as caught:
        build_config({"server": [1], "models": {"name": "x"}}, registry, environ={})
    assert caught.value.problems == [
        "server: expected a table, got an array",
        "models: expected an array of tables ([[models]]), got a table",
    ]


def test_check_prints_routing_table_with_keys_masked(tmp_path: Path) -> None:
    path = tmp_path / "plugway.toml"
    path.write_text(GOOD)
    secret = "sk-from-env-SECRET-0123456789"
    result = run_plugway("check", str(path), env={"PRIMARY_KEY": secret})
    assert result.returncode == 0, result.stderr
    assert secret not in result.stdout and "sk-backup-abcdefghijklmnop" not in result.stdout
    assert "api_key=sk-...(29 chars)" in result.stdout
    assert "  chat  (strategy=fallback, deadline=300.0s)" in result.stdout
    assert "    1. primary/gpt-4o-mini" in result.stdout
    assert "    2. backup/gpt-4o-mini" in result.stdout


def test_check_reports_errors_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "plugway.toml"
    path.write_text('[providers.p]\ntype = "opnai"\n')
    result = run_plugway("check", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    types = ", ".join(sorted(_registry().providers))
    assert result.stderr == (
        f"plugway: config error in {path}:\n"
        "  providers.p.type: unknown provider type 'opnai' (did you mean 'openai'?); "
        f"installed provider types are: {types}\n"
    )
