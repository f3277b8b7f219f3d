"""The OpenAI-compatible surface, driven by the openai SDK and httpx through the real gateway
to a fake OpenAI upstream."""

from __future__ import annotations

import asyncio
import base64
import struct

import httpx
import openai
import pytest
from plugway.testing import FakeOpenAI, GatewayProcess, Status


def client(gw: GatewayProcess, **kwargs: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="client-key", max_retries=0, **kwargs)  # type: ignore[arg-type]


def test_chat_non_streamed(gateway: GatewayProcess, primary: FakeOpenAI) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "hello there"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello there"
    assert completion.usage is not None and completion.usage.total_tokens == 18
    assert completion.usage.prompt_tokens_details.cached_tokens == 3  # type: ignore[union-attr]
    assert raw.headers["x-plugway-provider"] == "primary"
    assert raw.headers["x-plugway-model"] == "gpt-4o-mini"
    assert raw.headers["x-plugway-attempts"] == "1"
    assert raw.headers["x-request-id"].startswith("req_")
    sent = primary.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.body["model"] == "gpt-4o-mini"
    assert sent.headers["authorization"] == "Bearer sk-primary-secret-0123456789"


def test_unknown_fields_pass_through_untouched(
    gateway: GatewayProcess, primary: FakeOpenAI
) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "w",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    extra = {
        "brand_new_param": {"nested": [1, 2.5, None, "x"]},
        "logprobs": True,
        "top_logprobs": 2,
    }
    completion = client(gateway).chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "weather?"}],
        tools=tools,  # type: ignore[arg-type]
        tool_choice="required",
        response_format={"type": "json_object"},
        seed=7,
        extra_body=extra,
    )
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "weather"  # type: ignore[union-attr]
    assert call.function.arguments == '{"city": "Paris"}'  # type: ignore[union-attr]
    sent = primary.requests[-1].body
    assert sent["tools"] == tools
    assert sent["tool_choice"] == "required"
    assert sent["response_format"] == {"type": "json_object"}
    assert sent["seed"] == 7
    for key, value in extra.items():
        assert sent[key] == value


def test_client_credentials_are_not_forwarded(gateway: GatewayProcess, primary: FakeOpenAI) -> None:
    httpx.post(
        gateway.base_url + "/chat/completions",
        headers={"authorization": "Bearer client-secret", "x-api-key": "client-x"},
        json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
    )
    headers = primary.requests[-1].headers
    assert headers["authorization"] == "Bearer sk-primary-secret-0123456789"
    assert "x-api-key" not in headers
    assert "client-secret" not in str(headers)


def test_stream_with_usage(gateway: GatewayProcess, primary: FakeOpenAI) -> None:
    stream = client(gateway).chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three "
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 18
    assert len({c.id for c in chunks}) == 1


def test_stream_without_usage_drops_the_usage_chunk_but_logs_usage(
    gateway: GatewayProcess, primary: FakeOpenAI
) -> None:
    stream = client(gateway).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "quiet"}], stream=True
    )
    chunks = list(stream)
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    # the gateway asked the upstream for usage anyway, so it can account for it
    assert primary.requests[-1].body["stream_options"] == {"include_usage": True}
    request_id = stream.response.headers["x-request-id"]
    record = gateway.request_record(request_id)
    assert record["usage"]["total_tokens"] == 18
    assert record["ttft_ms"] is not None and record["finish_reason"] == "stop"


def test_streamed_tool_call_arrives_whole(gateway: GatewayProcess) -> None:
    stream = client(gateway).chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "weather?"}],
        stream=True,
        tools=[{"type": "function", "function": {"name": "weather", "parameters": {}}}],
        tool_choice="required",
    )
    arguments = ""
    for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            arguments += call.function.arguments or ""  # type: ignore[union-attr]
    assert arguments == '{"city": "Paris"}'


def test_async_client_stream_and_non_stream(gateway: GatewayProcess) -> None:
    async def run() -> tuple[str, str]:
        async with openai.AsyncOpenAI(base_url=gateway.base_url, api_key="k", max_retries=0) as c:
            done = await c.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "a b"}]
            )
            stream = await c.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "c d"}], stream=True
            )
            text = "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])
            return done.choices[0].message.content or "", text

    done, streamed = asyncio.run(run())
    assert done == "echo: a b"
    assert streamed == "echo: c d "


def test_models_lists_route_names(gateway: GatewayProcess) -> None:
    ids = [m.id for m in client(gateway).models.list()]
    assert ids[:3] == ["chat", "solo", "embed"]
    assert "primary/gpt-4o-mini" in ids
    assert client(gateway).models.retrieve("chat").owned_by == "primary"
    with pytest.raises(openai.NotFoundError):
        client(gateway).models.retrieve("missing-model")


def test_direct_provider_addressing(gateway: GatewayProcess, primary: FakeOpenAI) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="primary/gpt-4.1-nano", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-plugway-model"] == "gpt-4.1-nano"
    assert primary.requests[-1].body["model"] == "gpt-4.1-nano"


def test_embeddings_base64_default(gateway: GatewayProcess, primary: FakeOpenAI) -> None:
    result = client(gateway).embeddings.create(model="embed", input=["abc", "hello"])
    assert primary.requests[-1].body["encoding_format"] == "base64"
    assert [d.embedding for d in result.data] == [[3.0, 0.0, 0.5], [5.0, 1.0, 0.5]]
    floats = httpx.post(
        gateway.base_url + "/embeddings",
        json={"model": "embed", "input": "abcd", "encoding_format": "float"},
    ).json()
    assert floats["data"][0]["embedding"] == [4.0, 0.0, 0.5]


def test_fake_provider_embeddings_base64_round_trip(start_gateway: object) -> None:
    gw = start_gateway()  # type: ignore[operator]
    c = client(gw)
    as_floats = httpx.post(
        gw.base_url + "/embeddings",
        json={"model": "fake-embedding", "input": "same text", "encoding_format": "float"},
    ).json()
    decoded = c.embeddings.create(model="fake-embedding", input="same text")
    raw = httpx.post(
        gw.base_url + "/embeddings",
        json={"model": "fake-embedding", "input": "same text", "encoding_format": "base64"},
    ).json()
    unpacked = struct.unpack("<16f", base64.b64decode(raw["data"][0]["embedding"]))
    expected = as_floats["data"][0]["embedding"]
    assert decoded.data[0].embedding == pytest.approx(expected, abs=1e-6)
    assert list(unpacked) == pytest.approx(expected, abs=1e-6)


def test_health_and_ready(gateway: GatewayProcess) -> None:
    assert httpx.get(gateway.url + "/health").json() == {"status": "ok"}
    ready = httpx.get(gateway.url + "/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (403, openai.PermissionDeniedError),
        (404, openai.NotFoundError),
        (422, openai.UnprocessableEntityError),
    ],
)
def test_upstream_client_errors_are_returned_not_retried(
    gateway: GatewayProcess,
    primary: FakeOpenAI,
    backup: FakeOpenAI,
    status: int,
    exception: type[openai.APIStatusError],
) -> None:
    primary.script(Status(status, message="upstream says no", code="some_code"))
    with pytest.raises(exception) as caught:
        client(gateway).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.status_code == status
    assert len(primary.requests) == 1 and backup.requests == []
    body = caught.value.body
    assert isinstance(body, dict) and set(body) == {"message", "type", "param", "code"}
    if status in (401, 403):  # the provider's words about our key are not passed on
        assert "upstream says no" not in body["message"]
        assert "providers.primary.api_key" in body["message"]
    else:
        assert body["message"] == "upstream says no" and body["code"] == "some_code"
    assert caught.value.request_id is not None


@pytest.mark.parametrize(
    ("payload", "param", "fragment"),
    [
        (b"{not json", None, "not valid JSON"),
        (b"[1, 2]", None, "must be a JSON object"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model", "'model' is required"),
        (b'{"model": "chat"}', "messages", "messages must be a non-empty array"),
        (b'{"model": "chat", "messages": []}', "messages", "non-empty"),
        (
            b'{"model": "chat", "messages": [{"role":"user","content":"x"}], "stream": "yes"}',
            "stream",
            "'stream' must be true or false",
        ),
        (b"", None, "body is empty"),
        (b'{"model": NaN, "messages": []}', None, "not valid JSON"),
    ],
)
def test_client_mistakes_get_400_in_openai_shape(
    gateway: GatewayProcess, payload: bytes, param: str | None, fragment: str
) -> None:
    response = httpx.post(
        gateway.base_url + "/chat/completions",
        content=payload,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert fragment in error["message"]
    assert response.headers["x-request-id"].startswith("req_")


def test_unknown_model_and_route_and_method(gateway: GatewayProcess) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client(gateway).chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.code == "model_not_found"
    missing = httpx.get(gateway.url + "/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = httpx.get(gateway.base_url + "/embeddings")  # (GET chat/completions lists)
    assert wrong.status_code == 405 and wrong.json()["error"]["type"] == "invalid_request_error"
