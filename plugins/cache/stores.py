"""Where entries live: this process (an LRU bounded by entries and bytes) or the gateway's
state backend (shared by every worker and machine on it, values zlib-compressed).

An entry is JSON bytes (see :mod:`.replay`). A store never raises on the request path: a
backend that fails or is slow is a miss (``get`` answers None) and a write that fails is lost;
both are counted in ``errors`` and logged without key or content.
"""

from __future__ import annotations

import asyncio
import base64
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import attrs
from loguru import logger
from plugway.errors import InvalidRequest
from plugway.state import StateBackend

#: Entries bigger than this are (de)compressed on a thread, not on the event loop.
OFF_LOOP_BYTES = 64 * 1024


@attrs.define
class Stats:
    hits: int = 0
    misses: int = 0
    writes: int = 0
    evictions: int = 0
    errors: int = 0


class Store(Protocol):
    stats: Stats

    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes, ttl: float) -> None: ...

    async def clear(self, match: Callable[[str], bool]) -> int: ...

    async def describe(self, match: Callable[[str], bool]) -> dict[str, object]: ...


class MemoryStore:
    """An LRU in this worker: at most ``max_entries`` entries and ``max_bytes`` bytes of
    values; the least recently used go first. Expired entries are dropped when met."""

    def __init__(
        self, max_entries: int, max_bytes: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.clock = clock
        self.bytes = 0
        self.stats = Stats()
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[0] <= self.clock():
            self._drop(key)
            return None
        self._data.move_to_end(key)
        return item[1]

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        if len(value) > self.max_bytes:
            return
        if key in self._data:
            self._drop(key)
        self._data[key] = (self.clock() + ttl, value)
        self.bytes += len(value)
        self.stats.writes += 1
        while len(self._data) > self.max_entries or self.bytes > self.max_bytes:
            oldest = next(iter(self._data))
            self._drop(oldest)
            self.stats.evictions += 1

    async def clear(self, match: Callable[[str], bool]) -> int:
        doomed = [key for key in self._data if match(key)]
        for key in doomed:
            self._drop(key)
        return len(doomed)

    def _drop(self, key: str) -> None:
        _, value = self._data.pop(key)
        self.bytes -= len(value)

    async def describe(self, match: Callable[[str], bool]) -> dict[str, object]:
        """This worker's entries (those ``match`` takes) and counters."""
        now = self.clock()
        live = [v for k, (exp, v) in self._data.items() if exp > now and match(k)]
        return {
            "backend": "memory",
            "entries": len(live),
            "bytes": sum(len(v) for v in live),
            "max_entries": self.max_entries,
            "max_bytes": self.max_bytes,
        } | attrs.asdict(self.stats)


class StateStore:
    """Entries on the gateway's state backend (Redis): zlib-compressed, base64 text (the
    backend stores strings), each read and write bounded by ``timeout``."""

    def __init__(self, state: StateBackend, timeout: float) -> None:
        self.state = state
        self.timeout = timeout
        self.stats = Stats()
        self._warned = 0.0

    async def get(self, key: str) -> bytes | None:
        try:
            async with asyncio.timeout(self.timeout):
                text = await self.state.get(key)
            if text is None:
                return None
            packed = base64.b64decode(text)
            if len(packed) > OFF_LOOP_BYTES:
                return await asyncio.to_thread(zlib.decompress, packed)
            return zlib.decompress(packed)
        except Exception as exc:
            self._failed("read", exc)
            return None

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        try:
            if len(value) > OFF_LOOP_BYTES:
                packed = await asyncio.to_thread(zlib.compress, value, 6)
            else:
                packed = zlib.compress(value, 6)
            text = base64.b64encode(packed).decode()
            async with asyncio.timeout(self.timeout):
                await self.state.set(key, text, ttl)
            self.stats.writes += 1
        except Exception as exc:
            self._failed("write", exc)

    async def _keys(self, match: Callable[[str], bool]) -> list[str]:
        scan = getattr(self.state, "scan_keys", None)
        if scan is None:
            raise InvalidRequest(
                f"the {self.state.config.backend!r} state backend cannot list its keys"
            )
        return [key for key in await scan("cache:") if match(key)]

    async def clear(self, match: Callable[[str], bool]) -> int:
        doomed = await self._keys(match)
        for key in doomed:
            await self.state.delete(key)
        return len(doomed)

    def _failed(self, what: str, exc: Exception) -> None:
        self.stats.errors += 1
        now = time.monotonic()
        if now - self._warned > 10:  # once in a while, not per request
            self._warned = now
            logger.warning(
                "cache: the state backend failed a {} ({}); answering as a miss",
                what,
                type(exc).__name__,
            )

    async def describe(self, match: Callable[[str], bool]) -> dict[str, object]:
        """The entries every gateway on the backend shares (those ``match`` takes), and this
        worker's counters."""
        entries = len(await self._keys(match))
        return {"backend": self.state.config.backend, "entries": entries} | attrs.asdict(self.stats)
