"""A logger that ships one record per request to a webhook (or appends it to a file), in
batches, off the request path. Configure::

    [plugins.webhook_logger]
    url = "https://logs.example.com/plugway"   # or: path = "/var/log/plugway/requests.jsonl"
    batch_size = 50
    flush_seconds = 2.0

Records are plugway's own log-safe ``request_record`` (ids, model, provider, attempts,
status, latency, usage): no prompt or completion text, no key. ``post_response`` only puts the
record on a queue; a task per worker posts batches, and shutdown flushes what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import httpx
import orjson
from loguru import logger
from plugway import RequestContext, hookimpl
from plugway.plugins.request_logger import request_record

#: This plugin writes no prompt or completion text anywhere: it may run under [privacy] zdr.
PLUGWAY_RETAINS_CONTENT = False


@attrs.define(kw_only=True)
class Settings:
    url: str | None = None
    path: str | None = None
    batch_size: int = 50
    flush_seconds: float = 2.0
    headers: dict[str, str] = attrs.field(factory=dict)


class Shipper:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=10_000)
        self.client = httpx.AsyncClient(timeout=10, headers=settings.headers)
        self.task = asyncio.get_running_loop().create_task(self.run())

    def put(self, record: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(record)
        except asyncio.QueueFull:
            logger.warning("webhook_logger: queue full, a request record was dropped")

    async def run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.flush_seconds):
                    while len(batch) < self.settings.batch_size:
                        batch.append(await self.queue.get())
            await self.ship(batch)

    async def ship(self, batch: list[dict[str, Any]]) -> None:
        try:
            if self.settings.url:
                response = await self.client.post(
                    self.settings.url,
                    content=orjson.dumps(batch),
                    headers={"content-type": "application/json"},
                )
                response.raise_for_status()
            if self.settings.path:
                lines = b"".join(orjson.dumps(r) + b"\n" for r in batch)
                await asyncio.to_thread(_append, self.settings.path, lines)
        except Exception as exc:  # a logger must never break the gateway; say what was lost
            logger.error(
                "webhook_logger: {} records not shipped: {}", len(batch), type(exc).__name__
            )

    async def close(self) -> None:
        self.task.cancel()
        rest = []
        while not self.queue.empty():
            rest.append(self.queue.get_nowait())
        if rest:
            await self.ship(rest)
        await self.client.aclose()


def _append(path: str, data: bytes) -> None:
    with Path(path).open("ab") as out:
        out.write(data)


#: The worker's shipper, made at startup when a url or path is configured.
running: dict[str, Shipper] = {}


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    register("webhook_logger", Settings)


@hookimpl
def plugway_startup(config: Any) -> None:
    settings = config.plugin_settings.get("webhook_logger")
    if settings is not None and (settings.url or settings.path):
        running["shipper"] = Shipper(settings)


@hookimpl
async def plugway_shutdown() -> None:
    if "shipper" in running:
        await running.pop("shipper").close()


@hookimpl
def post_response(ctx: RequestContext) -> None:
    if "shipper" in running:
        running["shipper"].put(request_record(ctx))
