"""The ``images`` plugin: ``POST /v1/images/generations`` in OpenAI's shape to every target
whose provider generates images (:class:`plugway.formats.openai_images.ImageGeneration`):
OpenAI-format hosts and ModelArk's Seedream (passed through), Gemini (Imagen and the Gemini
image models, translated) and the ``fake`` provider.

The request goes through the whole pipeline: ``pre_route`` sees the prompt as a user message
(so filters may refuse or redact it, and the redacted prompt is what the upstream gets), a
budget reserves the dearest target's price for the images asked for, routing fails over
between targets, ``post_response`` records the answer with ``usage = {"images": N}`` (priced
per image by the cost plugin). Targets that do not generate images are left out of the plan.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from plugway import pipeline
from plugway.app import decision_headers, error_response, failed, read_body
from plugway.context import RequestContext, Target, new_request_id
from plugway.errors import GatewayError, InvalidRequest
from plugway.formats import openai_images
from plugway.formats.video_jobs import prompt_of
from plugway.gateway import Gateway
from plugway.hooks import hookimpl
from plugway.plugins.cost import media_estimate
from plugway.plugins.limits import ESTIMATE
from plugway.provider import ProviderResponse
from sanic import HTTPResponse, Request, Sanic

#: Writes no prompt or image anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False

ENDPOINT = "images.generations"
JSON = "application/json"


@hookimpl
def register_routes(app: Sanic[Any, Any], config: Any) -> None:
    app.add_route(generate, "/v1/images/generations", methods=["POST"], name="images_generate")


async def generate(request: Request) -> HTTPResponse:
    gw: Gateway = request.app.ctx.gateway
    try:
        body, model, _ = read_body(request)
        n = openai_images.check(body)
    except GatewayError as exc:
        return error_response(exc, new_request_id())
    ctx = RequestContext(
        endpoint=ENDPOINT,
        body={"model": model, "messages": [{"role": "user", "content": body["prompt"]}]},
        headers=request.headers,
        model=model,
        client_ip=request.remote_addr or request.ip,
    )
    try:
        reserve(gw, ctx, n)
        await pipeline.route(gw, ctx)
        ctx.plan = [
            t
            for t in ctx.plan
            if isinstance(gw.providers[t.provider], openai_images.ImageGeneration)
        ]
        if not ctx.plan:
            raise InvalidRequest(
                f"model '{model}' has no target that generates images",
                param="model",
                code="unsupported_endpoint",
            )
        upstream_body = {**body, "prompt": prompt_of(ctx.body) or body["prompt"]}

        async def call(provider: Any, target: Target) -> ProviderResponse:
            answer: ProviderResponse = await provider.images(ctx, target, upstream_body)
            return answer

        answer = await pipeline.attempt_plan(gw, ctx, call)
    except GatewayError as exc:
        return failed(gw, ctx, exc)
    ctx.usage = {"images": openai_images.image_count(answer.body)}
    ctx.status, ctx.ended = 200, time.monotonic()
    refusal = await pipeline.observe_success(gw, ctx, answer)
    if refusal is not None:
        return error_response(refusal, ctx.request_id, decision_headers(ctx))
    raw = answer.raw if answer.raw is not None else orjson.dumps(answer.body)
    return HTTPResponse(raw, headers=decision_headers(ctx), content_type=JSON)


def reserve(gw: Gateway, ctx: RequestContext, n: int) -> None:
    """The dearest target's price for ``n`` images, for the limits plugin's budgets."""
    try:
        targets = list(gw.router.resolve(ctx.model).targets)
    except GatewayError:
        return
    estimate = media_estimate(targets, {"images": n})
    if estimate is not None:
        ctx.state[ESTIMATE] = estimate
