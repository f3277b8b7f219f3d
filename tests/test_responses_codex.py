"""OpenAI's Codex CLI (``codex exec``, which speaks only the Responses API) against the
gateway, configured as a custom model provider with ``wire_api = "responses"``: once passed
through to an OpenAI-format host, once translated for the built-in ``fake`` provider."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from plugway.testing import FakeOpenAI, GatewayProcess


def codex_exec(gw: GatewayProcess, home: Path, work: Path, *options: str) -> str:
    codex = shutil.which("codex")
    assert codex, "the Codex CLI is not installed: npm install -g @openai/codex (.ci/run does)"
    home.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    (home / "config.toml").write_text(
        f"""
model = "codex-model"
model_provider = "plugway"

[model_providers.plugway]
name = "plugway"
base_url = "{gw.base_url}"
wire_api = "responses"
env_key = "PLUGWAY_TEST_KEY"
"""
    )
    env = {**os.environ, "CODEX_HOME": str(home), "PLUGWAY_TEST_KEY": "sk-codex-test"}
    done = subprocess.run(
        [codex, "exec", "--skip-git-repo-check", *options, "say hello to the gateway"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_codex_exec_passed_through(
    primary: FakeOpenAI, tmp_path: Path, start_gateway: object
) -> None:
    config = f"""
[providers.openai]
type = "openai"
base_url = "{primary.url}/v1"
api_key = "sk-native-0123456789abcdef"

[[models]]
name = "codex-model"
targets = [{{ provider = "openai", model = "gpt-5-codex" }}]
"""
    gw = start_gateway(config)  # type: ignore[operator]
    out = codex_exec(gw, tmp_path / "home", tmp_path / "work")
    assert "echo: say hello to the gateway" in out
    sent = [r for r in primary.requests if r.path == "/v1/responses"]
    assert sent and all(r.body["model"] == "gpt-5-codex" for r in sent)
    # Codex's own tools (namespaced, web search) reached the host untouched
    assert any(tool.get("type") == "namespace" for tool in sent[0].body["tools"])


def test_codex_exec_translated_for_the_fake_provider(tmp_path: Path, start_gateway: object) -> None:
    config = """
[providers.fake]
type = "fake"

[[models]]
name = "codex-model"
targets = [{ provider = "fake", model = "fake-chat" }]
"""
    gw = start_gateway(config)  # type: ignore[operator]
    # Codex's namespaced agent tools are flattened into chat functions; its built-in web
    # search, which only the native Responses API runs, is dropped (not forced): Codex runs
    # with its default tools.
    out = codex_exec(gw, tmp_path / "home", tmp_path / "work")
    assert "You said: say hello to the gateway" in out
    logs = gw.request_logs(wait_for=1)  # type: ignore[attr-defined]
    notes = [n for r in logs for n in (r.get("route") or {}).get("notes", [])]
    assert any("web_search" in n for n in notes), logs
