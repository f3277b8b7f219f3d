"""plugway's pytest plugin (plugway.testing), used as a plugin author uses it: module-level
``plugway_config``/``plugway_plugins`` overrides, ``plugway_server`` and ``openai_client``,
the shared-gateway cache and the per-test reset of fake upstreams."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import openai
import pytest
from plugway.testing import FakeAnthropic, FakeGemini, FakeOpenAI, GatewayProcess, Status
from plugway.testing.gateway_process import plugin_site

FILTER = Path(__file__).parent.parent / "cookbook" / "security" / "secret_filter.py"


@pytest.fixture(scope="module")
def plugway_config(plugway_upstreams: object) -> str:
    upstream = plugway_upstreams.get(FakeOpenAI, "kit")
    return f"""
[providers.up]
type = "openai"
base_url = "{upstream.url}/v1"
api_key = "sk-kit-0123456789"

[[models]]
name = "kit"
targets = [{{ provider = "up", model = "gpt-kit" }}]
"""


@pytest.fixture(scope="module")
def plugway_plugins() -> Sequence[Path]:
    return [FILTER]


def test_openai_client_is_bound_to_the_configured_server(
    openai_client: openai.OpenAI, plugway_server: GatewayProcess
) -> None:
    assert str(openai_client.base_url).rstrip("/") == plugway_server.base_url
    reply = openai_client.chat.completions.create(
        model="kit", messages=[{"role": "user", "content": "ping"}]
    )
    assert reply.choices[0].message.content == "echo: ping"
    with pytest.raises(openai.BadRequestError):  # the plugin path was loaded
        openai_client.chat.completions.create(
            model="kit", messages=[{"role": "user", "content": "AKIAIOSFODNN7EXAMPLE"}]
        )


def test_fake_upstreams_are_shared_and_reset_for_each_test(
    fake_upstream: Callable[..., FakeOpenAI], openai_client: openai.OpenAI
) -> None:
    upstream = fake_upstream(FakeOpenAI, "kit")
    assert upstream.requests == []  # the previous test's requests are gone
    upstream.script(Status(400, "scripted for this test"))
    with pytest.raises(openai.BadRequestError, match="scripted for this test"):
        openai_client.chat.completions.create(
            model="kit", messages=[{"role": "user", "content": "x"}]
        )
    assert [r.body["model"] for r in upstream.requests] == ["gpt-kit"]


def test_shared_gateways_are_reused_for_the_same_arguments(
    plugway_shared_gateway: Callable[..., GatewayProcess],
) -> None:
    first = plugway_shared_gateway(None, plugins=[FILTER])
    assert plugway_shared_gateway(None, plugins=[FILTER]) is first
    assert plugway_shared_gateway(None) is not first


def test_plugin_site_makes_modules_and_packages_discoverable(tmp_path: Path) -> None:
    package = tmp_path / "src" / "my_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    entries = plugin_site([FILTER, package], tmp_path / "site")
    assert entries == [str(tmp_path / "site"), str(FILTER.parent), str(package.parent)]
    points = tmp_path / "site" / "plugway_test_my_pkg-0.0.dist-info" / "entry_points.txt"
    assert points.read_text() == "[plugway]\nmy_pkg = my_pkg\n"
    with pytest.raises(FileNotFoundError):
        plugin_site([tmp_path / "missing.py"], tmp_path / "site")


def test_one_fake_per_wire_format(
    plugway_gateway: Callable[..., GatewayProcess],
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
) -> None:
    gateway = plugway_gateway(f"""
[providers.claude]
type = "anthropic"
base_url = "{fake_anthropic.url}"
api_key = "sk-ant-kit-0123456789"

[providers.gem]
type = "gemini"
base_url = "{fake_gemini.url}"
api_key = "gem-kit-0123456789"

[[models]]
name = "claude"
targets = [{{ provider = "claude", model = "claude-sonnet-4-5" }}]

[[models]]
name = "gem"
targets = [{{ provider = "gem", model = "gemini-2.5-flash" }}]
""")
    client = gateway.openai()
    for model in ("claude", "gem"):
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hello"}]
        )
        assert reply.choices[0].message.content == "echo: hello"
    assert fake_anthropic.requests[-1].path == "/v1/messages"
    assert ":generateContent" in fake_gemini.requests[-1].path
