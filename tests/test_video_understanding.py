"""Video understanding in chat: ``video_url`` content parts pass through to ModelArk, become
Gemini's ``fileData``/``inlineData`` with the video MIME type, are a clear 400 on a target that
takes no video, and steer the ``rules`` strategy with a ``videos`` condition."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest
from plugway.testing import FakeAnthropic, FakeGemini, FakeOpenAI, GatewayProcess

CLIP = "https://example.com/clip.mp4"
INLINE = "data:video/mp4;base64," + base64.b64encode(b"\x00\x00\x00\x18ftypmp42").decode()


@pytest.fixture(scope="module")
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def claude() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def ark() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as upstream:
        yield upstream


@pytest.fixture(autouse=True)
def _fresh(gemini: FakeGemini, claude: FakeAnthropic, ark: FakeOpenAI) -> None:
    gemini.reset()
    claude.reset()
    ark.reset()


@pytest.fixture(scope="module")
def gw(gemini: FakeGemini, claude: FakeAnthropic, ark: FakeOpenAI) -> Iterator[GatewayProcess]:
    config = f"""
[providers.google]
type = "gemini"
base_url = "{gemini.url}"
api_key = "gemini-key-0123456789"

[providers.claude]
type = "anthropic"
base_url = "{claude.url}"
api_key = "sk-ant-0123456789"

[providers.ark]
type = "ark"
base_url = "{ark.url}/v1"
api_key = "ark-key-0123456789"

[[models]]
name = "watch"
strategy = "rules"
targets = [
  {{ provider = "claude", model = "claude-sonnet-4-5", tags = ["text"] }},
  {{ provider = "google", model = "gemini-2.5-flash", tags = ["video"] }},
]
rules = [{{ videos = true, use = ["video"] }}]

[[models]]
name = "claude-only"
targets = [{{ provider = "claude", model = "claude-sonnet-4-5" }}]

[[models]]
name = "seed"
targets = [{{ provider = "ark", model = "seed-1-6-250615" }}]
"""
    with GatewayProcess(config) as process:
        yield process


def ask(gw: GatewayProcess, model: str, url: str) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json={
            "model": model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What happens in this clip?"},
                        {"type": "video_url", "video_url": {"url": url}},
                    ],
                }
            ],
        },
        timeout=10,
    )


def test_a_video_part_routes_to_gemini_as_file_data(gw: GatewayProcess, gemini: FakeGemini) -> None:
    response = ask(gw, "watch", CLIP)
    assert response.status_code == 200, response.text
    assert response.headers["x-plugway-provider"] == "google"
    parts = gemini.requests[0].body["contents"][0]["parts"]
    assert parts[1] == {"fileData": {"mimeType": "video/mp4", "fileUri": CLIP}}


def test_an_inline_video_becomes_inline_data(gw: GatewayProcess, gemini: FakeGemini) -> None:
    assert ask(gw, "watch", INLINE).status_code == 200
    parts = gemini.requests[0].body["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "video/mp4", "data": INLINE.split(",", 1)[1]}}


def test_without_video_the_rule_does_not_match(gw: GatewayProcess, claude: FakeAnthropic) -> None:
    response = httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": "watch", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 200 and response.headers["x-plugway-provider"] == "claude"


def test_a_target_without_video_answers_a_clear_400(
    gw: GatewayProcess, claude: FakeAnthropic
) -> None:
    response = ask(gw, "claude-only", CLIP)
    assert response.status_code == 400
    error = response.json()["error"]
    assert "'video_url'" in error["message"] and error["param"] == "messages[0].content[1]"
    assert claude.requests == []


def test_video_parts_pass_through_to_ark(gw: GatewayProcess, ark: FakeOpenAI) -> None:
    assert ask(gw, "seed", CLIP).status_code == 200
    content = ark.requests[0].body["messages"][0]["content"]
    assert content[1] == {"type": "video_url", "video_url": {"url": CLIP}}
