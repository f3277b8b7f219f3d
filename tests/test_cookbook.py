"""Every cookbook recipe runs here: the routing hook, the security filter and the webhook
logger loaded as plugins into a real gateway, the Cohere provider package pip-installed into a
throwaway virtualenv and tested there, and the client recipes with the real clients."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web
from langchain_openai import ChatOpenAI
from plugway.testing import FakeUpstream, GatewayProcess, Reply
from venv_kit import Venv

COOKBOOK = Path(__file__).parent.parent / "cookbook"
Gateway = Callable[..., GatewayProcess]


def said(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# -- routing hook ------------------------------------------------------------------------------

ROUTED = """
[providers.general]
type = "fake"
[providers.coder]
type = "fake"
[providers.longctx]
type = "fake"

[[models]]
name = "chat"
targets = [
  { provider = "general", model = "small" },
  { provider = "coder", model = "coder", tags = ["code"] },
  { provider = "longctx", model = "long", tags = ["long"] },
]
"""


def test_routing_recipe_sends_code_and_long_contexts_to_their_targets(
    plugway_shared_gateway: Gateway,
) -> None:
    recipe = COOKBOOK / "routing" / "code_router.py"
    assert len(recipe.read_text().splitlines()) <= 25
    client = plugway_shared_gateway(ROUTED, plugins=[recipe]).openai()

    def served(text: str) -> str:
        raw = client.chat.completions.with_raw_response.create(model="chat", messages=said(text))
        return str(raw.headers["x-plugway-provider"])

    assert served("what is the capital of France?") == "general"
    assert served("why does this raise?\n```python\nx = 1/0\n```") == "coder"
    assert served("Here is a Traceback from my job") == "coder"
    assert served("summarise: " + "lorem ipsum " * 1000) == "longctx"


# -- security filter ---------------------------------------------------------------------------


def test_secret_filter_refuses_credentials_without_echoing_them(
    plugway_shared_gateway: Gateway,
) -> None:
    client = plugway_shared_gateway(
        None, plugins=[COOKBOOK / "security" / "secret_filter.py"]
    ).openai()
    for secret in (
        "AKIAIOSFODNN7EXAMPLE",
        "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIE...",
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(
                model="fake-chat", messages=said(f"deploy with {secret}")
            )
        assert refused.value.code == "secret_detected"
        assert secret not in str(refused.value.body)
    fine = client.chat.completions.create(
        model="fake-chat", messages=said("deploy with the usual key")
    )
    assert fine.choices[0].message.content


# -- webhook logger ----------------------------------------------------------------------------


class WebhookSink(FakeUpstream):
    """Accepts POSTed batches of records."""

    def answer(self, request: web.Request, body: Any, behaviour: Any) -> Any:
        return {"ok": True}

    def records(self) -> list[dict[str, Any]]:
        return [record for r in list(self.requests) for record in r.body]


def test_logger_ships_batches_to_a_webhook_and_a_file(
    plugway_gateway: Gateway, fake_upstream: Callable[..., WebhookSink], tmp_path: Path
) -> None:
    sink = fake_upstream(WebhookSink)
    sink.script(Reply(), Reply(), Reply())
    log = tmp_path / "requests.jsonl"
    gateway = plugway_gateway(
        f'[plugins.webhook_logger]\nurl = "{sink.url}/hook"\npath = "{log}"\n'
        "batch_size = 2\nflush_seconds = 0.1\n\n"
        '[providers.fake]\ntype = "fake"\n\n'
        '[[models]]\nname = "fake-chat"\ntargets = [{ provider = "fake", model = "m" }]\n',
        plugins=[COOKBOOK / "loggers" / "webhook_logger.py"],
    )
    client = gateway.openai()
    for i in range(3):
        client.chat.completions.create(model="fake-chat", messages=said(f"private question {i}"))
    assert sink.wait_for(lambda: len(sink.records()) == 3)
    records = sink.records()
    assert {r["model"] for r in records} == {"fake-chat"}
    assert all(r["status"] == 200 and r["usage"]["total_tokens"] > 0 for r in records)
    assert sink.requests[0].path == "/hook" and len(sink.requests[0].body) == 2  # batched
    assert "private question" not in json.dumps(records)
    assert sink.wait_for(lambda: log.exists() and len(log.read_text().splitlines()) == 3)


# -- the Cohere provider package, pip-installed --------------------------------------------------


def test_cohere_package_installs_passes_its_tests_and_is_served(
    throwaway_venv: Venv, tmp_path: Path
) -> None:
    package = COOKBOOK / "plugway-cohere"
    throwaway_venv.pip_install_editable(package)
    tests = throwaway_venv.pytest(str(package / "tests"), cwd=tmp_path)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout and "skipped" not in tests.stdout
    listed = throwaway_venv.run("-m", "plugway", "plugins", "--json")
    plugins = {p["name"]: p for p in json.loads(listed.stdout)["plugins"]}
    assert plugins["cohere"]["distribution"] == "plugway-cohere"
    assert plugins["cohere"]["provider_types"] == ["cohere"]


# -- clients -----------------------------------------------------------------------------------

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def default_gateway(plugway_shared_gateway: Gateway) -> GatewayProcess:
    return plugway_shared_gateway(None)


def test_client_openai_sdk(default_gateway: GatewayProcess) -> None:
    client = openai.OpenAI(base_url=default_gateway.base_url, api_key="sk-anything")
    reply = client.chat.completions.create(model="fake-chat", messages=said("hi"))
    assert reply.choices[0].message.content.endswith("You said: hi")  # type: ignore[union-attr]
    models = [m.id for m in client.models.list()]
    assert "fake-chat" in models


def test_client_langchain_chat_openai(default_gateway: GatewayProcess) -> None:
    llm = ChatOpenAI(
        base_url=default_gateway.base_url,
        api_key="sk-anything",
        model="fake-chat",  # type: ignore[arg-type]
        stream_usage=True,
        max_retries=0,
    )
    reply = llm.invoke("hello langchain")
    assert str(reply.content).endswith("You said: hello langchain")
    assert reply.usage_metadata is not None and reply.usage_metadata["total_tokens"] > 0
    streamed = "".join(str(chunk.content) for chunk in llm.stream("stream me"))
    assert streamed.endswith("You said: stream me")
    called = llm.bind_tools([WEATHER], tool_choice="required").invoke("weather in Paris?")
    assert [call["name"] for call in called.tool_calls] == ["get_weather"]


def test_client_shell_tools_via_openai_base_url(default_gateway: GatewayProcess) -> None:
    env = {
        **os.environ,
        "OPENAI_BASE_URL": default_gateway.base_url,
        "OPENAI_API_KEY": "sk-anything",
    }
    curl = subprocess.run(
        [
            "sh",
            "-c",
            'curl -sf "$OPENAI_BASE_URL/chat/completions" -H "Authorization: Bearer $OPENAI_API_KEY" '
            "-H 'content-type: application/json' "
            """-d '{"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]}'""",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(curl.stdout)["choices"][0]["message"]["content"].endswith("You said: hi")
    sdk_tool = subprocess.run(
        [
            sys.executable,
            "-c",
            "from openai import OpenAI; c = OpenAI(); "
            "print(c.chat.completions.create(model='fake-chat', messages=[{'role': 'user', 'content': 'env'}]).choices[0].message.content)",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert sdk_tool.stdout.strip().endswith("You said: env")


def test_client_anthropic_sdk_and_claude_code_settings(
    default_gateway: GatewayProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    import anthropic

    # The recipe's environment, as Claude Code reads it: the base URL has no /v1, the token
    # goes as a bearer token. The SDK picks both up from the environment.
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", default_gateway.url)
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "sk-anything")
    client = anthropic.Anthropic(max_retries=0)
    message = client.messages.create(
        model="fake-chat", max_tokens=64, messages=[{"role": "user", "content": "hi claude"}]
    )
    assert message.content[0].type == "text"
    assert message.content[0].text.endswith("You said: hi claude")
    with client.messages.stream(
        model="fake-chat", max_tokens=64, messages=[{"role": "user", "content": "stream it"}]
    ) as stream:
        text = "".join(stream.text_stream)
    assert text.endswith("You said: stream it")
