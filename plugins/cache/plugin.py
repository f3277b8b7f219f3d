"""The ``cache`` plugin: exact-match response cache on the ``cached_response`` hook.

A request to a cached route and door is keyed (:mod:`.keying`); a hit is answered by a
:class:`.replay.CachedProvider` (no upstream call, streamed or not, whichever way the entry was
made), a miss is stored in ``post_response`` once it succeeded. Answers carry
``x-plugway-cache: hit|miss|bypass`` (and ``age`` on hits); ``ctx.tags["cache"]`` says the same
to the logs, the store and the metrics, and ``ctx.state["cache_saved_usd"]`` what a hit saved.

Off until ``[plugins.cache] enabled = true`` or ``models = [...]``. Keys, prompts and answers
are never logged.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

import attrs
import orjson
from loguru import logger
from plugway.config import Config
from plugway.context import RequestContext
from plugway.errors import AuthenticationFailed, InvalidRequest, PermissionDenied
from plugway.gateway import Gateway
from plugway.hooks import hookimpl
from plugway.plugins.cache import keying, replay, settings
from plugway.plugins.cache.settings import CacheSettings, RouteRule
from plugway.plugins.cache.stores import MemoryStore, StateStore, Store
from plugway.provider import CacheLookup, ProviderResponse

NAME = "cache"
STATE = "cache"
SAVED = "cache_saved_usd"  # ctx.state: USD a hit saved
HEADER = "x-plugway-cache"
ADMIN_PATH = "/admin/cache"


def PLUGWAY_RETAINS_CONTENT(config: Config) -> bool:
    """The cache keeps answers: outside this process when its entries go to a shared state
    backend; in this process only otherwise (which ``[privacy] zdr`` allows when
    ``allow_under_zdr = true``, see :func:`check_config`)."""
    cache: CacheSettings = config.plugin_settings[NAME]
    return settings.enabled(cache) and settings.uses_state(cache, config.state.backend)


def plugway_enabled(config: Config) -> bool:
    return settings.enabled(config.plugin_settings[NAME])


class Matcher(Protocol):
    """A second look-up on an exact miss: the ``semantic_cache`` plugin's index."""

    async def probe(self, ctx: RequestContext, route: str, scope: str) -> Any: ...

    def nearest(self, probe: Any) -> str | None: ...

    def forget(self, probe: Any, key: str) -> None: ...

    def add(self, probe: Any, key: str, ttl: float) -> None: ...

    def size(self) -> int: ...


@attrs.define
class Pending:
    """A miss to store once it succeeds."""

    key: str
    ttl: float
    recording: replay.Recording | None = None
    probe: Any = None  # the semantic index's view of the request, to add it once stored


@attrs.define
class _Runtime:
    gateway: Gateway | None = None
    settings: CacheSettings = attrs.field(factory=CacheSettings)
    rules: dict[str, RouteRule] = attrs.field(factory=dict)
    endpoints: frozenset[str] = frozenset()
    store: Store | None = None
    matcher: Matcher | None = None


_rt = _Runtime()


def set_matcher(matcher: Matcher | None) -> None:
    """Install (or remove) the look-up an exact miss consults (the semantic cache)."""
    _rt.matcher = matcher


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    register(NAME, CacheSettings)


@hookimpl
def check_config(config: Config) -> list[str] | None:
    return (
        settings.check(config.plugin_settings[NAME], config.state.backend, config.privacy.zdr)
        or None
    )


@hookimpl
def plugway_startup(app: Any, config: Config) -> None:
    gw: Gateway = app.ctx.gateway
    cache: CacheSettings = config.plugin_settings[NAME]
    _rt.gateway, _rt.settings = gw, cache
    _rt.rules = settings.route_rules(cache)
    _rt.endpoints = frozenset(cache.endpoints)
    if settings.uses_state(cache, config.state.backend):
        _rt.store = StateStore(gw.state, cache.backend_timeout)
    else:
        _rt.store = MemoryStore(cache.max_entries, cache.max_bytes)


@hookimpl
def plugway_shutdown() -> None:
    _rt.store = None


def _ttl(controls: keying.Controls, route: str) -> float:
    """The request's TTL, else its route's, else the cache's."""
    if controls.ttl is not None:
        return controls.ttl
    rule = _rt.rules.get(route)
    if rule is not None and rule.ttl is not None:
        return rule.ttl
    return _rt.settings.ttl


@hookimpl
async def cached_response(ctx: RequestContext) -> CacheLookup | None:
    cache_store = _rt.store
    route = ctx.route
    if cache_store is None or route is None or ctx.endpoint not in _rt.endpoints:
        return None
    cache = _rt.settings
    if not cache.enabled and route.name not in _rt.rules:
        return None
    controls = keying.controls(ctx.headers, cache.max_ttl)
    if (
        not controls.write
        or ctx.state.get("canonical_lossy")  # the answer's OpenAI form would not be faithful
        or (keying.nondeterministic(ctx.body) and not cache.cache_nondeterministic)
    ):
        _mark(ctx, "bypass")
        return None
    key = keying.cache_key(ctx, route.name, cache.scope)
    probe = None
    if controls.read:
        entry = await _entry(cache_store, key)
        if entry is None and _rt.matcher is not None:
            probe = await _rt.matcher.probe(ctx, route.name, cache.scope)
            similar = _rt.matcher.nearest(probe) if probe is not None else None
            if similar is not None:
                entry = await _entry(cache_store, similar)
                if entry is None:
                    _rt.matcher.forget(probe, similar)
                else:
                    ctx.tags["cache_match"] = "semantic"
        if entry is not None:
            cache_store.stats.hits += 1
            _mark(ctx, "hit")
            ctx.response_headers["age"] = str(int(max(0.0, time.time() - entry["at"])))
            saved = entry.get("cost")
            ctx.state[SAVED] = float(saved) if isinstance(saved, (int, float)) else 0.0
            return CacheLookup(hit=replay.CachedProvider(entry, _unfit))
        cache_store.stats.misses += 1
    _mark(ctx, "miss" if controls.read else "bypass")
    ttl = _ttl(controls, route.name)
    if ttl <= 0:
        return None
    if probe is None and _rt.matcher is not None and not controls.read:
        probe = await _rt.matcher.probe(ctx, route.name, cache.scope)
    pending = Pending(key, ttl, probe=probe)
    ctx.state[STATE] = pending
    if ctx.stream:
        pending.recording = replay.Recording()
        return CacheLookup(record=replay.recorder(pending.recording, cache.max_entry_bytes))
    return None


def _unfit(ctx: RequestContext) -> None:
    """The entry could not answer this door: the request goes upstream as a miss (not
    stored: the entry is there)."""
    _mark(ctx, "miss")
    ctx.response_headers.pop("age", None)
    ctx.state.pop(SAVED, None)
    ctx.tags.pop("cache_match", None)


def _mark(ctx: RequestContext, result: str) -> None:
    ctx.tags[NAME] = result
    ctx.response_headers[HEADER] = result


async def _entry(cache_store: Store, key: str) -> dict[str, Any] | None:
    data = await cache_store.get(key)
    return _decode(data) if data is not None else None


def _decode(data: bytes) -> dict[str, Any] | None:
    try:
        entry = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if isinstance(entry, dict) and isinstance(entry.get("body"), dict) and "at" in entry:
        return entry
    return None


@hookimpl
async def post_response(ctx: RequestContext, response: ProviderResponse | None) -> None:
    pending: Pending | None = ctx.state.pop(STATE, None)
    cache_store = _rt.store
    if pending is None or cache_store is None or ctx.status != 200 or ctx.error is not None:
        return
    deltas = None
    if response is not None:
        body: dict[str, Any] | None = response.body
    elif pending.recording is not None and pending.recording.parts is not None:
        try:
            assembled = replay.assemble(pending.recording.parts, ctx.usage)
        except (orjson.JSONDecodeError, TypeError, AttributeError):
            assembled = None
        body, deltas = assembled if assembled is not None else (None, None)
    else:
        body = None
    if not body or "error" in body:
        return
    entry = {"body": body, "deltas": deltas, "cost": ctx.cost, "at": time.time()}
    data = orjson.dumps(entry)
    if len(data) > _rt.settings.max_entry_bytes:
        logger.debug("cache: an answer of {} bytes is over max_entry_bytes", len(data))
        return
    if isinstance(cache_store, MemoryStore) or _rt.gateway is None:
        await cache_store.put(pending.key, data, pending.ttl)
    else:
        # a network write: off the answer's path
        _rt.gateway.spawn(cache_store.put(pending.key, data, pending.ttl))
    if pending.probe is not None and _rt.matcher is not None:
        _rt.matcher.add(pending.probe, pending.key, pending.ttl)


# -- admin: stats and clear ----------------------------------------------------------------------


def _require_master(headers: Any) -> None:
    master = os.environ.get("PLUGWAY_MASTER_KEY")
    if not master:
        raise PermissionDenied(
            "the admin API is off: set PLUGWAY_MASTER_KEY to use it", code="admin_disabled"
        )
    auth = headers.get("authorization", "")
    presented = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    if not presented or not hmac.compare_digest(presented.encode(), master.encode()):
        raise AuthenticationFailed("the admin API needs the master key")


def matcher(team: str | None, model: str | None) -> Callable[[str], bool]:
    """Which keys ``clear --team/--model`` means (see :func:`keying.cache_key`)."""
    from urllib.parse import quote

    def match(key: str) -> bool:
        parts = key.split(":")
        if len(parts) < 5 or parts[0] != "cache":
            return False
        scope, route = parts[2:-2], parts[-2]
        if team is not None and (len(scope) < 2 or scope[1] != quote(team, safe="")):
            return False
        return model is None or route == quote(model, safe="")

    return match


@hookimpl
def register_commands(commands: Any) -> None:
    from plugway.plugins.cache import cli

    cli.add_commands(commands)


@hookimpl
def register_routes(app: Any, config: Config) -> None:
    from sanic import HTTPResponse, Request

    async def stats(request: Request) -> HTTPResponse:
        _require_master(request.headers)
        if _rt.store is None:
            raise InvalidRequest("the cache has not started")
        match = matcher(request.args.get("team"), request.args.get("model"))
        described = await _rt.store.describe(match)
        if _rt.matcher is not None:
            described["semantic_vectors"] = _rt.matcher.size()  # this worker's index
        return HTTPResponse(orjson.dumps(described), content_type="application/json")

    async def clear(request: Request) -> HTTPResponse:
        _require_master(request.headers)
        if _rt.store is None:
            raise InvalidRequest("the cache has not started")
        match = matcher(request.args.get("team"), request.args.get("model"))
        removed = await _rt.store.clear(match)
        return HTTPResponse(orjson.dumps({"removed": removed}), content_type="application/json")

    app.add_route(stats, ADMIN_PATH, methods=["GET"], name="plugway_cache_stats")
    app.add_route(clear, ADMIN_PATH, methods=["DELETE"], name="plugway_cache_clear")
