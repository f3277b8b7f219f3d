"""The response store's SQLite backend on its own: records by id, expiry after the TTL,
delete, and a file shared by two store objects (as two worker processes share it); stored
chat completions in both backends."""

from __future__ import annotations

import asyncio
from pathlib import Path

from plugway.plugins.responses.store import (
    ChatQuery,
    ResponseStore,
    SqliteResponseStore,
    StateResponseStore,
    StoredChat,
    StoredResponse,
)
from plugway.state import MemoryBackend, StateConfig


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


# -- stored chat completions -------------------------------------------------------------------


def chat(completion_id: str, owner: str = "team:a", **metadata: str) -> StoredChat:
    return StoredChat(
        id=completion_id,
        owner=owner,
        model="m",
        metadata=dict(metadata),
        completion={"id": completion_id, "object": "chat.completion", "metadata": metadata},
        messages=[{"id": completion_id + "-0", "role": "user", "content": "hi"}],
    )


async def exercise_chats(store: ResponseStore) -> None:
    """The chat-completion contract both backends keep: pages in stored order, filters, the
    owner's records only, ``after`` of another owner refused, update keeps the place, a record
    stored again under its id is listed once."""
    for n in range(5):
        await store.put_chat(chat(f"c{n}", parity=str(n % 2)))
    await store.put_chat(chat("other", owner="team:b"))

    async def ids(**query: object) -> tuple[list[str], bool]:
        found, more = await store.list_chats(ChatQuery(owner="team:a", **query))  # type: ignore[arg-type]
        return [r.id for r in found], more

    assert await ids() == (["c0", "c1", "c2", "c3", "c4"], False)
    assert await ids(limit=2) == (["c0", "c1"], True)
    assert await ids(limit=2, after="c1") == (["c2", "c3"], True)
    assert await ids(descending=True, limit=2, after="c3") == (["c2", "c1"], True)
    assert await ids(metadata={"parity": "1"}) == (["c1", "c3"], False)
    assert await ids(model="other-model") == ([], False)
    try:
        await ids(after="other")
    except KeyError:
        pass
    else:
        raise AssertionError("another owner's id is no cursor")
    record = await store.get_chat("c2")
    assert record is not None
    record.metadata = {"parity": "1"}
    await store.update_chat(record)
    assert await ids(metadata={"parity": "1"}) == (["c1", "c2", "c3"], False)
    await store.put_chat(chat("c0", parity="0"))  # stored again: now last, listed once
    assert await ids() == (["c1", "c2", "c3", "c4", "c0"], False)
    assert await store.delete_chat("c3") is True
    assert await store.delete_chat("c3") is False
    assert await ids(limit=10) == (["c1", "c2", "c4", "c0"], False)


def test_chat_completions_in_sqlite_expire(tmp_path: Path) -> None:
    async def run() -> None:
        clock = Clock()
        store = SqliteResponseStore(str(tmp_path / "r.db"), ttl=60, clock=clock)
        await store.startup()
        await exercise_chats(store)
        clock.now += 61
        assert await store.get_chat("c1") is None
        assert (await store.list_chats(ChatQuery(owner="team:a")))[0] == []
        await store.aclose()

    asyncio.run(run())


def test_chat_completions_in_the_state_backend() -> None:
    async def run() -> None:
        store = StateResponseStore(MemoryBackend(StateConfig()), ttl=60)
        await exercise_chats(store)

    asyncio.run(run())
