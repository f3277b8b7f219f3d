"""Where stored responses live: per response id, a JSON record (owner, the Response object,
its input items, the conversation so far as chat messages, and which provider served it), kept for a TTL.

Two backends, one contract (:class:`ResponseStore`):

- :class:`SqliteResponseStore`, the default: one SQLite file (WAL mode, so every worker
  process on the machine shares it), used from a worker thread so the event loop never waits
  on the disk;
- :class:`StateResponseStore`: the gateway's state backend (``gateway.state``); with
  ``[state] backend = "redis"`` every worker on every machine sees the same records.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import attrs
import orjson
from plugway.state import StateBackend

KEY_PREFIX = "responses:"
#: How often (in writes) the SQLite store deletes expired records.
PURGE_EVERY = 256


@attrs.define(kw_only=True)
class StoredResponse:
    """One stored response. ``owner`` is the tenant that may read it (see
    :func:`plugway.plugins.responses.endpoint.owner_of`); ``messages`` the whole
    conversation up to and including this response as chat messages (history for a
    next turn, turned into input items for a native target); ``provider``/``native`` which provider instance served it and
    whether natively, ``upstream_stored`` whether that host kept it too (so a next turn on the
    same provider may pass ``previous_response_id`` through)."""

    id: str
    owner: str
    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    provider: str = ""
    native: bool = False
    upstream_stored: bool = False
    created_at: float = attrs.field(factory=time.time)

    def dumps(self) -> bytes:
        return orjson.dumps(attrs.asdict(self))

    @classmethod
    def loads(cls, data: bytes | str) -> StoredResponse | None:
        try:
            value = orjson.loads(data)
            return cls(**value) if isinstance(value, dict) else None
        except (orjson.JSONDecodeError, TypeError):
            return None


class ResponseStore(ABC):
    """Records by response id, each for ``ttl`` seconds."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl

    async def startup(self) -> None:  # noqa: B027 - optional
        """Open what the store needs; called in the worker's loop."""

    async def aclose(self) -> None:  # noqa: B027 - optional
        """Release it."""

    @abstractmethod
    async def put(self, record: StoredResponse) -> None: ...

    @abstractmethod
    async def get(self, response_id: str) -> StoredResponse | None: ...

    @abstractmethod
    async def delete(self, response_id: str) -> bool:
        """Remove a record; whether there was one."""


class StateResponseStore(ResponseStore):
    """Records as JSON strings in the gateway's state backend, with its TTL."""

    def __init__(self, state: StateBackend, ttl: float) -> None:
        super().__init__(ttl)
        self.state = state

    async def put(self, record: StoredResponse) -> None:
        await self.state.set(KEY_PREFIX + record.id, record.dumps().decode(), ttl=self.ttl)

    async def get(self, response_id: str) -> StoredResponse | None:
        data = await self.state.get(KEY_PREFIX + response_id)
        return None if data is None else StoredResponse.loads(data)

    async def delete(self, response_id: str) -> bool:
        key = KEY_PREFIX + response_id
        found = await self.state.get(key) is not None
        await self.state.delete(key)
        return found


SCHEMA = (
    "CREATE TABLE IF NOT EXISTS responses "
    "(id TEXT PRIMARY KEY, expires REAL NOT NULL, data BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS responses_expires ON responses (expires)",
)


class SqliteResponseStore(ResponseStore):
    """Records in one SQLite file, read and written on worker threads (one connection, behind
    a lock: SQLite serialises writers anyway)."""

    def __init__(self, path: str, ttl: float, clock: Any = time.time) -> None:
        super().__init__(ttl)
        self.path = str(Path(path).expanduser())
        self.clock = clock
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._writes = 0

    def _open(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        for statement in SCHEMA:
            conn.execute(statement)
        conn.commit()
        self._conn = conn

    async def startup(self) -> None:
        await asyncio.to_thread(self._open)

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.to_thread(conn.close)

    def _run(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        with self._lock:
            conn = self._conn
            if conn is None:
                raise RuntimeError("the response store is closed")
            cursor = conn.execute(sql, args)
            rows = cursor.fetchall()
            conn.commit()
            rows.append(cursor.rowcount)
            return rows

    def _put(self, record: StoredResponse) -> None:
        now = self.clock()
        self._run(
            "INSERT OR REPLACE INTO responses (id, expires, data) VALUES (?, ?, ?)",
            (record.id, now + self.ttl, record.dumps()),
        )
        self._writes += 1
        if self._writes % PURGE_EVERY == 1:
            self._run("DELETE FROM responses WHERE expires < ?", (now,))

    async def put(self, record: StoredResponse) -> None:
        await asyncio.to_thread(self._put, record)

    async def get(self, response_id: str) -> StoredResponse | None:
        rows = await asyncio.to_thread(
            self._run,
            "SELECT data FROM responses WHERE id = ? AND expires >= ?",
            (response_id, self.clock()),
        )
        return StoredResponse.loads(rows[0][0]) if len(rows) > 1 else None

    async def delete(self, response_id: str) -> bool:
        rows = await asyncio.to_thread(
            self._run,
            "DELETE FROM responses WHERE id = ? AND expires >= ?",
            (response_id, self.clock()),
        )
        return bool(rows[-1] > 0)
