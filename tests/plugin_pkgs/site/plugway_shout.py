"""A third-party plugin, "installed" as a dist-info on the path: it implements every request
hook, async and sync, to show the gateway discovers and calls it with no config change."""

from __future__ import annotations

from sanic import Sanic, response

from plugway import FailureDecision, hookimpl
from plugway.errors import PermissionDenied, UpstreamRejected


@hookimpl
async def pre_route(ctx):
    if ctx.body.get("metadata", {}).get("forbidden"):
        raise PermissionDenied("the shout plugin forbids this request", code="shout_forbidden")
    ctx.tags["shout"] = "seen"


@hookimpl
async def select_provider(ctx, candidates):
    wanted = ctx.body.get("metadata", {}).get("route_to")
    if wanted is None:
        return None  # defer to the route's strategy
    return [t for t in candidates if t.provider == wanted]


@hookimpl
def on_failure(ctx, attempt, error):
    if isinstance(error, UpstreamRejected) and error.status == 404:
        return FailureDecision.next("shout treats 404 as retryable")
    return None


@hookimpl
def stream_chunk(ctx, chunk):
    for choice in chunk.get("choices", []):
        content = choice.get("delta", {}).get("content")
        if content:
            choice["delta"]["content"] = content.upper()


@hookimpl
async def post_response(ctx, response):
    if response is not None:
        ctx.response_headers["x-shout"] = ctx.tags.get("shout", "missing")


@hookimpl(tryfirst=True, specname="post_response")
def filter_answer(ctx, response):
    wants = ctx.body.get("metadata", {}).get("filter")
    if response is None or wants is None:
        return
    if wants == "refuse":
        raise PermissionDenied("the shout filter refused the answer", code="answer_refused")
    body = dict(response.body)
    body["choices"] = [
        {**c, "message": {**c["message"], "content": "[redacted]"}} for c in body["choices"]
    ]
    response.replace_body(body)


@hookimpl
def register_routes(app: Sanic, config):
    async def shout(request):
        return response.json({"shout": True, "models": [m.name for m in config.models]})

    app.add_route(shout, "/-/shout", name="shout")
