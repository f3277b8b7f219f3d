"""Stream pass-through at every split: however the upstream's bytes are cut into network
chunks, the client gets the same whole events, usage is read, and [DONE] is left to the core."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import httpx
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from plugway.builtin_providers.openai import OpenAIChunkStream
from plugway.sse import EventSplitter, iter_data


def chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


EVENTS = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hel"}),
    chunk(
        {"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": ""}}]}
    ),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a": "\\n\\n"}'}}]}),
    chunk({}, "tool_calls"),
    {"id": "c1", "object": "chat.completion.chunk", "choices": [], "usage": {"total_tokens": 9}},
]
BODY = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in EVENTS) + b"data: [DONE]\n\n"


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


class Chunks(httpx.AsyncByteStream):
    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            yield part


def relay(parts: list[bytes], keep_usage: bool) -> tuple[list[bytes], OpenAIChunkStream]:
    stream = OpenAIChunkStream(httpx.Response(200, stream=Chunks(parts)), "p", keep_usage)

    async def collect() -> list[bytes]:
        return [piece async for piece in stream]

    return asyncio.run(collect()), stream


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(BODY)), max_size=12))
def test_splitter_yields_whole_events_only(cuts: list[int]) -> None:
    splitter = EventSplitter()
    pieces = [splitter.feed(part) for part in split(BODY, cuts)]
    assert b"".join(pieces) == BODY
    assert all(p == b"" or p.endswith(b"\n\n") for p in pieces)
    assert splitter.pending == b""


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(BODY)), max_size=12), st.booleans())
def test_relay_is_the_same_at_every_split(cuts: list[int], keep_usage: bool) -> None:
    pieces, stream = relay(split(BODY, cuts), keep_usage)
    events = [orjson.loads(d) for piece in pieces for d in iter_data(piece)]
    expected = EVENTS if keep_usage else EVENTS[:-1]
    assert events == expected
    assert stream.usage == {"total_tokens": 9}
    assert stream.finish_reason == "tool_calls"
    arguments = "".join(
        call["function"].get("arguments", "")
        for e in events
        for choice in e["choices"]
        for call in choice["delta"].get("tool_calls", [])
    )
    assert arguments == '{"a": "\\n\\n"}'


def test_every_single_cut_point() -> None:
    for cut in range(len(BODY) + 1):
        pieces, _ = relay([BODY[:cut], BODY[cut:]], keep_usage=True)
        assert [orjson.loads(d) for p in pieces for d in iter_data(p)] == EVENTS


def test_crlf_framed_events() -> None:
    body = BODY.replace(b"\n\n", b"\r\n\r\n")
    for cut in range(0, len(body) + 1, 7):
        pieces, stream = relay([body[:cut], body[cut:]], keep_usage=False)
        assert [orjson.loads(d) for p in pieces for d in iter_data(p)] == EVENTS[:-1]
        assert stream.usage == {"total_tokens": 9}
