"""Where stored responses live: per response id, a JSON record (owner, the Response object,
its input items, the conversation so far as chat messages, and which provider served it), kept for a TTL.

Two backends, one contract (:class:`ResponseStore`):

- :class:`SqliteResponseStore`, the default: one SQLite file (WAL mode, so every worker
  process on the machine shares it), used from a worker thread so the event loop never waits
  on the disk;
- :class:`StateResponseStore`: the gateway's state backend (``gateway.state``); with
  ``[state] backend = "redis"`` every worker on every machine sees the same records.

The same store keeps stored chat completions (``store: true`` on ``/v1/chat/completions``,
see :mod:`plugway.plugins.responses.stored_chat`) as a second record kind,
:class:`StoredChat`, in its own table (SQLite) or key prefix (state backend), listed per owner
in the order they were stored.
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
#: Stored chat completions in the state backend: the record by id, and per owner a sequence
#: counter and one index key per stored record (``<prefix>idx:<owner>:<n>`` -> id).
CHAT_PREFIX = "chatcmpl-store:"
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


@attrs.define(kw_only=True)
class StoredChat:
    """One stored chat completion: ``completion`` the ChatCompletion as the client got it
    (with its ``metadata``), ``messages`` the request's messages, each with an ``id``;
    ``model`` the answer's model, ``requested`` the name the client asked for (a list's
    ``model`` filter matches either). ``seq`` is its place in the owner's list, set by the
    store."""

    id: str
    owner: str
    model: str
    requested: str = ""
    metadata: dict[str, str]
    completion: dict[str, Any]
    messages: list[dict[str, Any]]
    seq: int = 0
    created_at: float = attrs.field(factory=time.time)

    def dumps(self) -> bytes:
        return orjson.dumps(attrs.asdict(self))

    @classmethod
    def loads(cls, data: bytes | str) -> StoredChat | None:
        try:
            value = orjson.loads(data)
            return cls(**value) if isinstance(value, dict) else None
        except (orjson.JSONDecodeError, TypeError):
            return None

    def matches(self, query: ChatQuery) -> bool:
        if query.model is not None and query.model not in (self.model, self.requested):
            return False
        return all(self.metadata.get(k) == v for k, v in query.metadata.items())


@attrs.define(kw_only=True)
class ChatQuery:
    """A page of stored chat completions: whose, which, from where, how many."""

    owner: str
    model: str | None = None
    metadata: dict[str, str] = attrs.field(factory=dict)
    after: str | None = None
    limit: int = 20
    descending: bool = False


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

    # -- stored chat completions -------------------------------------------------------------

    @abstractmethod
    async def put_chat(self, record: StoredChat) -> None:
        """Keep a new record for ``ttl`` seconds, after every record its owner has."""

    @abstractmethod
    async def get_chat(self, completion_id: str) -> StoredChat | None: ...

    @abstractmethod
    async def update_chat(self, record: StoredChat) -> None:
        """Replace a kept record's content, keeping its place and its expiry."""

    @abstractmethod
    async def delete_chat(self, completion_id: str) -> bool:
        """Remove a record; whether there was one."""

    @abstractmethod
    async def list_chats(self, query: ChatQuery) -> tuple[list[StoredChat], bool]:
        """One page of ``query.owner``'s records in the order asked, those after
        ``query.after`` (a record of this owner; :class:`KeyError` when it is not one), that
        match ``query.model`` and every ``query.metadata`` pair; and whether more follow."""


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

    # -- stored chat completions -------------------------------------------------------------

    def _chat_key(self, completion_id: str) -> str:
        return CHAT_PREFIX + "rec:" + completion_id

    def _index_key(self, owner: str, seq: int) -> str:
        return f"{CHAT_PREFIX}idx:{owner}:{seq}"

    async def put_chat(self, record: StoredChat) -> None:
        record.seq = int(await self.state.incr(CHAT_PREFIX + "seq:" + record.owner, 1, self.ttl))
        await self.state.set(self._chat_key(record.id), record.dumps().decode(), ttl=self.ttl)
        await self.state.set(self._index_key(record.owner, record.seq), record.id, ttl=self.ttl)

    async def get_chat(self, completion_id: str) -> StoredChat | None:
        data = await self.state.get(self._chat_key(completion_id))
        return None if data is None else StoredChat.loads(data)

    async def update_chat(self, record: StoredChat) -> None:
        key = self._chat_key(record.id)
        left = await self.state.ttl(key)
        if left is not None and left > 0:
            await self.state.set(key, record.dumps().decode(), ttl=left)

    async def delete_chat(self, completion_id: str) -> bool:
        record = await self.get_chat(completion_id)
        if record is None:
            return False
        await self.state.delete(self._chat_key(completion_id))
        await self.state.delete(self._index_key(record.owner, record.seq))
        return True

    async def _at(self, owner: str, seq: int) -> StoredChat | None:
        completion_id = await self.state.get(self._index_key(owner, seq))
        if completion_id is None:
            return None
        record = await self.get_chat(completion_id)
        # a record stored again under the same id (a cache's replay) has moved to a new place
        ok = record is not None and record.owner == owner and record.seq == seq
        return record if ok else None

    async def list_chats(self, query: ChatQuery) -> tuple[list[StoredChat], bool]:
        # The owner's index walked from the cursor, a batch of lookups at a time (the state
        # backend has no range reads); expired and deleted places are skipped.
        top = int(float(await self.state.get(CHAT_PREFIX + "seq:" + query.owner) or 0))
        if query.after is not None:
            after = await self.get_chat(query.after)
            if after is None or after.owner != query.owner:
                raise KeyError(query.after)
            start = after.seq - 1 if query.descending else after.seq + 1
        else:
            start = top if query.descending else 1
        step = -1 if query.descending else 1
        found: list[StoredChat] = []
        seq = start
        while 1 <= seq <= top and len(found) <= query.limit:
            batch = list(range(seq, 0 if step < 0 else top + 1, step))[:LIST_BATCH]
            seq = batch[-1] + step
            for record in await asyncio.gather(*(self._at(query.owner, n) for n in batch)):
                if record is not None and record.matches(query):
                    found.append(record)
        return found[: query.limit], len(found) > query.limit


#: How many index places the state store looks up at once while listing.
LIST_BATCH = 32


SCHEMA = (
    "CREATE TABLE IF NOT EXISTS responses "
    "(id TEXT PRIMARY KEY, expires REAL NOT NULL, data BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS responses_expires ON responses (expires)",
    "CREATE TABLE IF NOT EXISTS chat_completions (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
    "id TEXT NOT NULL UNIQUE, owner TEXT NOT NULL, model TEXT NOT NULL, "
    "requested TEXT NOT NULL, expires REAL NOT NULL, data BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS chat_completions_owner ON chat_completions (owner, seq)",
    "CREATE INDEX IF NOT EXISTS chat_completions_expires ON chat_completions (expires)",
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

    # -- stored chat completions -------------------------------------------------------------

    def _put_chat(self, record: StoredChat) -> None:
        now = self.clock()
        with self._lock:
            conn = self._conn
            if conn is None:
                raise RuntimeError("the response store is closed")
            conn.execute("DELETE FROM chat_completions WHERE id = ?", (record.id,))
            cursor = conn.execute(
                "INSERT INTO chat_completions (id, owner, model, requested, expires, data) "
                "VALUES (?, ?, ?, ?, ?, '')",
                (record.id, record.owner, record.model, record.requested, now + self.ttl),
            )
            record.seq = int(cursor.lastrowid or 0)
            conn.execute(
                "UPDATE chat_completions SET data = ? WHERE seq = ?", (record.dumps(), record.seq)
            )
            conn.commit()
        self._writes += 1
        if self._writes % PURGE_EVERY == 1:
            self._run("DELETE FROM chat_completions WHERE expires < ?", (now,))

    async def put_chat(self, record: StoredChat) -> None:
        await asyncio.to_thread(self._put_chat, record)

    async def get_chat(self, completion_id: str) -> StoredChat | None:
        rows = await asyncio.to_thread(
            self._run,
            "SELECT data FROM chat_completions WHERE id = ? AND expires >= ?",
            (completion_id, self.clock()),
        )
        return StoredChat.loads(rows[0][0]) if len(rows) > 1 else None

    async def update_chat(self, record: StoredChat) -> None:
        await asyncio.to_thread(
            self._run,
            "UPDATE chat_completions SET data = ? WHERE id = ?",
            (record.dumps(), record.id),
        )

    async def delete_chat(self, completion_id: str) -> bool:
        rows = await asyncio.to_thread(
            self._run,
            "DELETE FROM chat_completions WHERE id = ? AND expires >= ?",
            (completion_id, self.clock()),
        )
        return bool(rows[-1] > 0)

    def _list_chats(self, query: ChatQuery) -> tuple[list[StoredChat], bool]:
        now = self.clock()
        where = "owner = ? AND expires >= ?"
        args: list[Any] = [query.owner, now]
        if query.model is not None:
            where += " AND (model = ? OR requested = ?)"
            args += [query.model, query.model]
        with self._lock:
            conn = self._conn
            if conn is None:
                raise RuntimeError("the response store is closed")
            if query.after is not None:
                row = conn.execute(
                    "SELECT seq FROM chat_completions WHERE id = ? AND owner = ? AND expires >= ?",
                    (query.after, query.owner, now),
                ).fetchone()
                if row is None:
                    raise KeyError(query.after)
                where += " AND seq < ?" if query.descending else " AND seq > ?"
                args.append(row[0])
            order = "DESC" if query.descending else "ASC"
            cursor = conn.execute(
                f"SELECT data FROM chat_completions WHERE {where} ORDER BY seq {order}", args
            )
            found: list[StoredChat] = []
            while len(found) <= query.limit:
                rows = cursor.fetchmany(64)
                if not rows:
                    break
                for (data,) in rows:
                    record = StoredChat.loads(data)
                    if record is not None and record.matches(query):
                        found.append(record)
            cursor.close()
        return found[: query.limit], len(found) > query.limit

    async def list_chats(self, query: ChatQuery) -> tuple[list[StoredChat], bool]:
        return await asyncio.to_thread(self._list_chats, query)
