"""The request logger batches its loguru calls without losing or merging records."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import orjson
import pytest
from loguru import logger
from plugway.context import RequestContext
from plugway.plugins import request_logger


def context(n: int) -> RequestContext:
    return RequestContext(
        endpoint="chat.completions",
        body={"model": "m", "messages": [{"role": "user", "content": "secret prompt"}]},
        headers={},
        model="m",
        request_id=f"req_{n}",
    )


@pytest.fixture
def messages() -> Iterator[list[str]]:
    seen: list[str] = []
    sink = logger.add(
        lambda m: seen.append(m.record["message"]),
        filter=lambda r: r["extra"].get("channel") == request_logger.CHANNEL,
        format="{message}",
    )
    request_logger.flush()
    seen.clear()
    yield seen
    logger.remove(sink)


def lines(messages: list[str]) -> list[dict[str, object]]:
    return [orjson.loads(line) for message in messages for line in message.split("\n")]


def test_records_of_a_burst_go_out_together_one_json_line_each(messages: list[str]) -> None:
    async def burst() -> None:
        for n in range(5):
            request_logger.post_response(context(n))
        assert messages == []  # not while the requests are being answered
        await asyncio.sleep(0.01)

    asyncio.run(burst())
    records = lines(messages)
    assert [r["request_id"] for r in records] == [f"req_{n}" for n in range(5)]
    assert len(messages) == 1
    assert "secret prompt" not in "".join(messages)


def test_outside_a_loop_a_record_is_emitted_at_once(messages: list[str]) -> None:
    request_logger.post_response(context(7))
    assert [r["request_id"] for r in lines(messages)] == ["req_7"]


def test_a_record_left_by_a_stopped_loop_goes_out_with_the_next(
    messages: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = asyncio.new_event_loop()

    def answer_then_stop() -> None:
        request_logger.post_response(context(1))
        loop.stop()  # the loop ends before the flush it scheduled runs

    loop.call_soon(answer_then_stop)
    loop.run_forever()
    loop.close()
    assert messages == []
    monkeypatch.setattr(request_logger, "_due", [-10.0])  # that flush is long overdue

    async def later() -> None:
        request_logger.post_response(context(2))
        await asyncio.sleep(0.01)

    asyncio.run(later())
    assert [r["request_id"] for r in lines(messages)] == ["req_1", "req_2"]
