"""``/v1/audio/speech`` and ``/v1/audio/transcriptions`` through the gateway with the openai
SDK, to an OpenAI-format target; failover, filters on the input, limits and bad input at
these doors."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from plugway.testing import FakeMedia, GatewayProcess, Status
from plugway.testing.fake_media import SPEECH
from sec_kit import MASTER, create_key, new_db
from test_limits import avoid_window_edge


@pytest.fixture(scope="module")
def media() -> Iterator[FakeMedia]:
    with FakeMedia() as upstream:
        yield upstream


@pytest.fixture(autouse=True)
def _fresh_media(media: FakeMedia) -> None:
    media.reset()


def audio_config(media: FakeMedia, extra: str = "") -> str:
    return f"""
[providers.oai]
type = "openai"
base_url = "{media.url}/v1"
api_key = "sk-openai-secret-0123456789"

[providers.oai2]
type = "openai"
base_url = "{media.url}/v1"
api_key = "sk-openai-second-0123456789"

[providers.fake]
type = "fake"

[plugins]
disabled = ["health"]

[[models]]
name = "tts"
targets = [
  {{ provider = "oai", model = "gpt-4o-mini-tts" }},
  {{ provider = "oai2", model = "gpt-4o-mini-tts" }},
]

[[models]]
name = "stt"
targets = [{{ provider = "oai", model = "gpt-4o-transcribe" }}]

[[models]]
name = "no-audio"
targets = [{{ provider = "fake", model = "fake" }}]
{extra}
"""


@pytest.fixture(scope="module")
def gateway(media: FakeMedia) -> Iterator[GatewayProcess]:
    with GatewayProcess(audio_config(media)) as gw:
        yield gw


def client_for(gw: GatewayProcess, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


def test_speech_through_the_sdk(gateway: GatewayProcess, media: FakeMedia) -> None:
    audio = client_for(gateway).audio.speech.create(
        model="tts", voice="alloy", input="Hello there", response_format="mp3"
    )
    assert audio.content == SPEECH
    sent = media.requests[0]
    assert sent.path == "/v1/audio/speech"
    assert sent.body == {
        "model": "gpt-4o-mini-tts",
        "voice": "alloy",
        "input": "Hello there",
        "response_format": "mp3",
    }
    assert sent.headers["authorization"] == "Bearer sk-openai-secret-0123456789"


def test_speech_fails_over(gateway: GatewayProcess, media: FakeMedia) -> None:
    media.script(Status(503, "overloaded"))
    raw = client_for(gateway).audio.speech.with_raw_response.create(
        model="tts", voice="alloy", input="Hello"
    )
    assert raw.headers["x-plugway-provider"] == "oai2"
    assert raw.content == SPEECH


def test_transcription_through_the_sdk(gateway: GatewayProcess, media: FakeMedia) -> None:
    text = client_for(gateway).audio.transcriptions.create(
        model="stt", file=("hello.wav", b"RIFF-fake-wave", "audio/wav"), language="en"
    )
    assert text.text == "hello from the fake transcription"
    raw = client_for(gateway).audio.transcriptions.with_raw_response.create(
        model="stt", file=("hello.wav", b"RIFF-fake-wave", "audio/wav")
    )
    # 90 seconds of audio at gpt-4o-transcribe's $0.006 a minute
    assert float(raw.headers["x-plugway-cost"]) == pytest.approx(0.009, abs=1e-12)
    sent = media.requests[0]
    assert sent.path == "/v1/audio/transcriptions"
    assert isinstance(sent.body, bytes)
    assert b"RIFF-fake-wave" in sent.body and b"gpt-4o-transcribe" in sent.body
    assert b'name="language"' in sent.body


def test_bad_input_is_a_400_naming_the_field(gateway: GatewayProcess) -> None:
    url = gateway.url + "/v1/audio/speech"
    for body, param in [
        ({"model": "tts", "voice": "alloy"}, "input"),
        ({"model": "tts", "input": "hi"}, "voice"),
        ({"voice": "alloy", "input": "hi"}, "model"),
        ({"model": "no-audio", "voice": "alloy", "input": "hi"}, "model"),
    ]:
        response = httpx.post(url, json=body)
        assert response.status_code == 400, body
        assert response.json()["error"]["param"] == param
    missing = httpx.post(gateway.url + "/v1/audio/transcriptions", data={"model": "stt"})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "file"


def test_a_used_rate_limit_is_refused_with_no_upstream_call(  # type: ignore[no-untyped-def]
    start_gateway, media: FakeMedia
) -> None:
    keys = f'\n[plugins.keys]\ndb = "{new_db()}"\ncache_seconds = 0.5\n'
    gw = start_gateway(audio_config(media, keys), env={"PLUGWAY_MASTER_KEY": MASTER})
    key = create_key(gw, team="t", limits={"rpm": 1})["key"]
    avoid_window_edge()  # the two calls must fall in one minute window
    client = client_for(gw, key)
    client.audio.speech.create(model="tts", voice="alloy", input="one")
    with pytest.raises(openai.RateLimitError):
        client.audio.transcriptions.create(model="stt", file=("a.wav", b"RIFF", "audio/wav"))
    assert len(media.requests) == 1
