"""Shared fixtures: fake OpenAI upstreams on loopback and the real gateway in front of them.

The general fixtures (``plugway_gateway``, ``fake_upstream``, ``plugway_upstreams`` ...) come
from plugway's own pytest plugin, ``plugway.testing.pytest_plugin``, the one plugin authors
use; this file only names the upstreams and configs this suite shares.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from plugway.testing import FakeAnthropic, FakeOpenAI, GatewayProcess
from plugway.testing.pytest_plugin import UpstreamPool
from venv_kit import Venv

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session", autouse=True)
def _private_state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Gateways started by tests keep their request store (on by default, under
    ``$XDG_STATE_HOME``) in a folder of this session, not in the user's home."""
    old = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    yield
    if old is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = old


@pytest.fixture(scope="session")
def primary(plugway_upstreams: UpstreamPool) -> FakeOpenAI:
    return plugway_upstreams.get(FakeOpenAI, "primary")


@pytest.fixture(scope="session")
def backup(plugway_upstreams: UpstreamPool) -> FakeOpenAI:
    return plugway_upstreams.get(FakeOpenAI, "backup")


@pytest.fixture(autouse=True)
def _fresh_upstreams(request: pytest.FixtureRequest) -> None:
    """Each test starts with empty scripts and records on the session's fakes."""
    for name in ("primary", "backup", "claude_up", "claude_backup"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()


def two_target_config(primary: FakeOpenAI, backup: FakeOpenAI, extra: str = "") -> str:
    return f"""
[providers.primary]
type = "openai"
base_url = "{primary.url}/v1"
api_key = "sk-primary-secret-0123456789"
timeout = 2

[providers.backup]
type = "openai"
base_url = "{backup.url}/v1"
api_key = "sk-backup-secret-9876543210"
timeout = 2

[routing]
deadline = 6

[plugins]
# Tests here fail targets on purpose, one after another on the same gateway: without the
# health plugin, one test's failures cannot put a target in cool-down for the next.
disabled = ["health"]

[[models]]
name = "chat"
targets = [
  {{ provider = "primary", model = "gpt-4o-mini" }},
  {{ provider = "backup", model = "gpt-4o-mini-backup" }},
]

[[models]]
name = "solo"
targets = [{{ provider = "primary", model = "gpt-4o-solo" }}]

[[models]]
name = "embed"
targets = [{{ provider = "primary", model = "text-embedding-3-small" }}]
{extra}
"""


@pytest.fixture(scope="session")
def two_targets(primary: FakeOpenAI, backup: FakeOpenAI) -> str:
    """Config text: model ``chat`` over primary then backup, ``solo`` and ``embed`` on primary."""
    return two_target_config(primary, backup)


@pytest.fixture(scope="session")
def gateway(two_targets: str) -> Iterator[GatewayProcess]:
    """The gateway with two OpenAI-format targets behind the model ``chat``."""
    with GatewayProcess(two_targets) as gw:
        yield gw


@pytest.fixture
def start_gateway(plugway_gateway: Callable[..., GatewayProcess]) -> Callable[..., GatewayProcess]:
    """Start gateways with their own config for one test; all stop when it ends."""
    return plugway_gateway


# -- Anthropic ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def claude_up(plugway_upstreams: UpstreamPool) -> FakeAnthropic:
    return plugway_upstreams.get(FakeAnthropic, "claude_up")


@pytest.fixture(scope="session")
def claude_backup(plugway_upstreams: UpstreamPool) -> FakeAnthropic:
    return plugway_upstreams.get(FakeAnthropic, "claude_backup")


ANTHROPIC_KEY = "sk-ant-primary-secret-0123456789"


def anthropic_config(
    claude_up: FakeAnthropic, claude_backup: FakeAnthropic, primary: FakeOpenAI
) -> str:
    return f"""
[providers.claude]
type = "anthropic"
base_url = "{claude_up.url}"
api_key = "{ANTHROPIC_KEY}"
timeout = 3

[providers.claude_backup]
type = "anthropic"
base_url = "{claude_backup.url}"
api_key = "sk-ant-backup-secret-9876543210"
timeout = 3

[providers.oai]
type = "openai"
base_url = "{primary.url}/v1"
api_key = "sk-primary-secret-0123456789"
timeout = 3

[routing]
deadline = 8

[plugins.routing]
# The session's gateway sees many scripted failures: none may cool a target down for the
# next test (a 429's retry-after opens a breaker for at most max_cooldown).
health = {{ consecutive_failures = 1000, min_requests = 100000, cooldown = 0.01, max_cooldown = 0.01 }}
retry = {{ budget_min = 1000 }}

[[models]]
name = "claude"
targets = [{{ provider = "claude", model = "claude-sonnet-4-5" }}]

[[models]]
name = "claude-ha"
targets = [
  {{ provider = "claude", model = "claude-sonnet-4-5" }},
  {{ provider = "claude_backup", model = "claude-haiku-4-5" }},
]

[[models]]
name = "gpt"
targets = [{{ provider = "oai", model = "gpt-4o-mini" }}]

[[models]]
name = "gpt-capped"
targets = [{{ provider = "oai", model = "gpt-4o-mini" }}]
options = {{ max_output_tokens = 16384 }}

[[models]]
name = "claude-then-gpt"
targets = [
  {{ provider = "claude", model = "claude-sonnet-4-5" }},
  {{ provider = "oai", model = "gpt-4o-mini" }},
]
"""


@pytest.fixture(scope="session")
def claude_gateway(
    claude_up: FakeAnthropic, claude_backup: FakeAnthropic, primary: FakeOpenAI
) -> Iterator[GatewayProcess]:
    """The gateway with Anthropic targets (``claude``, ``claude-ha`` with a backup), an OpenAI
    one (``gpt``) and a mixed route (``claude-then-gpt``)."""
    with GatewayProcess(anthropic_config(claude_up, claude_backup, primary)) as gw:
        yield gw


@pytest.fixture(scope="session")
def throwaway_venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A virtualenv for ``pip install``-ing plugin packages as a user would (see venv_kit)."""
    return Venv(tmp_path_factory.mktemp("venv") / "venv")
