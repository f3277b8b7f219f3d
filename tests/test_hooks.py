"""One ``test_hook_<name>`` per hook, each through a real gateway running a plugin that
implements every hook (tests/hook_plugins/every_hook.py). test_hook_docs.py checks that every
hook in hooks/hookspecs.py has its test here (or anywhere under tests/)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest
from plugway.testing import FakeOpenAI, GatewayProcess, Status

PLUGIN = Path(__file__).parent / "hook_plugins" / "every_hook.py"


def config(flaky: FakeOpenAI) -> str:
    return f"""
[providers.shouty]
type = "hooktest_shout"

[providers.plain]
type = "fake"

[providers.slow]
type = "fake"
delay = 2.0

[providers.flaky]
type = "openai"
base_url = "{flaky.url}/v1"
api_key = "sk-flaky-0123456789"

[plugins]
# These tests fail targets on purpose: no breaker may take one out for the next test.
disabled = ["health"]

[plugins.every_hook]
greeting = "bonjour"

[[models]]
name = "pair"
strategy = "hooktest_reverse"
targets = [{{ provider = "shouty", model = "a" }}, {{ provider = "plain", model = "b" }}]

[[models]]
name = "shout"
targets = [{{ provider = "shouty", model = "s" }}]

[[models]]
name = "slowpair"
targets = [{{ provider = "slow", model = "s" }}, {{ provider = "plain", model = "b" }}]

[[models]]
name = "flaky"
targets = [{{ provider = "flaky", model = "f" }}, {{ provider = "plain", model = "b" }}]
"""


@pytest.fixture(scope="module")
def flaky(plugway_upstreams: object) -> FakeOpenAI:
    return plugway_upstreams.get(FakeOpenAI, "hooktest-flaky")  # type: ignore[attr-defined,no-any-return]


@pytest.fixture
def gw(plugway_shared_gateway: Callable[..., GatewayProcess], flaky: FakeOpenAI) -> GatewayProcess:
    flaky.reset()
    return plugway_shared_gateway(config(flaky), plugins=[PLUGIN])


def gateway_logged(gateway: GatewayProcess, text: str, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in gateway.output():
            return True
        time.sleep(0.02)
    return False


def ask(gw: GatewayProcess, model: str, text: str) -> httpx.Response:
    return httpx.post(
        gw.base_url + "/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": text}]},
        timeout=10,
    )


def test_hook_register_providers(gw: GatewayProcess) -> None:
    answer = ask(gw, "shout", "quiet words")
    assert answer.json()["choices"][0]["message"]["content"].endswith("YOU SAID: QUIET WORDS")


def test_hook_register_strategies(gw: GatewayProcess) -> None:
    answer = ask(gw, "pair", "which one")
    assert answer.headers["x-plugway-provider"] == "plain"


def test_hook_register_settings_and_register_routes(gw: GatewayProcess) -> None:
    assert httpx.get(gw.url + "/hooktest/greeting").json()["greeting"] == "bonjour"


test_hook_register_settings = test_hook_register_settings_and_register_routes
test_hook_register_routes = test_hook_register_settings_and_register_routes


def test_hook_render_error(gw: GatewayProcess) -> None:
    ours = httpx.get(gw.url + "/hooktest/missing")
    assert ours.status_code == 404
    assert set(ours.json()) == {"hooktest_error", "request_id"}
    wrong_method = httpx.post(gw.url + "/hooktest/greeting")
    assert wrong_method.status_code == 405 and "hooktest_error" in wrong_method.json()
    theirs = httpx.get(gw.url + "/v1/missing")
    assert theirs.status_code == 404 and set(theirs.json()) == {"error"}


def test_hook_plugway_startup(gw: GatewayProcess) -> None:
    assert httpx.get(gw.url + "/hooktest/greeting").json()["started"] == ["bonjour"]


def test_hook_plugway_shutdown(
    plugway_gateway: Callable[..., GatewayProcess], tmp_path: Path
) -> None:
    marker = tmp_path / "shutdown"
    gateway = plugway_gateway(
        "[plugins.every_hook]\ngreeting = 'x'\n",
        plugins=[PLUGIN],
        env={"HOOKTEST_SHUTDOWN_FILE": str(marker)},
    )
    assert not marker.exists()
    # /ready answers before Sanic installs its signal handlers; a SIGTERM in between kills
    # the process without a shutdown. Wait for Sanic's own "ready" line first.
    assert gateway_logged(gateway, "Worker ready")
    gateway.stop()
    assert marker.read_text() == "closed"


def test_hook_pre_route(gw: GatewayProcess) -> None:
    refused = ask(gw, "pair", "this has the forbidden-word in it")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "hooktest_refused"
    assert ask(gw, "pair", "this is fine").status_code == 200


def test_hook_select_provider(gw: GatewayProcess) -> None:
    assert ask(gw, "shout", "last please").headers["x-plugway-provider"] == "shouty"
    # "flaky" lists flaky first; the hook's answer puts the last target first instead.
    answer = ask(gw, "flaky", "last please")
    assert answer.headers["x-plugway-provider"] == "plain"
    assert answer.headers["x-plugway-attempts"] == "1"


def test_hook_on_failure(gw: GatewayProcess, flaky: FakeOpenAI) -> None:
    flaky.script(Status(418, "I am a teapot"))
    answer = ask(gw, "flaky", "tea?")
    assert answer.status_code == 200 and answer.headers["x-plugway-provider"] == "plain"
    flaky.script(Status(400, "plain refusal"))
    assert ask(gw, "flaky", "tea?").status_code == 400  # the built-in policy: stop


def test_hook_hedge_delay(gw: GatewayProcess) -> None:
    hedged = ask(gw, "slowpair", "hedge please")
    assert hedged.headers["x-plugway-provider"] == "plain"
    assert hedged.headers["x-plugway-attempts"] == "2"


def test_hook_attempt_started_and_attempt_ended(gw: GatewayProcess, flaky: FakeOpenAI) -> None:
    flaky.script(Status(418, "I am a teapot"))
    answer = ask(gw, "flaky", "tea?")
    assert answer.headers["x-hooktest-attempts"] == (
        "started:flaky,ended:error,started:plain,ended:ok"
    )


test_hook_attempt_started = test_hook_attempt_started_and_attempt_ended
test_hook_attempt_ended = test_hook_attempt_started_and_attempt_ended


def test_hook_stream_chunk(gw: GatewayProcess) -> None:
    stream = gw.openai().chat.completions.create(
        model="pair", messages=[{"role": "user", "content": "my secret plan"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.endswith("You said: my ****** plan")


def test_hook_post_response(gw: GatewayProcess) -> None:
    raw = gw.openai().chat.completions.with_raw_response.create(
        model="pair", messages=[{"role": "user", "content": "count me"}]
    )
    assert int(raw.headers["x-hooktest-total-tokens"]) == raw.parse().usage.total_tokens  # type: ignore[union-attr]


def test_sdk_sees_refusal_as_permission_error(gw: GatewayProcess) -> None:
    with pytest.raises(openai.PermissionDeniedError):
        gw.openai().chat.completions.create(
            model="pair", messages=[{"role": "user", "content": "forbidden-word"}]
        )
