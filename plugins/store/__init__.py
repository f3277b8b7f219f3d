"""The ``store`` plugin: one metadata row per request in an embedded SQLite file.

``post_response`` turns the finished request into a row (time, principal and team, model
asked, provider and upstream model, attempts, failovers, status, latency, time to first token,
tokens by class, cost, routing trace) and hands it to a background writer thread; the request
never waits for the disk. No prompt or completion text and no key is ever stored. Reports read
the file: ``plugway usage`` and ``plugway whatif`` (:mod:`plugway.plugins.store.reports`) and
the dashboard.

Settings (``[plugins.store]``): ``enabled`` (default true), ``path`` (default
``$XDG_STATE_HOME/plugway/requests.db``, i.e. ``~/.local/state/plugway/requests.db``),
``retention_days`` (default 30), ``flush_interval`` (seconds, default 0.5).

The ``routing`` column holds ``ctx.trace`` (strategy, candidates, scores, skipped targets and
why, notes, plan) and every attempt, as JSON.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import orjson
from plugway.config import Config
from plugway.context import RequestContext
from plugway.errors import PluginError
from plugway.hooks import hookimpl
from plugway.plugins.cost.pricing import request_tokens
from plugway.plugins.store.db import StoreWriter
from plugway.redact import redact

#: Writes no prompt or completion text anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False

NAME = "store"


def default_path() -> str:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(state) / "plugway" / "requests.db")


@attrs.define(kw_only=True)
class StoreSettings:
    enabled: bool = True
    #: The SQLite file; created with its folder when missing.
    path: str = attrs.field(factory=default_path)
    #: Rows older than this many days are deleted (checked hourly).
    retention_days: float = 30.0
    #: Seconds between batched writes at most.
    flush_interval: float = 0.5


def settings_of(config: Config) -> StoreSettings:
    settings = config.plugin_settings.get(NAME)
    return settings if isinstance(settings, StoreSettings) else StoreSettings()


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def failovers(ctx: RequestContext) -> int:
    """How many times the walk moved on to another target (a hedge is not a failover)."""
    return sum(
        1
        for before, after in zip(ctx.attempts, ctx.attempts[1:], strict=False)
        if after.target.key != before.target.key and not after.hedge
    )


_REDACTED: dict[str, str] = {}


def _redacted(model: str) -> str:
    """``redact(model)``, remembered: the same few model names come in on every request."""
    text = _REDACTED.get(model)
    if text is None:
        if len(_REDACTED) >= 4096:  # bounded: the name is the client's to choose
            _REDACTED.clear()
        text = _REDACTED[model] = redact(model)
    return text


def row_of(ctx: RequestContext) -> tuple[Any, ...]:
    """The store row of a finished request, in :data:`plugway.plugins.store.db.NAMES` order."""
    last = ctx.final_attempt
    tokens = request_tokens(ctx)
    # The routing trace the strategy filled in (candidates, scores, skipped targets, notes),
    # with each attempt in full.
    routing: dict[str, Any] = ctx.trace.summary(ctx.attempts)
    routing["route"] = ctx.route.name if ctx.route is not None else None
    if not routing.get("strategy") and ctx.route is not None:
        routing["strategy"] = ctx.route.strategy
    if not routing.get("plan"):
        routing["plan"] = [target.key for target in ctx.plan]
    routing["attempts"] = [attempt.summary() for attempt in ctx.attempts]
    error = None if ctx.error is None else (ctx.error.code or type(ctx.error).__name__)
    return (
        ctx.request_id,
        ctx.started_wall,
        ctx.endpoint,
        _redacted(ctx.model),  # client-supplied: a key pasted as the model must not be stored
        int(ctx.stream),
        ctx.principal,
        ctx.tags.get("team"),
        last.target.provider if last else None,
        last.target.model if last else None,
        len(ctx.attempts),
        failovers(ctx),
        ctx.status,
        error,
        _ms(None if ctx.ended is None else ctx.ended - ctx.started),
        _ms(None if ctx.first_token_at is None else ctx.first_token_at - ctx.started),
        tokens.input,
        tokens.cached_input,
        tokens.cache_write,
        tokens.output,
        tokens.reasoning,
        ctx.cost,
        ctx.finish_reason,
        orjson.dumps(routing, default=str).decode(),
        orjson.dumps(ctx.tags).decode() if ctx.tags else None,
        ctx.tags.get("cache"),
        ctx.state.get("cache_saved_usd"),
    )


_state: dict[str, StoreWriter] = {}


def writer() -> StoreWriter | None:
    """This worker's writer, when the store is enabled and started."""
    return _state.get("writer")


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    register(NAME, StoreSettings)


@hookimpl
async def plugway_startup(config: Config) -> None:
    settings = settings_of(config)
    if not settings.enabled:
        return
    store = StoreWriter(
        settings.path,
        retention_days=settings.retention_days,
        flush_interval=settings.flush_interval,
    )
    try:
        await asyncio.to_thread(store.start)
    except (OSError, sqlite3.Error) as exc:
        raise PluginError(
            f"plugins.store.path: cannot open the request store {settings.path!r}: {exc}; "
            "give a writable path, or set enabled = false"
        ) from None
    _state["writer"] = store


@hookimpl
async def plugway_shutdown() -> None:
    store = _state.pop("writer", None)
    if store is not None:
        await asyncio.to_thread(store.stop)


@hookimpl
def post_response(ctx: RequestContext) -> None:
    store = _state.get("writer")
    if store is not None:
        store.put(row_of(ctx))
