"""Stored chat completions as resources, in OpenAI's shapes:

- ``GET /v1/chat/completions``: the caller's list page (``model``, ``metadata[key]=value``,
  ``after``, ``limit`` 1-100 default 20, ``order`` ``asc`` by default), ``first_id``,
  ``last_id``, ``has_more``;
- ``GET /v1/chat/completions/{id}``: the ChatCompletion; ``POST`` the same path with
  ``{"metadata": {...}}`` replaces its metadata (only that); ``DELETE`` answers
  ``chat.completion.deleted``;
- ``GET /v1/chat/completions/{id}/messages``: the request's messages, each with its id
  (``after``, ``limit``, ``order``).

Each is a door: the caller's key is checked (401 without a valid one when keys are on), its
tenant (team, else key) sees only its own records (another's id is a 404 like a missing one),
and each request reaches ``post_response`` (the request log) as endpoint
``chat.completions.stored``. ``POST /v1/chat/completions`` stays the core's chat endpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from plugway.app import error_response
from plugway.context import RequestContext
from plugway.errors import GatewayError, InvalidRequest, NotFound
from plugway.plugins.responses.runtime import owner, runtime
from plugway.plugins.responses.store import ChatQuery, ResponseStore, StoredChat
from sanic import HTTPResponse, Request, Sanic

JSON = "application/json"
MAX_LIMIT = 100
ENDPOINT = "chat.completions.stored"

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512

Handler = Callable[..., Coroutine[Any, Any, HTTPResponse]]


def register(app: Sanic[Any, Any]) -> None:
    """The stored-completion routes, with and without the /v1 prefix (as the core serves chat)."""
    for prefix in ("/v1", ""):
        tag = prefix.strip("/") or "bare"
        base = f"{prefix}/chat/completions"
        one = base + "/<completion_id>"
        for handler, path, method, name in (
            (list_completions, base, "GET", "list"),
            (retrieve, one, "GET", "retrieve"),
            (update, one, "POST", "update"),
            (delete, one, "DELETE", "delete"),
            (list_messages, one + "/messages", "GET", "messages"),
        ):
            app.add_route(door(handler), path, methods=[method], name=f"stored_chat_{name}_{tag}")


class Caller:
    """Who asks: the tenant that owns records, and the principal the request log names."""

    def __init__(self, tenant: str, principal: str | None, team: str | None) -> None:
        self.tenant = tenant
        self.principal = principal
        self.team = team


async def caller_of(request: Request) -> Caller:
    """The caller, authenticated by the keys plugin when it is on (``app.ctx.keys_auth``;
    an invalid or missing key raises its 401)."""
    auth = getattr(request.app.ctx, "keys_auth", None)
    if auth is None or not getattr(auth, "enabled", False):
        return Caller("", None, None)
    principal = await auth.authenticate(request.headers)
    if principal.master:
        return Caller(owner("master", None), "master", None)
    key = principal.key
    return Caller(owner(key.id, key.team), key.id, key.team)


def door(handler: Handler) -> Handler:
    """``handler(request, caller, **path)`` behind the key check, its errors in OpenAI's
    shape, each answer with ``x-request-id`` and logged through ``post_response`` with the
    status the client got."""

    async def serve(request: Request, **path: str) -> HTTPResponse:
        gw = request.app.ctx.gateway
        ctx = RequestContext(
            endpoint=ENDPOINT,
            body={},
            headers=request.headers,
            client_ip=request.remote_addr or request.ip,
        )
        try:
            caller = await caller_of(request)
            ctx.principal = caller.principal
            if caller.team:
                ctx.tags["team"] = caller.team
            response = await handler(request, caller, **path)
            response.headers["x-request-id"] = ctx.request_id
        except GatewayError as exc:
            ctx.error = exc
            response = error_response(exc, ctx.request_id)
        ctx.status, ctx.ended = response.status, time.monotonic()
        gw.spawn(gw.hooks.notify("post_response", ctx=ctx, response=None))
        return response

    serve.__name__ = handler.__name__
    return serve


def check_metadata(metadata: Any) -> dict[str, str]:
    """OpenAI's ``metadata``: up to 16 string pairs, keys up to 64 characters, values up to
    512; a 400 naming the field otherwise."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidRequest("metadata must be an object of string values", param="metadata")
    if len(metadata) > MAX_METADATA_PAIRS:
        raise InvalidRequest(
            f"metadata may have at most {MAX_METADATA_PAIRS} keys", param="metadata"
        )
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY:
            raise InvalidRequest(
                f"metadata keys may be at most {MAX_METADATA_KEY} characters", param="metadata"
            )
        if not isinstance(value, str):
            raise InvalidRequest(f"metadata.{key} must be a string", param=f"metadata.{key}")
        if len(value) > MAX_METADATA_VALUE:
            raise InvalidRequest(
                f"metadata.{key} may be at most {MAX_METADATA_VALUE} characters",
                param=f"metadata.{key}",
            )
    return metadata


def _json(data: Any) -> HTTPResponse:
    return HTTPResponse(orjson.dumps(data), content_type=JSON)


def _store() -> ResponseStore | None:
    return runtime.store


async def find(caller: Caller, completion_id: str) -> StoredChat:
    store = _store()
    record = await store.get_chat(completion_id) if store is not None else None
    if record is None or record.owner != caller.tenant:
        raise NotFound(
            f"Chat completion with id '{completion_id}' not found.", param="completion_id"
        )
    return record


def page_args(request: Request) -> tuple[int, bool, str | None]:
    """``limit`` (1-100, default 20), ``order`` (``asc`` by default), ``after``."""
    limit_text = request.args.get("limit", "20")
    try:
        limit = int(limit_text)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be an integer from 1 to {MAX_LIMIT}", param="limit")
    order = request.args.get("order", "asc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("order must be asc or desc", param="order")
    return limit, order == "desc", request.args.get("after")


def page(data: list[dict[str, Any]], has_more: bool) -> HTTPResponse:
    return _json(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": has_more,
        }
    )


async def list_completions(request: Request, caller: Caller) -> HTTPResponse:
    limit, descending, after = page_args(request)
    metadata: dict[str, str] = {}
    for name, values in request.args.items():
        if name.startswith("metadata[") and name.endswith("]") and len(name) > 10:
            metadata[name[9:-1]] = values[-1]
    query = ChatQuery(
        owner=caller.tenant,
        model=request.args.get("model"),
        metadata=metadata,
        after=after,
        limit=limit,
        descending=descending,
    )
    store = _store()
    if store is None:
        return page([], False)
    try:
        found, has_more = await store.list_chats(query)
    except KeyError:
        raise InvalidRequest(
            f"after: no stored chat completion with id '{after}'", param="after"
        ) from None
    return page([record.completion for record in found], has_more)


async def retrieve(request: Request, caller: Caller, completion_id: str) -> HTTPResponse:
    return _json((await find(caller, completion_id)).completion)


async def update(request: Request, caller: Caller, completion_id: str) -> HTTPResponse:
    try:
        body = orjson.loads(request.body or b"{}")
    except orjson.JSONDecodeError:
        raise InvalidRequest("the body must be a JSON object") from None
    if not isinstance(body, dict) or "metadata" not in body:
        raise InvalidRequest("metadata is required", param="metadata")
    extra = sorted(set(body) - {"metadata"})
    if extra:
        raise InvalidRequest(
            f"{extra[0]}: only metadata can be updated on a stored chat completion",
            param=extra[0],
        )
    metadata = check_metadata(body["metadata"])
    record = await find(caller, completion_id)
    record.metadata = dict(metadata)
    record.completion["metadata"] = record.metadata or None
    store = _store()
    assert store is not None  # find found it
    await store.update_chat(record)
    return _json(record.completion)


async def delete(request: Request, caller: Caller, completion_id: str) -> HTTPResponse:
    await find(caller, completion_id)
    store = _store()
    assert store is not None  # find found it
    await store.delete_chat(completion_id)
    return _json({"id": completion_id, "object": "chat.completion.deleted", "deleted": True})


async def list_messages(request: Request, caller: Caller, completion_id: str) -> HTTPResponse:
    limit, descending, after = page_args(request)
    messages = list((await find(caller, completion_id)).messages)
    if descending:
        messages.reverse()
    if after is not None:
        ids = [message.get("id") for message in messages]
        if after not in ids:
            raise InvalidRequest(
                f"after: no message with id '{after}' in this chat completion", param="after"
            )
        messages = messages[ids.index(after) + 1 :]
    return page(messages[:limit], len(messages) > limit)
