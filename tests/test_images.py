"""``POST /v1/images/generations`` through the gateway with the openai SDK: OpenAI-format
targets and ModelArk's Seedream passed through, Imagen and Gemini image models translated, the
fake provider; ``b64_json`` and ``url`` answers, cost per image, failover, budgets and bad
input at this door."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import openai
import pytest
from plugway.testing import FakeMedia, GatewayProcess, Status
from plugway.testing.fake_media import PNG
from sec_kit import MASTER, create_key, new_db


@pytest.fixture(scope="module")
def media() -> Iterator[FakeMedia]:
    with FakeMedia() as upstream:
        yield upstream


@pytest.fixture(autouse=True)
def _fresh_media(request: pytest.FixtureRequest) -> None:
    if "media" in request.fixturenames:
        request.getfixturevalue("media").reset()


def images_config(media: FakeMedia, extra: str = "") -> str:
    return f"""
[providers.ark]
type = "ark"
base_url = "{media.url}/api/v3"
api_key = "ark-secret-key-0123456789"

[providers.oai]
type = "openai"
base_url = "{media.url}/v1"
api_key = "sk-openai-secret-0123456789"

[providers.gem]
type = "gemini"
base_url = "{media.url}"
api_key = "gemini-secret-key-0123456789"

[providers.fake]
type = "fake"

[plugins]
disabled = ["health"]

[[models]]
name = "seedream"
targets = [{{ provider = "ark", model = "seedream-4-0-250828" }}]

[[models]]
name = "gpt-image"
targets = [{{ provider = "oai", model = "gpt-image-1.5" }}]

[[models]]
name = "imagen"
targets = [{{ provider = "gem", model = "imagen-4.0-generate-001" }}]

[[models]]
name = "nano-banana"
targets = [{{ provider = "gem", model = "gemini-2.5-flash-image" }}]

[[models]]
name = "fake-image"
targets = [{{ provider = "fake", model = "fake-image" }}]

[[models]]
name = "any-image"
targets = [
  {{ provider = "ark", model = "seedream-4-0-250828" }},
  {{ provider = "gem", model = "imagen-4.0-generate-001" }},
]
{extra}
"""


@pytest.fixture(scope="module")
def gateway(media: FakeMedia) -> Iterator[GatewayProcess]:
    with GatewayProcess(images_config(media)) as gw:
        yield gw


def client_for(gw: GatewayProcess, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


@pytest.mark.parametrize(
    ("model", "path", "each"),
    [
        ("seedream", "/api/v3/images/generations", 0.03),
        ("gpt-image", "/v1/images/generations", 0.034),
        ("imagen", "/v1beta/models/imagen-4.0-generate-001:predict", 0.04),
        ("nano-banana", "/v1beta/models/gemini-2.5-flash-image:generateContent", 0.039),
        ("fake-image", None, 0.001),
    ],
)
def test_b64_images_from_every_provider(
    gateway: GatewayProcess, media: FakeMedia, model: str, path: str | None, each: float
) -> None:
    raw = client_for(gateway).images.with_raw_response.generate(
        model=model, prompt="a lighthouse at night", n=2, response_format="b64_json"
    )
    answer = raw.parse()
    assert answer.data is not None and len(answer.data) == 2
    png = base64.b64decode(answer.data[0].b64_json or "")
    assert png.startswith(b"\x89PNG")
    assert float(raw.headers["x-plugway-cost"]) == pytest.approx(2 * each, abs=1e-12)
    if path is not None:
        assert [r.path for r in media.requests] == [path] * (2 if "flash-image" in path else 1)
        sent = media.requests[0].body
        if path.endswith(":predict"):
            assert sent["instances"] == [{"prompt": "a lighthouse at night"}]
            assert sent["parameters"]["sampleCount"] == 2
        elif path.endswith(":generateContent"):
            assert sent["generationConfig"] == {"responseModalities": ["IMAGE"]}
        else:
            assert sent["prompt"] == "a lighthouse at night"
            assert sent["model"] in ("seedream-4-0-250828", "gpt-image-1.5")


@pytest.mark.parametrize("model", ["seedream", "imagen", "fake-image"])
def test_url_answers(gateway: GatewayProcess, model: str) -> None:
    answer = client_for(gateway).images.generate(model=model, prompt="a fox", response_format="url")
    assert answer.data is not None and answer.data[0].url
    url = answer.data[0].url
    # a hosted file where the provider hosts one, else the image inline as a data: URL
    assert url.startswith(("http://", "data:image/png;base64,"))
    if url.startswith("data:"):
        assert url.endswith(PNG)


def test_failover_between_image_providers(gateway: GatewayProcess, media: FakeMedia) -> None:
    media.script(Status(503, "overloaded"))
    raw = client_for(gateway).images.with_raw_response.generate(model="any-image", prompt="a bay")
    assert raw.headers["x-plugway-provider"] == "gem"
    assert raw.headers["x-plugway-attempts"] == "2"


def test_bad_input_is_a_400_naming_the_field(gateway: GatewayProcess) -> None:
    url = gateway.url + "/v1/images/generations"
    for body, param in [
        ({"model": "seedream"}, "prompt"),
        ({"model": "seedream", "prompt": "x", "n": 0}, "n"),
        ({"model": "seedream", "prompt": "x", "response_format": "png"}, "response_format"),
        ({"prompt": "x"}, "model"),
    ]:
        response = httpx.post(url, json=body)
        assert response.status_code == 400, body
        assert response.json()["error"]["param"] == param


def test_an_upstream_refusal_is_an_openai_error(gateway: GatewayProcess, media: FakeMedia) -> None:
    media.script(Status(400, "the prompt was rejected", code="content_policy_violation"))
    with pytest.raises(openai.BadRequestError) as refused:
        client_for(gateway).images.generate(model="seedream", prompt="something")
    assert "ark-secret" not in str(refused.value.body)


def test_a_spent_budget_is_refused_with_no_upstream_call(  # type: ignore[no-untyped-def]
    start_gateway, media: FakeMedia
) -> None:
    keys = f'\n[plugins.keys]\ndb = "{new_db()}"\ncache_seconds = 0.5\n'
    gw = start_gateway(images_config(media, keys), env={"PLUGWAY_MASTER_KEY": MASTER})
    # Seedream costs $0.03 an image: a $0.1 budget pays for three, not for a fourth.
    key = create_key(gw, team="t", limits={"budget_usd": 0.1})["key"]
    client = client_for(gw, key)
    client.images.generate(model="seedream", prompt="a kite", n=3)
    with pytest.raises(openai.RateLimitError) as refused:
        client.images.generate(model="seedream", prompt="a kite")
    assert refused.value.code == "budget_exceeded"
    assert len(media.requests) == 1
