"""The routing policy in the config (TOML-path errors), a team's own select_provider hook
overriding the strategy, and ``plugway route``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from plugway import pipeline
from plugway.cli import main
from plugway.context import RequestContext, Target
from plugway.errors import ConfigError
from plugway.gateway import Gateway, load_gateway
from plugway.hooks import hookimpl

RULES_TOML = """
[providers.openai]
type = "fake"
[providers.gemini]
type = "fake"
[providers.anthropic]
type = "fake"

[[models]]
name = "auto"
strategy = "rules"
targets = [
  { provider = "openai", model = "gpt-4.1-mini", tags = ["cheap"] },
  { provider = "gemini", model = "gemini-2.5-pro", tags = ["long"] },
  { provider = "anthropic", model = "claude-sonnet-4-5", tags = ["tools"] },
]
rules = [
  { tools = true, use = ["anthropic"] },
  { min_prompt_tokens = 30000, use = ["gemini"] },
  { max_prompt_tokens = 2000, use = ["cheap", "anthropic"] },
]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plugway.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], ["openai/gpt-4.1-mini", "anthropic/claude-sonnet-4-5"]),
        (["--tools"], ["anthropic/claude-sonnet-4-5"]),
        (["--prompt-tokens", "50000"], ["gemini/gemini-2.5-pro"]),
        (
            ["--prompt-tokens", "5000"],
            ["openai/gpt-4.1-mini", "gemini/gemini-2.5-pro", "anthropic/claude-sonnet-4-5"],
        ),
    ],
)
def test_route_command_prints_the_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: list[str]
) -> None:
    path = write(tmp_path, RULES_TOML)
    assert main(["route", "--config", str(path), "--model", "auto", *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("model auto: strategy=rules")
    assert [
        line.split(". ", 1)[1] for line in lines if line.startswith("  ") and ". " in line
    ] == expected


def test_route_command_json_and_unknown_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import orjson

    path = write(tmp_path, RULES_TOML)
    assert main(["route", "-c", str(path), "-m", "auto", "--tools", "--json"]) == 0
    out = orjson.loads(capsys.readouterr().out)
    assert out["plan"] == ["anthropic/claude-sonnet-4-5"]
    assert out["notes"] == ["rule rules[0] matched"]
    assert main(["route", "-c", str(path), "-m", "nope"]) == 1
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("model", "problem"),
    [
        (
            'strategy = "rules"\nrules = [{ tool = true, use = ["a"] }]',
            "models[0].rules[0]: unknown field 'tool' (did you mean 'tools'?)",
        ),
        (
            'strategy = "rules"\nrules = [{ use = ["fake/b"] }]',
            "models[0].rules[0].use[0]: 'fake/b' names no target of model 'm'",
        ),
        (
            'rules = [{ use = ["a"] }]',
            "models[0].rules: rules are only applied by the 'rules' strategy",
        ),
        ('strategy = "rules"', "models[0].rules: strategy 'rules' needs at least one rule"),
        ("hedge = { percentile = 120 }", "models[0].hedge.percentile: 120.0 is out of range"),
        ("hedge = { after = 0.1, percentile = 90 }", "models[0].hedge: give exactly one of"),
        ('retry = { attempts = "2" }', "models[0].retry.attempts: expected an integer"),
        ("retry = { attempts = -1 }", "models[0].retry.attempts: -1 is negative"),
        (
            'fallbacks = { context_window = ["big"] }',
            "models[0].fallbacks.context_window[0]: 'big' names no target",
        ),
        ('require_region = "eu"', "models[0].require_region: no target of model 'm' is in region"),
        (
            'strategy = "weigthed"',
            "models[0].strategy: unknown strategy 'weigthed' (did you mean 'weighted'?)",
        ),
    ],
)
def test_routing_policy_errors_name_the_toml_path(tmp_path: Path, model: str, problem: str) -> None:
    text = f"""
[providers.fake]
type = "fake"

[[models]]
name = "m"
{model}
targets = [{{ provider = "fake", model = "a", tags = ["a"] }}, {{ provider = "fake", model = "c" }}]
"""
    with pytest.raises(ConfigError) as caught:
        load_gateway(write(tmp_path, text))
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


class TeamRouting:
    """A team's own routing hook: requests tagged 'batch' go to the last target only."""

    @hookimpl
    def select_provider(self, ctx: RequestContext, candidates: list[Target]) -> list[Target] | None:
        if ctx.headers.get("x-team-lane") == "batch":
            return [candidates[-1]]
        return None


def plan_for(gw: Gateway, headers: dict[str, str], model: str = "auto") -> list[str]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    ctx = RequestContext(endpoint="chat.completions", body=body, headers=headers, model=model)
    asyncio.run(pipeline.route(gw, ctx))
    return [*(t.key for t in ctx.plan), ctx.trace.strategy]


def test_a_select_provider_hook_overrides_the_strategy_or_defers(tmp_path: Path) -> None:
    gw = load_gateway(write(tmp_path, RULES_TOML), extra_plugins=[("team", TeamRouting())])
    assert plan_for(gw, {"x-team-lane": "batch"}) == [
        "anthropic/claude-sonnet-4-5",
        "select_provider hook",
    ]
    assert plan_for(gw, {}) == ["openai/gpt-4.1-mini", "anthropic/claude-sonnet-4-5", "rules"]
