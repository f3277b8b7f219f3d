"""The Sanic app: OpenAI-compatible endpoints over the pipeline, errors in OpenAI's shape."""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from plugway import edge, errors, faults, heap, pipeline
from plugway.context import RequestContext, new_request_id
from plugway.errors import GatewayError, InvalidRequest, counts_against_target
from plugway.formats import anthropic_messages, openai_moderations
from plugway.formats.openai_chat import validate_chat_request
from plugway.formats.openai_embeddings import validate_embeddings_request
from plugway.gateway import Gateway, load_gateway
from plugway.logs import configure_logging
from plugway.redact import redact
from plugway.routing import NAME_PLACEHOLDER
from plugway.sse import DONE, sse_event
from sanic import HTTPResponse, Request, Sanic
from sanic.exceptions import SanicException

_app_numbers = itertools.count(1)
JSON = "application/json"
OVERRIDES_ENV = "PLUGWAY_SERVER_OVERRIDES"
LOG_LEVEL_ENV = "PLUGWAY_LOG_LEVEL"
DEBUG_HEADER = "x-plugway-debug"  # "route": answer the routing trace in ROUTE_HEADER
ROUTE_HEADER = "x-plugway-route"


def create_app(gateway: Gateway) -> Sanic[Any, Any]:
    """A Sanic app serving ``gateway``. Providers and plugins start in ``before_server_start``
    (inside the worker's loop) and stop in ``after_server_stop``."""
    number = next(_app_numbers)
    server = gateway.config.server
    app = Sanic(
        "plugway" if number == 1 else f"plugway_{number}",
        request_class=edge.body_timeout_request(server.client_timeout),
    )
    app.config.update(
        {
            "REQUEST_MAX_SIZE": server.max_body_bytes,
            "REQUEST_TIMEOUT": server.client_timeout,
            # Above every upstream deadline, or Sanic answers long calls with a 503 that SDKs
            # retry, multiplying upstream spend.
            "RESPONSE_TIMEOUT": gateway.config.longest_deadline() + 15,
            "KEEP_ALIVE_TIMEOUT": server.keep_alive_timeout,
            "ACCESS_LOG": False,
            "NOISY_EXCEPTIONS": False,
            "MOTD": False,
            "FALLBACK_ERROR_FORMAT": "json",
            **edge.sanic_settings(server),
        }
    )
    app.ctx.gateway = gateway

    async def start(app: Sanic[Any, Any]) -> None:
        # Sanic keeps the header limit on a class that any later Config() resets: set it
        # again in the worker, just before serving.
        app.config.update({"REQUEST_MAX_HEADER_SIZE": server.max_header_bytes})
        edge.worker_tls(app, server)
        await gateway.startup(app)
        heap.settle()

    async def stop(app: Sanic[Any, Any]) -> None:
        await gateway.shutdown(app)

    async def serving(app: Sanic[Any, Any]) -> None:
        # Ready only once Sanic serves and handles signals, so a stop right after /ready
        # answers still runs the shutdown hooks.
        gateway.ready = True

    app.register_listener(start, "before_server_start")
    app.register_listener(serving, "after_server_start")
    app.register_listener(stop, "after_server_stop")

    for paths, handler, methods in (
        (("/v1/chat/completions", "/chat/completions"), chat_completions, ["POST"]),
        (("/v1/embeddings", "/embeddings"), embeddings, ["POST"]),
        (("/v1/moderations", "/moderations"), moderations, ["POST"]),
        (("/v1/models", "/models"), list_models, ["GET"]),
        (("/v1/models/<model_id:path>", "/models/<model_id:path>"), get_model, ["GET"]),
        (("/health",), health, ["GET"]),
        (("/ready",), ready, ["GET"]),
        (("/-/plugins",), plugins_info, ["GET"]),
    ):
        for path in paths:
            app.add_route(handler, path, methods=methods, name=_route_name(path))
    app.error_handler.add(Exception, render_exception)
    edge.install_cors(app, server)
    gateway.hooks.call_sync_each(
        "register_routes", lambda _plugin: {"app": app, "config": gateway.config}
    )
    return app


def _route_name(path: str) -> str:
    return "r" + "".join(c if c.isalnum() else "_" for c in path)


def app_from_environment() -> Sanic[Any, Any]:
    """The factory each worker calls under ``--workers N``: config path from
    ``PLUGWAY_CONFIG``, ``--host``/``--port`` from ``PLUGWAY_SERVER_OVERRIDES``."""
    configure_logging(os.environ.get(LOG_LEVEL_ENV, "INFO"))
    overrides = orjson.loads(os.environ.get(OVERRIDES_ENV, "{}"))
    return create_app(load_gateway(overrides=overrides))


# -- endpoints ---------------------------------------------------------------------------------


async def chat_completions(request: Request) -> HTTPResponse | None:
    gw: Gateway = request.app.ctx.gateway
    ctx = new_context(request, "chat.completions")
    validate_chat_request(ctx.body)
    if ctx.stream:
        await serve_stream(request, gw, ctx)
        return None
    return await serve_complete(gw, ctx, "chat")


async def embeddings(request: Request) -> HTTPResponse | None:
    gw: Gateway = request.app.ctx.gateway
    ctx = new_context(request, "embeddings")
    validate_embeddings_request(ctx.body)
    if ctx.stream:
        raise InvalidRequest("embeddings cannot be streamed", param="stream")
    return await serve_complete(gw, ctx, "embeddings")


async def moderations(request: Request) -> HTTPResponse | None:
    gw: Gateway = request.app.ctx.gateway
    ctx = new_context(request, "moderations", openai_moderations.DEFAULT_MODEL)
    openai_moderations.check_request(ctx.body)
    if ctx.stream:
        raise InvalidRequest("moderations cannot be streamed", param="stream")
    return await serve_complete(gw, ctx, "moderations")


async def list_models(request: Request) -> HTTPResponse:
    """The routes and targets, in OpenAI's shape, or in Anthropic's for an Anthropic client."""
    gw: Gateway = request.app.ctx.gateway
    models = _model_objects(gw)
    if anthropic_messages.speaks_anthropic(request.headers):
        ids = [model["id"] for model in models]
        query = {name: request.args.get(name) for name in request.args}
        return _json(anthropic_messages.models_page(ids, int(gw.started_wall), query))
    return _json({"object": "list", "data": models})


async def get_model(request: Request, model_id: str) -> HTTPResponse:
    gw: Gateway = request.app.ctx.gateway
    model = next((m for m in _model_objects(gw) if m["id"] == model_id), None)
    if model is None:
        gw.router.resolve(model_id)  # raises ModelNotFound with the usual wording
        model = {"id": model_id, "object": "model", "created": 0, "owned_by": "plugway"}
    if anthropic_messages.speaks_anthropic(request.headers):
        return _json(anthropic_messages.model_info(model_id, model["created"]))
    return _json(model)


def _model_objects(gw: Gateway) -> list[dict[str, Any]]:
    created = int(gw.started_wall)
    names: dict[str, str] = {}
    for route in gw.router.routes.values():
        names[route.name] = route.targets[0].provider
    for route in gw.router.routes.values():
        for target in route.targets:
            if NAME_PLACEHOLDER not in target.model:  # a pattern route's "{name}" target
                names.setdefault(target.key, target.provider)
    for provider in gw.providers.values():
        for model in provider.settings.models:
            names.setdefault(f"{provider.name}/{model}", provider.name)
    return [
        {"id": name, "object": "model", "created": created, "owned_by": owner}
        for name, owner in names.items()
    ]


async def health(request: Request) -> HTTPResponse:
    return _json({"status": "ok"})


async def ready(request: Request) -> HTTPResponse:
    gw: Gateway = request.app.ctx.gateway
    if not gw.ready:
        return _json({"status": "starting"}, status=503)
    body: dict[str, Any] = {
        "status": "ready",
        "models": len(gw.router.routes),
        "targets": target_health(gw),
    }
    if gw.status:
        body["detail"] = gw.status_detail()
    return _json(body)


def target_health(gw: Gateway) -> dict[str, str]:
    """Each routed target's circuit (``closed``, ``half-open``, ``open``) as this worker's
    health tracker sees it: the breaker that routing's ``health`` plugin keeps in the shared
    routing environment, fed by the targets' own failures only. Empty without such a plugin.
    The gateway stays ready while targets are down: readiness is this process's."""
    health = getattr(gw.env.shared.get("routing"), "health", None)
    state_of = getattr(health, "state", None)
    if not callable(state_of):
        return {}
    now = gw.env.clock()
    out: dict[str, str] = {}
    for route in gw.router.routes.values():
        for target in route.targets:
            state = state_of(target.key, now)
            out[target.key] = str(getattr(state, "value", state))
    return out


async def plugins_info(request: Request) -> HTTPResponse:
    gw: Gateway = request.app.ctx.gateway
    return _json(gw.describe_plugins())


# -- the request path --------------------------------------------------------------------------


def read_body(
    request: Request, default_model: str | None = None
) -> tuple[dict[str, Any], str, bool]:
    """The JSON object a client sent, with its ``model`` and ``stream``; a client's mistake
    is a 400 naming the field. Every endpoint that takes a model reads its body here; one whose
    API makes ``model`` optional names the model it defaults to (set in the body)."""
    raw = request.body
    if not raw:
        raise InvalidRequest("the request body is empty; send a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    model = body.get("model")
    if model is None and default_model is not None:
        model = body["model"] = default_model
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a non-empty string", param="model")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be true or false", param="stream")
    return body, model, bool(stream)


def new_context(
    request: Request, endpoint: str, default_model: str | None = None
) -> RequestContext:
    """The request context for an OpenAI-shaped body."""
    body, model, stream = read_body(request, default_model)
    return RequestContext(
        endpoint=endpoint,
        body=body,
        headers=request.headers,
        model=model,
        stream=stream,
        client_ip=request.remote_addr or request.ip,
    )


async def serve_complete(gw: Gateway, ctx: RequestContext, method: str) -> HTTPResponse:
    try:
        response = await pipeline.complete(gw, ctx, method)
    except asyncio.CancelledError:
        client_gone(gw, ctx)
        raise
    except Exception as exc:
        return failed(gw, ctx, internal(ctx, exc))
    ctx.status, ctx.ended = 200, time.monotonic()
    refusal = await pipeline.observe_success(gw, ctx, response)
    if refusal is not None:
        return error_response(refusal, ctx.request_id, decision_headers(ctx))
    body = response.raw if response.raw is not None else orjson.dumps(response.body)
    return HTTPResponse(body, status=200, headers=decision_headers(ctx), content_type=JSON)


async def serve_stream(request: Request, gw: Gateway, ctx: RequestContext) -> None:
    try:
        opened = await pipeline.open_stream(gw, ctx)
    except asyncio.CancelledError:
        client_gone(gw, ctx)
        raise
    except Exception as exc:
        await request.respond(failed(gw, ctx, internal(ctx, exc)))
        return
    rewrite = gw.hooks.has("stream_chunk")
    headers = decision_headers(ctx)
    pipeline.sse_headers(headers)
    response = await request.respond(
        status=200, headers=headers, content_type="text/event-stream; charset=utf-8"
    )
    try:
        data = opened.first
        await response.send(await pipeline.rewrite_chunks(gw, ctx, data) if rewrite else data)
        ctx.first_token_at = time.monotonic()
        async for data in opened.events:
            await response.send(await pipeline.rewrite_chunks(gw, ctx, data) if rewrite else data)
        await response.send(DONE)
        ctx.status = 200
    except asyncio.CancelledError:
        ctx.status = 499
        raise
    except Exception as exc:
        error = stream_broke(gw, ctx, exc)
        await response.send(sse_event(error.to_body()))
    finally:
        await pipeline.close_quietly(opened.stream)
        ctx.usage = opened.stream.usage
        ctx.finish_reason = opened.stream.finish_reason
        ctx.ended = time.monotonic()
        gw.spawn(gw.hooks.notify("post_response", ctx=ctx, response=None))
    await response.eof()


def failed(
    gw: Gateway,
    ctx: RequestContext,
    error: GatewayError,
    render: Callable[..., HTTPResponse] | None = None,
) -> HTTPResponse:
    """Record a failed request, let the observers see it, and render its error answer
    (OpenAI's shape unless ``render`` gives another API's)."""
    ctx.error, ctx.status, ctx.ended = error, error.status, time.monotonic()
    gw.spawn(gw.hooks.notify("post_response", ctx=ctx, response=None))
    headers = decision_headers(ctx) if ctx.attempts else {}
    return (render or error_response)(error, ctx.request_id, headers)


def internal(ctx: RequestContext, exc: BaseException, stage: str = "request") -> GatewayError:
    """``exc`` as the client gets it: a GatewayError as it is, anything else the gateway's
    own fault (a 500 ``internal_error`` naming the request id, logged and counted)."""
    return faults.internal_error(exc, stage=stage, plugin="core", request_id=ctx.request_id)


def stream_broke(gw: Gateway, ctx: RequestContext, exc: BaseException) -> GatewayError:
    """Classify what ended a stream after its first byte went out, and record it on ``ctx``.

    The answering attempt is marked "broken" only when the target failed (a reset, an event
    that is not JSON ...); a filter's refusal or the gateway's own fault (translating a chunk,
    a ``stream_chunk`` hook) leaves the target's record as it was.
    """
    attempt = ctx.final_attempt
    plugin = "core"
    if attempt is not None and attempt.target.provider in gw.providers:
        plugin = gw.providers[attempt.target.provider].settings.type
    error = faults.internal_error(exc, stage="stream", plugin=plugin, request_id=ctx.request_id)
    ctx.error, ctx.status = error, error.status
    if attempt is not None and counts_against_target(error):
        attempt.outcome, attempt.error = "broken", error
    return error


def client_gone(gw: Gateway, ctx: RequestContext) -> None:
    ctx.status, ctx.ended = 499, time.monotonic()
    gw.spawn(gw.hooks.notify("post_response", ctx=ctx, response=None))


def decision_headers(ctx: RequestContext) -> dict[str, str]:
    """``x-request-id`` and the routing decision: provider, upstream model, attempts."""
    headers = {"x-request-id": ctx.request_id, "x-plugway-attempts": str(len(ctx.attempts))}
    last = ctx.final_attempt
    if last is not None:
        headers["x-plugway-provider"] = last.target.provider
        headers["x-plugway-model"] = last.target.model
    if ctx.headers.get(DEBUG_HEADER, "").strip().lower() == "route":
        headers[ROUTE_HEADER] = ctx.trace.compact(ctx.attempts)
    if ctx.response_headers:
        headers.update(edge.strip_hop_by_hop(ctx.response_headers))
    return headers


# -- errors ------------------------------------------------------------------------------------


def error_response(
    error: GatewayError,
    request_id: str,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> HTTPResponse:
    """An error answer: OpenAI's envelope (or ``body``, for another API's shape) with the
    error's status, ``x-request-id``, the error's own headers and retry hints."""
    out = dict(headers or {})
    out["x-request-id"] = request_id
    out.update(error.headers)
    if error.retry_after is not None:
        out["retry-after"] = str(max(1, math.ceil(error.retry_after)))
        out["retry-after-ms"] = str(int(error.retry_after * 1000))
    if body is None:
        envelope = error.to_body()
        envelope["error"]["message"] = redact(str(envelope["error"]["message"]))
        body = orjson.dumps(envelope)
    return HTTPResponse(body, status=error.status, headers=out, content_type=JSON)


_SANIC_ERRORS: dict[int, type[GatewayError]] = {
    400: errors.InvalidRequest,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    413: errors.PayloadTooLarge,
    503: errors.ServiceUnavailable,
}


def _unexpected(exc: BaseException, request_id: str) -> GatewayError:
    return faults.internal_error(exc, stage="request", plugin="core", request_id=request_id)


async def render_exception(request: Request, exc: Exception) -> HTTPResponse:
    """Every error leaving the gateway, the framework's own included: in the shape a
    ``render_error`` plugin gives for its routes, otherwise OpenAI's."""
    request_id = getattr(request.ctx, "request_id", None) or new_request_id()
    if isinstance(exc, GatewayError):
        error = exc
    elif isinstance(exc, SanicException):
        status = int(exc.status_code or 500)
        cls = _SANIC_ERRORS.get(status)
        message = str(exc) or "request failed"
        if status == 404:
            message = f"no route for {request.method} {request.path}"
        elif status == 408:
            cls, message = errors.InvalidRequest, "the client took too long to send its request"
        error = (cls or GatewayError)(message, status=status)
    else:
        error = _unexpected(exc, request_id)
    gw: Gateway | None = getattr(request.app.ctx, "gateway", None)
    if gw is not None and gw.hooks.has("render_error"):
        rendered = await gw.hooks.call_first(
            "render_error", request=request, error=error, request_id=request_id
        )
        if isinstance(rendered, HTTPResponse):
            return rendered
    return error_response(error, request_id)


def _json(data: Any, status: int = 200) -> HTTPResponse:
    return HTTPResponse(orjson.dumps(data), status=status, content_type=JSON)
