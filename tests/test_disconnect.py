"""A client that goes away cancels its upstream call at once: the upstream sees the
disconnect, the request is logged as 499, and no connection is left behind."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from plugway.testing import FakeOpenAI, GatewayProcess, Hang, Reply


@pytest.fixture(scope="module")
def slow() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def gw(slow: FakeOpenAI) -> Iterator[GatewayProcess]:
    config = f"""
[providers.slow]
type = "openai"
base_url = "{slow.url}/v1"
api_key = "sk-slow"
timeout = 30

[[models]]
name = "slow"
targets = [{{ provider = "slow", model = "m" }}]
"""
    with GatewayProcess(config) as process:
        yield process


@pytest.fixture(autouse=True)
def _reset(slow: FakeOpenAI) -> None:
    slow.reset()


BODY = {"model": "slow", "messages": [{"role": "user", "content": " ".join(["word"] * 40)}]}


def _records_with(gw: GatewayProcess, status: int, count: int) -> list[dict]:  # type: ignore[type-arg]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [r for r in gw.request_logs() if r["status"] == status]
        if len(found) >= count:
            return found
        time.sleep(0.02)
    return [r for r in gw.request_logs() if r["status"] == status]


def test_disconnect_while_waiting_for_a_non_streamed_answer(
    gw: GatewayProcess, slow: FakeOpenAI
) -> None:
    slow.script(Hang())
    before = len(_records_with(gw, 499, 0))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gw.base_url + "/chat/completions", json=BODY, timeout=0.5)
    # the attempt timeout is 30 s: only the client's disconnect can end the upstream call now
    assert slow.wait_for(lambda: slow.disconnects == 1, timeout=10)
    record = _records_with(gw, 499, before + 1)[-1]
    assert record["attempts"][0]["outcome"] == "cancelled"


def test_disconnect_before_the_first_streamed_byte(gw: GatewayProcess, slow: FakeOpenAI) -> None:
    slow.script(Hang())
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gw.base_url + "/chat/completions", json={**BODY, "stream": True}, timeout=0.5)
    assert slow.wait_for(lambda: slow.disconnects == 1, timeout=10)


def test_disconnect_mid_stream_cancels_upstream(gw: GatewayProcess, slow: FakeOpenAI) -> None:
    slow.script(Reply(chunk_delay=0.1))
    before = len(_records_with(gw, 499, 0))
    with (
        httpx.Client() as client,
        client.stream(
            "POST", gw.base_url + "/chat/completions", json={**BODY, "stream": True}
        ) as r,
    ):
        lines = r.iter_lines()
        assert next(lines).startswith("data: ")
    # 40 words at 0.1 s each would take 4 s; the upstream is told at once instead
    assert slow.wait_for(lambda: slow.disconnects == 1, timeout=10)
    assert slow.completed == 0
    record = _records_with(gw, 499, before + 1)[-1]
    assert record["stream"] is True


def test_many_cancelled_streams_leave_no_connection_open(
    gw: GatewayProcess, slow: FakeOpenAI
) -> None:
    for _ in range(10):
        slow.script(Reply(chunk_delay=0.1))
        with (
            httpx.Client() as client,
            client.stream(
                "POST", gw.base_url + "/chat/completions", json={**BODY, "stream": True}
            ) as r,
        ):
            next(r.iter_lines())
    assert slow.wait_for(lambda: slow.disconnects == 10, timeout=10)
    assert slow.wait_for(lambda: slow.open_connections() == 0, timeout=10)
    # and the gateway still serves
    ok = httpx.post(gw.base_url + "/chat/completions", json=BODY, timeout=10)
    assert ok.status_code == 200
