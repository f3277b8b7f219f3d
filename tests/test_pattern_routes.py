"""Pattern routes: ``[[models]] name = "claude-*"`` (a glob) and ``match = "regex"``, resolved
most specific first, the matched name filled into targets' ``{name}``, listed in
``/v1/models`` and shown by ``plugway route``; config mistakes named by their TOML path."""

from __future__ import annotations

from pathlib import Path

import pytest
from plugway.cli import main
from plugway.errors import ConfigError, ModelNotFound
from plugway.gateway import load_gateway
from plugway.routing import literal_prefix, regex_literal_prefix
from plugway.testing import FakeOpenAI, GatewayProcess

PATTERNS = """
[providers.a]
type = "fake"
[providers.b]
type = "fake"

[[models]]
name = "claude-*"
targets = [{ provider = "a", model = "{name}" }]

[[models]]
name = "claude-3-*"
targets = [{ provider = "b", model = "old-{name}" }]

[[models]]
name = "claude-3-haiku"
targets = [{ provider = "a", model = "exact" }]

[[models]]
match = "^gemini-[0-9.]+-(flash|pro)(-lite)?$"
targets = [{ provider = "b", model = "{name}" }]

[[models]]
name = "*"
targets = [{ provider = "a", model = "catch-all" }]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plugway.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("asked", "route", "target"),
    [
        ("claude-3-haiku", "claude-3-haiku", "a/exact"),  # exact before any pattern
        ("claude-3-opus", "claude-3-*", "b/old-claude-3-opus"),  # longer literal prefix first
        ("claude-sonnet-4-5", "claude-*", "a/claude-sonnet-4-5"),
        (
            "gemini-2.5-flash-lite",
            "^gemini-[0-9.]+-(flash|pro)(-lite)?$",
            "b/gemini-2.5-flash-lite",
        ),
        ("gemini-2.5-ultra", "*", "a/catch-all"),  # the empty literal prefix comes last
        ("b/anything", "*", "a/catch-all"),  # configured patterns win over provider/model
    ],
)
def test_most_specific_route_wins(tmp_path: Path, asked: str, route: str, target: str) -> None:
    gateway = load_gateway(write(tmp_path, PATTERNS))
    resolved = gateway.router.resolve(asked)
    assert resolved.name == route
    assert [t.key for t in resolved.targets] == [target]
    assert gateway.router.resolve(asked) is resolved  # remembered, not matched again


def test_literal_prefixes() -> None:
    assert literal_prefix("claude-3-*") == "claude-3-"
    assert literal_prefix("*") == ""
    assert regex_literal_prefix("^gemini-[0-9]") == "gemini-"
    assert regex_literal_prefix("gpt-4o?-mini") == "gpt-4"
    assert regex_literal_prefix(".*") == ""


def test_without_a_catch_all_a_miss_is_still_not_found(tmp_path: Path) -> None:
    text = PATTERNS.split('[[models]]\nname = "*"', maxsplit=1)[0]
    gateway = load_gateway(write(tmp_path, text))
    assert gateway.router.resolve("a/direct").targets[0].key == "a/direct"
    with pytest.raises(ModelNotFound):
        gateway.router.resolve("gpt-4o")


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('match = "gemini-(["', "models[0].match: 'gemini-([' is not a valid regular expression"),
        (
            'name = "x"\nmatch = "y"',
            "models[0].match: give name (an exact name or a glob) or match",
        ),
        ("", "models[0].name: missing required field"),
    ],
)
def test_pattern_config_errors_name_the_toml_path(tmp_path: Path, table: str, problem: str) -> None:
    text = f"""
[providers.a]
type = "fake"

[[models]]
{table}
targets = [{{ provider = "a", model = "{{name}}" }}]
"""
    with pytest.raises(ConfigError) as caught:
        load_gateway(write(tmp_path, text))
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_route_command_shows_the_pattern(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, PATTERNS)
    assert main(["route", "-c", str(path), "-m", "claude-3-opus"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("model claude-3-opus (route claude-3-*): strategy=fallback")
    assert lines[1] == "  1. b/old-claude-3-opus"


def test_a_client_reaches_a_pattern_route_through_the_gateway(
    start_gateway: object, primary: FakeOpenAI
) -> None:
    config = f"""
[providers.oai]
type = "openai"
base_url = "{primary.url}/v1"
api_key = "sk-pattern-secret-0123456789"

[[models]]
name = "claude-*"
targets = [{{ provider = "oai", model = "{{name}}" }}]
"""
    gw: GatewayProcess = start_gateway(config)  # type: ignore[operator]
    client = gw.openai()
    answer = client.chat.completions.create(
        model="claude-haiku-4-5", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content == "echo: hi"
    assert primary.requests[-1].body["model"] == "claude-haiku-4-5"
    listed = [m.id for m in client.models.list()]
    assert "claude-*" in listed and "oai/{name}" not in listed
