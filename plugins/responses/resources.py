"""The stored responses as resources: ``GET /v1/responses/{id}``, ``DELETE
/v1/responses/{id}`` and ``GET /v1/responses/{id}/input_items``. Another tenant's response is
answered exactly like one that does not exist: 404."""

from __future__ import annotations

from typing import Any

import orjson
from plugway.errors import InvalidRequest, NotFound
from plugway.plugins.responses.runtime import owner_of_request, runtime
from plugway.plugins.responses.store import StoredResponse
from sanic import HTTPResponse, Request

JSON = "application/json"
MAX_LIMIT = 100


async def find(request: Request, response_id: str) -> StoredResponse:
    owner = await owner_of_request(request.app.ctx, request.headers)
    store = runtime.store
    record = await store.get(response_id) if store is not None else None
    if record is None or record.owner != owner:
        raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
    return record


def _json(data: Any) -> HTTPResponse:
    return HTTPResponse(orjson.dumps(data), content_type=JSON)


async def retrieve(request: Request, response_id: str) -> HTTPResponse:
    if request.args.get("stream") in ("true", "1"):
        raise InvalidRequest(
            "streaming a stored response is not served by this gateway; leave stream out",
            param="stream",
        )
    return _json((await find(request, response_id)).response)


async def delete(request: Request, response_id: str) -> HTTPResponse:
    await find(request, response_id)
    store = runtime.store
    assert store is not None  # find found it
    await store.delete(response_id)
    return _json({"id": response_id, "object": "response", "deleted": True})


async def list_input_items(request: Request, response_id: str) -> HTTPResponse:
    """OpenAI's list page: ``limit`` (1-100, default 20), ``order`` (``desc`` by default),
    ``after`` (an item id: the page starts after it)."""
    limit_text = request.args.get("limit", "20")
    try:
        limit = int(limit_text)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be an integer from 1 to {MAX_LIMIT}", param="limit")
    order = request.args.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("order must be asc or desc", param="order")
    items = list((await find(request, response_id)).input_items)
    if order == "desc":
        items.reverse()
    after = request.args.get("after")
    if after is not None:
        ids = [item.get("id") for item in items]
        if after not in ids:
            raise InvalidRequest(f"no input item with id '{after}' in this response", param="after")
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    return _json(
        {
            "object": "list",
            "data": page,
            "first_id": page[0].get("id") if page else None,
            "last_id": page[-1].get("id") if page else None,
            "has_more": len(items) > limit,
        }
    )
