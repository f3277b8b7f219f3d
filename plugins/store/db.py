"""The request store's SQLite side: schema, the background writer, and reads.

One row per request, metadata only: never a prompt, a completion or a key. Rows are written by
:class:`StoreWriter` on its own thread, in batches, so the event loop never waits for SQLite.
Several worker processes may write the same file: it is in WAL mode with a busy timeout.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loguru import logger

COLUMNS: tuple[tuple[str, str], ...] = (
    ("request_id", "TEXT NOT NULL"),
    ("ts", "REAL NOT NULL"),  # wall-clock seconds when the request arrived
    ("endpoint", "TEXT"),
    ("model", "TEXT"),  # the model the client asked for
    ("stream", "INTEGER"),
    ("principal", "TEXT"),  # who called (a key id or user, as authentication set it)
    ("team", "TEXT"),
    ("provider", "TEXT"),  # provider instance of the final attempt
    ("upstream_model", "TEXT"),
    ("attempts", "INTEGER"),
    ("failovers", "INTEGER"),  # times the walk moved to another target
    ("status", "INTEGER"),
    ("error", "TEXT"),  # an error code or class, never its message
    ("latency_ms", "REAL"),
    ("ttft_ms", "REAL"),
    ("input_tokens", "INTEGER"),  # uncached prompt tokens
    ("cached_tokens", "INTEGER"),
    ("cache_write_tokens", "INTEGER"),
    ("output_tokens", "INTEGER"),  # completion tokens that are not reasoning
    ("reasoning_tokens", "INTEGER"),
    ("cost", "REAL"),  # USD, NULL when the target has no price
    ("finish_reason", "TEXT"),
    ("routing", "TEXT"),  # JSON: plan, attempts, and a strategy's trace when present
    ("tags", "TEXT"),  # JSON
    ("cache", "TEXT"),  # the response cache's verdict: hit, miss, bypass, NULL when not asked
    ("cache_saved_usd", "REAL"),  # what a cache hit saved: its answer's cost when first made
)
NAMES = tuple(name for name, _ in COLUMNS)
_INSERT = f"INSERT INTO requests ({', '.join(NAMES)}) VALUES ({', '.join('?' * len(NAMES))})"
SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY, "
    f"{', '.join(f'{n} {t}' for n, t in COLUMNS)})",
    "CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts)",
)


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection to the store at ``path`` (created with its schema unless ``readonly``)."""
    if readonly:
        conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True, timeout=10)
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=10, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        for statement in SCHEMA:
            conn.execute(statement)
        migrate(conn)
        conn.commit()
    conn.row_factory = sqlite3.Row
    return conn


def migrate(conn: sqlite3.Connection) -> None:
    """Bring a store made by an older plugway up to :data:`COLUMNS`: each column it lacks is
    added (NULL in its old rows). Several workers may race here; a column another added first
    is fine."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(requests)")}
    for name, kind in COLUMNS:
        if name not in have:
            try:
                conn.execute(f"ALTER TABLE requests ADD COLUMN {name} {kind}")
            except sqlite3.OperationalError as exc:
                if "duplicate column" not in str(exc):
                    raise


def insert(conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
    conn.executemany(_INSERT, rows)
    conn.commit()


def purge(conn: sqlite3.Connection, older_than: float) -> int:
    """Delete rows that arrived before ``older_than`` (wall-clock seconds); return how many."""
    cursor = conn.execute("DELETE FROM requests WHERE ts < ?", (older_than,))
    conn.commit()
    return cursor.rowcount


def rows_since(conn: sqlite3.Connection, since: float) -> list[dict[str, Any]]:
    """Every row that arrived at or after ``since`` (wall-clock seconds), oldest first."""
    cursor = conn.execute("SELECT * FROM requests WHERE ts >= ? ORDER BY ts", (since,))
    return [dict(row) for row in cursor]


class StoreWriter:
    """Writes rows on a background thread: every ``flush_interval`` seconds it wakes and writes
    what arrived since, in batches of up to ``batch`` rows; purges rows older than
    ``retention_days`` once an hour.

    :meth:`put` never blocks and never wakes the thread: an append to a deque (atomic under
    the GIL). A queue that woke the writer for each row cost the event loop's core a thread
    switch and a commit per request. When ``max_queue`` rows are waiting (the disk is stuck),
    new rows are dropped and counted in ``dropped``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        retention_days: float,
        flush_interval: float = 0.5,
        batch: int = 500,
        max_queue: int = 100_000,
    ) -> None:
        self.path = Path(path)
        self.retention = retention_days * 86400
        self.flush_interval = flush_interval
        self.batch = batch
        self.max_queue = max_queue
        self.pending: deque[Sequence[Any]] = deque()
        self.dropped = 0
        self.written = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_purge = 0.0

    def start(self) -> None:
        conn = connect(self.path)  # fails at startup, not later, when the path is unusable
        self._thread = threading.Thread(
            target=self._run, args=(conn,), name="plugway-store", daemon=True
        )
        self._thread.start()

    def put(self, row: Sequence[Any]) -> None:
        if len(self.pending) < self.max_queue:
            self.pending.append(row)
            return
        self.dropped += 1
        if self.dropped in (1, 1000) or self.dropped % 100_000 == 0:
            logger.warning("request store: queue full, {} rows dropped", self.dropped)

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, then end the thread."""
        if self._thread is None:
            return
        self._stopping.set()
        self._thread.join(timeout)
        self._thread = None

    def _run(self, conn: sqlite3.Connection) -> None:
        try:
            while True:
                stopping = self._stopping.wait(self.flush_interval)
                self._drain(conn)
                self._maybe_purge(conn)
                if stopping:
                    return
        finally:
            conn.close()

    def _drain(self, conn: sqlite3.Connection) -> None:
        pending = self.pending
        while pending:
            rows = [pending.popleft() for _ in range(min(self.batch, len(pending)))]
            self._write(conn, rows)

    def _write(self, conn: sqlite3.Connection, rows: list[Any]) -> None:
        try:
            insert(conn, rows)
            self.written += len(rows)
        except sqlite3.Error:
            logger.opt(exception=True).error("request store: writing {} rows failed", len(rows))

    def _maybe_purge(self, conn: sqlite3.Connection) -> None:
        now = time.time()
        if now < self._next_purge:
            return
        self._next_purge = now + 3600
        try:
            removed = purge(conn, now - self.retention)
        except sqlite3.Error:
            logger.opt(exception=True).error("request store: purging old rows failed")
            return
        if removed:
            logger.info("request store: removed {} rows past retention", removed)
