"""Google's Gemini CLI (``gemini -p``, headless) against the gateway's inbound Gemini API:
``GOOGLE_GEMINI_BASE_URL`` at the gateway, an API key as the auth type in settings.json. Its
model names are caught by pattern routes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from plugway.testing import FakeGemini, GatewayProcess


def gemini_cli(gw: GatewayProcess, home: Path, prompt: str) -> str:
    gemini = shutil.which("gemini")
    assert gemini, "the Gemini CLI is not installed: npm install -g @google/gemini-cli"
    (home / ".gemini").mkdir(parents=True)
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
    }
    (home / ".gemini" / "settings.json").write_text(json.dumps(settings))
    work = home / "work"
    work.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "GEMINI_API_KEY": "client-key",
        "GOOGLE_GEMINI_BASE_URL": gw.url,
        "GEMINI_CLI_NO_RELAUNCH": "true",
        "GEMINI_CLI_TRUST_WORKSPACE": "true",
    }
    done = subprocess.run(
        # A named model: with the default "auto" the CLI first asks a flash-lite classifier
        # for JSON, which the fake provider's plain text answer cannot be (retried for ~2 min).
        [gemini, "-m", "gemini-2.5-flash", "-p", prompt, "--output-format", "text"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_gemini_cli_to_a_chat_target(tmp_path: Path, start_gateway: object) -> None:
    config = """
[providers.fake]
type = "fake"

[[models]]
name = "*"
targets = [{ provider = "fake", model = "fake-chat" }]
"""
    gw: GatewayProcess = start_gateway(config)  # type: ignore[operator]
    out = gemini_cli(gw, tmp_path, "say hello to the gateway")
    assert "Hello from plugway's fake provider (fake-chat)" in out
    logs = gw.request_logs(wait_for=1)
    streamed = [r for r in logs if r["stream"] and r["endpoint"] == "gemini.generateContent"]
    assert streamed and all(r["status"] == 200 for r in streamed)
    assert streamed[0]["usage"]["prompt_tokens"] > 0


def test_gemini_cli_passed_through_to_a_gemini_target(
    tmp_path: Path, start_gateway: object, fake_gemini: FakeGemini
) -> None:
    config = f"""
[providers.gem]
type = "gemini"
base_url = "{fake_gemini.url}"
api_key = "AIza-cli-upstream-secret-0123456789abcdef"

[[models]]
name = "gemini-*"
targets = [{{ provider = "gem", model = "{{name}}" }}]
"""
    gw: GatewayProcess = start_gateway(config)  # type: ignore[operator]
    out = gemini_cli(gw, tmp_path, "say hello to gemini")
    assert "echo:" in out and "say hello to gemini" in out
    streamed = [r for r in fake_gemini.requests if r.path.endswith(":streamGenerateContent")]
    assert streamed, [r.path for r in fake_gemini.requests]
    # the client's own body reached the target, under the model name it asked for
    assert streamed[0].path.startswith("/v1beta/models/gemini-")
    assert streamed[0].headers["x-goog-api-key"] == "AIza-cli-upstream-secret-0123456789abcdef"
