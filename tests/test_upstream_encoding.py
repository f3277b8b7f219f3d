"""Upstreams that compress: the hot path asks for gzip and deflate and hands the client the
decoded JSON and SSE, through the real gateway to a real (aiohttp) upstream on loopback."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import zlib
from collections.abc import Callable, Iterator

import openai
import pytest
from aiohttp import web
from plugway.testing import GatewayProcess
from plugway.testing.gateway_process import free_port

COMPLETION = {
    "id": "chatcmpl-z",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "squeezed " * 50},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 50, "total_tokens": 53},
}


def chunk(content: str | None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    body = {
        "id": "chatcmpl-z",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class CompressingUpstream:
    """Answers chat completions compressed with whatever the request's accept-encoding
    offers first of gzip and deflate; streams are compressed as one stream, flushed per
    event."""

    def __init__(self) -> None:
        self.encodings: list[str] = []
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        offered = request.headers.get("accept-encoding", "")
        encoding = "gzip" if "gzip" in offered else "deflate"
        self.encodings.append(offered)
        compressor: Callable[[], zlib._Compress] = (
            (lambda: zlib.compressobj(wbits=31)) if encoding == "gzip" else zlib.compressobj
        )
        body = await request.json()
        if not body.get("stream"):
            raw = json.dumps(COMPLETION).encode()
            data = gzip.compress(raw) if encoding == "gzip" else zlib.compress(raw)
            return web.Response(
                body=data,
                content_type="application/json",
                headers={"content-encoding": encoding},
            )
        response = web.StreamResponse(
            headers={"content-type": "text/event-stream", "content-encoding": encoding}
        )
        await response.prepare(request)
        packer = compressor()
        for event in [chunk(f"part{i} ") for i in range(5)] + [chunk(None, "stop")]:
            await response.write(packer.compress(event) + packer.flush(zlib.Z_SYNC_FLUSH))
            await asyncio.sleep(0.01)
        await response.write(packer.compress(b"data: [DONE]\n\n") + packer.flush())
        await response.write_eof()
        return response


@pytest.fixture(scope="module")
def compressing() -> Iterator[CompressingUpstream]:
    upstream = CompressingUpstream()
    upstream.start()
    yield upstream
    upstream.stop()


@pytest.fixture
def gateway(
    compressing: CompressingUpstream, plugway_gateway: Callable[..., GatewayProcess]
) -> GatewayProcess:
    return plugway_gateway(
        f"""
[providers.squeezy]
type = "openai"
base_url = "http://127.0.0.1:{compressing.port}/v1"
api_key = "sk-squeezy-0123456789"

[[models]]
name = "chat"
targets = [{{ provider = "squeezy", model = "m" }}]
"""
    )


def test_compressed_answers_reach_the_client_decoded(
    gateway: GatewayProcess, compressing: CompressingUpstream
) -> None:
    client = openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0)
    completion = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == "squeezed " * 50
    assert completion.usage is not None and completion.usage.total_tokens == 53
    assert compressing.encodings[-1] == "gzip, deflate"

    stream = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    parts = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert "".join(parts) == "".join(f"part{i} " for i in range(5))
