"""The embedded key store: virtual keys in SQLite, stored hashed.

A key is ``pw-`` and 43 URL-safe characters (256 random bits). Only its SHA-256 is stored: a
key of that entropy needs no slow hash, and a lookup is one indexed equality on the digest.
Every statement is parameterised; a key never reaches SQL text. The plain key exists once, in
the return value of :meth:`KeyStore.create`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import orjson

KEY_PREFIX = "pw-"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    team TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    models TEXT NOT NULL DEFAULT '[]',
    expires_at REAL,
    limits TEXT NOT NULL DEFAULT '{}',
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    revoked_at REAL,
    mcp_tools TEXT
);
"""

#: Columns added after the first release, with their definitions: a store made by an older
#: gateway gains them when it is opened (``ALTER TABLE ... ADD COLUMN``, NULL for old rows).
_MIGRATIONS = (("mcp_tools", "TEXT"),)


def digest(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@attrs.frozen
class KeyLimits:
    """What a key may use. ``None`` is "no limit"."""

    rpm: int | None = None  # requests per minute
    tpm: int | None = None  # tokens per minute
    max_parallel: int | None = None  # requests in flight
    budget_usd: float | None = None
    budget_period: str = "month"  # "day" | "week" | "month" | "total"
    #: per model: {"model": {"rpm": n, "tpm": n}}
    models: Mapping[str, Mapping[str, int]] = attrs.field(factory=dict)


@attrs.frozen
class VirtualKey:
    """A key record as the gateway sees it: never the key itself, never its digest."""

    id: str
    team: str
    name: str
    models: tuple[str, ...]
    expires_at: float | None
    limits: KeyLimits
    metadata: Mapping[str, Any]
    created_at: float
    revoked_at: float | None
    #: ``server/tool`` globs (``fnmatch``) of the MCP tools the key may list and call;
    #: ``None`` (the default, and every key made before MCP) allows all.
    mcp_tools: tuple[str, ...] | None = None

    def usable(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def allows(self, model: str) -> bool:
        return not self.models or model in self.models

    def allows_tool(self, server: str, tool: str) -> bool:
        """Whether the key may see and call MCP tool ``tool`` of server ``server``."""
        if self.mcp_tools is None:
            return True
        name = f"{server}/{tool}"
        return any(fnmatch.fnmatchcase(name, glob) for glob in self.mcp_tools)

    def public(self) -> dict[str, Any]:
        """What ``keys list`` and the admin API show."""
        return {
            "id": self.id,
            "team": self.team,
            "name": self.name,
            "models": list(self.models),
            "expires_at": self.expires_at,
            "limits": attrs.asdict(self.limits),
            "metadata": dict(self.metadata),
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "mcp_tools": None if self.mcp_tools is None else list(self.mcp_tools),
        }


LIMIT_FIELDS = {f.name for f in attrs.fields(KeyLimits)}


def limits_from(data: Mapping[str, Any]) -> KeyLimits:
    """Check and build limits from untrusted input (the admin API, the CLI)."""
    unknown = set(data) - LIMIT_FIELDS
    if unknown:
        raise ValueError(f"unknown limit {sorted(unknown)[0]!r}; known: {sorted(LIMIT_FIELDS)}")
    for name in ("rpm", "tpm", "max_parallel"):
        value = data.get(name)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 0
        ):
            raise ValueError(f"{name} must be a whole number of 0 or more")
    budget = data.get("budget_usd")
    if budget is not None and (
        not isinstance(budget, int | float) or isinstance(budget, bool) or budget < 0
    ):
        raise ValueError("budget_usd must be a number of 0 or more")
    period = data.get("budget_period", "month")
    if period not in ("day", "week", "month", "total"):
        raise ValueError("budget_period must be day, week, month or total")
    models = data.get("models", {})
    if not isinstance(models, dict) or not all(
        isinstance(k, str)
        and isinstance(v, dict)
        and set(v) <= {"rpm", "tpm"}
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in v.values())
        for k, v in models.items()
    ):
        raise ValueError('limits.models must map model names to {"rpm": n, "tpm": n}')
    return KeyLimits(
        rpm=data.get("rpm"),
        tpm=data.get("tpm"),
        max_parallel=data.get("max_parallel"),
        budget_usd=None if budget is None else float(budget),
        budget_period=period,
        models=models,
    )


class KeyStore:
    """Virtual keys in one SQLite file. Thread-safe; calls block, so the gateway runs them
    in a thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._migrate()
        self._lock = threading.Lock()

    def _migrate(self) -> None:
        """Add the columns a store made by an older gateway lacks."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(keys)")}
        for column, definition in _MIGRATIONS:
            if column not in have:
                try:
                    self._db.execute(f"ALTER TABLE keys ADD COLUMN {column} {definition}")
                except sqlite3.OperationalError as exc:  # another process added it meanwhile
                    if "duplicate column" not in str(exc):
                        raise

    def close(self) -> None:
        self._db.close()

    def create(
        self,
        team: str,
        *,
        name: str = "",
        models: list[str] | None = None,
        expires_at: float | None = None,
        limits: KeyLimits | None = None,
        metadata: Mapping[str, Any] | None = None,
        mcp_tools: list[str] | None = None,
    ) -> tuple[str, VirtualKey]:
        """Make a key; returns the plain key (its only appearance) and its record."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = "key_" + secrets.token_hex(8)
        now = time.time()
        limits = limits or KeyLimits()
        with self._lock:
            self._db.execute(
                "INSERT INTO keys (id, digest, team, name, models, expires_at, limits, "
                "metadata, created_at, mcp_tools) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key_id,
                    digest(key),
                    team,
                    name,
                    orjson.dumps(models or []).decode(),
                    expires_at,
                    orjson.dumps(attrs.asdict(limits)).decode(),
                    orjson.dumps(dict(metadata or {})).decode(),
                    now,
                    None if mcp_tools is None else orjson.dumps(mcp_tools).decode(),
                ),
            )
        record = self.get(key_id)
        assert record is not None
        return key, record

    def lookup(self, key: str) -> VirtualKey | None:
        """The record of a plain key, or None. Revoked and expired keys are returned too:
        the caller decides."""
        return self.lookup_digest(digest(key))

    def lookup_digest(self, key_digest: str) -> VirtualKey | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM keys WHERE digest = ?", (key_digest,)
            ).fetchone()
        return None if row is None else _record(row)

    def get(self, key_id: str) -> VirtualKey | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM keys WHERE id = ?", (key_id,)
            ).fetchone()
        return None if row is None else _record(row)

    def list(self, team: str | None = None) -> list[VirtualKey]:
        with self._lock:
            if team is None:
                rows = self._db.execute(f"SELECT {_COLUMNS} FROM keys ORDER BY created_at")
            else:
                rows = self._db.execute(
                    f"SELECT {_COLUMNS} FROM keys WHERE team = ? ORDER BY created_at", (team,)
                )
            return [_record(row) for row in rows.fetchall()]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key by id; False when no live key has that id."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (time.time(), key_id),
            )
        return cursor.rowcount == 1

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM keys").fetchone()[0])


_COLUMNS = "id, team, name, models, expires_at, limits, metadata, created_at, revoked_at, mcp_tools"


def _record(row: tuple[Any, ...]) -> VirtualKey:
    limits = orjson.loads(row[5])
    return VirtualKey(
        id=row[0],
        team=row[1],
        name=row[2],
        models=tuple(orjson.loads(row[3])),
        expires_at=row[4],
        limits=KeyLimits(**limits),
        metadata=orjson.loads(row[6]),
        created_at=row[7],
        revoked_at=row[8],
        mcp_tools=None if row[9] is None else tuple(orjson.loads(row[9])),
    )
