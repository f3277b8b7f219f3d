"""Where video jobs live: one JSON record per gateway job id in the state backend (Redis when
``[state]`` is shared, so any worker or machine answers a poll), and per owner a numbered index
for listing. Keys: ``videos:job:{id}``, ``videos:owner:{owner}:n`` (a counter) and
``videos:owner:{owner}:{i}`` (the i-th job id); all expire after the plugin's ``ttl``."""

from __future__ import annotations

import secrets

import attrs
import cattrs
import orjson
from plugway.formats.video_jobs import JobState
from plugway.state import StateBackend

_converter = cattrs.Converter()


@attrs.define(kw_only=True)
class VideoRecord:
    """One job: who owns it (see :func:`plugway.plugins.responses.runtime.owner`), where it is
    pinned (provider instance and upstream model), the model alias the client named, and the
    job's last known state. No prompt text is kept."""

    id: str
    owner: str
    provider: str
    model: str
    alias: str
    created_at: int
    seconds: int | None
    size: str | None
    state: JobState
    principal: str | None = None
    tags: dict[str, str] = attrs.field(factory=dict)
    completed_at: int | None = None
    #: The budget counters the job's estimate is reserved on, charged at its real cost when
    #: it ends (see :mod:`plugway.plugins.limits`).
    budget_keys: list[str] = attrs.field(factory=list)
    reserved: float = 0.0


def new_video_id() -> str:
    return "video_" + secrets.token_hex(16)


class VideoJobStore:
    def __init__(self, state: StateBackend, ttl: float) -> None:
        self.state = state
        self.ttl = ttl

    async def get(self, video_id: str) -> VideoRecord | None:
        raw = await self.state.get("videos:job:" + video_id)
        if raw is None:
            return None
        return _converter.structure(orjson.loads(raw), VideoRecord)

    async def put(self, record: VideoRecord) -> None:
        data = orjson.dumps(_converter.unstructure(record)).decode()
        await self.state.set("videos:job:" + record.id, data, self.ttl)

    async def add(self, record: VideoRecord) -> None:
        """Store a new job and index it under its owner."""
        await self.put(record)
        number = int(await self.state.incr(f"videos:owner:{record.owner}:n", 1, self.ttl))
        await self.state.set(f"videos:owner:{record.owner}:{number}", record.id, self.ttl)

    async def delete(self, video_id: str) -> None:
        await self.state.delete("videos:job:" + video_id)

    async def claim_end(self, video_id: str) -> bool:
        """True for exactly one caller per job, whichever worker: who records its end (cost)."""
        return await self.state.incr("videos:done:" + video_id, 1, self.ttl) == 1

    async def owned(self, owner: str, limit: int) -> list[VideoRecord]:
        """Up to ``limit`` of ``owner``'s live jobs, newest first."""
        count = await self.state.get(f"videos:owner:{owner}:n")
        out: list[VideoRecord] = []
        number = int(float(count)) if count else 0
        while number > 0 and len(out) < limit:
            video_id = await self.state.get(f"videos:owner:{owner}:{number}")
            record = await self.get(video_id) if video_id else None
            if record is not None:
                out.append(record)
            number -= 1
        return out
