"""``POST /v1/completions`` (legacy text completions) through the real gateway, driven by the
openai SDK's ``client.completions.create``: passed through to an OpenAI-format target that
serves ``/v1/completions`` (FakeOpenAI), translated through chat for one that does not
(``completions_api = false``), for the built-in ``fake`` provider, an Anthropic target
(FakeAnthropic) and a Gemini one (FakeGemini). Then the translation itself, unit by unit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from plugway.errors import InvalidRequest
from plugway.formats.openai_completions import (
    ChatToCompletionStream,
    add_usage,
    chat_to_completion,
    completion_to_chat,
    legacy_logprobs,
    merge_chat_answers,
    parse_request,
    prompt_bodies,
)
from plugway.sse import EventSplitter, iter_data, sse_event
from plugway.testing import (
    CutStream,
    FakeAnthropic,
    FakeGemini,
    FakeOpenAI,
    GatewayProcess,
    Reply,
    Status,
)
from plugway.testing.pytest_plugin import UpstreamPool
from sec_kit import MASTER, assert_openai_error, create_key, keyed_config, new_db
from test_cost_and_store import rows


@pytest.fixture(scope="module")
def gemini(plugway_upstreams: UpstreamPool) -> FakeGemini:
    return plugway_upstreams.get(FakeGemini, "completions_gemini")


@pytest.fixture(autouse=True)
def _fresh(gemini: FakeGemini, claude_up: FakeAnthropic, primary: FakeOpenAI) -> None:
    gemini.reset()
    claude_up.reset()


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("completions")
    return {"store": folder / "requests.db", "audit": folder / "trail.jsonl"}


@pytest.fixture(scope="module")
def gw(
    primary: FakeOpenAI,
    backup: FakeOpenAI,
    claude_up: FakeAnthropic,
    gemini: FakeGemini,
    observed: dict[str, Path],
) -> Iterator[GatewayProcess]:
    config = f"""
[providers.native]
type = "openai"
base_url = "{primary.url}/v1"
api_key = "sk-native-secret-0123456789"
timeout = 3

[providers.chatonly]
type = "openai"
base_url = "{primary.url}/v1"
api_key = "sk-chatonly-secret-0123456789"
timeout = 3
completions_api = false

[providers.backup]
type = "openai"
base_url = "{backup.url}/v1"
api_key = "sk-backup-secret-0123456789"
timeout = 3

[providers.claude]
type = "anthropic"
base_url = "{claude_up.url}"
api_key = "sk-ant-secret-0123456789"
timeout = 3

[providers.google]
type = "gemini"
base_url = "{gemini.url}"
api_key = "AIzaSyFAKE-gemini-key-0123456789abcdef"
timeout = 3

[providers.local]
type = "fake"

[routing]
deadline = 8

[plugins]
disabled = ["health"]

[plugins.store]
path = "{observed["store"]}"
flush_interval = 0.05

[plugins.audit]
path = "{observed["audit"]}"

[[models]]
name = "instruct"
targets = [{{ provider = "native", model = "gpt-3.5-turbo-instruct", price = {{ input = 1000.0, output = 2000.0 }} }}]

[[models]]
name = "chatty"
targets = [{{ provider = "chatonly", model = "gpt-4o-mini" }}]

[[models]]
name = "claude"
targets = [{{ provider = "claude", model = "claude-sonnet-4-5" }}]

[[models]]
name = "gem"
targets = [{{ provider = "google", model = "gemini-2.5-flash" }}]

[[models]]
name = "local"
targets = [{{ provider = "local", model = "fake-1" }}]

[[models]]
name = "ha"
targets = [
  {{ provider = "native", model = "gpt-3.5-turbo-instruct" }},
  {{ provider = "backup", model = "gpt-3.5-turbo-instruct-backup" }},
]

[[models]]
name = "ha-chat"
targets = [
  {{ provider = "chatonly", model = "gpt-4o-mini" }},
  {{ provider = "backup", model = "gpt-3.5-turbo-instruct-backup" }},
]
"""
    with GatewayProcess(config) as process:
        yield process


def client(gw: GatewayProcess) -> openai.OpenAI:
    sdk: openai.OpenAI = gw.openai()
    return sdk


def sse_chunks(response: httpx.Response) -> tuple[list[dict[str, Any]], bool]:
    """The JSON events of a raw completions stream, and whether it ended with ``[DONE]``."""
    payloads = list(iter_data(response.content))
    done = bool(payloads) and payloads[-1] == b"[DONE]"
    return [orjson.loads(p) for p in payloads if p != b"[DONE]"], done


# -- native pass-through -----------------------------------------------------------------------


def test_native_pass_through(gw: GatewayProcess, primary: FakeOpenAI) -> None:
    raw = client(gw).completions.with_raw_response.create(
        model="instruct",
        prompt="hello there",
        max_tokens=20,
        temperature=0.2,
        logprobs=2,
        extra_body={"custom_field": 7},
    )
    answer = raw.parse()
    assert answer.object == "text_completion"
    assert answer.model == "gpt-3.5-turbo-instruct"
    (choice,) = answer.choices
    assert (choice.text, choice.finish_reason, choice.index) == ("echo: hello there", "stop", 0)
    assert choice.logprobs is not None
    assert choice.logprobs.tokens == ["echo: ", "hello ", "there"]
    assert choice.logprobs.text_offset == [0, 6, 12]
    assert answer.usage is not None and answer.usage.total_tokens == 9
    assert raw.headers["x-plugway-provider"] == "native"
    sent = primary.requests[-1]
    assert sent.path == "/v1/completions"
    assert sent.body == {
        "model": "gpt-3.5-turbo-instruct",
        "prompt": "hello there",
        "max_tokens": 20,
        "temperature": 0.2,
        "logprobs": 2,
        "custom_field": 7,
    }
    assert sent.headers["authorization"] == "Bearer sk-native-secret-0123456789"
    record = gw.request_record(raw.headers["x-request-id"])
    assert record["endpoint"] == "completions" and record["status"] == 200
    assert record["usage"]["total_tokens"] == 9
    # price: $1000/M input, $2000/M output; 5 in, 4 out
    assert record["cost"] == pytest.approx(0.013)


def test_store_and_audit_cover_this_door(gw: GatewayProcess, observed: dict[str, Path]) -> None:
    plain = client(gw).completions.with_raw_response.create(model="instruct", prompt="a b")
    # price: $1000/M input, $2000/M output; FakeOpenAI's completions: 5 in, 4 out
    assert float(plain.headers["x-plugway-cost"]) == pytest.approx(0.013)
    streamed = httpx.post(
        gw.base_url + "/completions",
        json={"model": "instruct", "prompt": "secret words", "stream": True},
        timeout=10,
    )
    ids = [plain.headers["x-request-id"], streamed.headers["x-request-id"]]
    stored = rows(observed["store"], ids)
    for request_id in ids:
        row = stored[request_id]
        assert (row["endpoint"], row["model"], row["status"]) == ("completions", "instruct", 200)
        assert (row["input_tokens"], row["output_tokens"]) == (5, 4)
        assert row["cost"] == pytest.approx(0.013)
    assert stored[ids[1]]["stream"] == 1
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        trail = observed["audit"].read_text() if observed["audit"].exists() else ""
        if all(request_id in trail for request_id in ids):
            break
        time.sleep(0.02)
    records = [orjson.loads(line) for line in trail.splitlines()]
    audited = [r for r in records if r.get("request_id") in ids]
    assert len(audited) == 2 and {r["endpoint"] for r in audited} == {"completions"}
    assert "secret words" not in trail


def test_native_several_prompts_n_echo_and_stop(gw: GatewayProcess, primary: FakeOpenAI) -> None:
    answer = client(gw).completions.create(
        model="instruct", prompt=["one two", "three"], n=2, echo=True, stop=["two"]
    )
    assert [c.index for c in answer.choices] == [0, 1, 2, 3]
    assert [c.text for c in answer.choices] == [
        "one twoecho: one ",
        "one twoecho: one ",
        "threeecho: three",
        "threeecho: three",
    ]
    assert primary.requests[-1].body["prompt"] == ["one two", "three"]


def test_native_token_id_prompt_passes_through(gw: GatewayProcess, primary: FakeOpenAI) -> None:
    answer = client(gw).completions.create(model="instruct", prompt=[[1, 2, 3], [4, 5]])
    assert [c.text for c in answer.choices] == ["echo: 3 tokens", "echo: 2 tokens"]
    assert primary.requests[-1].body["prompt"] == [[1, 2, 3], [4, 5]]


def test_native_stream_with_include_usage(gw: GatewayProcess, primary: FakeOpenAI) -> None:
    chunks = list(
        client(gw).completions.create(
            model="instruct",
            prompt="stream me",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "echo: stream me"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 9
    assert primary.requests[-1].path == "/v1/completions"


@pytest.mark.parametrize("model", ["instruct", "chatty"])
def test_stream_split_into_small_pieces_upstream(
    gw: GatewayProcess, primary: FakeOpenAI, model: str
) -> None:
    primary.script(Reply(split_every=3, split_offset=2))
    chunks = list(
        client(gw).completions.create(
            model=model, prompt="one two three", stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices).strip() == "echo: one two three"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_native_stream_asks_usage_but_drops_it_unless_asked(
    gw: GatewayProcess, primary: FakeOpenAI
) -> None:
    response = httpx.post(
        gw.base_url + "/completions",
        json={"model": "instruct", "prompt": "a b", "stream": True},
        timeout=10,
    )
    chunks, done = sse_chunks(response)
    assert done
    assert all(c["object"] == "text_completion" for c in chunks)
    assert not any(c.get("usage") for c in chunks)
    assert primary.requests[-1].body["stream_options"] == {"include_usage": True}
    record = gw.request_record(response.headers["x-request-id"])
    assert record["usage"]["total_tokens"] == 9  # read from the dropped chunk, for cost


# -- translated through chat -------------------------------------------------------------------


def test_translated_for_a_host_without_completions(gw: GatewayProcess, primary: FakeOpenAI) -> None:
    answer = client(gw).completions.create(
        model="chatty",
        prompt="hello there",
        max_tokens=30,
        stop="END",
        logprobs=1,
        seed=4,
        user="u-1",
        presence_penalty=0.5,
        logit_bias={"50256": -100},
    )
    assert answer.object == "text_completion" and answer.id.startswith("cmpl-")
    assert answer.model == "gpt-4o-mini"
    assert answer.choices[0].text == "echo: hello there"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.total_tokens == 18
    sent = primary.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.body == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hello there"}],
        "max_tokens": 30,
        "stop": "END",
        "logprobs": True,
        "top_logprobs": 1,
        "seed": 4,
        "user": "u-1",
        "presence_penalty": 0.5,
        "logit_bias": {"50256": -100},
    }


def test_translated_several_prompts_one_chat_call_each(
    gw: GatewayProcess, primary: FakeOpenAI
) -> None:
    answer = client(gw).completions.create(
        model="chatty", prompt=["first", "second"], n=2, echo=True
    )
    # FakeOpenAI's chat answers one choice whatever n is: prompt 1's first choice is index 2
    assert [(c.index, c.text) for c in answer.choices] == [
        (0, "firstecho: first"),
        (2, "secondecho: second"),
    ]
    assert answer.usage is not None and answer.usage.total_tokens == 36  # 2 x 18, summed
    sent = sorted((r.body["messages"][0]["content"], r.body["n"]) for r in primary.requests[-2:])
    assert sent == [("first", 2), ("second", 2)]


def test_translated_stream_of_several_prompts_with_usage(
    gw: GatewayProcess, primary: FakeOpenAI
) -> None:
    chunks = list(
        client(gw).completions.create(
            model="chatty",
            prompt=["a b", "c"],
            stream=True,
            echo=True,
            stream_options={"include_usage": True},
        )
    )
    texts: dict[int, str] = {}
    for chunk in chunks:
        assert chunk.object == "text_completion"
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + choice.text
    assert texts == {0: "a becho: a b ", 1: "cecho: c "}
    assert {c.model for c in chunks} == {"gpt-4o-mini"}  # as the non-streamed answer names it
    assert [c.usage for c in chunks if c.usage] == [chunks[-1].usage]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 36
    assert [r.path for r in primary.requests] == ["/v1/chat/completions"] * 2


def test_fake_provider(gw: GatewayProcess) -> None:
    answer = client(gw).completions.create(model="local", prompt="hi there")
    assert answer.choices[0].text.endswith("You said: hi there")
    streamed = client(gw).completions.create(model="local", prompt="hi there", stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == answer.choices[0].text


def test_anthropic_target(gw: GatewayProcess, claude_up: FakeAnthropic) -> None:
    answer = client(gw).completions.create(model="claude", prompt="bonjour", max_tokens=40)
    assert answer.choices[0].text == "echo: bonjour"
    assert answer.choices[0].finish_reason == "stop"
    sent = claude_up.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.body["messages"] == [{"role": "user", "content": "bonjour"}]
    assert sent.body["max_tokens"] == 40
    chunks = list(
        client(gw).completions.create(
            model="claude", prompt="x y", stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "echo: x y"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_anthropic_target_refuses_n(gw: GatewayProcess, claude_up: FakeAnthropic) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(gw).completions.create(model="claude", prompt="x", n=2)
    assert caught.value.body["param"] == "n"  # type: ignore[index]
    assert claude_up.requests == []


def test_gemini_target(gw: GatewayProcess, gemini: FakeGemini) -> None:
    answer = client(gw).completions.create(model="gem", prompt="hallo", max_tokens=10)
    assert answer.choices[0].text == "echo: hallo"
    sent = gemini.requests[-1]
    assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.body["contents"] == [{"role": "user", "parts": [{"text": "hallo"}]}]
    chunks = list(client(gw).completions.create(model="gem", prompt="a b c", stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "echo: a b c"
    assert gemini.requests[-1].path.endswith(":streamGenerateContent")


# -- failover and broken streams ---------------------------------------------------------------


@pytest.mark.parametrize("model", ["ha", "ha-chat"])
@pytest.mark.parametrize("stream", [False, True])
def test_failover_before_the_first_byte(
    gw: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI, model: str, stream: bool
) -> None:
    primary.script(Status(503))
    response = httpx.post(
        gw.base_url + "/completions",
        json={"model": model, "prompt": "go on", "stream": stream},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-plugway-provider"] == "backup"
    assert response.headers["x-plugway-attempts"] == "2"
    assert backup.requests[-1].path == "/v1/completions"
    if stream:
        chunks, done = sse_chunks(response)
        assert done
        assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == "echo: go on"
    else:
        assert response.json()["choices"][0]["text"] == "echo: go on"


def test_stream_broken_after_the_first_byte_ends_in_band(
    gw: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    primary.script(CutStream(after=2))
    response = httpx.post(
        gw.base_url + "/completions",
        json={"model": "ha", "prompt": "one two three four", "stream": True},
        timeout=10,
    )
    assert response.status_code == 200
    chunks, done = sse_chunks(response)
    assert not done
    assert "error" in chunks[-1] and chunks[-1]["error"]["message"]
    assert backup.requests == []


# -- bad requests ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({}, "prompt", "prompt must be"),
        ({"prompt": 5}, "prompt", "prompt must be"),
        ({"prompt": []}, "prompt", "prompt must be"),
        ({"prompt": ["a", 3]}, "prompt[1]", "prompt[1] must be a string"),
        ({"prompt": [[1, 2], [3, "x"]]}, "prompt[1]", "prompt[1] must be"),
        ({"prompt": "x", "max_tokens": "10"}, "max_tokens", "max_tokens must be an integer"),
        ({"prompt": "x", "max_tokens": True}, "max_tokens", "max_tokens must be an integer"),
        ({"prompt": "x", "temperature": "hot"}, "temperature", "temperature must be a number"),
        ({"prompt": "x", "top_p": [1]}, "top_p", "top_p must be a number"),
        ({"prompt": "x", "n": 0}, "n", "n must be at least 1"),
        ({"prompt": "x", "echo": "yes"}, "echo", "echo must be true or false"),
        ({"prompt": "x", "logprobs": 9}, "logprobs", "logprobs must be at most 5"),
        ({"prompt": "x", "logprobs": "2"}, "logprobs", "logprobs must be an integer"),
        ({"prompt": "x", "stop": ["a", 1]}, "stop[1]", "stop[1] must be a string"),
        ({"prompt": "x", "stop": 3}, "stop", "stop must be"),
        ({"prompt": "x", "suffix": 3}, "suffix", "suffix must be a string"),
        ({"prompt": "x", "seed": 1.5}, "seed", "seed must be an integer"),
        ({"prompt": "x", "user": 5}, "user", "user must be a string"),
        ({"prompt": "x", "best_of": 1, "n": 2}, "best_of", "best_of must be at least n"),
        ({"prompt": "x", "logit_bias": {"1": "x"}}, "logit_bias.1", "logit_bias.1 must be"),
        ({"prompt": "x", "logit_bias": [1]}, "logit_bias", "logit_bias must be"),
        ({"prompt": "x", "stream_options": 1}, "stream_options", "stream_options must be"),
        (
            {"prompt": "x", "stream_options": {"include_usage": "y"}},
            "stream_options.include_usage",
            "include_usage must be",
        ),
        ({"prompt": "x", "stream": "yes"}, "stream", "'stream' must be"),
    ],
)
def test_malformed_bodies_are_400s_naming_the_field(
    gw: GatewayProcess, primary: FakeOpenAI, body: dict[str, Any], param: str, words: str
) -> None:
    response = httpx.post(
        gw.base_url + "/completions", json={"model": "instruct", **body}, timeout=10
    )
    error = assert_openai_error(response, 400)
    assert error["param"] == param and words in error["message"]
    assert primary.requests == []


def test_body_that_is_not_json_is_a_400(gw: GatewayProcess, primary: FakeOpenAI) -> None:
    response = httpx.post(gw.base_url + "/completions", content=b"{nope", timeout=10)
    assert_openai_error(response, 400)
    assert primary.requests == []


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"prompt": "x", "suffix": "after"}, "suffix"),
        ({"prompt": "x", "best_of": 3}, "best_of"),
        ({"prompt": ["p"] * 17}, "prompt"),
    ],
)
def test_what_chat_cannot_express_is_refused_by_translated_targets(
    gw: GatewayProcess,
    primary: FakeOpenAI,
    claude_up: FakeAnthropic,
    body: dict[str, Any],
    param: str,
) -> None:
    for model in ("chatty", "claude"):
        response = httpx.post(
            gw.base_url + "/completions", json={"model": model, **body}, timeout=10
        )
        error = assert_openai_error(response, 400)
        assert error["param"] == param and "a native completions endpoint" in error["message"]
    assert primary.requests == [] and claude_up.requests == []
    # a host with /completions serves it as it is
    response = httpx.post(
        gw.base_url + "/completions", json={"model": "instruct", **body}, timeout=10
    )
    assert response.status_code == 200, response.text
    assert primary.requests[-1].path == "/v1/completions"


# -- keys, limits, budgets, filters ------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(primary: FakeOpenAI) -> Iterator[GatewayProcess]:
    extra = '\n[plugins.pii]\naction = "redact"\n'
    with GatewayProcess(
        keyed_config(primary, new_db(), extra), env={"PLUGWAY_MASTER_KEY": MASTER}
    ) as process:
        yield process


def completion(gw: GatewayProcess, key: str | None, **body: Any) -> httpx.Response:
    headers = {} if key is None else {"authorization": f"Bearer {key}"}
    return httpx.post(
        gw.base_url + "/completions",
        headers=headers,
        json={"model": "chat", "prompt": "hi", **body},
        timeout=10,
    )


def test_keys_are_required_at_this_door(guarded: GatewayProcess, primary: FakeOpenAI) -> None:
    assert_openai_error(completion(guarded, None), 401)
    assert primary.requests == []


def test_used_rate_limit_is_refused_without_an_upstream_call(
    guarded: GatewayProcess, primary: FakeOpenAI
) -> None:
    key = create_key(guarded, team="t", limits={"rpm": 1})["key"]
    assert completion(guarded, key).status_code == 200
    assert len(primary.requests) == 1
    error = assert_openai_error(completion(guarded, key), 429)
    assert error["code"] == "rate_limit_exceeded"
    assert len(primary.requests) == 1


def test_spent_budget_is_refused_without_an_upstream_call(
    guarded: GatewayProcess, primary: FakeOpenAI
) -> None:
    # price: $1000/M input, $2000/M output. The first call (estimate for "hi" with
    # max_tokens=10: 0.0285) fits; its real cost (5 in, 4 out: 0.013) leaves too little.
    key = create_key(guarded, team="t", limits={"budget_usd": 0.03})["key"]
    assert completion(guarded, key, max_tokens=10).status_code == 200
    assert len(primary.requests) == 1
    error = assert_openai_error(completion(guarded, key, max_tokens=10), 429)
    assert error["code"] == "budget_exceeded"
    assert len(primary.requests) == 1


def test_pii_is_redacted_before_the_upstream_sees_the_prompt(
    guarded: GatewayProcess, primary: FakeOpenAI
) -> None:
    response = completion(guarded, MASTER, prompt=["mail ana.smith@example.org now", "clean"])
    assert response.status_code == 200, response.text
    # the redaction changed the body: translated through chat, so the redaction holds
    sent = sorted(r.body["messages"][0]["content"] for r in primary.requests)
    assert sent == ["clean", "mail [EMAIL] now"]
    assert {r.path for r in primary.requests} == {"/v1/chat/completions"}
    texts = [c["text"] for c in response.json()["choices"]]
    assert texts == ["echo: mail [EMAIL] now", "echo: clean"]
    primary.reset()
    streamed = completion(guarded, MASTER, prompt="call ana.smith@example.org", stream=True)
    chunks, done = sse_chunks(streamed)
    assert done and "ana.smith" not in streamed.text
    text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
    assert text == "echo: call [EMAIL] "
    assert primary.requests[-1].body["messages"][0]["content"] == "call [EMAIL]"
    primary.reset()
    # nothing to redact in the prompt: passed through to the host's /completions, and the
    # host's answer still goes through the answer filter
    primary.script(Reply(text="write to bob@example.com"))
    passed = completion(guarded, MASTER, prompt="nothing here", logprobs=1)
    assert primary.requests[-1].path == "/v1/completions"
    (choice,) = passed.json()["choices"]
    # the redacted choice's logprobs would spell the address: they are dropped
    assert (choice["text"], choice["logprobs"]) == ("write to [EMAIL]", None)
    clean = completion(guarded, MASTER, prompt="nothing here", logprobs=1)
    assert clean.json()["choices"][0]["text"] == "echo: nothing here"
    assert clean.json()["choices"][0]["logprobs"]["tokens"] == ["echo: ", "nothing ", "here"]


# -- the translation, unit by unit -------------------------------------------------------------


def test_parse_request_builds_the_canonical_chat_body() -> None:
    parsed = parse_request(
        {
            "model": "m",
            "prompt": ["a", "b"],
            "n": 2,
            "logprobs": 0,
            "echo": True,
            "best_of": 2,
            "stream": True,
            "stream_options": {"include_usage": True},
            "frequency_penalty": 0.1,
        }
    )
    assert parsed.untranslatable is None
    assert (parsed.prompts, parsed.n, parsed.echo, parsed.include_usage) == (2, 2, True, True)
    assert parsed.chat == {
        "model": "m",
        "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
        "n": 2,
        "logprobs": True,
        "top_logprobs": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        "frequency_penalty": 0.1,
    }
    bodies = prompt_bodies(
        {**parsed.chat, "messages": [{"role": "system", "content": "S"}, *parsed.chat["messages"]]}
    )
    assert [b["messages"] for b in bodies] == [
        [{"role": "system", "content": "S"}, {"role": "user", "content": "a"}],
        [{"role": "system", "content": "S"}, {"role": "user", "content": "b"}],
    ]


FIELDS = ["prompt", "suffix", "echo", "logprobs", "max_tokens", "n", "best_of", "stop"]
FIELDS += ["logit_bias", "stream_options", "temperature", "user", "seed", "top_p", "stream"]


def test_parse_request_never_raises_anything_but_invalid_request() -> None:
    odd: list[Any] = [None, 1, "x", [], [None], {}, {"a": None}, 1.5, True, [[]], [[1], "a"]]
    for field in FIELDS:
        for value in odd:
            body = {"model": "m", "prompt": "p", field: value}
            try:
                parse_request(body)
            except InvalidRequest as exc:
                assert exc.param and exc.param.split("[")[0].split(".")[0] == field


JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 30)
    | st.floats(allow_nan=False)
    | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)


@given(st.dictionaries(st.sampled_from(sorted(FIELDS)), JSONISH, max_size=6))
@settings(max_examples=300, deadline=None)
def test_parse_request_fuzzed(body: dict[str, Any]) -> None:
    try:
        parsed = parse_request({"model": "m", **body})
    except InvalidRequest as exc:
        assert exc.param is not None
        return
    assert parsed.chat["messages"] and all(m["role"] == "user" for m in parsed.chat["messages"])


LOGPROBS = {
    "content": [
        {"token": "Hi", "logprob": -0.1, "top_logprobs": [{"token": "Hi", "logprob": -0.1}]},
        {"token": " you", "logprob": -0.5, "top_logprobs": [{"token": " you", "logprob": -0.5}]},
    ]
}


def test_chat_answer_to_text_completion() -> None:
    chat = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "up-model",
        "system_fingerprint": "fp",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi you"},
                "logprobs": LOGPROBS,
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4},
    }
    assert chat_to_completion(chat, model="alias", id="cmpl-x", echo_prompts=["Say: "]) == {
        "id": "cmpl-x",
        "object": "text_completion",
        "created": 1700000000,
        "model": "alias",
        "system_fingerprint": "fp",
        "choices": [
            {
                "text": "Say: Hi you",
                "index": 0,
                "logprobs": {
                    "tokens": ["Hi", " you"],
                    "token_logprobs": [-0.1, -0.5],
                    "top_logprobs": [{"Hi": -0.1}, {" you": -0.5}],
                    "text_offset": [5, 7],
                },
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4},
    }
    # tool calls cannot happen here, but an odd finish reason still reads as the SDK allows
    odd = {"choices": [{"index": 0, "message": {"content": None}, "finish_reason": "tool_calls"}]}
    assert chat_to_completion(odd, model="m", id="c", created=1)["choices"] == [
        {"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}
    ]


def test_merge_and_native_round_trip() -> None:
    answer = {"choices": [{"index": 0, "message": {"content": "x"}}], "usage": {"total_tokens": 3}}
    second = {
        "choices": [
            {"index": 1, "message": {"content": "z"}},
            {"index": 0, "message": {"content": "y"}},
        ],
        "usage": {"total_tokens": 4, "prompt_tokens_details": {"cached_tokens": 1}},
    }
    merged = merge_chat_answers([answer, second], n=2)
    assert [(c["index"], c["message"]["content"]) for c in merged["choices"]] == [
        (0, "x"),
        (2, "y"),
        (3, "z"),
    ]
    assert merged["usage"] == {"total_tokens": 7, "prompt_tokens_details": {"cached_tokens": 1}}
    assert add_usage(None, None) is None
    native = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 5,
        "model": "m",
        "choices": [
            {
                "text": "abc",
                "index": 0,
                "logprobs": {"tokens": ["abc"], "token_logprobs": [-1.0]},
                "finish_reason": "stop",
            }
        ],
    }
    as_chat = completion_to_chat(native)
    assert as_chat["choices"][0]["message"]["content"] == "abc"
    back = chat_to_completion(as_chat, model="m", id="cmpl-1")
    assert back["choices"] == native["choices"] and back["created"] == 5
    assert legacy_logprobs(None) is None and legacy_logprobs({"content": None}) is None


def chat_stream_bytes(
    texts: list[str], finish: str = "stop", logprobs: bool = False, usage: bool = True
) -> bytes:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "m"}
    events = [sse_event({**base, "choices": [{"index": 0, "delta": {"role": "assistant"}}]})]
    for text in texts:
        choice: dict[str, Any] = {"index": 0, "delta": {"content": text}, "finish_reason": None}
        if logprobs:
            choice["logprobs"] = {"content": [{"token": text, "logprob": -1.0, "top_logprobs": []}]}
        events.append(sse_event({**base, "choices": [choice]}))
    events.append(
        sse_event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    )
    if usage:
        events.append(sse_event({**base, "choices": [], "usage": {"total_tokens": 3}}))
    return b"".join(events) + b"data: [DONE]\n\n"


def translate(data: bytes, cuts: list[int], echo: str | None = None) -> list[dict[str, Any]]:
    """Feed ``data`` cut at ``cuts`` through an EventSplitter and the translator."""
    translator = ChatToCompletionStream(
        model="alias", id="cmpl-1", echo_prompts=None if echo is None else [echo], created=9
    )
    splitter = EventSplitter()
    out: list[dict[str, Any]] = []
    for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True):
        for payload in iter_data(splitter.feed(data[a:b])):
            if payload != b"[DONE]":
                out.extend(translator.feed(orjson.loads(payload)))
    assert splitter.pending == b""
    return out


def test_chat_stream_to_completion_chunks() -> None:
    chunks = translate(chat_stream_bytes(["Hel", "lo"], logprobs=True), [], echo="> ")
    assert chunks == [
        {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 9,
            "model": "m",
            "choices": [
                {
                    "text": "> ",
                    "index": 0,
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
        },
        {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 9,
            "model": "m",
            "choices": [
                {
                    "text": "Hel",
                    "index": 0,
                    "logprobs": {
                        "tokens": ["Hel"],
                        "token_logprobs": [-1.0],
                        "top_logprobs": [{}],
                        "text_offset": [2],
                    },
                    "finish_reason": None,
                }
            ],
        },
        {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 9,
            "model": "m",
            "choices": [
                {
                    "text": "lo",
                    "index": 0,
                    "logprobs": {
                        "tokens": ["lo"],
                        "token_logprobs": [-1.0],
                        "top_logprobs": [{}],
                        "text_offset": [5],
                    },
                    "finish_reason": None,
                }
            ],
        },
        {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 9,
            "model": "m",
            "choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}],
        },
    ]
    translator = ChatToCompletionStream(model="alias", id="cmpl-1", created=9)
    assert translator.usage_chunk({"total_tokens": 3}) == {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 9,
        "model": "alias",
        "choices": [],
        "usage": {"total_tokens": 3},
    }


def test_chat_stream_split_at_every_byte_position() -> None:
    data = chat_stream_bytes(["Hé", "llo ", "wörld"], finish="length", logprobs=True)
    whole = translate(data, [])
    assert "".join(c["choices"][0]["text"] for c in whole) == "Héllo wörld"
    assert whole[-1]["choices"][0]["finish_reason"] == "length"
    for cut in range(1, len(data)):
        assert translate(data, [cut]) == whole
    for every in (1, 7):
        assert translate(data, list(range(every, len(data), every))) == whole


def test_several_prompts_stream_indexes() -> None:
    translator = ChatToCompletionStream(model="m", id="c", n=2, created=1)
    chunk = {"choices": [{"index": 1, "delta": {"content": "x"}, "finish_reason": None}]}
    assert translator.feed(chunk, prompt=0)[0]["choices"][0]["index"] == 1
    assert translator.feed(chunk, prompt=1)[0]["choices"][0]["index"] == 3


def test_best_of_zero_is_the_default_as_openais_schema_allows(gw: GatewayProcess) -> None:
    """The published schema's minimum for best_of is 0 (found by openai-python's own generated
    API tests, which send it); it reads as unset, not as a 400."""
    answer = client(gw).completions.create(model="instruct", prompt="x", best_of=0)
    assert answer.choices[0].text
