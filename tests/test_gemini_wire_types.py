"""The Gemini shapes this project speaks, checked field by field against Google's own SDK types
(``google-genai``'s pydantic models use the REST camelCase names as aliases and forbid unknown
fields): the golden fixtures, what the translation sends, and what the fake Gemini answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import make_mocked_request
from google.genai import types
from plugway.formats import gemini as fmt
from plugway.testing import FakeGemini, Reply

FIXTURES = Path(__file__).parent / "fixtures" / "gemini"


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / name).read_text("utf-8")))


def check_request(body: dict[str, Any]) -> None:
    """Each part of a ``generateContent`` body against its SDK type."""
    for content in body["contents"]:
        types.Content.model_validate(content)
    if "systemInstruction" in body:
        types.Content.model_validate(body["systemInstruction"])
    for tool in body.get("tools", []):
        types.Tool.model_validate(tool)
    if "toolConfig" in body:
        types.ToolConfig.model_validate(body["toolConfig"])
    if "generationConfig" in body:
        types.GenerationConfig.model_validate(body["generationConfig"])
    assert set(body) <= {
        "contents",
        "systemInstruction",
        "tools",
        "toolConfig",
        "generationConfig",
        "safetySettings",
        "cachedContent",
    }


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("request_*.json")))
def test_request_fixtures_are_valid_gemini(name: str) -> None:
    check_request(load(name)["gemini"])


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("response_*.json")))
def test_response_fixtures_are_valid_gemini(name: str) -> None:
    types.GenerateContentResponse.model_validate(load(name)["gemini"])


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("stream_*.json")))
def test_stream_fixtures_are_valid_gemini(name: str) -> None:
    for event in load(name)["gemini_events"]:
        types.GenerateContentResponse.model_validate(event)


def test_finish_reasons_are_gemini_names() -> None:
    assert set(fmt.FINISH_REASONS) <= set(types.FinishReason.__members__)


def _fake_request(path: str) -> Any:
    return make_mocked_request("POST", path, headers={"x-goog-api-key": "k"})


def test_fake_answers_are_valid_gemini() -> None:
    fake = FakeGemini()
    body = fmt.to_gemini_request(
        {
            "messages": [{"role": "user", "content": "hi there"}],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "f",
                        "parameters": {"type": "object", "properties": {"a": {"type": "string"}}},
                    },
                }
            ],
            "n": 2,
        }
    )
    check_request(body)
    text = fake.answer(_fake_request("/v1beta/models/m:generateContent"), body, Reply())
    parsed = types.GenerateContentResponse.model_validate(text)
    assert parsed.text == "echo: hi there" and len(parsed.candidates or []) == 2

    forced = {**body, "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}}
    call = types.GenerateContentResponse.model_validate(
        fake.answer(_fake_request("/v1beta/models/m:generateContent"), forced, Reply())
    )
    assert call.function_calls and call.function_calls[0].args == {"city": "Paris"}

    for request_body in (body, forced):
        events = list(
            fake.stream_events(
                _fake_request("/v1beta/models/m:streamGenerateContent"), request_body, Reply()
            )
        )
        for event in events:
            assert event.startswith(b"data: ") and event.endswith(b"\r\n\r\n")
            types.GenerateContentResponse.model_validate(orjson.loads(event[6:]))

    single = fake.answer(
        _fake_request("/v1beta/models/e:embedContent"),
        {"content": {"parts": [{"text": "abc"}]}},
        Reply(),
    )
    types.ContentEmbedding.model_validate(single["embedding"])
    batch = fake.answer(
        _fake_request("/v1beta/models/e:batchEmbedContents"),
        {"requests": [{"model": "models/e", "content": {"parts": [{"text": "a"}]}}]},
        Reply(),
    )
    for embedding in batch["embeddings"]:
        types.ContentEmbedding.model_validate(embedding)


def test_embed_requests_are_valid_gemini() -> None:
    _, single = fmt.to_gemini_embed({"input": "x", "dimensions": 4}, "m")
    types.Content.model_validate(single["content"])
    assert set(single) <= {"content", "taskType", "title", "outputDimensionality"}
    _, batch = fmt.to_gemini_embed({"input": ["x", "y"]}, "m")
    for request in batch["requests"]:
        types.Content.model_validate(request["content"])
        assert set(request) <= {"model", "content", "taskType", "title", "outputDimensionality"}
