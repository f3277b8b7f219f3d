"""Authentication with the master key and virtual keys, and the admin API for keys.

Authentication is on when ``PLUGWAY_MASTER_KEY`` is set (or ``[plugins.keys] required``).
A client presents its key as ``Authorization: Bearer``, ``x-api-key``, ``api-key`` or
``x-goog-api-key``. The master key may do everything; a virtual key is checked for
revocation, expiry and its allowed models, then ``ctx.principal`` is its id,
``ctx.tags["team"]`` its team and ``ctx.state["keys"]`` its :class:`VirtualKey`. Errors never
quote the key. The route an auth decision is made for is Sanic's parsed path, never anything
derived from the ``Host`` header.

Admin API (master key only): ``POST /admin/keys``, ``GET /admin/keys``,
``DELETE /admin/keys/<id>`` (also ``POST /admin/keys/<id>/revoke``).
"""

from __future__ import annotations

import asyncio
import hmac
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import orjson
from plugway.config import Config
from plugway.context import RequestContext
from plugway.errors import AuthenticationFailed, InvalidRequest, NotFound, PermissionDenied
from plugway.hooks import hookimpl
from plugway.plugins.keys.store import KeyStore, VirtualKey, digest, limits_from
from sanic import HTTPResponse, Request, Sanic

#: Keeps no prompt or completion text: key records only.
PLUGWAY_RETAINS_CONTENT = False

MASTER_KEY_ENV = "PLUGWAY_MASTER_KEY"
KEY_HEADERS = ("x-api-key", "api-key", "x-goog-api-key")
OPEN_PATHS = frozenset({"/health", "/ready"})
#: Served through the pipeline, whose pre_route authenticates.
PIPELINE_PATHS = frozenset(
    {
        "/v1/chat/completions",
        "/chat/completions",
        "/v1/embeddings",
        "/embeddings",
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/v1/moderations",
        "/moderations",
        "/v1/responses",
        "/responses",
        "/v1/completions",
        "/completions",
    }
)
#: Path prefixes served through the pipeline (the Gemini API door's ``POST
#: /v1beta/models/{model}:method``, also under ``/v1``) and where, as in Google's API, a ``key=`` query
#: parameter is the key when no key header is sent.
PIPELINE_PREFIXES = ("/v1beta/", "/v1/models/")


@attrs.define(kw_only=True)
class KeysSettings:
    """``[plugins.keys]``."""

    #: The SQLite file holding virtual keys (hashed).
    db: str = "plugway-keys.db"
    #: Require a key even when PLUGWAY_MASTER_KEY is not set (virtual keys only).
    required: bool = False
    #: Seconds a looked-up key is trusted before the store is asked again (a revocation made
    #: by another process takes effect within this time; the admin API's take effect at once).
    cache_seconds: float = 5.0


@attrs.define(kw_only=True)
class Principal:
    master: bool
    key: VirtualKey | None = None


class Authenticator:
    """One per worker: the store, the master key's digest and a small lookup cache."""

    def __init__(self, settings: KeysSettings, master_key: str | None) -> None:
        self.settings = settings
        self.master_digest = digest(master_key) if master_key else None
        self.enabled = self.master_digest is not None or settings.required
        self._store: KeyStore | None = None
        self._cache: dict[str, tuple[VirtualKey | None, float]] = {}

    @property
    def store(self) -> KeyStore:
        """Opened on first use, so a gateway without keys creates no file."""
        if self._store is None:
            self._store = KeyStore(self.settings.db)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def is_master(self, key: str) -> bool:
        return self.master_digest is not None and hmac.compare_digest(
            digest(key), self.master_digest
        )

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        key = presented_key(headers)
        if key is None:
            raise AuthenticationFailed(
                "You didn't provide an API key. Send it in the Authorization header as a "
                "bearer token.",
                code="missing_api_key",
            )
        if self.is_master(key):
            return Principal(master=True)
        record = await self.lookup(key)
        if record is None:
            raise AuthenticationFailed("Incorrect API key provided.")
        if not record.usable(time.time()):
            raise AuthenticationFailed(
                "This API key has been revoked or has expired.", code="key_expired"
            )
        return Principal(master=False, key=record)

    async def lookup(self, key: str) -> VirtualKey | None:
        if len(key) > 512:  # no key of ours is this long; do not hash megabytes
            return None
        now = time.monotonic()
        hit = self._cache.get(key_digest := digest(key))
        if hit is not None and now - hit[1] < self.settings.cache_seconds:
            return hit[0]
        record = await asyncio.to_thread(self.store.lookup_digest, key_digest)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key_digest] = (record, now)
        return record

    def forget(self, key_id: str) -> None:
        """Drop a key from the cache (after a revocation here)."""
        for cached, (record, _) in list(self._cache.items()):
            if record is not None and record.id == key_id:
                del self._cache[cached]


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a client sent, from any of the headers SDKs use."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    for name in KEY_HEADERS:
        other = headers.get(name)
        if other and other.strip():
            return other.strip()
    return None


def with_query_key(request: Request) -> Mapping[str, str]:
    """The request's headers, plus ``x-goog-api-key`` from a ``key=`` query parameter on the
    Gemini API's paths when no key header was sent (Google's clients may send it so)."""
    key = request.args.get("key") if request.path.startswith(PIPELINE_PREFIXES) else None
    if not key or presented_key(request.headers) is not None:
        return request.headers
    return {
        **{name.lower(): value for name, value in request.headers.items()},
        "x-goog-api-key": key,
    }


@attrs.define
class _Runtime:
    auth: Authenticator | None = None


_rt = _Runtime()


def authenticator() -> Authenticator | None:
    """This worker's authenticator (other plugins read key records through it)."""
    return _rt.auth


# -- hooks -------------------------------------------------------------------------------------


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    register("keys", KeysSettings)


@hookimpl
def register_routes(app: Sanic[Any, Any], config: Config) -> None:
    settings: KeysSettings = config.plugin_settings["keys"]
    _rt.auth = auth = Authenticator(settings, os.environ.get(MASTER_KEY_ENV) or None)
    app.ctx.keys_auth = auth

    async def guard(request: Request) -> None:
        # POST endpoints authenticate in pre_route; the rest of the surface here.
        if (
            not auth.enabled
            or request.route is None
            or request.path in OPEN_PATHS
            or request.path.startswith("/admin/")
        ):
            return  # (no route: a 404 or a timed-out request, answered as such)
        if request.method == "POST" and (
            request.path in PIPELINE_PATHS or request.path.startswith(PIPELINE_PREFIXES)
        ):
            return
        await auth.authenticate(with_query_key(request))

    if auth.enabled:  # without keys, no per-request cost at all
        app.register_middleware(guard, "request")
    admin = AdminApi(auth, app)
    app.add_route(admin.create, "/admin/keys", methods=["POST"], name="admin_keys_create")
    app.add_route(admin.list, "/admin/keys", methods=["GET"], name="admin_keys_list")
    app.add_route(
        admin.revoke, "/admin/keys/<key_id>", methods=["DELETE"], name="admin_keys_delete"
    )
    app.add_route(
        admin.revoke, "/admin/keys/<key_id>/revoke", methods=["POST"], name="admin_keys_revoke"
    )


@hookimpl
def plugway_shutdown() -> None:
    if _rt.auth is not None:
        _rt.auth.close()


@hookimpl(tryfirst=True)
async def pre_route(ctx: RequestContext) -> None:
    auth = _rt.auth
    if auth is None or not auth.enabled:
        return
    principal = await auth.authenticate(ctx.headers)
    if principal.master:
        ctx.principal = "master"
        return
    key = principal.key
    assert key is not None
    ctx.principal = key.id
    ctx.tags["team"] = key.team
    ctx.state["keys"] = key
    if ctx.endpoint.startswith("mcp."):
        return  # a tool call: its scope is the key's mcp_tools, checked by the mcp plugin
    if not key.allows(ctx.model):
        raise PermissionDenied(
            f"this API key may not use the model '{ctx.model}'",
            param="model",
            code="model_not_allowed",
        )


# -- admin API ---------------------------------------------------------------------------------


class AdminApi:
    def __init__(self, auth: Authenticator, app: Sanic[Any, Any]) -> None:
        self.auth = auth
        self.app = app

    def _require_master(self, request: Request) -> None:
        if self.auth.master_digest is None:
            raise PermissionDenied(
                f"the admin API is off: set {MASTER_KEY_ENV} to use it", code="admin_disabled"
            )
        key = presented_key(request.headers)
        if key is None or not self.auth.is_master(key):
            raise AuthenticationFailed("the admin API needs the master key")

    def _audit(self, event: dict[str, Any]) -> None:
        gateway = self.app.ctx.gateway
        gateway.hooks.call_sync_each(
            "audit_event", lambda _p: {"event": event, "config": gateway.config}
        )

    async def create(self, request: Request) -> HTTPResponse:
        self._require_master(request)
        try:
            data = orjson.loads(request.body or b"{}")
        except orjson.JSONDecodeError:
            raise InvalidRequest("the request body is not valid JSON") from None
        options = parse_create(data)
        key, record = await asyncio.to_thread(self.auth.store.create, **options)
        self._audit(
            {"action": "key.create", "actor": "master", "key_id": record.id, "team": record.team}
        )
        body = {"key": key, **record.public()}
        return HTTPResponse(orjson.dumps(body), status=201, content_type="application/json")

    async def list(self, request: Request) -> HTTPResponse:
        self._require_master(request)
        team = request.args.get("team")
        records = await asyncio.to_thread(self.auth.store.list, team)
        return _json({"object": "list", "data": [r.public() for r in records]})

    async def revoke(self, request: Request, key_id: str) -> HTTPResponse:
        self._require_master(request)
        if not await asyncio.to_thread(self.auth.store.revoke, key_id):
            raise NotFound("no live key has that id", param="key_id")
        self.auth.forget(key_id)
        self._audit({"action": "key.revoke", "actor": "master", "key_id": key_id})
        return _json({"id": key_id, "revoked": True})


def parse_create(data: Any) -> dict[str, Any]:
    """Check an admin ``create`` body; every mistake is a 400 naming the field."""
    if not isinstance(data, dict):
        raise InvalidRequest("the body must be a JSON object")
    allowed = {
        "team",
        "name",
        "models",
        "expires_at",
        "expires_in",
        "limits",
        "metadata",
        "mcp_tools",
    }
    unknown = set(data) - allowed
    if unknown:
        raise InvalidRequest(f"unknown field {sorted(unknown)[0]!r}; allowed: {sorted(allowed)}")
    team = data.get("team")
    if not isinstance(team, str) or not team or len(team) > 200:
        raise InvalidRequest("'team' is required: a non-empty string", param="team")
    models = data.get("models", [])
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise InvalidRequest("'models' must be an array of model names", param="models")
    expires_at = data.get("expires_at")
    if data.get("expires_in") is not None:
        expires_in = data["expires_in"]
        if not isinstance(expires_in, int | float) or isinstance(expires_in, bool):
            raise InvalidRequest("'expires_in' must be a number of seconds", param="expires_in")
        expires_at = time.time() + expires_in
    if expires_at is not None and (
        not isinstance(expires_at, int | float) or isinstance(expires_at, bool)
    ):
        raise InvalidRequest("'expires_at' must be a Unix time", param="expires_at")
    metadata = data.get("metadata", {})
    if not isinstance(metadata, dict):
        raise InvalidRequest("'metadata' must be an object", param="metadata")
    name = data.get("name", "")
    if not isinstance(name, str):
        raise InvalidRequest("'name' must be a string", param="name")
    mcp_tools = data.get("mcp_tools")
    if mcp_tools is not None and (
        not isinstance(mcp_tools, list)
        or not all(isinstance(g, str) and "/" in g for g in mcp_tools)
    ):
        raise InvalidRequest(
            "'mcp_tools' must be an array of server/tool globs, e.g. [\"github/*\"]",
            param="mcp_tools",
        )
    limits = data.get("limits", {})
    if not isinstance(limits, dict):
        raise InvalidRequest("'limits' must be an object", param="limits")
    try:
        key_limits = limits_from(limits)
    except ValueError as exc:
        raise InvalidRequest(f"limits: {exc}", param="limits") from None
    return {
        "team": team,
        "name": name,
        "models": models,
        "expires_at": expires_at,
        "limits": key_limits,
        "metadata": metadata,
        "mcp_tools": mcp_tools,
    }


def _json(data: Any, status: int = 200) -> HTTPResponse:
    return HTTPResponse(orjson.dumps(data), status=status, content_type="application/json")


@hookimpl
def register_commands(commands: Any) -> None:
    from plugway.plugins.keys.cli import add_commands

    add_commands(commands)
