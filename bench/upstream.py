"""A fake OpenAI upstream built for speed: a raw asyncio protocol on uvloop, HTTP/1.1
keep-alive, no framework.

The model name in the request body picks the behaviour, so one upstream serves every case and
the gateways under test only rewrite ``model`` the way they always do:

* ``l<ms>-s`` / ``l<ms>-l``: a chat completion after ``ms`` milliseconds, about 1.4 KB (``s``)
  or 10 KB (``l``) of JSON. ``l0-s`` answers at once.
* ``stream``: an SSE stream of 64 content chunks paced at 20 ms (first one at once), a finish
  chunk, a usage chunk when ``stream_options.include_usage`` is true, then ``[DONE]``; sent
  with chunked transfer encoding like real upstreams.
* ``stream-hold``: the same stream paced at 100 ms (6.4 s), so that a thousand streams are all
  open at once while the gateway's memory is read.

Only loopback. ``python bench/upstream.py --port 9100``.
"""

from __future__ import annotations

import argparse
import asyncio
import re

try:
    import uvloop
except ImportError:  # pragma: no cover - the harness wants uvloop, but runs without
    uvloop = None

_MODEL = re.compile(rb'"model"\s*:\s*"([^"]*)"')
_CL = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_SPEC = re.compile(rb"l(\d+)-([sl])")

CHUNKS = 64
PACE = 0.020
HOLD_PACE = 0.100


def _completion(size: str) -> bytes:
    # ~1.4 KB or ~10 KB, shaped like a real chat.completion.
    words = 190 if size == "s" else 1570
    content = " ".join("lorem" for _ in range(words))
    body = (
        '{"id":"chatcmpl-bench0000000000000000000000","object":"chat.completion",'
        '"created":1700000000,"model":"bench","system_fingerprint":"fp_bench",'
        '"choices":[{"index":0,"message":{"role":"assistant","content":"'
        + content
        + '","refusal":null},"logprobs":null,"finish_reason":"stop"}],'
        '"usage":{"prompt_tokens":25,"completion_tokens":'
        + str(words)
        + ',"total_tokens":'
        + str(words + 25)
        + "}}"
    )
    return body.encode()


BODIES = {"s": _completion("s"), "l": _completion("l")}


def _head(status: str, ctype: bytes, length: int | None) -> bytes:
    head = b"HTTP/1.1 " + status.encode() + b"\r\ncontent-type: " + ctype + b"\r\n"
    if length is None:
        head += b"transfer-encoding: chunked\r\n"
    else:
        head += b"content-length: " + str(length).encode() + b"\r\n"
    return head + b"x-request-id: req_upstream\r\nconnection: keep-alive\r\n\r\n"


RESPONSES = {k: _head("200 OK", b"application/json", len(v)) + v for k, v in BODIES.items()}
_CHUNK_TMPL = (
    b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"bench","system_fingerprint":"fp_bench","choices":[{"index":0,"delta":'
    b'{"content":"tok%03d "},"logprobs":null,"finish_reason":null}]}\n\n'
)
STREAM_HEAD = _head("200 OK", b"text/event-stream; charset=utf-8", None)
FIRST = (
    b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"bench","choices":[{"index":0,"delta":{"role":"assistant","content":""},'
    b'"logprobs":null,"finish_reason":null}]}\n\n'
)
FINISH = (
    b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"bench","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}\n\n'
)
USAGE = (
    b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"bench","choices":[],"usage":{"prompt_tokens":25,"completion_tokens":64,'
    b'"total_tokens":89}}\n\n'
)
DONE = b"data: [DONE]\n\n"
NOT_FOUND = b'{"error":{"message":"unknown model","type":"invalid_request_error","param":"model","code":"model_not_found"}}'


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Upstream(asyncio.Protocol):
    __slots__ = ("buf", "busy", "loop", "transport")

    def __init__(self) -> None:
        self.buf = b""
        self.busy = False
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while not self.busy:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end]
            match = _CL.search(head)
            length = int(match.group(1)) if match else 0
            total = end + 4 + length
            if len(self.buf) < total:
                return
            body = self.buf[end + 4 : total]
            self.buf = self.buf[total:]
            self.handle(head, body)

    def handle(self, head: bytes, body: bytes) -> None:
        transport = self.transport
        if transport is None:
            return
        if head.startswith(b"GET"):
            transport.write(_head("200 OK", b"application/json", 2) + b"{}")
            return
        found = _MODEL.search(body)
        model = found.group(1) if found else b""
        if model.endswith((b"stream", b"stream-hold")):
            usage = b'"include_usage":true' in body or b'"include_usage": true' in body
            self.busy = True
            self.start_stream(usage, HOLD_PACE if model.endswith(b"-hold") else PACE)
            return
        spec = _SPEC.search(model)
        if spec is None:
            transport.write(_head("404 Not Found", b"application/json", len(NOT_FOUND)) + NOT_FOUND)
            return
        delay = int(spec.group(1)) / 1000
        response = RESPONSES[spec.group(2).decode()]
        if delay:
            self.busy = True
            self.loop.call_later(delay, self.send_later, response)
        else:
            transport.write(response)

    def send_later(self, response: bytes) -> None:
        self.busy = False
        if self.transport is not None:
            self.transport.write(response)
            if self.buf:
                self.data_received(b"")

    def start_stream(self, usage: bool, pace: float) -> None:
        """Timer callbacks, not a task per stream: the upstream must stay far cheaper than
        the gateways it measures, even at a thousand streams."""
        if self.transport is None:
            return
        self.transport.write(STREAM_HEAD + chunk(FIRST + _CHUNK_TMPL % 0))
        self.loop.call_later(pace, self.tick, self.loop.time(), 1, usage, pace)

    def tick(self, start: float, index: int, usage: bool, pace: float) -> None:
        transport = self.transport
        if transport is None:
            return
        if index < CHUNKS:
            transport.write(chunk(_CHUNK_TMPL % index))
            self.loop.call_at(start + (index + 1) * pace, self.tick, start, index + 1, usage, pace)
            return
        tail = FINISH + (USAGE if usage else b"") + DONE
        transport.write(chunk(tail) + b"0\r\n\r\n")
        self.busy = False
        if self.buf:
            self.data_received(b"")


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, host, port, backlog=4096, reuse_address=True)
    print(f"upstream: listening on http://{host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the bench upstream only listens on loopback")
    if uvloop is not None:
        uvloop.run(serve(args.host, args.port))
    else:
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
