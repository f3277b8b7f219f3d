"""``POST /v1/responses`` end to end: the openai SDK -> the real gateway -> fake upstreams in
each provider's wire format. Native pass-through to OpenAI-format hosts that serve
``/v1/responses``, translation through chat for the others (an OpenAI-compatible host without
it, Anthropic, Gemini), state (retrieve, delete, input items, previous_response_id), failover
and the errors a client can cause."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from plugway.testing import (
    CutStream,
    FakeAnthropic,
    FakeGemini,
    FakeOpenAI,
    GatewayProcess,
    Reply,
    ResponseFailed,
    Status,
)
from plugway.testing.pytest_plugin import UpstreamPool

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="session")
def gemini_up(plugway_upstreams: UpstreamPool) -> FakeGemini:
    return plugway_upstreams.get(FakeGemini, "responses_gemini")


@pytest.fixture(autouse=True)
def _fresh(
    primary: FakeOpenAI, backup: FakeOpenAI, claude_up: FakeAnthropic, gemini_up: FakeGemini
) -> None:
    for upstream in (primary, backup, claude_up, gemini_up):
        upstream.reset()


def responses_config(
    primary: FakeOpenAI,
    backup: FakeOpenAI,
    claude_up: FakeAnthropic,
    gemini_up: FakeGemini,
    extra: str = "",
) -> str:
    return f"""
[providers.native]
type = "openai"
base_url = "{primary.url}/v1"
api_key = "sk-native-secret-0123456789"
timeout = 3

[providers.compat]
type = "openai"
base_url = "{backup.url}/v1"
api_key = "sk-compat-secret-0123456789"
responses_api = false
timeout = 3

[providers.claude]
type = "anthropic"
base_url = "{claude_up.url}"
api_key = "sk-ant-secret-0123456789"
timeout = 3

[providers.google]
type = "gemini"
base_url = "{gemini_up.url}"
api_key = "AIzaSyFAKE-gemini-key-0123456789abcdef"
timeout = 3

[routing]
deadline = 8

[plugins]
disabled = ["health"]

[[models]]
name = "gpt"
targets = [{{ provider = "native", model = "gpt-4.1" }}]

[[models]]
name = "compat"
targets = [{{ provider = "compat", model = "llama-3" }}]

[[models]]
name = "claude"
targets = [{{ provider = "claude", model = "claude-sonnet-4-5" }}]

[[models]]
name = "claude-strict"
targets = [{{ provider = "claude", model = "claude-sonnet-4-5" }}]
options = {{ hosted_tools = "refuse" }}

[[models]]
name = "gemini"
targets = [{{ provider = "google", model = "gemini-2.5-flash" }}]

[[models]]
name = "native-then-compat"
targets = [
  {{ provider = "native", model = "gpt-4.1" }},
  {{ provider = "compat", model = "llama-3" }},
]

[[models]]
name = "compat-then-native"
targets = [
  {{ provider = "compat", model = "llama-3" }},
  {{ provider = "native", model = "gpt-4.1" }},
]
{extra}
"""


@pytest.fixture(scope="session")
def gw(
    primary: FakeOpenAI, backup: FakeOpenAI, claude_up: FakeAnthropic, gemini_up: FakeGemini
) -> Iterator[GatewayProcess]:
    with GatewayProcess(responses_config(primary, backup, claude_up, gemini_up)) as gateway:
        yield gateway


def paths(upstream: Any) -> list[str]:
    return [r.path for r in upstream.requests]


# -- every target type, streamed and not -------------------------------------------------------


def test_native_target_passes_the_request_through(gw: GatewayProcess, primary: FakeOpenAI) -> None:
    client = gw.openai()
    response = client.responses.create(
        model="gpt", input="hello there", instructions="be brief", metadata={"run": "1"}
    )
    assert response.output_text == "echo: hello there"
    assert response.status == "completed"
    assert response.usage is not None and response.usage.input_tokens == 11
    assert paths(primary) == ["/v1/responses"]
    sent = primary.requests[0].body
    assert sent["model"] == "gpt-4.1"
    assert sent["input"] == "hello there" and sent["instructions"] == "be brief"
    assert sent["metadata"] == {"run": "1"}
    # the host's own response id and object, untouched
    assert response.id.startswith("resp_") and response.id in primary.stored_responses


def test_native_stream_forwards_the_hosts_events(gw: GatewayProcess, primary: FakeOpenAI) -> None:
    client = gw.openai()
    with client.responses.stream(model="gpt", input="stream me please") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "echo: stream me please"
    assert final.output_text == "echo: stream me please"
    assert final.usage is not None and final.usage.output_tokens == 7
    assert paths(primary) == ["/v1/responses"]
    assert primary.requests[0].body["stream"] is True


@pytest.mark.parametrize("model", ["compat", "claude", "gemini"])
def test_translated_targets(
    gw: GatewayProcess,
    backup: FakeOpenAI,
    claude_up: FakeAnthropic,
    gemini_up: FakeGemini,
    model: str,
) -> None:
    client = gw.openai()
    response = client.responses.create(model=model, input="hi translated", instructions="short")
    assert "hi translated" in response.output_text
    assert response.status == "completed"
    assert response.usage is not None and response.usage.total_tokens > 0
    assert response.id.startswith("resp_")
    upstream: Any = {"compat": backup, "claude": claude_up, "gemini": gemini_up}[model]
    assert upstream.requests, "the upstream was called"
    if model == "compat":
        assert paths(backup) == ["/v1/chat/completions"]
        messages = backup.requests[0].body["messages"]
        assert messages[0] == {"role": "system", "content": "short"}
        assert messages[-1]["role"] == "user"


@pytest.mark.parametrize("model", ["compat", "claude", "gemini"])
def test_translated_streams(gw: GatewayProcess, model: str) -> None:
    client = gw.openai()
    with client.responses.stream(model=model, input="stream translated") as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert "stream translated" in final.output_text
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds


# -- tools and structured output ---------------------------------------------------------------


@pytest.mark.parametrize("model", ["gpt", "compat", "claude", "gemini"])
def test_function_tool_round_trip(gw: GatewayProcess, model: str) -> None:
    client = gw.openai()
    first = client.responses.create(
        model=model,
        input="weather in Paris?",
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="required",
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments)["city"]
    second = client.responses.create(
        model=model,
        previous_response_id=first.id,
        input=[
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny, 21C"}
        ],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    assert second.status == "completed"
    assert second.previous_response_id == first.id


@pytest.mark.parametrize("model", ["gpt", "compat", "claude"])
def test_streamed_function_call(gw: GatewayProcess, model: str) -> None:
    client = gw.openai()
    with client.responses.stream(
        model=model,
        input="weather in Paris?",
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="required",
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    call = next(item for item in final.output if item.type == "function_call")
    assert call.name == "get_weather" and json.loads(call.arguments)["city"]
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    assert client.responses.retrieve(final.id).output[-1].type == "function_call"


def test_tool_round_trip_reaches_a_chat_target_as_history(
    gw: GatewayProcess, backup: FakeOpenAI
) -> None:
    client = gw.openai()
    first = client.responses.create(
        model="compat", input="weather?", tools=[WEATHER_TOOL], tool_choice="required"
    )  # type: ignore[list-item]
    call = next(item for item in first.output if item.type == "function_call")
    client.responses.create(
        model="compat",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    )
    messages = backup.requests[-1].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["id"] == call.call_id
    assert messages[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "sunny"}


def test_structured_output(gw: GatewayProcess, backup: FakeOpenAI) -> None:
    backup.script(Reply(text='{"city": "Paris", "temperature": 21}'))
    client = gw.openai()
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temperature": {"type": "number"}},
        "required": ["city", "temperature"],
        "additionalProperties": False,
    }
    response = client.responses.create(
        model="compat",
        input="weather as JSON",
        text={
            "format": {"type": "json_schema", "name": "weather", "schema": schema, "strict": True}
        },
    )
    assert json.loads(response.output_text) == {"city": "Paris", "temperature": 21}
    sent = backup.requests[0].body["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["schema"] == schema
    assert response.text.format.type == "json_schema"  # type: ignore[union-attr]


# -- state -------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["gpt", "compat"])
def test_retrieve_delete_and_input_items(gw: GatewayProcess, model: str) -> None:
    client = gw.openai()
    created = client.responses.create(
        model=model,
        input=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "input_text", "text": "second"}]},
        ],
    )
    fetched = client.responses.retrieve(created.id)
    assert fetched.id == created.id and fetched.output_text == created.output_text
    items = client.responses.input_items.list(created.id)
    assert [item.role for item in items.data] == ["user", "assistant", "user"][::-1]  # type: ignore[union-attr]
    ascending = client.responses.input_items.list(created.id, order="asc", limit=2)
    assert ascending.has_more is True and len(ascending.data) == 2
    rest = client.responses.input_items.list(created.id, order="asc", after=ascending.data[-1].id)
    assert len(rest.data) == 1 and rest.has_more is False
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(created.id)


def test_previous_response_id_moves_between_targets(
    gw: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI, claude_up: FakeAnthropic
) -> None:
    client = gw.openai()
    first = client.responses.create(model="compat", input="my name is Ada")
    second = client.responses.create(
        model="claude", input="what is my name?", previous_response_id=first.id
    )
    sent = claude_up.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    # on to a native target that never saw the conversation: it is inlined as input items
    third = client.responses.create(model="gpt", input="and again?", previous_response_id=second.id)
    native = primary.requests[-1].body
    assert "previous_response_id" not in native
    texts = [
        item["content"][0]["text"] if isinstance(item["content"], list) else item["content"]
        for item in native["input"]
    ]
    assert texts[:3] == ["my name is Ada", "echo: my name is Ada", "what is my name?"]
    assert "what is my name?" in texts[3] and texts[4:] == ["and again?"]
    assert [item["role"] for item in native["input"]] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    # native after native on the same host: the host keeps the conversation itself
    client.responses.create(model="gpt", input="fourth", previous_response_id=third.id)
    assert primary.requests[-1].body["previous_response_id"] == third.id
    assert primary.requests[-1].body["input"] == "fourth"


def test_store_false_keeps_nothing(gw: GatewayProcess) -> None:
    client = gw.openai()
    response = client.responses.create(model="compat", input="forget me", store=False)
    assert response.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="compat", input="x", previous_response_id=response.id)
    assert refused.value.body["param"] == "previous_response_id"  # type: ignore[index]


def test_stream_is_stored(gw: GatewayProcess) -> None:
    client = gw.openai()
    for model in ("gpt", "compat"):
        with client.responses.stream(model=model, input="streamed and stored") as stream:
            final = stream.get_final_response()
        assert client.responses.retrieve(final.id).output_text == final.output_text


# -- failover and errors -----------------------------------------------------------------------


def test_failover_from_native_to_translated(
    gw: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    primary.script(Status(503))
    client = gw.openai()
    raw = client.responses.with_raw_response.create(model="native-then-compat", input="fail over")
    assert raw.headers["x-plugway-provider"] == "compat"
    assert raw.headers["x-plugway-attempts"] == "2"
    assert raw.parse().output_text == "echo: fail over"
    assert paths(primary) == ["/v1/responses"] and paths(backup) == ["/v1/chat/completions"]


@pytest.mark.parametrize("model", ["native-then-compat", "compat-then-native"])
def test_stream_fails_over_before_the_first_byte(
    gw: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI, model: str
) -> None:
    first = primary if model.startswith("native") else backup
    first.script(CutStream(after=0))
    client = gw.openai()
    with client.responses.stream(model=model, input="cut then fine") as stream:
        final = stream.get_final_response()
    assert final.output_text.strip() == "echo: cut then fine"
    assert len(primary.requests) == 1 and len(backup.requests) == 1


def test_stream_broken_after_first_byte_ends_in_band(
    gw: GatewayProcess, backup: FakeOpenAI
) -> None:
    backup.script(CutStream(after=3))
    response = httpx.post(
        gw.base_url + "/responses",
        json={"model": "compat", "input": "a b c d e f", "stream": True},
        timeout=10,
    )
    assert response.status_code == 200
    events = [line[7:] for line in response.text.splitlines() if line.startswith("event: ")]
    assert events[0] == "response.created" and events[-1] == "response.failed"


def test_native_in_band_failure_before_the_first_byte_fails_over(
    gw: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    primary.script(ResponseFailed(after=0))
    client = gw.openai()
    with client.responses.stream(model="native-then-compat", input="fail in band") as stream:
        final = stream.get_final_response()
    assert final.output_text.strip() == "echo: fail in band"
    assert paths(primary) == ["/v1/responses"] and paths(backup) == ["/v1/chat/completions"]


def test_native_in_band_failure_after_the_first_byte_is_forwarded(
    gw: GatewayProcess, primary: FakeOpenAI
) -> None:
    primary.script(ResponseFailed(after=3, delay=0.2, code="server_error", message="boom"))
    with httpx.stream(
        "POST",
        gw.base_url + "/responses",
        json={"model": "gpt", "input": "a b c", "stream": True},
        timeout=10,
    ) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    events = [json.loads(line[6:]) for line in lines]
    assert events[0]["type"] == "response.created"
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["message"] == "boom"
    assert sum(e["type"] == "response.failed" for e in events) == 1  # no second error added
    failed_id = events[0]["response"]["id"]
    assert httpx.get(gw.base_url + "/responses/" + failed_id).status_code == 404  # not stored


def test_builtin_tools_only_go_to_native_targets(
    gw: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    client = gw.openai()
    response = client.responses.create(
        model="compat-then-native", input="search it", tools=[{"type": "web_search"}]
    )
    assert response.status == "completed"
    assert paths(backup) == [] and paths(primary) == ["/v1/responses"]
    assert primary.requests[0].body["tools"] == [{"type": "web_search"}]
    # no target can run it: dropped when not forced, named in a header and the trace
    raw = client.responses.with_raw_response.create(
        model="claude",
        input="search",
        tools=[{"type": "web_search"}, {"type": "function", "name": "lookup"}],
    )
    assert raw.headers["x-plugway-dropped-tools"] == "web_search"
    assert raw.parse().status == "completed"
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(
            model="claude",
            input="search",
            tools=[{"type": "web_search"}],
            tool_choice={"type": "web_search"},  # forced: a clear 400
        )
    assert refused.value.code == "unsupported_tool"
    with pytest.raises(openai.BadRequestError) as required:
        client.responses.create(
            model="claude", input="search", tools=[{"type": "web_search"}], tool_choice="required"
        )
    assert required.value.code == "unsupported_tool"
    with pytest.raises(openai.BadRequestError) as strict:  # the route refuses instead
        client.responses.create(
            model="claude-strict", input="search", tools=[{"type": "web_search"}]
        )
    assert strict.value.code == "unsupported_tool"


def test_client_mistakes_are_400s_naming_the_field(gw: GatewayProcess) -> None:
    cases = [
        ({"model": "compat", "input": [{"role": "user", "content": 5}]}, "input[0].content"),
        ({"model": "compat", "input": "x", "store": "yes"}, "store"),
        ({"model": "compat"}, "input"),
        ({"input": "x"}, "model"),
    ]
    for body, param in cases:
        response = httpx.post(gw.base_url + "/responses", json=body, timeout=10)
        assert response.status_code == 400, body
        error = response.json()["error"]
        assert error["param"] == param, (body, error)
        assert error["type"] == "invalid_request_error"


def test_unknown_response_is_404(gw: GatewayProcess) -> None:
    client = gw.openai()
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_nope")
    with pytest.raises(openai.NotFoundError):
        client.responses.input_items.list("resp_nope")


# -- real tools --------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_langchain_chat_openai_with_the_responses_api(
    gw: GatewayProcess, primary: FakeOpenAI, model: str
) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        model=model,
        base_url=gw.base_url,
        api_key="sk-plugway-test",  # type: ignore[arg-type]
        use_responses_api=True,
        max_retries=0,
    )
    answer = llm.invoke("hello langchain")
    assert "hello langchain" in str(answer.text)
    assert answer.usage_metadata is not None and answer.usage_metadata["total_tokens"] > 0
    streamed = "".join(str(chunk.text) for chunk in llm.stream("stream langchain"))
    assert "stream langchain" in streamed
    if model == "gpt":
        assert {r.path for r in primary.requests} == {"/v1/responses"}


# -- which hosts serve the Responses API -------------------------------------------------------


def test_hosts_serving_responses_by_default(tmp_path: Any) -> None:
    from plugway.gateway import load_gateway

    path = tmp_path / "plugway.toml"
    tables = "".join(
        f'[providers.{kind}]\ntype = "{kind}"\napi_key = "sk-0123456789abcdef"\n'
        + ('base_url = "https://example.openai.azure.com"\n' if kind == "azure" else "")
        for kind in ("openai", "azure", "groq", "mistral", "vllm")
    )
    path.write_text(
        tables + '[[models]]\nname = "m"\ntargets = [{ provider = "openai", model = "x" }]\n'
    )
    gateway = load_gateway(path, environ={})
    serves = {name: p.settings.responses_api for name, p in gateway.providers.items()}  # type: ignore[attr-defined]
    assert serves == {"openai": True, "azure": True, "groq": False, "mistral": False, "vllm": False}


def test_azure_serves_responses_at_its_v1_path(primary: FakeOpenAI, start_gateway: Any) -> None:
    gw = start_gateway(
        f"""
[providers.az]
type = "azure"
base_url = "{primary.url}"
api_key = "azure-key-0123456789abcdef"

[[models]]
name = "gpt"
targets = [{{ provider = "az", model = "my-deployment" }}]
"""
    )
    response = gw.openai().responses.create(model="gpt", input="hi azure")
    assert response.output_text == "echo: hi azure"
    sent = primary.requests[-1]
    assert sent.path == "/openai/v1/responses" and "api-version" not in sent.query
    assert sent.body["model"] == "my-deployment" and sent.headers["api-key"].startswith("azure")


@pytest.mark.parametrize("model", ["gpt", "compat"])
def test_request_log_has_usage_and_the_decision(gw: GatewayProcess, model: str) -> None:
    client = gw.openai()
    raw = client.responses.with_raw_response.create(model=model, input="count me")
    record = gw.request_record(raw.headers["x-request-id"])
    assert record["endpoint"] == "responses" and record["status"] == 200
    assert record["usage"]["prompt_tokens"] == 11 and record["usage"]["completion_tokens"] == 7
    assert record["provider"] == ("native" if model == "gpt" else "compat")
    with client.responses.with_streaming_response.create(
        model=model, input="count the stream", stream=True
    ) as streamed:
        request_id = streamed.headers["x-request-id"]
        for _ in streamed.iter_lines():
            pass
    record = gw.request_record(request_id)
    assert record["stream"] is True and record["usage"]["completion_tokens"] == 7
    assert record["finish_reason"] == "stop"


def test_served_without_the_v1_prefix_as_chat_is(gw: GatewayProcess) -> None:
    """Some clients (and the SDK's own generated tests) use a base URL without /v1; the core
    serves chat there, and so does this door, with its resources."""
    bare = openai.OpenAI(base_url=gw.url, api_key="sk-test", max_retries=0)
    answer = bare.responses.create(model="compat", input="no prefix")
    assert bare.responses.retrieve(answer.id).id == answer.id
    assert [item.type for item in bare.responses.input_items.list(answer.id)] == ["message"]
    assert bare.responses.delete(answer.id) is None
