"""Failover as a client sees it: each failure class moves to the next target, client errors do
not, streams fail over only before their first byte, and exhausted routes say so."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from plugway.testing import CutStream, FakeOpenAI, GatewayProcess, Hang, Reply, Reset, Status

MESSAGES = [{"role": "user", "content": "ping"}]


def client(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="k", max_retries=0)


@pytest.mark.parametrize(
    "failure",
    [
        Status(500),
        Status(502),
        Status(503),
        Status(408),
        Status(429, message="slow down"),
        Status(200, body=b"<html>oops</html>", content_type="text/html"),
        Status(503, body=b"backend timeout", content_type="text/plain"),
        Reset(),
        Reply(delay=3),  # longer than the provider's 2 s attempt timeout
    ],
    ids=["500", "502", "503", "408", "429", "html-200", "text-503", "reset", "timeout"],
)
def test_failover_on_each_failure_class(
    gateway: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI, failure: object
) -> None:
    primary.script(failure)  # type: ignore[arg-type]
    raw = client(gateway).chat.completions.with_raw_response.create(model="chat", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == "echo: ping"
    assert raw.headers["x-plugway-provider"] == "backup"
    assert raw.headers["x-plugway-model"] == "gpt-4o-mini-backup"
    assert raw.headers["x-plugway-attempts"] == "2"
    assert len(primary.requests) == 1 and len(backup.requests) == 1
    record = gateway.request_record(raw.headers["x-request-id"])
    assert [a["target"] for a in record["attempts"]] == [
        "primary/gpt-4o-mini",
        "backup/gpt-4o-mini-backup",
    ]
    assert [a["outcome"] for a in record["attempts"]] == ["error", "ok"]


def test_connection_refused_fails_over(start_gateway: object, backup: FakeOpenAI) -> None:
    from plugway.testing import free_port

    dead = free_port()  # nothing listens there
    gw = start_gateway(f"""
[providers.dead]
type = "openai"
base_url = "http://127.0.0.1:{dead}/v1"
api_key = "sk-dead"
[providers.backup]
type = "openai"
base_url = "{backup.url}/v1"
api_key = "sk-b"
[[models]]
name = "chat"
targets = [{{ provider = "dead", model = "m" }}, {{ provider = "backup", model = "m2" }}]
""")  # type: ignore[operator]
    raw = client(gw).chat.completions.with_raw_response.create(model="chat", messages=MESSAGES)
    assert raw.headers["x-plugway-provider"] == "backup"
    record = gw.request_record(raw.headers["x-request-id"])
    assert record["attempts"][0]["error"] == "UpstreamConnectError"


def test_retry_after_is_honoured_on_the_last_target(
    gateway: GatewayProcess, primary: FakeOpenAI
) -> None:
    primary.script(Status(429, retry_after=0.4))
    started = time.monotonic()
    raw = client(gateway).chat.completions.with_raw_response.create(model="solo", messages=MESSAGES)
    waited = time.monotonic() - started
    assert raw.parse().choices[0].message.content == "echo: ping"
    assert raw.headers["x-plugway-attempts"] == "2"
    assert len(primary.requests) == 2
    # the gateway never retries sooner than the upstream asked
    assert waited >= 0.4


def test_retry_after_beyond_the_deadline_is_not_waited_for(
    gateway: GatewayProcess, primary: FakeOpenAI
) -> None:
    primary.script(Status(429, retry_after=30))  # the route's deadline is 6 s
    with pytest.raises(openai.APIStatusError) as caught:
        client(gateway).chat.completions.create(model="solo", messages=MESSAGES)
    assert caught.value.status_code == 503
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert caught.value.response.headers["retry-after"] == "30"
    assert len(primary.requests) == 1


@pytest.mark.parametrize(
    ("primary_failure", "backup_failure", "status", "code"),
    [
        (Status(500), Status(503), 502, "upstream_failed"),
        (Status(503), Reply(delay=3), 504, "upstream_timeout"),
        (Status(500), Status(429), 503, "upstream_rate_limited"),
    ],
)
def test_exhausted_route_answers_with_should_retry_false(
    gateway: GatewayProcess,
    primary: FakeOpenAI,
    backup: FakeOpenAI,
    primary_failure: object,
    backup_failure: object,
    status: int,
    code: str,
) -> None:
    primary.script(primary_failure)  # type: ignore[arg-type]
    backup.script(backup_failure)  # type: ignore[arg-type]
    response = httpx.post(
        gateway.base_url + "/chat/completions",
        json={"model": "chat", "messages": MESSAGES},
        timeout=20,
    )
    assert response.status_code == status
    assert response.headers["x-should-retry"] == "false"
    assert response.headers["x-plugway-attempts"] == "2"
    error = response.json()["error"]
    assert error["code"] == code
    assert (
        "primary/gpt-4o-mini" in error["message"]
        and "backup/gpt-4o-mini-backup" in error["message"]
    )
    assert "sk-" not in response.text


def test_sdk_does_not_multiply_attempts_when_route_is_exhausted(
    gateway: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    primary.script(Status(500), Status(500), Status(500))
    backup.script(Status(500), Status(500), Status(500))
    sdk = openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=2)
    with pytest.raises(openai.InternalServerError):
        sdk.chat.completions.create(model="chat", messages=MESSAGES)
    assert len(primary.requests) == 1 and len(backup.requests) == 1


def test_stream_fails_over_before_first_byte(
    gateway: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    primary.script(Status(503))
    stream = client(gateway).chat.completions.create(model="chat", messages=MESSAGES, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "echo: ping "
    assert stream.response.headers["x-plugway-provider"] == "backup"


def test_stream_cut_before_its_first_event_still_fails_over(
    gateway: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    primary.script(CutStream(after=0))
    stream = client(gateway).chat.completions.create(model="chat", messages=MESSAGES, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "echo: ping "
    assert stream.response.headers["x-plugway-attempts"] == "2"


def test_stream_broken_after_first_byte_ends_with_in_band_error(
    gateway: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    primary.script(CutStream(after=2))
    with httpx.stream(
        "POST",
        gateway.base_url + "/chat/completions",
        json={"model": "chat", "messages": MESSAGES, "stream": True},
    ) as response:
        assert response.status_code == 200
        body = response.read().decode()
    events = [e for e in body.split("\n\n") if e]
    assert events[0].startswith("data: {") and '"role":"assistant"' in events[0]
    assert '"error"' in events[-1] and "upstream_stream_broken" in events[-1]
    assert "[DONE]" not in body
    assert backup.requests == []  # never spliced onto another provider mid-stream
    # and the SDK raises on it
    primary.script(CutStream(after=2))
    stream = client(gateway).chat.completions.create(model="chat", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError, match=r"broke|ended before"):
        for _ in stream:
            pass


def test_hanging_target_times_out_and_fails_over(
    gateway: GatewayProcess, primary: FakeOpenAI, backup: FakeOpenAI
) -> None:
    primary.script(Hang())
    raw = client(gateway).chat.completions.with_raw_response.create(model="chat", messages=MESSAGES)
    assert raw.headers["x-plugway-provider"] == "backup"
    assert primary.wait_for(lambda: primary.disconnects == 1)
    record = gateway.request_record(raw.headers["x-request-id"])
    assert record["attempts"][0]["error"] == "UpstreamTimeout"
