"""With no config file and no key, the gateway serves the fake provider at once; keys in the
environment add their provider's common models."""

from __future__ import annotations

import httpx
import openai
from plugway.config import default_config_data
from plugway.testing import GatewayProcess


def test_serves_fake_models_with_no_config_and_no_key() -> None:
    with GatewayProcess() as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key="anything", max_retries=0)
        assert [m.id for m in client.models.list()][:2] == ["fake-chat", "fake-embedding"]
        done = client.chat.completions.create(
            model="fake-chat", messages=[{"role": "user", "content": "hello gateway"}]
        )
        assert done.choices[0].message.content is not None
        assert done.choices[0].message.content.endswith("You said: hello gateway")
        assert done.usage is not None and done.usage.prompt_tokens == 2
        streamed = client.chat.completions.create(
            model="fake-chat",
            messages=[{"role": "user", "content": "stream please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(streamed)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == done.choices[0].message.content.replace("hello gateway", "stream please")
        assert chunks[-1].usage is not None
        tool = client.chat.completions.create(
            model="fake-chat",
            messages=[{"role": "user", "content": "call it"}],
            tools=[{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
            tool_choice="required",
        )
        assert tool.choices[0].message.tool_calls[0].function.name == "lookup"  # type: ignore[index,union-attr]
        assert tool.choices[0].finish_reason == "tool_calls"
        answer = client.responses.create(model="fake-chat", input="hello responses")
        assert answer.output_text.endswith("You said: hello responses")
        follow = client.responses.create(
            model="fake-chat", input="again", previous_response_id=answer.id
        )
        assert follow.status == "completed"
        assert client.completions.create(model="fake-chat", prompt="once").choices[0].text
        moderated = client.moderations.create(model="fake-moderation", input="I will attack")
        assert moderated.results[0].flagged is True
        assert "serving http://127.0.0.1:" in gw.output()


def test_environment_keys_add_their_providers() -> None:
    env = {"OPENAI_API_KEY": "sk-env-openai-0123456789"}
    with GatewayProcess(env=env) as gw:
        ids = [m["id"] for m in httpx.get(gw.base_url + "/models").json()["data"]]
        assert {"fake-chat", "gpt-4o-mini", "gpt-4.1", "text-embedding-3-small"} <= set(ids)
        assert "OPENAI_API_KEY is set: serving" in gw.output()
        assert "sk-env-openai-0123456789" not in gw.output()


def test_a_key_for_a_provider_type_not_installed_is_noted_not_fatal() -> None:
    data, notes = default_config_data(["fake", "openai"], {"ANTHROPIC_API_KEY": "sk-ant"})
    assert "anthropic" not in data.get("providers", {})
    assert notes == [
        "ANTHROPIC_API_KEY is set but no plugin provides the 'anthropic' provider type"
    ]
    data, notes = default_config_data(["fake", "anthropic"], {"ANTHROPIC_API_KEY": "sk-ant"})
    assert data["providers"]["anthropic"] == {
        "type": "anthropic",
        "api_key": "${ANTHROPIC_API_KEY}",
    }
    assert {
        "name": "claude-sonnet-4-5",
        "targets": [{"provider": "anthropic", "model": "claude-sonnet-4-5"}],
    } in data["models"]
