"""The ``/v1/videos`` handlers. ``POST`` goes through the whole pipeline (keys, limits,
budgets, filters on the prompt, routing with failover until a provider accepts the job,
``post_response``); the job is then pinned to the provider that accepted it. ``GET``,
``DELETE`` and the content download find the job in the state backend, check that the caller
owns it (another tenant's id is a 404) and ask its provider."""

from __future__ import annotations

import base64
import time
from typing import Any

import orjson
from loguru import logger
from plugway import pipeline
from plugway.app import decision_headers, error_response, failed, read_body
from plugway.context import Attempt, RequestContext, Target, new_request_id
from plugway.errors import GatewayError, InvalidRequest, NotFound, UpstreamError
from plugway.formats import openai_videos
from plugway.formats.video_jobs import JobState, VideoJobs, prompt_of
from plugway.gateway import Gateway
from plugway.plugins.cost import media_estimate
from plugway.plugins.limits import ESTIMATE, STATE, Reservation
from plugway.plugins.responses.runtime import owner_of, owner_of_request
from plugway.plugins.videos.jobs import VideoJobStore, VideoRecord, new_video_id
from plugway.provider import ProviderResponse
from sanic import HTTPResponse, Request

ENDPOINT = "videos"
#: The endpoint name of the record a job's completion writes (its cost, priced by seconds).
COMPLETED_ENDPOINT = "videos.completed"
JSON = "application/json"
MAX_LIMIT = 100
#: Seconds a budget reservation assumes when a request leaves the duration to the provider.
ESTIMATE_SECONDS = 12


def store_of(request: Request) -> VideoJobStore:
    store: VideoJobStore = request.app.ctx.video_jobs
    return store


def _json(data: Any, headers: dict[str, str] | None = None) -> HTTPResponse:
    return HTTPResponse(orjson.dumps(data), headers=headers, content_type=JSON)


def video_of(record: VideoRecord) -> dict[str, Any]:
    return openai_videos.video_object(
        record.id,
        model=record.alias,
        state=record.state,
        created_at=record.created_at,
        seconds=record.seconds,
        size=record.size,
        completed_at=record.completed_at,
    )


# -- POST /v1/videos ---------------------------------------------------------------------------


def read_create(request: Request) -> dict[str, Any]:
    """The create body: JSON, or the multipart form the openai SDK sends (an uploaded
    ``input_reference`` becomes a ``data:`` URL; ``input_reference[image_url]`` a reference)."""
    if not request.content_type.startswith("multipart/form-data"):
        return read_body(request)[0]
    body: dict[str, Any] = {}
    for name, values in (request.form or {}).items():
        value = values[0] if isinstance(values, list) and values else values
        if name.startswith("input_reference[") and name.endswith("]"):
            body.setdefault("input_reference", {})[name[16:-1]] = value
        else:
            body[name] = value
    upload = request.files.get("input_reference") if request.files else None
    if upload:
        file = upload[0] if isinstance(upload, list) else upload
        kind = file.type or "image/png"
        body["input_reference"] = f"data:{kind};base64," + base64.b64encode(file.body).decode()
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a non-empty string", param="model")
    return body


async def create(request: Request) -> HTTPResponse:
    gw: Gateway = request.app.ctx.gateway
    try:
        body = read_create(request)
        video_request = openai_videos.parse(body)
    except GatewayError as exc:
        return error_response(exc, new_request_id())
    model = str(body["model"])
    ctx = RequestContext(
        endpoint=ENDPOINT,
        # The canonical form the filters read (and may rewrite): the prompt as a user message.
        body={"model": model, "messages": [{"role": "user", "content": video_request.prompt}]},
        headers=request.headers,
        model=model,
        client_ip=request.remote_addr or request.ip,
    )
    try:
        reserve(gw, ctx, video_request.seconds or ESTIMATE_SECONDS, video_request.size)
        await pipeline.route(gw, ctx)
        ctx.plan = [t for t in ctx.plan if isinstance(gw.providers[t.provider], VideoJobs)]
        if not ctx.plan:
            raise InvalidRequest(
                f"model '{model}' has no target that generates videos (ark, openai, gemini or "
                "fake providers do)",
                param="model",
                code="unsupported_endpoint",
            )
        video_request.prompt = prompt_of(ctx.body) or video_request.prompt

        async def submit(provider: Any, target: Target) -> JobState:
            state: JobState = await provider.video_submit(ctx, target, video_request)
            return state

        state = await pipeline.attempt_plan(gw, ctx, submit)
    except GatewayError as exc:
        return failed(gw, ctx, exc)
    target = ctx.served_by
    assert target is not None  # attempt_plan succeeded
    record = VideoRecord(
        id=new_video_id(),
        owner=owner_of(ctx),
        provider=target.provider,
        model=target.model,
        alias=model,
        created_at=int(time.time()),
        seconds=video_request.seconds or state.seconds,
        size=video_request.size or state.size,
        state=state,
        principal=ctx.principal,
        tags=dict(ctx.tags),
    )
    hold_budget(ctx, record)
    await store_of(request).add(record)
    video = video_of(record)
    ctx.status, ctx.ended = 200, time.monotonic()
    refusal = await pipeline.observe_success(gw, ctx, ProviderResponse(video))
    if refusal is not None:
        return error_response(refusal, ctx.request_id, decision_headers(ctx))
    return _json(video, decision_headers(ctx))


def reserve(gw: Gateway, ctx: RequestContext, seconds: int, size: str | None) -> None:
    """Tell the limits plugin what the job may cost (its dearest target's price for the
    seconds asked), so a budget that cannot pay for it refuses it before any upstream call."""
    try:
        targets = list(gw.router.resolve(ctx.model).targets)
    except GatewayError:
        return  # route() answers the unknown model
    estimate = media_estimate(targets, {"video_seconds": seconds, "size": size})
    if estimate is not None:
        ctx.state[ESTIMATE] = estimate


def hold_budget(ctx: RequestContext, record: VideoRecord) -> None:
    """Keep the job's budget reservation until the job ends (it is charged at its real cost
    then, see :func:`record_end`); the create request itself releases only its in-flight
    slot and counts its tokens."""
    reservation = ctx.state.get(STATE)
    if isinstance(reservation, Reservation) and reservation.budgets:
        record.budget_keys, record.reserved = list(reservation.budgets), reservation.estimate
        ctx.state[STATE] = Reservation(inflight=reservation.inflight, tpm=reservation.tpm)


# -- the job resources -------------------------------------------------------------------------


async def find(request: Request, video_id: str) -> VideoRecord:
    owner = await owner_of_request(request.app.ctx, request.headers)
    record = await store_of(request).get(video_id)
    if record is None or record.owner != owner:
        raise NotFound(f"Video with id '{video_id}' not found.", param="video_id")
    return record


def provider_of(gw: Gateway, record: VideoRecord) -> tuple[VideoJobs, Target]:
    provider = gw.providers.get(record.provider)
    if not isinstance(provider, VideoJobs):
        raise NotFound(
            f"Video with id '{record.id}' was made by provider '{record.provider}', which this "
            "gateway no longer has.",
            param="video_id",
        )
    return provider, Target(record.provider, record.model)


async def refresh(request: Request, record: VideoRecord) -> VideoRecord:
    """Poll the pinned provider for a job not yet finished; record what it says and, the first
    time it is completed, the job's cost."""
    if record.state.status in ("completed", "failed"):
        return record
    gw: Gateway = request.app.ctx.gateway
    provider, target = provider_of(gw, record)
    state = await provider.video_poll(target, record.state.provider_id)
    record.state = state
    # What the provider says the video is wins over what was asked (its cost is by these).
    if state.seconds is not None:
        record.seconds = state.seconds
    if state.size is not None:
        record.size = state.size
    if state.status in ("completed", "failed"):
        record.completed_at = int(time.time())
    store = store_of(request)
    await store.put(record)
    if state.status in ("completed", "failed") and await store.claim_end(record.id):
        record_end(gw, record, target)
    return record


def record_end(gw: Gateway, record: VideoRecord, target: Target) -> None:
    """``post_response`` for a job that ended: the cost plugin prices a completed job's seconds
    (a failed job costs 0), the limits plugin charges the budgets its reservation held, and
    the store, metrics and logs record it under the principal and tags of the request that
    made it."""
    now = time.monotonic()
    ctx = RequestContext(
        endpoint=COMPLETED_ENDPOINT,
        body={},
        headers={},
        model=record.alias,
        principal=record.principal,
        tags=dict(record.tags),
    )
    attempt = Attempt(target, 1, 0, 0, now, ended=now, outcome="ok", status=200)
    ctx.attempts.append(attempt)
    ctx.plan = [target]
    completed = record.state.status == "completed"
    seconds = (record.seconds or 0) if completed else 0
    ctx.usage = {"video_seconds": seconds, "size": record.size or ""}
    if record.budget_keys:
        ctx.state[STATE] = Reservation(budgets=record.budget_keys, estimate=record.reserved)
    ctx.status, ctx.ended = 200, now
    gw.spawn(gw.hooks.notify("post_response", ctx=ctx, response=None))


async def retrieve(request: Request, video_id: str) -> HTTPResponse:
    try:
        record = await refresh(request, await find(request, video_id))
    except GatewayError as exc:
        return error_response(exc, new_request_id())
    return _json(video_of(record))


async def delete(request: Request, video_id: str) -> HTTPResponse:
    try:
        record = await find(request, video_id)
        provider, target = provider_of(request.app.ctx.gateway, record)
        try:
            await provider.video_delete(target, record.state.provider_id)
        except UpstreamError as exc:
            if exc.upstream_status != 404:  # already gone at the provider: delete ours too
                raise
        await store_of(request).delete(video_id)
    except GatewayError as exc:
        return error_response(exc, new_request_id())
    return _json(openai_videos.deleted(video_id))


async def list_videos(request: Request) -> HTTPResponse:
    """OpenAI's list page: ``limit`` (1-100, default 20), ``order`` (``desc`` by default),
    ``after`` (a video id: the page starts after it)."""
    try:
        limit_text = request.args.get("limit", "20")
        limit = int(limit_text) if limit_text.isdigit() else 0
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidRequest(f"limit must be an integer from 1 to {MAX_LIMIT}", param="limit")
        order = request.args.get("order", "desc")
        if order not in ("asc", "desc"):
            raise InvalidRequest("order must be asc or desc", param="order")
        owner = await owner_of_request(request.app.ctx, request.headers)
        records = await store_of(request).owned(owner, 1000)
    except GatewayError as exc:
        return error_response(exc, new_request_id())
    if order == "asc":
        records.reverse()
    after = request.args.get("after")
    if after is not None:
        ids = [r.id for r in records]
        if after not in ids:
            return error_response(
                InvalidRequest(f"no video with id '{after}'", param="after"), new_request_id()
            )
        records = records[ids.index(after) + 1 :]
    page = [video_of(r) for r in records[:limit]]
    return _json(openai_videos.list_page(page, len(records) > limit))


async def content(request: Request, video_id: str) -> HTTPResponse | None:
    """The video's bytes, streamed through piece by piece (never held whole), or, with
    ``[plugins.videos] redirect = true`` and a provider URL that needs no key, a redirect."""
    try:
        variant = request.args.get("variant", "video")
        if variant != "video":
            raise InvalidRequest(
                f"variant '{variant}' is not served by this gateway; ask for the video",
                param="variant",
            )
        record = await refresh(request, await find(request, video_id))
        if record.state.status != "completed":
            raise InvalidRequest(
                f"Video '{video_id}' is {record.state.status}; its content is ready once it "
                "is completed",
                param="video_id",
                code="video_not_ready",
            )
        if request.app.ctx.video_redirect and record.state.redirectable and record.state.video_url:
            return HTTPResponse(status=302, headers={"location": record.state.video_url})
        provider, target = provider_of(request.app.ctx.gateway, record)
        body = await provider.video_content(target, record.state)
    except GatewayError as exc:
        return error_response(exc, new_request_id())
    headers = {}
    if body.content_length is not None:
        headers["content-length"] = str(body.content_length)
    try:
        response = await request.respond(
            status=200, headers=headers, content_type=body.content_type
        )
        async for piece in body.aiter_bytes():
            await response.send(piece)
        await response.eof()
    except Exception:
        logger.opt(exception=True).warning("the download of video {} broke", video_id)
    finally:
        await body.aclose()
    return None
