"""``[plugins.cache]``: what is cached, for how long, where, and for whom."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

#: Doors whose answers are OpenAI-shaped and whose per-target call uses ``chat``,
#: ``chat_stream``, ``embeddings`` or ``moderations``: what the cache can answer.
KNOWN_ENDPOINTS = ("chat.completions", "embeddings", "moderations", "messages")
SCOPES = ("team", "key", "global")
BACKENDS = ("auto", "memory", "state")  # auto and state: the [state] backend when shared


@attrs.define(kw_only=True)
class CacheSettings:
    """``[plugins.cache]``. The cache is off until ``enabled = true`` (every route) or
    ``models`` names routes."""

    #: Cache every route (``models`` then only sets per-route TTLs).
    enabled: bool = False
    #: Routes to cache: a list of route names, or a table ``{name = {ttl = 60}}``.
    models: Any = attrs.field(factory=dict)
    #: Seconds an entry lives, unless its route or the request says otherwise.
    ttl: float = 3600.0
    #: Longest TTL a request may ask for with ``x-plugway-cache-ttl``.
    max_ttl: float = 86400.0
    #: Who shares entries: ``team`` (the key's team), ``key`` (each key alone) or ``global``.
    scope: str = "team"
    #: Cache requests that ask for ``temperature > 0`` too.
    cache_nondeterministic: bool = False
    #: ``memory`` (this worker, LRU), ``state`` (the ``[state]`` backend, e.g. Redis, shared by
    #: every worker and machine), ``auto`` (``state`` when ``[state] backend`` is not memory).
    backend: str = "auto"
    #: In-process bounds: entries and bytes (least recently used go first).
    max_entries: int = 10_000
    max_bytes: int = 64 * 1024 * 1024
    #: Answers bigger than this (serialized) are not stored.
    max_entry_bytes: int = 1024 * 1024
    #: Seconds a shared-backend read or write may take before it counts as a miss.
    backend_timeout: float = 0.25
    #: Doors the cache answers.
    endpoints: list[str] = attrs.field(factory=lambda: list(KNOWN_ENDPOINTS))
    #: Keep answers under ``[privacy] zdr = true`` (in-process backend only).
    allow_under_zdr: bool = False


@attrs.frozen
class RouteRule:
    """Per-route cache settings."""

    ttl: float | None = None


def route_rules(settings: CacheSettings, problems: list[str] | None = None) -> dict[str, RouteRule]:
    """``models`` as ``{route: RouteRule}``; its mistakes go to ``problems`` (TOML paths)."""
    problems = [] if problems is None else problems
    raw = settings.models
    path = "plugins.cache.models"
    out: dict[str, RouteRule] = {}
    if isinstance(raw, list):
        for i, name in enumerate(raw):
            if not isinstance(name, str):
                problems.append(f"{path}[{i}]: expected a route name (a string)")
            else:
                out[name] = RouteRule()
    elif isinstance(raw, Mapping):
        for name, table in raw.items():
            if not isinstance(table, Mapping) or set(table) - {"ttl"}:
                problems.append(f"{path}.{name}: expected a table such as {{ ttl = 60 }}")
                continue
            ttl = table.get("ttl")
            if ttl is not None and (
                isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl < 0
            ):
                problems.append(f"{path}.{name}.ttl: expected seconds (a number >= 0)")
                continue
            out[str(name)] = RouteRule(None if ttl is None else float(ttl))
    else:
        problems.append(f"{path}: expected a list of route names or a table of routes")
    return out


def check(settings: CacheSettings, state_backend: str, zdr: bool) -> list[str]:
    """Every mistake in ``settings``, each naming its TOML path."""
    path = "plugins.cache"
    problems: list[str] = []
    route_rules(settings, problems)
    if settings.scope not in SCOPES:
        problems.append(f"{path}.scope: {settings.scope!r} is not a scope; use {', '.join(SCOPES)}")
    if settings.backend not in BACKENDS:
        problems.append(
            f"{path}.backend: {settings.backend!r} is not a backend; use {', '.join(BACKENDS)}"
        )
    for name in ("ttl", "max_ttl", "backend_timeout"):
        if getattr(settings, name) < 0:
            problems.append(f"{path}.{name}: must be >= 0 seconds")
    for name in ("max_entries", "max_bytes", "max_entry_bytes"):
        if getattr(settings, name) < 1:
            problems.append(f"{path}.{name}: must be at least 1")
    for i, endpoint in enumerate(settings.endpoints):
        if endpoint not in KNOWN_ENDPOINTS:
            problems.append(
                f"{path}.endpoints[{i}]: the cache cannot answer {endpoint!r}; "
                f"use {', '.join(KNOWN_ENDPOINTS)}"
            )
    if zdr and enabled(settings):
        shared = uses_state(settings, state_backend)
        if not settings.allow_under_zdr or shared:
            problems.append(
                f"{path}: the cache keeps completions, which privacy.zdr forbids; "
                + (
                    'a shared backend is never allowed under zdr: set backend = "memory" '
                    "and allow_under_zdr = true, or turn the cache off"
                    if shared
                    else "set allow_under_zdr = true to keep them in this process only, "
                    "or turn the cache off"
                )
            )
    return problems


def enabled(settings: CacheSettings) -> bool:
    return settings.enabled or bool(settings.models)


def uses_state(settings: CacheSettings, state_backend: str) -> bool:
    """True when entries go to the gateway's shared state backend rather than this process
    (``state`` on an in-process ``[state]`` backend is the in-process LRU: it is bounded)."""
    return settings.backend != "memory" and state_backend != "memory"
