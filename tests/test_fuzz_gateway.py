"""Hypothesis-fuzzed request bodies and headers against a running gateway: never a 500,
always OpenAI's error shape on errors, and the gateway keeps serving."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fault_kit import SCHEMA_VIOLATIONS
from fuzz_kit import (
    FORMAT_ROUTES,
    anthropic_error,
    formats_gateway_at,
    hurt_no_target,
    json_value,
    one_value_replaced,
    short_text,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plugway.testing import FakeAnthropic, FakeOpenAI, GatewayProcess
from sec_kit import MASTER, keyed_config, new_db

FILTERS = """
[plugins.pii]
action = "redact"

[plugins.secrets]
action = "redact"

[plugins.prompt_guard]
action = "flag"
"""


@pytest.fixture(scope="module")
def fuzzed(primary: FakeOpenAI) -> Iterator[tuple[GatewayProcess, httpx.Client]]:
    with (
        GatewayProcess(
            keyed_config(primary, new_db(), FILTERS), env={"PLUGWAY_MASTER_KEY": MASTER}
        ) as gw,
        httpx.Client(base_url=gw.url, timeout=10) as client,
    ):
        yield gw, client


message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "system", "assistant", "tool", "x", ""]),
        "content": st.one_of(
            st.text(max_size=80),
            json_value,
            st.lists(
                st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=40)}),
                max_size=3,
            ),
        ),
    }
)
body = st.one_of(
    st.fixed_dictionaries(
        {
            "model": st.sampled_from(["chat", "other", "nope", "", "primary/x"]),
            "messages": st.one_of(st.lists(message, max_size=3), json_value),
        },
        optional={
            "stream": st.one_of(st.booleans(), json_value),
            "max_tokens": json_value,
            "n": json_value,
            "stream_options": json_value,
            "tools": json_value,
        },
    ),
    json_value,
)
header_value = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=60
)
headers = st.dictionaries(
    st.sampled_from(
        [
            "authorization",
            "x-api-key",
            "api-key",
            "content-type",
            "host",
            "x-forwarded-for",
            "content-encoding",
            "transfer-encoding",
            "expect",
            "accept",
            "x-x",
        ]
    ),
    header_value,
    max_size=4,
)


def check(response: httpx.Response) -> None:
    assert response.status_code != 500 or "plugin" not in response.text, response.text
    assert response.status_code < 500 or response.status_code in (502, 503, 504), response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    payload=body,
    extra_headers=headers,
    as_master=st.booleans(),
    path=st.sampled_from(["/v1/chat/completions", "/v1/embeddings", "/chat/completions"]),
)
def test_fuzzed_bodies_and_headers(
    fuzzed: tuple[GatewayProcess, httpx.Client],
    payload: Any,
    extra_headers: dict[str, str],
    as_master: bool,
    path: str,
) -> None:
    _, client = fuzzed
    sent = dict(extra_headers)
    if as_master:
        sent["authorization"] = f"Bearer {MASTER}"
    sent.pop("transfer-encoding", None)  # httpx itself refuses a conflicting framing
    try:
        response = client.post(path, content=json.dumps(payload).encode(), headers=sent)
    except httpx.RemoteProtocolError:
        return  # the server closed a malformed exchange; it must still be serving (below)
    check(response)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.binary(max_size=200))
def test_fuzzed_raw_bytes(fuzzed: tuple[GatewayProcess, httpx.Client], raw: bytes) -> None:
    _, client = fuzzed
    check(
        client.post(
            "/v1/chat/completions", content=raw, headers={"authorization": f"Bearer {MASTER}"}
        )
    )


def test_still_serving_after_fuzzing(fuzzed: tuple[GatewayProcess, httpx.Client]) -> None:
    gw, client = fuzzed
    ok = client.post(
        "/v1/chat/completions",
        headers={"authorization": f"Bearer {MASTER}"},
        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert ok.status_code == 200
    assert "Traceback" not in gw.output(), gw.output()[-3000:]


# -- issue 24: malformed and valid chat bodies against every target format -----------------------
#
# OpenAI's OpenAPI document is not checked in here: the strategies below are written after the
# openai SDK's request TypedDicts (``ChatCompletionMessageParam`` and its parts, the tool,
# tool-choice and response-format params), bounded so that each example is small and fast.
# (``st.from_type`` on those TypedDicts works but can take seconds per example.)
# Schema-violating bodies are valid ones with one value anywhere in them replaced by an
# arbitrary JSON value.

text_part = st.fixed_dictionaries({"type": st.just("text"), "text": short_text})
image_part = st.fixed_dictionaries(
    {
        "type": st.just("image_url"),
        "image_url": st.fixed_dictionaries(
            {
                "url": st.sampled_from(
                    ["https://example.com/a.png", "data:image/png;base64,iVBORw0KGgo="]
                )
            },
            optional={"detail": st.sampled_from(["auto", "low", "high"])},
        ),
    }
)
user_message = st.fixed_dictionaries(
    {
        "role": st.just("user"),
        "content": st.one_of(
            short_text, st.lists(st.one_of(text_part, image_part), min_size=1, max_size=3)
        ),
    },
    optional={"name": st.sampled_from(["ana", "bo"])},
)
system_message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["system", "developer"]),
        "content": st.one_of(short_text, st.lists(text_part, min_size=1, max_size=2)),
    }
)
tool_call = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["call_1", "call_2"]),
        "type": st.just("function"),
        "function": st.fixed_dictionaries(
            {
                "name": st.sampled_from(["f", "g"]),
                "arguments": st.sampled_from(["{}", '{"a": 1}', ""]),
            }
        ),
    }
)


@st.composite
def conversation(draw: st.DrawFn) -> list[dict[str, Any]]:
    """System/user turns, optionally an assistant tool call answered by tool messages, and a
    last user turn: the shapes ChatCompletionMessageParam allows, in an order APIs accept."""
    messages: list[dict[str, Any]] = draw(
        st.lists(st.one_of(system_message, user_message), min_size=1, max_size=3)
    )
    if draw(st.booleans()):
        calls = draw(st.lists(tool_call, min_size=1, max_size=2, unique_by=lambda c: c["id"]))
        messages.append(
            {
                "role": "assistant",
                "content": draw(st.one_of(st.none(), short_text)),
                "tool_calls": calls,
            }
        )
        for call in calls:
            content = draw(st.one_of(short_text, st.lists(text_part, min_size=1, max_size=2)))
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": content})
        messages.append(draw(user_message))
    elif draw(st.booleans()):
        messages.append({"role": "assistant", "content": draw(short_text)})
        messages.append(draw(user_message))
    return messages


tool = st.fixed_dictionaries(
    {
        "type": st.just("function"),
        "function": st.fixed_dictionaries(
            {"name": st.sampled_from(["f", "g"])},
            optional={
                "description": short_text,
                "parameters": st.just({"type": "object", "properties": {"a": {"type": "integer"}}}),
                "strict": st.booleans(),
            },
        ),
    }
)
valid_body = st.fixed_dictionaries(
    {"model": st.sampled_from(FORMAT_ROUTES), "messages": conversation()},
    optional={
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "max_tokens": st.integers(1, 50),
        "stop": st.one_of(short_text, st.lists(st.text(min_size=1, max_size=5), max_size=3)),
        "tools": st.lists(tool, max_size=2, unique_by=lambda t: t["function"]["name"]),
        "tool_choice": st.sampled_from(["auto", "none", "required"]),
        "response_format": st.sampled_from(
            [
                {"type": "text"},
                {"type": "json_object"},
                {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}},
            ]
        ),
        "n": st.integers(1, 2),
        "user": short_text,
        "stream": st.booleans(),
    },
)


#: A valid body with one value somewhere in it (not the model) replaced by any JSON.
malformed_body = one_value_replaced(valid_body)


def send_and_check(gw: GatewayProcess, client: httpx.Client, body: dict[str, Any]) -> None:
    """No 5xx, at most one attempt, and no target's health or circuit changed."""
    response = client.post(
        "/v1/chat/completions",
        content=json.dumps(body).encode(),  # json.dumps: Infinity too, which is no JSON
        headers={"content-type": "application/json"},
    )
    hurt_no_target(gw, response, body)
    if response.status_code >= 400:
        assert response.json()["error"]["type"] == "invalid_request_error", response.text


@pytest.fixture(scope="module")
def formats_gateway(
    primary: FakeOpenAI, backup: FakeOpenAI, claude_up: FakeAnthropic
) -> Iterator[tuple[GatewayProcess, httpx.Client]]:
    yield from formats_gateway_at(primary, backup, claude_up)


#: Bodies the fuzzing below once found failing, kept as regression cases: each is sent to
#: every target format and checked like a fuzzed body.
FOUND: list[dict[str, Any]] = [
    # A tool's JSON Schema with a non-string type: the fake Gemini answered 500 (a target
    # failure) where Gemini answers 400.
    {
        "messages": [{"role": "user", "content": "x"}],
        "tools": [
            {
                "type": "function",
                "function": {"name": "f", "parameters": {"type": True, "properties": {"a": {}}}},
            }
        ],
    },
    # Found by SCHEMA_VIOLATIONS' first run: a role that is not hashable crashed the check.
    {"messages": [{"role": ["user"], "content": "x"}]},
]


@pytest.mark.parametrize("model", FORMAT_ROUTES)
@pytest.mark.parametrize("body", FOUND)
def test_bodies_fuzzing_found_hurt_no_target(
    formats_gateway: tuple[GatewayProcess, httpx.Client], model: str, body: dict[str, Any]
) -> None:
    send_and_check(*formats_gateway, {"model": model, **body})


@pytest.mark.parametrize("model", FORMAT_ROUTES)
@pytest.mark.parametrize(("body", "param"), SCHEMA_VIOLATIONS)
def test_regression_bodies_hurt_no_target(
    formats_gateway: tuple[GatewayProcess, httpx.Client],
    model: str,
    body: dict[str, Any],
    param: str,
) -> None:
    _, client = formats_gateway
    response = client.post("/v1/chat/completions", json={"model": model, **body})
    assert response.status_code == 400 and response.json()["error"]["param"] == param
    send_and_check(*formats_gateway, {"model": model, **body})


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=malformed_body)
def test_fuzzed_schema_violating_bodies_hurt_no_target(
    formats_gateway: tuple[GatewayProcess, httpx.Client], body: dict[str, Any]
) -> None:
    send_and_check(*formats_gateway, body)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=valid_body)
def test_fuzzed_schema_valid_bodies_hurt_no_target(
    formats_gateway: tuple[GatewayProcess, httpx.Client], body: dict[str, Any]
) -> None:
    send_and_check(*formats_gateway, body)


def test_formats_gateway_logged_no_internal_error(
    formats_gateway: tuple[GatewayProcess, httpx.Client],
) -> None:
    gw, _ = formats_gateway
    assert "internal error" not in gw.output(), gw.output()[-3000:]


# -- the same at the Anthropic door (/v1/messages) -------------------------------------------------

anthropic_text = st.fixed_dictionaries({"type": st.just("text"), "text": short_text})


@st.composite
def messages_body(draw: st.DrawFn) -> dict[str, Any]:
    """An Anthropic Messages body after the anthropic SDK's MessageCreateParams: text turns,
    optionally a tool_use answered by a tool_result, a system prompt and tools."""
    turns: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": draw(
                st.one_of(short_text, st.lists(anthropic_text, min_size=1, max_size=2))
            ),
        }
    ]
    if draw(st.booleans()):
        turns.append(
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}],
            }
        )
        turns.append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": draw(short_text)}
                ],
            }
        )
    body: dict[str, Any] = {
        "model": draw(st.sampled_from(FORMAT_ROUTES)),
        "max_tokens": draw(st.integers(1, 50)),
        "messages": turns,
    }
    if draw(st.booleans()):
        body["system"] = draw(
            st.one_of(short_text, st.lists(anthropic_text, min_size=1, max_size=2))
        )
    if draw(st.booleans()):
        body["tools"] = [
            {
                "name": "f",
                "input_schema": {"type": "object", "properties": {"a": {"type": "integer"}}},
            }
        ]
    if draw(st.booleans()):
        body["temperature"] = draw(st.floats(0, 1))
    return body


#: A valid Messages body with one value (not the model, not max_tokens) replaced.
malformed_messages_body = one_value_replaced(messages_body(), keep=("model", "max_tokens"))


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.one_of(messages_body(), malformed_messages_body))
def test_fuzzed_messages_bodies_hurt_no_target(
    formats_gateway: tuple[GatewayProcess, httpx.Client], body: dict[str, Any]
) -> None:
    gw, client = formats_gateway
    response = client.post(
        "/v1/messages",
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    hurt_no_target(gw, response, body, anthropic_error)
