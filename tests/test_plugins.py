"""Plugins: installed ones are discovered and called with no config change, can be disabled,
fail loudly and clearly when broken, and are listed with their hooks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from plugway.testing import FakeOpenAI, GatewayProcess, Status, run_plugway

PKGS = Path(__file__).parent / "plugin_pkgs"
SHOUT = PKGS / "site"
BROKEN = PKGS / "broken"
BUILTINS = {"failure_policy", "fake", "fallback", "openai", "request_logger"}


@pytest.fixture(scope="module")
def shout_gateway(two_targets: str) -> Iterator[GatewayProcess]:
    with GatewayProcess(two_targets, pythonpath=[SHOUT]) as gw:
        yield gw


def sdk(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="k", max_retries=0)


MESSAGES = [{"role": "user", "content": "hi"}]


def test_installed_plugin_runs_with_no_config_change(
    shout_gateway: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    raw = sdk(shout_gateway).chat.completions.with_raw_response.create(
        model="chat", messages=MESSAGES, extra_body={"metadata": {"route_to": "backup"}}
    )
    # select_provider (async) chose the plan, pre_route (async) tagged, post_response added a header
    assert raw.headers["x-plugway-provider"] == "backup"
    assert raw.headers["x-shout"] == "seen"
    assert primary.requests == [] and len(backup.requests) == 1
    # returning None defers to the route's own strategy
    plain = sdk(shout_gateway).chat.completions.with_raw_response.create(
        model="chat", messages=MESSAGES
    )
    assert plain.headers["x-plugway-provider"] == "primary"
    assert httpx.get(shout_gateway.url + "/-/shout").json() == {
        "shout": True,
        "models": ["chat", "solo", "embed"],
    }


def test_plugin_rejects_in_pre_route_with_its_own_error(shout_gateway: GatewayProcess) -> None:
    with pytest.raises(openai.PermissionDeniedError) as caught:
        sdk(shout_gateway).chat.completions.create(
            model="chat", messages=MESSAGES, extra_body={"metadata": {"forbidden": True}}
        )
    assert caught.value.code == "shout_forbidden"


def test_response_filter_rewrites_or_refuses_the_answer(
    shout_gateway: GatewayProcess,
) -> None:
    redacted = sdk(shout_gateway).chat.completions.create(
        model="chat", messages=MESSAGES, extra_body={"metadata": {"filter": "redact"}}
    )
    assert redacted.choices[0].message.content == "[redacted]"
    with pytest.raises(openai.PermissionDeniedError) as caught:
        sdk(shout_gateway).chat.completions.create(
            model="chat", messages=MESSAGES, extra_body={"metadata": {"filter": "refuse"}}
        )
    assert caught.value.code == "answer_refused"
    request_id = caught.value.response.headers["x-request-id"]
    record = shout_gateway.request_record(request_id)
    assert (record["status"], record["error"]) == (403, "answer_refused")
    assert [r["request_id"] for r in shout_gateway.request_logs()].count(request_id) == 1


def test_plugin_rewrites_stream_chunks(shout_gateway: GatewayProcess) -> None:
    stream = sdk(shout_gateway).chat.completions.create(
        model="chat", messages=MESSAGES, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "ECHO: HI "


def test_plugin_failure_policy_overrides_the_builtin_one(
    shout_gateway: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    primary.script(Status(404, message="no such deployment"))
    raw = sdk(shout_gateway).chat.completions.with_raw_response.create(
        model="chat", messages=MESSAGES
    )
    assert raw.headers["x-plugway-provider"] == "backup"


def test_plugins_endpoint_lists_every_plugin_and_its_hooks(shout_gateway: GatewayProcess) -> None:
    listed = {p["name"]: p for p in httpx.get(shout_gateway.url + "/-/plugins").json()["plugins"]}
    assert set(listed) >= BUILTINS
    shout = listed["shout"]
    assert shout["distribution"] == "plugway-shout" and shout["version"] == "1.0"
    assert shout["builtin"] is False
    assert shout["hooks"] == [
        "on_failure",
        "post_response",
        "pre_route",
        "register_routes",
        "select_provider",
        "stream_chunk",
    ]
    assert listed["openai"]["provider_types"][0] == "openai"
    assert listed["openai"]["builtin"] is True and listed["openai"]["distribution"] == "plugway"
    assert listed["fallback"]["strategies"] == ["fallback"]


def test_cli_lists_plugins() -> None:
    result = run_plugway("plugins", "--json", pythonpath=[SHOUT])
    assert result.returncode == 0, result.stderr
    names = {p["name"] for p in json.loads(result.stdout)["plugins"]}
    assert names >= BUILTINS | {"shout"}
    text = run_plugway("plugins", pythonpath=[SHOUT]).stdout
    assert "shout  (plugway-shout 1.0)  plugway_shout" in text
    assert "    hooks: on_failure, post_response, pre_route" in text


def test_disabled_by_environment(two_targets: str) -> None:
    env = {"PLUGWAY_DISABLE_PLUGINS": "shout"}
    with GatewayProcess(two_targets, pythonpath=[SHOUT], env=env) as gw:
        raw = sdk(gw).chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES, extra_body={"metadata": {"route_to": "backup"}}
        )
        assert raw.headers["x-plugway-provider"] == "primary"
        assert "x-shout" not in raw.headers
        described = httpx.get(gw.url + "/-/plugins").json()
        assert "shout" not in {p["name"] for p in described["plugins"]}
        # shout by the environment; health by the shared test config (see conftest.py)
        assert described["disabled"] == ["health", "shout"]


def test_disabled_by_config(tmp_path: Path) -> None:
    path = tmp_path / "plugway.toml"
    path.write_text('[plugins]\ndisabled = ["shout", "request_logger"]\n')
    result = run_plugway("plugins", "--json", "--config", str(path), pythonpath=[SHOUT])
    described = json.loads(result.stdout)
    assert {"shout", "request_logger"}.isdisjoint(p["name"] for p in described["plugins"])
    assert described["disabled"] == ["request_logger", "shout"]


def test_broken_plugin_stops_startup_with_one_clear_message() -> None:
    result = run_plugway("serve", "--port", "0", pythonpath=[BROKEN])
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "plugway: plugin 'broken' (from distribution plugway-broken) failed to load: "
        "ModuleNotFoundError: No module named 'a_module_that_does_not_exist'"
    )
    # and disabling it is the way out
    rescued = run_plugway("plugins", pythonpath=[BROKEN], env={"PLUGWAY_DISABLE_PLUGINS": "broken"})
    assert rescued.returncode == 0
    assert "plugway_broken" not in rescued.stdout
    assert rescued.stdout.endswith("disabled: broken\n")
