"""The OpenAI-compatible family: each named type sends the right auth header, path, query and
body quirks to a fake OpenAI upstream, driven by the openai SDK through the real gateway; and
context-window / content-filter refusals are recognised per host."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from plugway.builtin_providers.openai_family import HOSTS
from plugway.errors import ConfigError
from plugway.gateway import load_gateway
from plugway.testing import FakeOpenAI, GatewayProcess, Status

BEARER_TYPES = [
    "openai",
    "groq",
    "mistral",
    "deepseek",
    "together",
    "fireworks",
    "xai",
    "openrouter",
    "ark",
    "vllm",
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _fresh(upstream: FakeOpenAI) -> None:
    upstream.reset()


def family_config(url: str) -> str:
    tables = []
    for name in BEARER_TYPES:
        tables.append(f"""
[providers.my-{name}]
type = "{name}"
base_url = "{url}/v1"
api_key = "key-{name}-0123456789"

[[models]]
name = "{name}-chat"
targets = [{{ provider = "my-{name}", model = "{name}-model" }}]
""")
    return (
        "\n".join(tables)
        + f"""
[providers.my-azure]
type = "azure"
base_url = "{url}"
api_key = "key-azure-0123456789"

[[models]]
name = "azure-chat"
targets = [{{ provider = "my-azure", model = "my deployment" }}]

[providers.my-ollama]
type = "ollama"
base_url = "{url}/v1"

[[models]]
name = "ollama-chat"
targets = [{{ provider = "my-ollama", model = "llama3.2" }}]
"""
    )


@pytest.fixture(scope="module")
def gw(upstream: FakeOpenAI) -> Iterator[GatewayProcess]:
    with GatewayProcess(family_config(upstream.url)) as process:
        yield process


def client(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="client-key", max_retries=0)


def ask(gw: GatewayProcess, model: str, **kwargs: object) -> str | None:
    completion = client(gw).chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "hi"}],
        **kwargs,  # type: ignore[arg-type]
    )
    return completion.choices[0].message.content


@pytest.mark.parametrize("name", BEARER_TYPES)
def test_bearer_hosts(gw: GatewayProcess, upstream: FakeOpenAI, name: str) -> None:
    assert ask(gw, f"{name}-chat") == "echo: hi"
    sent = upstream.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.query == {}
    assert sent.headers["authorization"] == f"Bearer key-{name}-0123456789"
    assert "api-key" not in sent.headers
    assert sent.body["model"] == f"{name}-model"


def test_azure_deployment_path_api_version_and_api_key_header(
    gw: GatewayProcess, upstream: FakeOpenAI
) -> None:
    assert ask(gw, "azure-chat") == "echo: hi"
    sent = upstream.requests[-1]
    assert sent.path == "/openai/deployments/my deployment/chat/completions"
    assert sent.query == {"api-version": "2024-10-21"}
    assert sent.headers["api-key"] == "key-azure-0123456789"
    assert "authorization" not in sent.headers
    stream = client(gw).chat.completions.create(
        model="azure-chat", messages=[{"role": "user", "content": "a b"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "echo: a b "
    sent = upstream.requests[-1]
    assert sent.path == "/openai/deployments/my deployment/chat/completions"
    assert sent.query == {"api-version": "2024-10-21"}
    client(gw).embeddings.create(model="azure-chat", input="x")
    assert upstream.requests[-1].path == "/openai/deployments/my deployment/embeddings"


def test_local_server_without_a_key(gw: GatewayProcess, upstream: FakeOpenAI) -> None:
    assert ask(gw, "ollama-chat", max_completion_tokens=20) == "echo: hi"
    sent = upstream.requests[-1]
    assert "authorization" not in sent.headers and "api-key" not in sent.headers
    assert sent.body["max_tokens"] == 20 and "max_completion_tokens" not in sent.body


def test_mistral_quirks(gw: GatewayProcess, upstream: FakeOpenAI) -> None:
    ask(gw, "mistral-chat", max_completion_tokens=30, seed=4, store=False)
    body = upstream.requests[-1].body
    assert body["max_tokens"] == 30 and body["random_seed"] == 4
    assert "max_completion_tokens" not in body and "seed" not in body and "store" not in body
    stream = client(gw).chat.completions.create(
        model="mistral-chat",
        messages=[{"role": "user", "content": "x y"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "echo: x y "
    assert "stream_options" not in upstream.requests[-1].body


def test_openai_keeps_its_body_as_sent(gw: GatewayProcess, upstream: FakeOpenAI) -> None:
    ask(gw, "openai-chat", max_completion_tokens=30, seed=4)
    body = upstream.requests[-1].body
    assert body["max_completion_tokens"] == 30 and body["seed"] == 4 and "max_tokens" not in body
    list(
        client(gw).chat.completions.create(
            model="openai-chat", messages=[{"role": "user", "content": "x"}], stream=True
        )
    )
    assert upstream.requests[-1].body["stream_options"] == {"include_usage": True}


def test_ark_passes_image_and_video_parts_through(gw: GatewayProcess, upstream: FakeOpenAI) -> None:
    content = [
        {"type": "text", "text": "describe"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "video_url", "video_url": {"url": "https://example.com/clip.mp4", "fps": 1}},
    ]
    client(gw).chat.completions.create(
        model="ark-chat",
        messages=[{"role": "user", "content": content}],  # type: ignore[misc,list-item]
    )
    assert upstream.requests[-1].body["messages"][0]["content"] == content


@pytest.mark.parametrize(
    ("model", "status", "message", "code", "expected"),
    [
        (
            "deepseek-chat",
            400,
            "This model's maximum context length is 65536 tokens. However, you "
            "requested 70000 tokens.",
            "invalid_request_error",
            "context_length_exceeded",
        ),
        (
            "vllm-chat",
            400,
            "The decoder prompt (length 9000) is longer than the maximum model length of 8192.",
            None,
            "context_length_exceeded",
        ),
        (
            "xai-chat",
            400,
            "This model's maximum prompt length is 131072 but the request contains 140000 tokens.",
            None,
            "context_length_exceeded",
        ),
        (
            "azure-chat",
            400,
            "The response was filtered due to the prompt triggering Azure "
            "OpenAI's content management policy.",
            None,
            "content_filter",
        ),
        (
            "ark-chat",
            400,
            "The request failed because the input text may contain sensitive information.",
            "InputTextSensitiveContentDetected",
            "content_filter",
        ),
        ("groq-chat", 400, "'messages' must contain the word 'json'", None, None),
    ],
)
def test_refusals_are_recognised(
    gw: GatewayProcess,
    upstream: FakeOpenAI,
    model: str,
    status: int,
    message: str,
    code: str | None,
    expected: str | None,
) -> None:
    upstream.script(Status(status, message, code=code), Status(status, message, code=code))
    with pytest.raises(openai.BadRequestError) as info:
        ask(gw, model)
    assert info.value.code == (expected or code)
    with pytest.raises(openai.BadRequestError) as info:
        list(
            client(gw).chat.completions.create(
                model=model, messages=[{"role": "user", "content": "x"}], stream=True
            )
        )
    assert info.value.code == (expected or code)


def test_defaults_of_every_type(tmp_path: Path) -> None:
    """A table with just a type and a key gets the host's base URL and auth header."""
    expected = {
        "openai": ("https://api.openai.com/v1", "authorization"),
        "groq": ("https://api.groq.com/openai/v1", "authorization"),
        "mistral": ("https://api.mistral.ai/v1", "authorization"),
        "deepseek": ("https://api.deepseek.com", "authorization"),
        "together": ("https://api.together.xyz/v1", "authorization"),
        "fireworks": ("https://api.fireworks.ai/inference/v1", "authorization"),
        "xai": ("https://api.x.ai/v1", "authorization"),
        "openrouter": ("https://openrouter.ai/api/v1", "authorization"),
        "ark": ("https://ark.ap-southeast.bytepluses.com/api/v3", "authorization"),
        "ollama": ("http://127.0.0.1:11434/v1", None),
        "vllm": ("http://127.0.0.1:8000/v1", None),
        "gemini": ("https://generativelanguage.googleapis.com", None),
    }
    assert {h.name for h in HOSTS} == set(expected) - {"gemini"} | {"azure"}
    lines = []
    for name in expected:
        key = "" if name in ("ollama", "vllm") else f'api_key = "k-{name}-0123456789"'
        lines.append(f'[providers.p-{name}]\ntype = "{name}"\n{key}\n')
    path = tmp_path / "plugway.toml"
    path.write_text("\n".join(lines))
    gateway = load_gateway(path)
    for name, (base_url, header) in expected.items():
        provider = gateway.providers[f"p-{name}"]
        assert provider.settings.base_url == base_url, name
        if header:
            assert provider._headers()[header] == f"Bearer k-{name}-0123456789"  # type: ignore[attr-defined]


def test_azure_needs_its_endpoint(tmp_path: Path) -> None:
    path = tmp_path / "plugway.toml"
    path.write_text('[providers.az]\ntype = "azure"\napi_key = "k-0123456789"\n')
    with pytest.raises(ConfigError) as info:
        load_gateway(path)
    assert "providers.az.base_url: missing" in str(info.value)


def test_hosted_types_still_need_a_key(tmp_path: Path) -> None:
    path = tmp_path / "plugway.toml"
    path.write_text('[providers.g]\ntype = "groq"\n')
    with pytest.raises(ConfigError) as info:
        load_gateway(path)
    assert "providers.g.api_key: missing" in str(info.value)
