"""Server-sent events framing: whole events out of arbitrary byte chunks, and event bytes in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"


def sse_event(payload: Any) -> bytes:
    """One ``data:`` event holding ``payload`` as JSON."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def sse_error(payload: dict[str, Any]) -> bytes:
    """The in-band error event OpenAI clients raise on: ``data: {"error": {...}}``."""
    return sse_event(payload)


class EventSplitter:
    """Cuts a byte stream at event boundaries so only whole events are forwarded.

    ``feed`` returns the bytes up to and including the last blank line seen so far and keeps
    the rest; the work per chunk is proportional to the chunk, never to the stream.
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + chunk if self._pending else chunk
        lf, crlf = data.rfind(b"\n\n"), data.rfind(b"\r\n\r\n")
        end = max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)
        self._pending = data[end:]
        return data[:end]

    @property
    def pending(self) -> bytes:
        """Bytes of an event not yet complete."""
        return self._pending


def iter_data(events: bytes) -> Iterator[bytes]:
    """The ``data`` payload of each event in ``events`` (whole events only), joined the way
    the WHATWG rules join several ``data:`` lines. Comments and other fields are skipped."""
    for block in events.replace(b"\r\n", b"\n").split(b"\n\n"):
        lines = [
            line[5:].removeprefix(b" ") for line in block.split(b"\n") if line.startswith(b"data:")
        ]
        if lines:
            yield b"\n".join(lines)
