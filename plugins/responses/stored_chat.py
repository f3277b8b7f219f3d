"""The ``stored_chat`` plugin: ``store: true`` on ``POST /v1/chat/completions`` keeps the
request's messages and the answer, with its ``metadata``, in the responses plugin's store
(:mod:`plugway.plugins.responses.store`, so SQLite shared by a machine's workers, or the state
backend, Redis, shared by every machine), scoped to the caller's team or key and kept for
``[plugins.responses] ttl``; :mod:`.chat_resources` serves them back in OpenAI's shapes.

- ``pre_route``: checks ``store`` and ``metadata``; under ``[privacy] zdr`` a request with
  ``store: true`` is refused (400) or, with ``[plugins.responses] zdr_store = "coerce"``, served
  with ``store: false`` (as ``/v1/responses`` answers it).
- ``cached_response``: for a streamed request to store, records the stream's bytes (the cache
  plugin's recorder: one append per event) around whatever the cache plugin answers.
- ``post_response``: stores the answer (a stream assembled once, when it ended whole) under
  the id the client got (a non-streamed answer after the write, so it can be read back at
  once; a stream once it ended). A failure to store is logged, never the
  client's error.

Needs the ``responses`` plugin (its store); with it disabled nothing is stored.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from loguru import logger
from plugway.config import Config
from plugway.context import RequestContext
from plugway.errors import InvalidRequest
from plugway.hooks import hookimpl
from plugway.plugins.cache import replay
from plugway.plugins.responses import chat_resources
from plugway.plugins.responses.chat_resources import check_metadata
from plugway.plugins.responses.runtime import owner_of, runtime
from plugway.plugins.responses.store import StoredChat
from plugway.provider import CacheLookup, Provider, ProviderResponse
from sanic import Sanic

ENDPOINT = "chat.completions"
#: ``ctx.state`` key: the recording of a streamed answer to store.
STATE = "stored_chat"
#: A streamed answer longer than this (bytes of events) is not stored (and that is logged).
MAX_STREAM_BYTES = 8 * 1024 * 1024


class _Gateway:
    gateway: Any = None


_gw = _Gateway()


def PLUGWAY_RETAINS_CONTENT(config: Config) -> bool:
    """Stored chat completions hold prompts and answers, except under ``[privacy] zdr``."""
    return not config.privacy.zdr


@hookimpl
def register_routes(app: Sanic[Any, Any], config: Config) -> None:
    chat_resources.register(app)


@hookimpl
def plugway_startup(app: Any) -> None:
    _gw.gateway = app.ctx.gateway


@hookimpl
def pre_route(ctx: RequestContext) -> None:
    if ctx.endpoint != ENDPOINT or "store" not in ctx.body:
        return
    store = ctx.body["store"]
    if store is None:
        return
    if not isinstance(store, bool):
        raise InvalidRequest("store must be true or false", param="store")
    if not store:
        return
    gw = _gw.gateway
    if gw is not None and gw.config.privacy.zdr:
        if runtime.settings.zdr_store != "coerce":
            raise InvalidRequest(
                "store: zero data retention is on ([privacy] zdr = true), so chat completions "
                'cannot be stored; send "store": false',
                param="store",
                code="store_not_allowed",
            )
        ctx.body["store"] = False
        return
    check_metadata(ctx.body.get("metadata"))
    ctx.state[STATE] = None


def _wants_store(ctx: RequestContext) -> bool:
    return STATE in ctx.state and runtime.store is not None


@hookimpl(tryfirst=True)
def cached_response(ctx: RequestContext) -> Awaitable[CacheLookup] | None:
    """For a streamed request to store: a recorder around each provider the walk calls, and
    around what the other ``cached_response`` impls (a response cache) answer, so a hit is
    stored too and a cache's own recording still runs. Sync for every other request (no
    coroutine made)."""
    if not ctx.stream or not _wants_store(ctx):
        return None
    return _recorded(ctx)


async def _recorded(ctx: RequestContext) -> CacheLookup:
    recording = replay.Recording()
    ctx.state[STATE] = recording
    mine = replay.recorder(recording, MAX_STREAM_BYTES)
    theirs = await _others(ctx)
    if theirs is None:
        return CacheLookup(record=mine)
    inner = theirs.record
    record: Callable[[Provider], Provider] = (
        mine if inner is None else (lambda provider: mine(inner(provider)))
    )
    hit = mine(theirs.hit) if theirs.hit is not None else None
    return CacheLookup(hit=hit, record=record)


async def _others(ctx: RequestContext) -> CacheLookup | None:
    gw = _gw.gateway
    if gw is None:
        return None
    for impl in gw.hooks.impls("cached_response"):
        if impl.function is cached_response:
            continue
        result = impl.call({"ctx": ctx})
        if result is not None and inspect.isawaitable(result):
            result = await result
        if isinstance(result, CacheLookup):
            return result
    return None


@hookimpl
def post_response(ctx: RequestContext, response: ProviderResponse | None) -> Awaitable[None] | None:
    if ctx.endpoint != ENDPOINT or STATE not in ctx.state:
        return None
    return _keep(ctx, response)


async def _keep(ctx: RequestContext, response: ProviderResponse | None) -> None:
    recording = ctx.state.pop(STATE)
    store, gw = runtime.store, _gw.gateway
    if store is None or gw is None or ctx.status != 200 or ctx.error is not None:
        return
    if response is not None:
        completion: dict[str, Any] | None = response.body
    elif isinstance(recording, replay.Recording) and recording.parts is not None:
        try:
            assembled = replay.assemble(recording.parts, ctx.usage)
        except (orjson.JSONDecodeError, TypeError, AttributeError):
            assembled = None
        completion = assembled[0] if assembled is not None else None
    else:
        completion = None
    if not completion or not isinstance(completion.get("id"), str):
        logger.warning("stored_chat: request {} asked to store; no whole answer", ctx.request_id)
        return
    record = make_record(ctx, completion)
    # A non-streamed answer waits for the write (one row), so the client that got it can
    # read it back at once; a stream's post_response already runs off the answer's path.
    await _put(record)


def make_record(ctx: RequestContext, completion: dict[str, Any]) -> StoredChat:
    """The record of a request and the answer its client got (copied: later hooks may change
    the answer's dict)."""
    metadata = ctx.body.get("metadata")
    metadata = dict(metadata) if isinstance(metadata, dict) else {}
    completion_id = completion["id"]
    kept = orjson.loads(orjson.dumps(completion))
    kept["metadata"] = metadata or None
    kept.setdefault("object", "chat.completion")
    created = kept.get("created")
    if not isinstance(created, int):
        kept["created"] = int(time.time())
    messages = [
        store_message(message, f"{completion_id}-{index}")
        for index, message in enumerate(ctx.body.get("messages") or ())
        if isinstance(message, dict)
    ]
    model = kept.get("model") if isinstance(kept.get("model"), str) else ctx.model
    return StoredChat(
        id=completion_id,
        owner=owner_of(ctx),
        model=str(model),
        requested=ctx.model,
        metadata=metadata,
        completion=kept,
        messages=messages,
    )


def store_message(message: dict[str, Any], message_id: str) -> dict[str, Any]:
    """A request message as OpenAI's ``ChatCompletionStoreMessage``: its fields, an ``id``,
    and ``content`` as text with the parts (text and images) in ``content_parts`` when it
    was a list."""
    out = dict(message)
    out["id"] = message_id
    content = message.get("content")
    if isinstance(content, list):
        parts = [
            part
            for part in content
            if isinstance(part, dict) and part.get("type") in ("text", "image_url")
        ]
        out["content"] = "".join(
            part["text"] for part in parts if isinstance(part.get("text"), str)
        )
        out["content_parts"] = parts
    else:
        out["content_parts"] = None
    return out


async def _put(record: StoredChat) -> None:
    store = runtime.store
    if store is None:
        return
    try:
        await store.put_chat(record)
    except Exception:
        logger.opt(exception=True).error("stored_chat: failed to store {}", record.id)
