"""Load generator: raw HTTP/1.1 keep-alive connections on uvloop, one process, JSON out.

* ``closed``: N connections each sending the next request as soon as the last is answered
  (maximum throughput at N in flight). Latency from send to the last byte.
* ``open``: requests started at a fixed rate whatever happens to earlier ones; latency is
  measured from the *intended* start, so a stalled server cannot hide its queue (no
  coordinated omission). A request waits for a free connection or opens a new one.
* ``stream``: N streamed chat completions at once; for each, time to first content event and
  every gap between reads that brought events; a stream "stalls" when a gap exceeds
  ``--stall-ms`` or it does not finish with ``[DONE]``.

Every mode is bounded in count and time. Only loopback URLs are accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

LOOPBACK = ("127.0.0.1", "localhost", "::1")
MARK = b"tok0"  # every content chunk of the bench upstream says tok000 .. tok063
PROMPT = "Say hello in one short sentence, please. " * 3


def build_request(
    url: str, model: str, *, stream: bool, headers: dict[str, str], key: str
) -> bytes:
    parts = urlsplit(url)
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 64,
    }
    if stream:
        body["stream"] = True
    raw = json.dumps(body, separators=(",", ":")).encode()
    lines = [
        f"POST {parts.path} HTTP/1.1",
        f"host: {parts.netloc}",
        "content-type: application/json",
        f"content-length: {len(raw)}",
        f"authorization: Bearer {key}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + raw


class Conn(asyncio.Protocol):
    """One keep-alive connection with an incremental response parser (content-length and
    chunked bodies)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.fut: asyncio.Future[int] | None = None
        self.on_data: Callable[[bytes], None] | None = None
        self.status = 0
        self.remaining = -1  # bytes of a content-length body still expected
        self.chunked = False
        self.in_body = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.fut is not None and not self.fut.done():
            self.fut.set_exception(ConnectionError("connection closed"))

    def request(
        self, raw: bytes, on_data: Callable[[bytes], None] | None = None
    ) -> asyncio.Future[int]:
        assert self.transport is not None
        self.fut = asyncio.get_running_loop().create_future()
        self.on_data = on_data
        self.in_body = False
        self.transport.write(raw)
        return self.fut

    def data_received(self, data: bytes) -> None:
        if self.on_data is not None and self.in_body and self.chunked:
            self.on_data(data)  # streams: the raw chunked body, parsed by the caller
            return
        self.buf += data
        self._parse()

    def _finish(self) -> None:
        fut, self.fut = self.fut, None
        self.in_body = False
        if fut is not None and not fut.done():
            fut.set_result(self.status)

    def _parse(self) -> None:
        buf = self.buf
        if not self.in_body:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            del buf[: end + 4]
            self.status = int(head[9:12])
            self.chunked = b"transfer-encoding: chunked" in head
            self.remaining = -1
            at = head.find(b"content-length:")
            if at >= 0:
                eol = head.find(b"\r\n", at)
                self.remaining = int(head[at + 15 : eol if eol >= 0 else len(head)])
            self.in_body = True
            if self.chunked and self.on_data is not None:
                rest, self.buf = bytes(buf), bytearray()
                if rest:
                    self.on_data(rest)
                return
        if not self.chunked:
            if self.remaining < 0:  # no length: read to close (not expected here)
                return
            take = min(self.remaining, len(buf))
            if take and self.on_data is not None:
                self.on_data(bytes(buf[:take]))
            del buf[:take]
            self.remaining -= take
            if self.remaining == 0:
                self._finish()
            return
        while True:
            line_end = buf.find(b"\r\n")
            if line_end < 0:
                return
            size = int(bytes(buf[:line_end]).split(b";")[0], 16)
            if size == 0:
                if len(buf) < line_end + 4:
                    return
                del buf[: line_end + 4]
                self._finish()
                return
            if len(buf) < line_end + 2 + size + 2:
                return
            if self.on_data is not None:
                self.on_data(bytes(buf[line_end + 2 : line_end + 2 + size]))
            del buf[: line_end + 2 + size + 2]


async def connect(url: str) -> Conn:
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(Conn, parts.hostname, parts.port)
    return conn


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": round(ordered[-1] * 1000, 3)}


async def closed_loop(args: argparse.Namespace, raw: bytes) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    statuses: dict[int, int] = {}
    warm_until = time.perf_counter() + args.warmup
    stop_at = warm_until + args.duration

    async def worker() -> None:
        nonlocal errors
        conn: Conn | None = None
        while time.perf_counter() < stop_at:
            try:
                if conn is None or conn.closed:
                    conn = await connect(args.url)
                t0 = time.perf_counter()
                status = await asyncio.wait_for(conn.request(raw), args.timeout)
                t1 = time.perf_counter()
            except (OSError, TimeoutError, ValueError):
                if time.perf_counter() >= warm_until:
                    errors += 1
                if conn is not None and conn.transport is not None:
                    conn.transport.close()
                conn = None
                await asyncio.sleep(0.01)
                continue
            if t0 >= warm_until and t1 <= stop_at:
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    latencies.append(t1 - t0)
                else:
                    errors += 1
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    return {
        "mode": "closed",
        "concurrency": args.concurrency,
        "duration": args.duration,
        "ok": len(latencies),
        "errors": errors,
        "statuses": statuses,
        "rps": round(len(latencies) / args.duration, 1),
        **percentiles(latencies),
    }


async def open_loop(args: argparse.Namespace, raw: bytes) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    idle: list[Conn] = []
    opened = 0
    latencies: list[float] = []
    errors = 0
    total = int(args.rate * args.duration)
    start = time.perf_counter() + 0.05

    async def one(intended: float) -> None:
        nonlocal errors, opened
        conn: Conn | None = None
        try:
            while idle:
                conn = idle.pop()
                if not conn.closed:
                    break
                conn = None
            if conn is None:
                if opened >= args.max_connections:
                    errors += 1
                    return
                opened += 1
                conn = await connect(args.url)
            status = await asyncio.wait_for(conn.request(raw), args.timeout)
            done = time.perf_counter()
        except (OSError, TimeoutError, ValueError):
            errors += 1
            if conn is not None and conn.transport is not None:
                conn.transport.close()
            return
        idle.append(conn)
        if status == 200:
            latencies.append(done - intended)
        else:
            errors += 1

    tasks = []
    for i in range(total):
        intended = start + i / args.rate
        delay = intended - time.perf_counter()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(one(intended)))
    await asyncio.wait(tasks, timeout=args.timeout + 1)
    for conn in idle:
        if conn.transport is not None:
            conn.transport.close()
    return {
        "mode": "open",
        "rate": args.rate,
        "duration": args.duration,
        "sent": total,
        "ok": len(latencies),
        "errors": errors + sum(1 for t in tasks if not t.done()),
        "connections": opened,
        **percentiles(latencies),
    }


async def streams(args: argparse.Namespace, raw: bytes) -> dict[str, Any]:
    ttfts: list[float] = []
    max_gaps: list[float] = []
    all_gaps: list[float] = []
    complete = 0
    stalled = 0
    failed = 0
    stall = args.stall_ms / 1000
    open_now = [0, 0]  # streams between their first event and their end; the most at once

    async def one(index: int) -> None:
        nonlocal complete, stalled, failed
        await asyncio.sleep(index * args.ramp / max(1, args.streams))
        state: dict[str, Any] = {"carry": b"", "last": 0.0, "first": 0.0, "events": 0}
        gaps: list[float] = []
        conn: Conn | None = None

        def on_data(data: bytes) -> None:
            # Raw chunked body: count content events without parsing (the harness must stay
            # cheap); the carry keeps a marker cut between two reads countable.
            text = state["carry"] + data
            state["carry"] = text[-(len(MARK) - 1) :]
            contents = text.count(MARK)
            if contents:
                now = time.perf_counter()
                if state["first"] == 0.0:
                    state["first"] = now
                    open_now[0] += 1
                    open_now[1] = max(open_now[1], open_now[0])
                else:
                    gaps.append(now - state["last"])
                state["last"] = now
                state["events"] += contents
            if text.endswith(b"\r\n0\r\n\r\n") and conn is not None:
                state["done"] = b"[DONE]" in text or state.get("seen_done", False)
                conn._finish()
            elif b"[DONE]" in text:
                state["seen_done"] = True

        try:
            conn = await connect(args.url)
            t0 = time.perf_counter()
            status = await asyncio.wait_for(conn.request(raw, on_data), args.timeout)
        except (OSError, TimeoutError, ValueError):
            failed += 1
            if conn is not None and conn.transport is not None:
                conn.transport.close()
            return
        finally:
            if state["first"]:
                open_now[0] -= 1
        if conn.transport is not None:
            conn.transport.close()
        if status != 200 or not state["first"]:
            failed += 1
            return
        ttfts.append(state["first"] - t0)
        biggest = max(gaps) if gaps else 0.0
        max_gaps.append(biggest)
        all_gaps.extend(gaps)
        if state.get("done") and state["events"] >= args.expect_events:
            complete += 1
            if biggest > stall:
                stalled += 1
        else:
            failed += 1

    await asyncio.gather(*(one(i) for i in range(args.streams)))
    return {
        "mode": "stream",
        "streams": args.streams,
        "complete": complete,
        "stalled": stalled,
        "failed": failed,
        "held": complete - stalled if failed == 0 else 0,
        "max_open": open_now[1],
        "ttft": percentiles(ttfts),
        "max_gap": percentiles(max_gaps),
        "gaps": percentiles(all_gaps),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="plugway bench load generator")
    parser.add_argument("mode", choices=["closed", "open", "stream"])
    parser.add_argument("--url", required=True, help="full URL of the chat completions endpoint")
    parser.add_argument("--model", default="l0-s")
    parser.add_argument("--key", default="sk-bench")
    parser.add_argument("--header", action="append", default=[], help="NAME:VALUE")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--max-connections", type=int, default=2048)
    parser.add_argument("--streams", type=int, default=64)
    parser.add_argument("--ramp", type=float, default=0.25, help="seconds to start all streams")
    parser.add_argument("--stall-ms", type=float, default=200.0)
    parser.add_argument("--expect-events", type=int, default=64)
    args = parser.parse_args(argv)
    host = urlsplit(args.url).hostname
    if host not in LOOPBACK:
        parser.error("the load generator only targets loopback")
    if args.duration > 120 or args.streams > 4096 or args.concurrency > 4096:
        parser.error("bounded: duration <= 120 s, streams and concurrency <= 4096")
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    raw = build_request(
        args.url, args.model, stream=args.mode == "stream", headers=headers, key=args.key
    )
    run = {"closed": closed_loop, "open": open_loop, "stream": streams}[args.mode]
    runner = uvloop.run if uvloop is not None else asyncio.run
    result = runner(run(args, raw))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
