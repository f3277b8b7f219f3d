"""The plugin's per-worker state (its settings and store) and who owns a stored response."""

from __future__ import annotations

from typing import Any

import attrs
from plugway.context import RequestContext
from plugway.plugins.responses.settings import ResponsesSettings
from plugway.plugins.responses.store import ResponseStore


@attrs.define
class Runtime:
    settings: ResponsesSettings = attrs.field(factory=ResponsesSettings)
    #: None under ``[privacy] zdr``: nothing is stored.
    store: ResponseStore | None = None


runtime = Runtime()


def owner(principal: str | None, team: str | None) -> str:
    """The tenant a response belongs to: the caller's team when its key has one, else the
    key (``master`` for the master key), ``""`` when authentication is off."""
    if team:
        return "team:" + team
    return "key:" + principal if principal else ""


def owner_of(ctx: RequestContext) -> str:
    team = ctx.tags.get("team")
    return owner(ctx.principal, team if isinstance(team, str) else None)


async def owner_of_request(app_ctx: Any, headers: Any) -> str:
    """The tenant of a request that does not go through the pipeline (``GET``/``DELETE``),
    authenticated by the keys plugin's authenticator when one is on (``app.ctx.keys_auth``)."""
    auth = getattr(app_ctx, "keys_auth", None)
    if auth is None or not getattr(auth, "enabled", False):
        return ""
    principal = await auth.authenticate(headers)
    if principal.master:
        return owner("master", None)
    key = principal.key
    return owner(key.id, key.team)
