"""Issue 24: a client's malformed request hurts nobody else. Bodies that once raised a
TypeError inside a translation are 400s naming the field; a fault of the gateway or a plugin is
a 500 ``internal_error`` with the request id, counted in ``plugway_internal_errors_total``, with
no failover and no mark against any target; an upstream's 4xx leaves its health alone; the
fake provider refuses as OpenAI does. Real gateway processes, fake upstreams of every format,
the openai and anthropic SDKs and httpx."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from fault_kit import (
    FAULTY,
    ROUTES,
    SCHEMA_VIOLATIONS,
    all_healthy,
    health,
    scrape,
    three_formats_config,
    value,
)
from plugway.context import RequestContext, Target
from plugway.errors import UpstreamRejected
from plugway.testing import FakeAnthropic, FakeGemini, FakeOpenAI, GatewayProcess, Status


@pytest.fixture(scope="module")
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def gw(
    primary: FakeOpenAI, backup: FakeOpenAI, claude_up: FakeAnthropic, gemini: FakeGemini
) -> Iterator[GatewayProcess]:
    config = three_formats_config(primary, backup, claude_up, gemini)
    with GatewayProcess(config, plugins=[FAULTY]) as process:
        yield process


@pytest.fixture(autouse=True)
def _fresh(gemini: FakeGemini, primary: FakeOpenAI, backup: FakeOpenAI) -> None:
    gemini.reset()


def post(gw: GatewayProcess, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(gw.url + "/v1/chat/completions", json=body, headers=headers, timeout=15)


USER = {"role": "user", "content": "hi"}

#: The bodies the issue measured raising a TypeError inside the Gemini or Anthropic
#: translation (502, failover, both targets marked), and the field each is refused on.
TYPE_ERROR_BODIES: list[tuple[dict[str, Any], str]] = [
    ({"messages": [USER], "stop": 7}, "stop"),
    (
        {
            "messages": [
                USER,
                {"role": "assistant", "content": None, "tool_calls": {"id": "c"}},
                {"role": "tool", "tool_call_id": "c", "content": "x"},
            ]
        },
        "messages[1].tool_calls",
    ),
    (
        {"messages": [USER], "response_format": {"type": "json_schema", "json_schema": "x"}},
        "response_format.json_schema",
    ),
    (
        {
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {}}}
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "x"},
            ]
        },
        "messages[1].tool_calls[0].function.arguments",
    ),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": {}}]}]}, None),
]


@pytest.mark.parametrize("model", ["gem", "claude", "oai"])
@pytest.mark.parametrize(("body", "param"), TYPE_ERROR_BODIES)
def test_type_error_bodies_are_400s_naming_the_field(
    gw: GatewayProcess, model: str, body: dict[str, Any], param: str | None
) -> None:
    response = post(gw, {"model": model, **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    expected = param or "messages[0].content[0].text"
    assert error["param"] == expected
    assert error["message"].startswith(f"{expected} must be ")
    assert response.headers.get("x-plugway-attempts", "0") == "0"
    all_healthy(gw.url)


@pytest.mark.parametrize("model", ["gem", "claude", "oai"])
def test_schema_violating_bodies_are_refused_before_routing(
    gw: GatewayProcess,
    model: str,
    primary: FakeOpenAI,
    claude_up: FakeAnthropic,
    gemini: FakeGemini,
) -> None:
    """What OpenAI answers with a 400 is a 400 naming the field, whatever the target's
    format: never translated and sent on, never with a field dropped."""
    primary.reset()
    claude_up.reset()
    for body, param in SCHEMA_VIOLATIONS:
        response = post(gw, {"model": model, **body})
        assert response.status_code == 400, (body, response.text)
        error = response.json()["error"]
        assert (error["type"], error["param"]) == ("invalid_request_error", param), body
        assert error["message"].startswith(param), error
    assert not primary.requests and not claude_up.requests and not gemini.requests
    all_healthy(gw.url)


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        ("claude", "seed", 7),
        ("claude", "logprobs", True),
        ("claude", "response_format", {"type": "json_object"}),
        ("claude", "reasoning_effort", "high"),
        ("gem", "logit_bias", {"50256": -100}),
        ("gem", "reasoning_effort", "low"),
    ],
)
def test_fields_a_target_cannot_honour_are_refused_not_dropped(
    gw: GatewayProcess, model: str, field: str, value: Any
) -> None:
    response = post(gw, {"model": model, "messages": [USER], field: value})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"].startswith(field) and "cannot be translated" in error["message"]
    assert response.headers["x-plugway-attempts"] == "1"
    ok = post(gw, {"model": "oai", "messages": [USER], field: value})
    assert ok.status_code == 200  # an OpenAI-format target takes it as it is
    all_healthy(gw.url)


def test_a_burst_of_bad_bodies_leaves_every_circuit_closed(
    gw: GatewayProcess, gemini: FakeGemini, claude_up: FakeAnthropic
) -> None:
    for i in range(20):
        body, _ = TYPE_ERROR_BODIES[i % len(TYPE_ERROR_BODIES)]
        response = post(gw, {"model": ("gem", "claude")[i % 2], **body})
        assert response.status_code == 400
    assert not gemini.requests and not claude_up.requests
    for model in ("gem", "claude"):
        ok = post(gw, {"model": model, "messages": [USER]})
        assert ok.status_code == 200, ok.text
        assert ok.headers["x-plugway-attempts"] == "1"
        assert ok.headers["x-plugway-provider"] == ROUTES[model][0][0]
    state = health(gw.url)
    for model in ("gem", "claude"):
        provider, upstream = ROUTES[model][0]
        assert state[f"{provider}/{upstream}"] == (1.0, 0.0)
    all_healthy(gw.url)


def test_a_translation_bug_is_a_500_internal_error_with_no_failover(gw: GatewayProcess) -> None:
    before = value(scrape(gw.url), "plugway_internal_errors_total", stage="attempt", plugin="buggy")
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0)
    for _ in range(8):  # more than the 5 consecutive failures that would open a breaker
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(
                model="buggy", messages=[USER], extra_body={"buggy": True}
            )
        response = caught.value.response
        error = response.json()["error"]
        assert response.status_code == 500
        assert error["code"] == "internal_error" and error["type"] == "server_error"
        assert response.headers["x-request-id"] in error["message"]
        assert "KeyError" not in error["message"]  # nothing of the exception reaches the client
        assert response.headers["x-should-retry"] == "false"
        assert response.headers["x-plugway-attempts"] == "1"
    with httpx.stream(
        "POST",
        gw.url + "/v1/chat/completions",
        json={"model": "buggy", "messages": [USER], "stream": True, "buggy": True},
    ) as streamed:
        assert streamed.status_code == 500
        assert streamed.headers["x-plugway-attempts"] == "1"
        assert b"internal_error" in streamed.read()
    after = value(scrape(gw.url), "plugway_internal_errors_total", stage="attempt", plugin="buggy")
    assert after - before == 9
    ok = client.chat.completions.with_raw_response.create(model="buggy", messages=[USER])
    assert ok.headers["x-plugway-provider"] == "bug1"  # not in cool-down
    state = health(gw.url)
    assert state["bug1/b1"] == (1.0, 0.0)
    assert "bug2/b2" not in state  # never tried: no failover
    all_healthy(gw.url)


@pytest.mark.parametrize("hook", ["pre_route", "post_response"])
def test_a_plugin_that_raises_in_a_hook_is_a_500_internal_error(
    gw: GatewayProcess, hook: str
) -> None:
    before = value(scrape(gw.url), "plugway_internal_errors_total", stage=hook, plugin="faulty")
    response = post(gw, {"model": "oai", "messages": [USER]}, **{"x-fault": hook})
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal_error" and error["type"] == "server_error"
    assert "faulty" in error["message"] and hook in error["message"]
    assert response.headers["x-request-id"] in error["message"]
    after = value(scrape(gw.url), "plugway_internal_errors_total", stage=hook, plugin="faulty")
    assert after == before + 1
    all_healthy(gw.url)


def test_a_plugin_that_raises_in_stream_chunk_ends_the_stream_with_internal_error(
    gw: GatewayProcess,
) -> None:
    labels = {"stage": "stream_chunk", "plugin": "faulty"}
    before = value(scrape(gw.url), "plugway_internal_errors_total", **labels)
    with httpx.stream(
        "POST",
        gw.url + "/v1/chat/completions",
        json={"model": "oai", "messages": [USER], "stream": True},
        headers={"x-fault": "stream_chunk"},
    ) as streamed:
        text = streamed.read().decode()
    assert '"code":"internal_error"' in text and '"type":"server_error"' in text
    assert value(scrape(gw.url), "plugway_internal_errors_total", **labels) == before + 1
    all_healthy(gw.url)  # the target did nothing wrong


def test_the_messages_door_answers_a_fault_in_anthropic_shape(gw: GatewayProcess) -> None:
    client = anthropic.Anthropic(base_url=gw.url, api_key="x", max_retries=0)
    with pytest.raises(anthropic.InternalServerError) as caught:
        client.messages.create(
            model="claude",
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-fault": "pre_route"},
        )
    body = caught.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "api_error"
    assert caught.value.response.headers["request-id"] in body["error"]["message"]
    with pytest.raises(anthropic.InternalServerError):
        client.messages.create(
            model="buggy",
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-fault": "translation"},
        )
    all_healthy(gw.url)


def test_an_upstream_400_leaves_the_target_up(gw: GatewayProcess, primary: FakeOpenAI) -> None:
    assert post(gw, {"model": "oai", "messages": [USER]}).status_code == 200
    primary.script(Status(400, "bad tool schema", code="invalid_request_error"))
    response = post(gw, {"model": "oai", "messages": [USER]})
    assert response.status_code == 400
    assert response.headers["x-plugway-attempts"] == "1"
    assert health(gw.url)["oai1/gpt-4o-mini"] == (1.0, 0.0)
    ready = httpx.get(gw.url + "/ready").json()
    assert ready["targets"]["oai1/gpt-4o-mini"] == "closed"


def test_an_upstream_5xx_still_counts_against_the_target(
    gw: GatewayProcess, primary: FakeOpenAI
) -> None:
    primary.script(Status(503, "overloaded"))
    response = post(gw, {"model": "oai", "messages": [USER]})
    assert response.status_code == 200 and response.headers["x-plugway-attempts"] == "2"
    assert health(gw.url)["oai1/gpt-4o-mini"][0] == 0.0
    assert post(gw, {"model": "oai", "messages": [USER]}).status_code == 200
    assert health(gw.url)["oai1/gpt-4o-mini"] == (1.0, 0.0)


# -- the fake provider ---------------------------------------------------------------------------


def test_the_fake_provider_refuses_as_openai_does(start_gateway: Any) -> None:
    fake = start_gateway(
        """
[providers.f]
type = "fake"

[[models]]
name = "f"
targets = [{ provider = "f", model = "m" }]
"""
    )
    client = openai.OpenAI(base_url=fake.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="f",
            messages=[{"role": "user", "content": [{"type": "text", "text": {}}]}],  # type: ignore[typeddict-item]
        )
    error = caught.value.response.json()["error"]
    assert error["param"] == "messages[0].content[0].text"
    assert error["message"] == "messages[0].content[0].text must be a string"
    assert "Traceback" not in caught.value.response.text
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model="f", input=[{"x": 1}])  # type: ignore[list-item]
    assert refused.value.response.json()["error"]["param"] == "input[0]"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": {}}]}]},
            "messages[0].content[0].text",
        ),
        ({"messages": [USER], "n": "two"}, "n"),
        ({"messages": [USER], "tools": {"type": "function"}}, "tools"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
    ],
)
def test_the_fake_provider_itself_checks_what_other_doors_send(
    body: dict[str, Any], param: str
) -> None:
    """Doors that translate into the canonical body reach the fake without the chat door's
    check: the provider refuses as OpenAI would, an upstream 400 (no failover, no mark)."""
    from plugway.builtin_providers.fake import FakeProvider, FakeSettings

    provider = FakeProvider("f", FakeSettings(type="fake"))
    ctx = RequestContext(endpoint="chat.completions", body=body, headers={})
    for call in (provider.chat, provider.chat_stream):
        with pytest.raises(UpstreamRejected) as caught:
            asyncio.run(call(ctx, Target("f", "m"), body))  # type: ignore[operator]
        assert caught.value.status == 400 and caught.value.param == param
        assert not caught.value.retryable


# -- validation at the other doors ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": {}}]}]},
            "messages.0.content.0.text",
        ),
        ({"messages": [{"role": "user", "content": 7}]}, "messages.0.content"),
        (
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "x"}],
                    },
                ]
            },
            "messages.1.content.0.input",
        ),
        (
            {
                "messages": [{"role": "user", "content": "hi"}],
                "system": [{"type": "text", "text": 1}],
            },
            "system.0.text",
        ),
        (
            {"messages": [{"role": "user", "content": "hi"}], "stop_sequences": "END"},
            "stop_sequences",
        ),
        ({"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}, "temperature"),
        ({"messages": [{"role": "user", "content": "hi"}], "tools": {"name": "f"}}, "tools"),
        ({"messages": [{"role": "user", "content": "hi"}], "tool_choice": "any"}, "tool_choice"),
    ],
)
@pytest.mark.parametrize("model", ["claude", "gem", "oai"])
def test_the_messages_door_refuses_malformed_bodies_in_anthropic_shape(
    gw: GatewayProcess, model: str, body: dict[str, Any], param: str
) -> None:
    response = httpx.post(
        gw.url + "/v1/messages", json={"model": model, "max_tokens": 10, **body}, timeout=15
    )
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith(f"{param}")
    assert response.headers.get("x-plugway-attempts", "0") == "0"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": {"text": "x"}}, "input"),
        ({"input": ["a", {"x": 1}]}, "input[1]"),
        ({"input": "a", "dimensions": "8"}, "dimensions"),
        ({"input": "a", "encoding_format": "int8"}, "encoding_format"),
    ],
)
def test_the_embeddings_door_refuses_malformed_bodies(
    gw: GatewayProcess, body: dict[str, Any], param: str
) -> None:
    response = httpx.post(gw.url + "/v1/embeddings", json={"model": "oai", **body}, timeout=15)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
