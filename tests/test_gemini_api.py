"""The inbound Gemini API (``/v1beta/models/{model}:generateContent`` and friends), driven by
the ``google-genai`` SDK through the real gateway to an OpenAI-format target (FakeOpenAI), an
Anthropic one (FakeAnthropic) and a Gemini one (FakeGemini, passed through)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
from conftest import anthropic_config
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from plugway.testing import FakeAnthropic, FakeGemini, FakeOpenAI, GatewayProcess
from plugway.testing.pytest_plugin import UpstreamPool
from sec_kit import MASTER, create_key, keyed_config, new_db

GEMINI_KEY = "AIza-gemini-upstream-secret-0123456789abcdef"

WEATHER = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="weather",
            description="Weather by city",
            parameters=types.Schema(
                type=types.Type.OBJECT,
                properties={"city": types.Schema(type=types.Type.STRING)},
                required=["city"],
            ),
        )
    ]
)
FORCED = types.ToolConfig(
    function_calling_config=types.FunctionCallingConfig(mode=types.FunctionCallingConfigMode.ANY)
)


@pytest.fixture(scope="module")
def gem(plugway_upstreams: UpstreamPool) -> FakeGemini:
    return plugway_upstreams.get(FakeGemini, "gemini_api")


@pytest.fixture(scope="module")
def gw(plugway_upstreams: UpstreamPool, gem: FakeGemini) -> Iterator[GatewayProcess]:
    primary = plugway_upstreams.get(FakeOpenAI, "primary")
    claude_up = plugway_upstreams.get(FakeAnthropic, "claude_up")
    claude_backup = plugway_upstreams.get(FakeAnthropic, "claude_backup")
    config = (
        anthropic_config(claude_up, claude_backup, primary)
        + f"""
[providers.gem]
type = "gemini"
base_url = "{gem.url}"
api_key = "{GEMINI_KEY}"
timeout = 3

[[models]]
name = "gemini-flash"
targets = [{{ provider = "gem", model = "gemini-2.5-flash" }}]
"""
    )
    with GatewayProcess(config) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def _fresh(gem: FakeGemini, plugway_upstreams: UpstreamPool) -> None:
    gem.reset()
    plugway_upstreams.get(FakeOpenAI, "primary").reset()
    plugway_upstreams.get(FakeAnthropic, "claude_up").reset()


_CLIENTS: list[genai.Client] = []


def client(gw: GatewayProcess, key: str = "client-key") -> genai.Client:
    """A google-genai client on the gateway (kept alive: the SDK closes its HTTP client when
    the Client object is collected, even while ``client.models`` is in use)."""
    sdk = genai.Client(
        api_key=key, http_options=types.HttpOptions(base_url=gw.url, api_version="v1beta")
    )
    _CLIENTS.append(sdk)
    return sdk


TARGETS = ["gpt", "claude", "gemini-flash"]


@pytest.mark.parametrize("model", TARGETS)
def test_generate_content_to_every_target(gw: GatewayProcess, model: str) -> None:
    answer = client(gw).models.generate_content(
        model=model,
        contents="hello there",
        config=types.GenerateContentConfig(
            system_instruction="Be terse.", temperature=0.5, max_output_tokens=50, top_k=40
        ),
    )
    assert answer.text is not None and "hello there" in answer.text
    assert answer.candidates and answer.candidates[0].finish_reason == types.FinishReason.STOP
    usage = answer.usage_metadata
    assert usage is not None and usage.prompt_token_count and usage.candidates_token_count


@pytest.mark.parametrize("model", TARGETS)
def test_stream_generate_content_to_every_target(gw: GatewayProcess, model: str) -> None:
    chunks = list(
        client(gw).models.generate_content_stream(model=model, contents="stream these words")
    )
    text = "".join(chunk.text or "" for chunk in chunks)
    assert "stream these words" in text
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata is not None and last.usage_metadata.total_token_count


def test_the_sdk_with_only_a_base_url_uses_v1(gw: GatewayProcess) -> None:
    sdk = genai.Client(api_key="client-key", http_options=types.HttpOptions(base_url=gw.url))
    _CLIENTS.append(sdk)
    assert sdk.models.generate_content(model="gpt", contents="v1 too").text == "echo: v1 too"
    assert httpx.get(f"{gw.url}/v1/models").json()["object"] == "list"  # OpenAI's, as before


def test_the_json_array_stream_without_alt_sse(gw: GatewayProcess) -> None:
    for model in ("gpt", "gemini-flash"):
        response = httpx.post(
            f"{gw.url}/v1beta/models/{model}:streamGenerateContent",
            json={"contents": [{"role": "user", "parts": [{"text": "array please"}]}]},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        events = orjson.loads(response.content)
        assert isinstance(events, list) and len(events) >= 2
        text = "".join(
            p.get("text", "") for e in events for p in e["candidates"][0]["content"]["parts"]
        )
        assert "array please" in text
        assert events[-1]["candidates"][0]["finishReason"] == "STOP"


def test_gemini_target_gets_the_clients_body_as_it_is(gw: GatewayProcess, gem: FakeGemini) -> None:
    client(gw).models.generate_content(
        model="gemini-flash",
        contents="pass me through",
        config=types.GenerateContentConfig(
            top_k=40,
            safety_settings=[
                types.SafetySetting(
                    category=types.HarmCategory.HARM_CATEGORY_HARASSMENT,
                    threshold=types.HarmBlockThreshold.BLOCK_NONE,
                )
            ],
        ),
    )
    (sent,) = gem.requests
    assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.body["generationConfig"]["topK"] == 40
    assert sent.body["safetySettings"][0]["threshold"] == "BLOCK_NONE"
    assert sent.headers["x-goog-api-key"] == GEMINI_KEY  # the provider's key, not the client's


@pytest.mark.parametrize("model", TARGETS)
def test_function_call_round_trip(
    gw: GatewayProcess, gem: FakeGemini, plugway_upstreams: UpstreamPool, model: str
) -> None:
    sdk = client(gw)
    question = types.Content(role="user", parts=[types.Part.from_text(text="weather in Paris?")])
    first = sdk.models.generate_content(
        model=model,
        contents=[question],
        config=types.GenerateContentConfig(
            tools=[WEATHER],
            tool_config=FORCED,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        ),
    )
    (call,) = first.function_calls or []
    assert call.name == "weather" and call.args == {"city": "Paris"}
    assert first.candidates and first.candidates[0].content
    reply = types.Part.from_function_response(name="weather", response={"temp_c": 21})
    if call.id:
        reply.function_response.id = call.id  # type: ignore[union-attr]
    second = sdk.models.generate_content(
        model=model,
        contents=[
            question,
            first.candidates[0].content,
            types.Content(role="user", parts=[reply]),
        ],
        config=types.GenerateContentConfig(
            tools=[WEATHER],
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        ),
    )
    assert second.text
    if model == "gpt":
        sent = plugway_upstreams.get(FakeOpenAI, "primary").requests[-1].body
        assistant, tool = sent["messages"][-2:]
        assert tool == {
            "role": "tool",
            "tool_call_id": assistant["tool_calls"][0]["id"],
            "content": '{"temp_c":21}',
        }
    elif model == "claude":
        sent = plugway_upstreams.get(FakeAnthropic, "claude_up").requests[-1].body
        result = sent["messages"][-1]["content"][0]
        assert result["type"] == "tool_result"
        assert result["tool_use_id"] == sent["messages"][-2]["content"][0]["id"]
    else:
        # passed through: the model turn keeps its thoughtSignature for the next turn
        sent = gem.requests[-1].body
        assert sent["contents"][1]["parts"][0]["thoughtSignature"] == "c2lnbmF0dXJl"
        assert sent["contents"][2]["parts"][0]["functionResponse"]["response"] == {"temp_c": 21}


def test_streamed_function_call_from_a_chat_target(gw: GatewayProcess) -> None:
    chunks = list(
        client(gw).models.generate_content_stream(
            model="gpt",
            contents="weather?",
            config=types.GenerateContentConfig(tools=[WEATHER], tool_config=FORCED),
        )
    )
    calls = [call for chunk in chunks for call in chunk.function_calls or []]
    assert [(c.name, c.args) for c in calls] == [("weather", {"city": "Paris"})]


def test_inline_data_reaches_a_chat_target(
    gw: GatewayProcess, plugway_upstreams: UpstreamPool
) -> None:
    png = b"\x89PNG\r\n\x1a\nfake"
    client(gw).models.generate_content(
        model="gpt",
        contents=[
            types.Content(
                role="user",
                parts=[
                    types.Part.from_text(text="what is this?"),
                    types.Part.from_bytes(data=png, mime_type="image/png"),
                ],
            )
        ],
    )
    sent = plugway_upstreams.get(FakeOpenAI, "primary").requests[-1].body
    image = sent["messages"][-1]["content"][1]
    assert image["type"] == "image_url"
    assert image["image_url"]["url"].startswith("data:image/png;base64,")


def test_count_tokens_native_and_estimated(gw: GatewayProcess, gem: FakeGemini) -> None:
    sdk = client(gw)
    native = sdk.models.count_tokens(model="gemini-flash", contents="one two three four")
    assert native.total_tokens == 4
    assert gem.requests[-1].path.endswith(":countTokens")
    wrapped = httpx.post(
        f"{gw.url}/v1beta/models/gemini-flash:countTokens",
        json={
            "generateContentRequest": {
                "model": "models/gemini-flash",
                "contents": [{"role": "user", "parts": [{"text": "five words are right here"}]}],
            }
        },
    )
    assert wrapped.status_code == 200 and wrapped.json() == {"totalTokens": 5}
    assert gem.requests[-1].body["generateContentRequest"]["model"] == "models/gemini-2.5-flash"
    estimated = sdk.models.count_tokens(model="gpt", contents="one two three four")
    assert estimated.total_tokens and estimated.total_tokens > 0


def test_models_list_and_get(gw: GatewayProcess) -> None:
    sdk = client(gw)
    names = [m.name for m in sdk.models.list()]
    assert "models/gpt" in names and "models/gemini-flash" in names
    assert sdk.models.get(model="claude").name == "models/claude"
    with pytest.raises(genai_errors.ClientError) as caught:
        sdk.models.get(model="no-such-model")
    assert caught.value.code == 404


def test_errors_come_in_googles_shape(gw: GatewayProcess) -> None:
    bad = httpx.post(
        f"{gw.url}/v1beta/models/gpt:generateContent",
        json={"contents": [{"role": "user", "parts": [{"text": 3}]}]},
    )
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and error["code"] == 400
    assert error["message"].startswith("contents[0].parts[0].text")
    unknown = httpx.post(f"{gw.url}/v1beta/models/nope:generateContent", json={"contents": []})
    assert unknown.status_code in (400, 404) and "error" in unknown.json()
    missing = httpx.post(
        f"{gw.url}/v1beta/models/nope:generateContent",
        json={"contents": [{"parts": [{"text": "x"}]}]},
    )
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"
    method = httpx.post(f"{gw.url}/v1beta/models/gpt:predict", json={})
    assert method.status_code == 404 and method.json()["error"]["status"] == "NOT_FOUND"
    # a built-in Gemini tool has no chat form: refused for a chat target, passed to Gemini
    search = {
        "contents": [{"role": "user", "parts": [{"text": "x"}]}],
        "tools": [{"googleSearch": {}}],
    }
    refused = httpx.post(f"{gw.url}/v1beta/models/gpt:generateContent", json=search)
    assert refused.status_code == 400
    assert refused.json()["error"]["message"].startswith("tools[0].googleSearch")
    passed = httpx.post(f"{gw.url}/v1beta/models/gemini-flash:generateContent", json=search)
    assert passed.status_code == 200, passed.text


# -- keys, budgets ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed(plugway_upstreams: UpstreamPool) -> Iterator[GatewayProcess]:
    primary = plugway_upstreams.get(FakeOpenAI, "primary")
    with GatewayProcess(
        keyed_config(primary, new_db()), env={"PLUGWAY_MASTER_KEY": MASTER}
    ) as gateway:
        yield gateway


def test_virtual_key_in_the_header_and_in_the_query(keyed: GatewayProcess) -> None:
    key = create_key(keyed, team="gem")["key"]
    answer = client(keyed, key).models.generate_content(model="chat", contents="keyed")
    assert answer.text == "echo: keyed"
    body = {"contents": [{"role": "user", "parts": [{"text": "by query"}]}]}
    url = f"{keyed.url}/v1beta/models/chat:generateContent"
    by_query = httpx.post(url, params={"key": key}, json=body)
    assert by_query.status_code == 200, by_query.text
    listed = httpx.get(f"{keyed.url}/v1beta/models", params={"key": key})
    assert listed.status_code == 200 and listed.json()["models"]
    refused = httpx.post(url, json=body)
    assert refused.status_code == 401 and refused.json()["error"]["status"] == "UNAUTHENTICATED"
    wrong = httpx.post(url, params={"key": "not-a-key-0123456789"}, json=body)
    assert wrong.status_code == 401
    assert httpx.get(f"{keyed.url}/v1beta/models").status_code == 401
    time.sleep(0.5)
    assert key not in keyed.output(), "a key= query value reached the gateway's log"


def test_spent_budget_is_refused_at_this_door_with_no_upstream_call(
    keyed: GatewayProcess, plugway_upstreams: UpstreamPool
) -> None:
    primary = plugway_upstreams.get(FakeOpenAI, "primary")
    # price: $1000/M input, $2000/M output; one call with 10 output tokens costs ~0.027
    key = create_key(keyed, team="gem-budget", limits={"budget_usd": 0.03})["key"]
    config = types.GenerateContentConfig(max_output_tokens=10)
    sdk = client(keyed, key)
    sdk.models.generate_content(model="chat", contents="hi", config=config)
    before = len(primary.requests)
    with pytest.raises(genai_errors.ClientError) as caught:
        sdk.models.generate_content(model="chat", contents="hi", config=config)
    assert caught.value.code == 429
    assert caught.value.status == "RESOURCE_EXHAUSTED"
    assert len(primary.requests) == before, "a refused request reached the upstream"
    streamed = httpx.post(
        f"{keyed.url}/v1beta/models/chat:streamGenerateContent",
        params={"alt": "sse", "key": key},
        json={
            "contents": [{"parts": [{"text": "hi"}]}],
            "generationConfig": {"maxOutputTokens": 10},
        },
    )
    assert streamed.status_code == 429
    assert len(primary.requests) == before


def test_request_log_and_cost_as_for_chat(gw: GatewayProcess) -> None:
    response = httpx.post(
        f"{gw.url}/v1beta/models/gpt:generateContent",
        json={"contents": [{"parts": [{"text": "log me"}]}]},
    )
    assert response.status_code == 200
    record = gw.request_record(response.headers["x-request-id"])
    assert record["endpoint"] == "gemini.generateContent"
    assert record["status"] == 200
    assert record["usage"]["prompt_tokens"] > 0
