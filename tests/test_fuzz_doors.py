"""Issue 24 at the doors that landed after chat, embeddings and messages: ``/v1/responses``,
``/v1/completions``, ``/v1/moderations``, the stored chat completions and response input items
reads, and MCP. Each gets schema-valid and schema-violating bodies (query strings for the GET
doors) against routes with two targets each of OpenAI, Anthropic and Gemini format, and every
answer keeps the invariants of tests/fuzz_kit.py: no 5xx, at most one attempt, no target's
health or circuit changed, errors in the door's shape naming the field at fault.

The strategies are written after the openai SDK's request params (``ResponseCreateParams``,
``CompletionCreateParams``, ``ModerationCreateParams``, the list params of the stored chat
completions and of input items) and the MCP SDK's JSON-RPC requests; example counts are kept
small (a 2-core CI runs the whole suite)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fault_kit import DOOR_VIOLATIONS
from fuzz_kit import (
    FORMAT_ROUTES,
    formats_gateway_at,
    hurt_no_target,
    json_value,
    one_value_replaced,
    openai_error,
    short_text,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plugway.formats.openai_completions import completions_param
from plugway.formats.openai_responses import responses_param
from plugway.testing import FakeAnthropic, FakeOpenAI, GatewayProcess

SERVER = Path(__file__).parent / "fixtures" / "mcp_tool_server.py"
FEW = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))

Gateway = tuple[GatewayProcess, httpx.Client]


@pytest.fixture(scope="module")
def doors(
    primary: FakeOpenAI,
    backup: FakeOpenAI,
    claude_up: FakeAnthropic,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    """three_formats_config's gateway with a response store and one MCP server (stdio)."""
    db = tmp_path_factory.mktemp("doors") / "responses.db"
    extra = f"""
[plugins.responses]
db = "{db}"

[mcp.servers.local]
command = "{sys.executable}"
args = ["{SERVER}", "stdio"]
env = {{ MCP_SERVER_NAME = "local" }}
timeout = 10
"""
    yield from formats_gateway_at(primary, backup, claude_up, extra)


def post(client: httpx.Client, path: str, body: Any) -> httpx.Response:
    return client.post(
        path,
        content=json.dumps(body).encode(),  # json.dumps: Infinity too, which is no JSON
        headers={"content-type": "application/json"},
    )


def is_json(body: Any) -> bool:
    """Whether ``body`` is sent as JSON (json.dumps writes Infinity for inf, which is not)."""
    try:
        json.dumps(body, allow_nan=False)
    except ValueError:
        return False
    return True


def names_a_field(response: httpx.Response, body: Any) -> None:
    """A 400 for a body names the field at fault: one in the body, or one it lacks."""
    if response.status_code != 400 or not isinstance(body, dict) or not is_json(body):
        return
    error = openai_error(response)
    param = error["param"]
    assert isinstance(param, str) and param, (body, response.text)
    head = param.split(".")[0].split("[")[0]
    assert head in body or "required" in error["message"], (body, response.text)


# -- POST /v1/responses ----------------------------------------------------------------------------

input_text = st.fixed_dictionaries({"type": st.just("input_text"), "text": short_text})
input_image = st.fixed_dictionaries(
    {
        "type": st.just("input_image"),
        "image_url": st.sampled_from(
            ["https://example.com/a.png", "data:image/png;base64,iVBORw0KGgo="]
        ),
    },
    optional={"detail": st.sampled_from(["auto", "low", "high"])},
)
message_item = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "system", "developer"]),
        "content": st.one_of(short_text, st.lists(input_text, min_size=1, max_size=2)),
    },
    optional={"type": st.just("message")},
)
user_item = st.fixed_dictionaries(
    {
        "role": st.just("user"),
        "content": st.one_of(
            short_text, st.lists(st.one_of(input_text, input_image), min_size=1, max_size=2)
        ),
    },
    optional={"type": st.just("message")},
)


@st.composite
def response_input(draw: st.DrawFn) -> Any:
    """A string, or message items with optionally a function call and its output."""
    if draw(st.booleans()):
        return draw(short_text)
    items: list[dict[str, Any]] = draw(st.lists(message_item, max_size=2))
    items.append(draw(user_item))
    if draw(st.booleans()):
        items += [
            {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": '{"a": 1}'},
            {"type": "function_call_output", "call_id": "call_1", "output": draw(short_text)},
        ]
    return items


function_tool = st.fixed_dictionaries(
    {
        "type": st.just("function"),
        "name": st.sampled_from(["f", "g"]),
        "parameters": st.just({"type": "object", "properties": {"a": {"type": "integer"}}}),
    },
    optional={"description": short_text, "strict": st.booleans()},
)
responses_body = st.fixed_dictionaries(
    {"model": st.sampled_from(FORMAT_ROUTES), "input": response_input()},
    optional={
        "instructions": short_text,
        "max_output_tokens": st.integers(16, 64),
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "tools": st.lists(function_tool, max_size=2, unique_by=lambda t: t["name"]),
        "tool_choice": st.sampled_from(["auto", "none", "required"]),
        "store": st.booleans(),
        "stream": st.booleans(),
        "metadata": st.dictionaries(st.sampled_from(["a", "b"]), short_text, max_size=2),
        "text": st.sampled_from(
            [
                {"format": {"type": "text"}},
                {"format": {"type": "json_object"}},
                {"format": {"type": "json_schema", "name": "s", "schema": {"type": "object"}}},
            ]
        ),
        "user": short_text,
        "parallel_tool_calls": st.booleans(),
    },
)


@FEW
@given(body=st.one_of(responses_body, one_value_replaced(responses_body)))
def test_fuzzed_responses_bodies_hurt_no_target(doors: Gateway, body: dict[str, Any]) -> None:
    gw, client = doors
    response = post(client, "/v1/responses", body)
    hurt_no_target(gw, response, body)
    names_a_field(response, body)


# -- POST /v1/completions --------------------------------------------------------------------------

completions_body = st.fixed_dictionaries(
    {
        "model": st.sampled_from(FORMAT_ROUTES),
        "prompt": st.one_of(
            short_text,
            st.lists(short_text, min_size=1, max_size=2),
            st.lists(st.integers(0, 50_000), min_size=1, max_size=4),
        ),
    },
    optional={
        "max_tokens": st.integers(1, 32),
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "n": st.integers(1, 2),
        "stop": st.one_of(short_text, st.lists(st.text(min_size=1, max_size=4), max_size=2)),
        "echo": st.booleans(),
        "logprobs": st.integers(0, 5),
        "presence_penalty": st.floats(-2, 2),
        "frequency_penalty": st.floats(-2, 2),
        "seed": st.integers(0, 1000),
        "suffix": short_text,
        "user": short_text,
        "stream": st.booleans(),
        "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
        "logit_bias": st.dictionaries(st.sampled_from(["1", "50256"]), st.integers(-100, 100)),
    },
)


@FEW
@given(body=st.one_of(completions_body, one_value_replaced(completions_body)))
def test_fuzzed_completions_bodies_hurt_no_target(doors: Gateway, body: dict[str, Any]) -> None:
    gw, client = doors
    response = post(client, "/v1/completions", body)
    hurt_no_target(gw, response, body)
    names_a_field(response, body)


# -- POST /v1/moderations --------------------------------------------------------------------------

moderation_part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": short_text}),
    st.fixed_dictionaries(
        {
            "type": st.just("image_url"),
            "image_url": st.fixed_dictionaries({"url": st.just("https://example.com/a.png")}),
        }
    ),
)
moderations_body = st.fixed_dictionaries(
    {
        "input": st.one_of(
            short_text,
            st.lists(short_text, min_size=1, max_size=3),
            st.lists(moderation_part, min_size=1, max_size=2),
        )
    },
    optional={"model": st.sampled_from([*FORMAT_ROUTES, "omni-moderation-latest"])},
)


@FEW
@given(body=st.one_of(moderations_body, one_value_replaced(moderations_body)))
def test_fuzzed_moderations_bodies_hurt_no_target(doors: Gateway, body: dict[str, Any]) -> None:
    gw, client = doors
    response = post(client, "/v1/moderations", body)
    hurt_no_target(gw, response, body)
    names_a_field(response, body)


# -- the stored chat completions and the response input items (GET doors) ------------------------


@pytest.fixture(scope="module")
def stored(doors: Gateway) -> dict[str, list[str]]:
    """A stored chat completion and a stored response per target format."""
    _, client = doors
    ids: dict[str, list[str]] = {"chat": [], "responses": []}
    for model in FORMAT_ROUTES:
        chat = client.post(
            "/v1/chat/completions",
            json={
                "model": model,
                "messages": [{"role": "user", "content": "keep me"}],
                "store": True,
                "metadata": {"k": "v"},
            },
        )
        assert chat.status_code == 200, chat.text
        ids["chat"].append(chat.json()["id"])
        answer = client.post(
            "/v1/responses", json={"model": model, "input": [{"role": "user", "content": "hi"}]}
        )
        assert answer.status_code == 200, answer.text
        ids["responses"].append(answer.json()["id"])
    return ids


query_value = st.one_of(
    st.sampled_from(["", "0", "1", "20", "100", "101", "-1", "asc", "desc", "x", "1.5", "true"]),
    st.text(max_size=12),
)
list_query = st.dictionaries(
    st.sampled_from(["limit", "after", "order", "model", "metadata[k]", "metadata", "include[]"]),
    query_value,
    max_size=4,
)


def get_and_check(gw: GatewayProcess, client: httpx.Client, path: str, query: Any) -> None:
    response = client.get(path + ("?" + urlencode(query) if query else ""))
    hurt_no_target(gw, response, (path, query))
    if response.status_code == 400:
        param = openai_error(response)["param"]
        assert isinstance(param, str) and param.split("[")[0] in {k.split("[")[0] for k in query}, (
            query,
            response.text,
        )


@FEW
@given(query=list_query, which=st.integers(0, 2), after_known=st.booleans())
def test_fuzzed_stored_chat_queries_hurt_no_target(
    doors: Gateway,
    stored: dict[str, list[str]],
    query: dict[str, str],
    which: int,
    after_known: bool,
) -> None:
    gw, client = doors
    if after_known:
        query["after"] = stored["chat"][which]
    get_and_check(gw, client, "/v1/chat/completions", query)
    get_and_check(gw, client, f"/v1/chat/completions/{stored['chat'][which]}/messages", query)


@FEW
@given(
    query=list_query,
    which=st.integers(0, 2),
    known=st.booleans(),
    some_id=st.text(alphabet="abcdefghij_-0123456789", min_size=1, max_size=12),
)
def test_fuzzed_input_items_queries_hurt_no_target(
    doors: Gateway,
    stored: dict[str, list[str]],
    query: dict[str, str],
    which: int,
    known: bool,
    some_id: str,
) -> None:
    gw, client = doors
    response_id = stored["responses"][which] if known else f"resp_{some_id}"
    get_and_check(gw, client, f"/v1/responses/{response_id}/input_items", query)


update_body = st.fixed_dictionaries(
    {"metadata": st.dictionaries(st.sampled_from(["a", "b", "k"]), short_text, max_size=3)}
)


@FEW
@given(
    body=st.one_of(update_body, one_value_replaced(update_body, keep=()), json_value),
    which=st.integers(0, 2),
    known=st.booleans(),
)
def test_fuzzed_stored_chat_updates_hurt_no_target(
    doors: Gateway, stored: dict[str, list[str]], body: Any, which: int, known: bool
) -> None:
    gw, client = doors
    completion = stored["chat"][which] if known else "chatcmpl-nope"
    response = post(client, f"/v1/chat/completions/{completion}", body)
    hurt_no_target(gw, response, body)
    names_a_field(response, body)
    got = client.get(f"/v1/chat/completions/{completion}")
    hurt_no_target(gw, got, completion)


def test_stored_chat_delete_of_unknown_or_odd_ids(doors: Gateway) -> None:
    gw, client = doors
    for odd in ("chatcmpl-nope", "x" * 300, "%00", "..", "a%2Fb"):
        response = client.delete(f"/v1/chat/completions/{odd}")
        hurt_no_target(gw, response, odd)
        assert response.status_code in (400, 404), response.text


# -- MCP (JSON-RPC over Streamable HTTP) -----------------------------------------------------------

MCP_HEADERS = {
    "accept": "application/json, text/event-stream",
    "content-type": "application/json",
    "mcp-protocol-version": "2025-06-18",
}
rpc_id = st.one_of(st.integers(0, 1000), st.sampled_from(["a", "b"]))
rpc_call = st.one_of(
    st.fixed_dictionaries(
        {
            "method": st.just("initialize"),
            "params": st.just(
                {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "fuzz", "version": "1"},
                }
            ),
        }
    ),
    st.fixed_dictionaries({"method": st.sampled_from(["tools/list", "ping"])}),
    st.fixed_dictionaries(
        {
            "method": st.just("tools/call"),
            "params": st.one_of(
                st.just({"name": "local__echo", "arguments": {"text": "hi"}}),
                st.just({"name": "local__add", "arguments": {"a": 1, "b": 2}}),
            ),
        }
    ),
)


@st.composite
def rpc_request(draw: st.DrawFn) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": draw(rpc_id), **draw(rpc_call)}


@FEW
@given(body=st.one_of(rpc_request(), one_value_replaced(rpc_request(), keep=()), json_value))
def test_fuzzed_mcp_requests_are_answered_in_json_rpc(doors: Gateway, body: Any) -> None:
    gw, client = doors
    response = client.post("/mcp", content=json.dumps(body).encode(), headers=MCP_HEADERS)
    hurt_no_target(gw, response, body, lambda r: r.json() if r.content else {})
    assert "unexpected error" not in gw.output(), (body, gw.output()[-3000:])


# -- regression cases: bodies these tests once found failing ---------------------------------------


@pytest.mark.parametrize(
    ("door", "model", "body", "param"),
    [
        (door, model, body, param)
        for door, models, body, param in DOOR_VIOLATIONS
        for model in models
    ],
)
def test_door_regressions_hurt_no_target(
    doors: Gateway, door: str, model: str, body: dict[str, Any], param: str
) -> None:
    gw, client = doors
    response = post(client, door, {"model": model, **body})
    hurt_no_target(gw, response, body)
    assert response.status_code == 400, response.text
    assert openai_error(response)["param"] == param, response.text


def test_doors_gateway_logged_no_internal_error(doors: Gateway) -> None:
    gw, _ = doors
    assert "internal error" not in gw.output(), gw.output()[-3000:]
    assert "Traceback" not in gw.output(), gw.output()[-3000:]


@pytest.mark.parametrize(
    ("chat", "leading", "responses"),
    [
        ("response_format.type", 0, "text.format.type"),
        ("response_format.json_schema.schema", 0, "text.format.schema"),
        ("messages", 0, "input"),
        ("messages[0].content", 1, "instructions"),
        ("messages[1].content[0].text", 1, "input"),
        ("tools[1].function.name", 0, "tools[1].name"),
        ("tools[0].function", 0, "tools[0]"),
        ("max_completion_tokens", 0, "max_output_tokens"),
        ("reasoning_effort", 0, "reasoning.effort"),
        ("temperature", 0, "temperature"),
        (None, 0, None),
    ],
)
def test_chat_params_are_named_as_the_responses_field(
    chat: str | None, leading: int, responses: str | None
) -> None:
    assert responses_param(chat, leading) == responses


@pytest.mark.parametrize(
    ("chat", "completions"),
    [
        ("messages", "prompt"),
        ("messages[0].content", "prompt"),
        ("max_completion_tokens", "max_tokens"),
        ("temperature", "temperature"),
        (None, None),
    ],
)
def test_chat_params_are_named_as_the_completions_field(
    chat: str | None, completions: str | None
) -> None:
    assert completions_param(chat) == completions


# -- bodies generated from OpenAI's published OpenAPI description (tests/openapi/) ---------------

OPENAPI = json.loads((Path(__file__).parent / "openapi" / "openai-requests.json").read_text())


def from_openapi(name: str) -> st.SearchStrategy[dict[str, Any]]:
    """Request bodies valid under the schema ``name`` of the checked-in OpenAPI subset."""
    from hypothesis_jsonschema import from_schema

    schema = {"$ref": f"#/components/schemas/{name}", "components": OPENAPI["components"]}
    return from_schema(schema)  # type: ignore[no-any-return]


#: The doors whose request schemas build quickly (chat's and responses' take seconds to
#: build and have the hand-written strategies above).
OPENAPI_DOORS = {
    "/v1/completions": "CreateCompletionRequest",
    "/v1/embeddings": "CreateEmbeddingRequest",
    "/v1/moderations": "CreateModerationRequest",
}


@pytest.mark.parametrize("door", sorted(OPENAPI_DOORS))
def test_openapi_valid_bodies_hurt_no_target(doors: Gateway, door: str) -> None:
    gw, client = doors

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=from_openapi(OPENAPI_DOORS[door]), model=st.sampled_from(FORMAT_ROUTES))
    def check(body: dict[str, Any], model: str) -> None:
        body = {**body, "model": model}
        response = post(client, door, body)
        hurt_no_target(gw, response, body)
        if response.status_code == 400 and "JSON" not in response.text:
            names_a_field(response, body)

    check()
