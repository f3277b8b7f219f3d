"""The cache key of a request and the request's own cache controls.

The key is a hash of the route, the door and the body's fields that change the answer, in a
canonical form (sorted keys), scoped to the tenant. Fields that do not change the answer
(``user``, ``metadata``, ``stream``, ``stream_options``) and ``model`` (the route stands for
it) are left out, so a streamed and a non-streamed request share an entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import attrs
import orjson
from plugway.context import RequestContext
from plugway.errors import InvalidRequest

IGNORED_FIELDS = frozenset({"model", "user", "metadata", "stream", "stream_options"})
TTL_HEADER = "x-plugway-cache-ttl"
#: Bumped when the entry format changes, so old entries are never read.
VERSION = "v1"


@attrs.frozen
class Controls:
    """What the request's headers ask of the cache."""

    read: bool = True  # ``no-cache`` skips the read (the entry is refreshed)
    write: bool = True  # ``no-store`` neither reads nor writes
    ttl: float | None = None  # ``x-plugway-cache-ttl``


def controls(headers: Mapping[str, str], max_ttl: float) -> Controls:
    """The request's ``cache-control`` and ``x-plugway-cache-ttl``; a malformed TTL is a 400."""
    directives = {
        part.strip().split("=", 1)[0].lower()
        for part in headers.get("cache-control", "").split(",")
    }
    no_store = "no-store" in directives
    ttl = None
    raw = headers.get(TTL_HEADER)
    if raw is not None:
        try:
            ttl = float(raw)
        except ValueError:
            ttl = -1.0
        if not 0 <= ttl < float("inf"):
            raise InvalidRequest(
                f"header {TTL_HEADER} must be a number of seconds >= 0, got {raw[:40]!r}",
                param=TTL_HEADER,
            )
        ttl = min(ttl, max_ttl)
    return Controls(read=not no_store and "no-cache" not in directives, write=not no_store, ttl=ttl)


def scope_of(ctx: RequestContext, scope: str) -> str:
    """The tenant part of the key: ``t:TEAM``, ``k:TEAM:KEY_ID`` or ``g``. Team names are
    quoted so that ``:`` in one cannot reach into another's entries."""
    if scope == "global":
        return "g"
    team = quote(ctx.tags.get("team") or "-", safe="")
    if scope == "key":
        return f"k:{team}:{quote(ctx.principal or '-', safe='')}"
    return f"t:{team}"


def semantic_body(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in IGNORED_FIELDS}


def cache_key(ctx: RequestContext, route: str, scope: str) -> str:
    """``cache:v1:<scope>:<route>:<hash>``: the route and scope readable (for ``plugway cache
    clear --team/--model``), the body only as a hash."""
    # A door that translated the client's body keys on what the client sent (the translation
    # may leave out fields that change the answer).
    body = ctx.state.get("inbound_body", ctx.body)
    canonical = orjson.dumps(
        [ctx.endpoint, semantic_body(body)],
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
    )
    digest = hashlib.blake2b(canonical, digest_size=20).hexdigest()
    return f"cache:{VERSION}:{scope_of(ctx, scope)}:{quote(route, safe='')}:{digest}"


def nondeterministic(body: Mapping[str, Any]) -> bool:
    """True when the request asks for sampling (``temperature > 0``)."""
    temperature = body.get("temperature")
    return (
        isinstance(temperature, (int, float))
        and not isinstance(temperature, bool)
        and temperature > 0
    )
