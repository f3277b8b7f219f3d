"""The response store's SQLite backend on its own: records by id, expiry after the TTL,
delete, and a file shared by two store objects (as two worker processes share it)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from plugway.plugins.responses.store import SqliteResponseStore, StoredResponse


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(response_id: str) -> StoredResponse:
    return StoredResponse(
        id=response_id,
        owner="team:a",
        response={"id": response_id, "object": "response", "output": []},
        input_items=[{"id": "msg_1", "type": "message", "role": "user", "content": []}],
        messages=[{"role": "user", "content": "hi"}],
        provider="p",
    )


def test_sqlite_store_keeps_expires_and_deletes(tmp_path: Path) -> None:
    async def run() -> None:
        clock = Clock()
        path = str(tmp_path / "deep" / "responses.db")
        one = SqliteResponseStore(path, ttl=60, clock=clock)
        two = SqliteResponseStore(path, ttl=60, clock=clock)
        await one.startup()
        await two.startup()
        await one.put(record("resp_a"))
        await one.put(record("resp_b"))
        found = await two.get("resp_a")
        assert found is not None and found.owner == "team:a"
        assert found.messages == [{"role": "user", "content": "hi"}]
        assert await two.delete("resp_a") is True
        assert await one.get("resp_a") is None
        assert await one.delete("resp_a") is False
        clock.now += 61
        assert await two.get("resp_b") is None  # expired
        assert await two.delete("resp_b") is False
        await one.aclose()
        await two.aclose()

    asyncio.run(run())
