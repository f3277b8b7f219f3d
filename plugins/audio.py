"""The ``audio`` plugin: ``POST /v1/audio/speech`` and ``POST /v1/audio/transcriptions``
(multipart upload) in OpenAI's shape, to every target whose provider serves them
(:class:`plugway.formats.openai_audio.AudioSpeech` / ``AudioTranscription``: the OpenAI-format
hosts). Both go through the whole pipeline like chat: ``pre_route`` sees the speech input
(and a transcription's ``prompt``) as a user message, so filters may refuse or redact it;
routing fails over until a target accepts; ``post_response`` records the call. Speech audio is
streamed through as the upstream sends it. A transcription is priced per minute of audio
(``per_minute`` in the price table) when its upstream reports the duration; speech is not
priced yet.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from loguru import logger
from plugway import pipeline
from plugway.app import decision_headers, error_response, failed, read_body
from plugway.context import RequestContext, Target, new_request_id
from plugway.errors import GatewayError, InvalidRequest
from plugway.formats.openai_audio import (
    AudioAnswer,
    AudioSpeech,
    AudioTranscription,
    Upload,
    check_speech,
)
from plugway.formats.video_jobs import VideoBytes, prompt_of
from plugway.gateway import Gateway
from plugway.hooks import hookimpl
from plugway.provider import ProviderResponse
from sanic import HTTPResponse, Request, Sanic

#: Writes no prompt, audio or transcript anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False


@hookimpl
def register_routes(app: Sanic[Any, Any], config: Any) -> None:
    app.add_route(speech, "/v1/audio/speech", methods=["POST"], name="audio_speech")
    app.add_route(
        transcriptions, "/v1/audio/transcriptions", methods=["POST"], name="audio_transcriptions"
    )


def _context(request: Request, endpoint: str, model: str, text: str) -> RequestContext:
    messages = [{"role": "user", "content": text}] if text else []
    return RequestContext(
        endpoint=endpoint,
        body={"model": model, "messages": messages},
        headers=request.headers,
        model=model,
        client_ip=request.remote_addr or request.ip,
    )


async def _route(gw: Gateway, ctx: RequestContext, kind: type, what: str) -> None:
    await pipeline.route(gw, ctx)
    ctx.plan = [t for t in ctx.plan if isinstance(gw.providers[t.provider], kind)]
    if not ctx.plan:
        raise InvalidRequest(
            f"model '{ctx.model}' has no target that serves {what}",
            param="model",
            code="unsupported_endpoint",
        )


async def speech(request: Request) -> HTTPResponse | None:
    gw: Gateway = request.app.ctx.gateway
    try:
        body, model, _ = read_body(request)
        text = check_speech(body)
    except GatewayError as exc:
        return error_response(exc, new_request_id())
    ctx = _context(request, "audio.speech", model, text)
    try:
        await _route(gw, ctx, AudioSpeech, "speech")
        upstream_body = {**body, "input": prompt_of(ctx.body) or text}

        async def call(provider: Any, target: Target) -> VideoBytes:
            opened: VideoBytes = await provider.speech(ctx, target, upstream_body)
            return opened

        audio = await pipeline.attempt_plan(gw, ctx, call)
    except GatewayError as exc:
        return failed(gw, ctx, exc)
    headers = decision_headers(ctx)
    try:
        response = await request.respond(
            status=200, headers=headers, content_type=audio.content_type
        )
        async for piece in audio.aiter_bytes():
            await response.send(piece)
        await response.eof()
        ctx.status = 200
    except Exception:
        logger.opt(exception=True).warning("the speech answer broke")
        ctx.status = 502
    finally:
        await audio.aclose()
        ctx.ended = time.monotonic()
        gw.spawn(gw.hooks.notify("post_response", ctx=ctx, response=None))
    return None


def json_body(answer: AudioAnswer) -> dict[str, Any]:
    """A JSON answer as an object (``{}`` for text, SRT and VTT answers)."""
    if "json" not in answer.content_type:
        return {}
    try:
        body = orjson.loads(answer.content)
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def transcription_usage(body: dict[str, Any]) -> dict[str, Any] | None:
    """What a transcription is priced by: the audio's duration when the upstream reports it
    (``usage: {"type": "duration", "seconds": N}``, or a verbose answer's ``duration``)."""
    usage = body.get("usage")
    if isinstance(usage, dict) and usage.get("type") == "duration":
        seconds = usage.get("seconds")
        if isinstance(seconds, int | float) and not isinstance(seconds, bool):
            return {"audio_seconds": seconds}
    duration = body.get("duration")
    if isinstance(duration, int | float) and not isinstance(duration, bool):
        return {"audio_seconds": duration}
    return None


def read_upload(request: Request) -> tuple[dict[str, str], Upload]:
    if not request.content_type.startswith("multipart/form-data"):
        raise InvalidRequest("send the audio as a multipart/form-data upload", param="file")
    form: dict[str, str] = {}
    for name, values in (request.form or {}).items():
        form[name] = values[0] if isinstance(values, list) and values else str(values)
    uploads = request.files.get("file") if request.files else None
    if not uploads:
        raise InvalidRequest("file is required: the audio to transcribe", param="file")
    file = uploads[0] if isinstance(uploads, list) else uploads
    model = form.get("model")
    if not model:
        raise InvalidRequest("'model' is required and must be a non-empty string", param="model")
    return form, Upload(file.name or "audio", file.body, file.type or "application/octet-stream")


async def transcriptions(request: Request) -> HTTPResponse:
    gw: Gateway = request.app.ctx.gateway
    try:
        form, upload = read_upload(request)
    except GatewayError as exc:
        return error_response(exc, new_request_id())
    ctx = _context(request, "audio.transcriptions", form["model"], form.get("prompt", ""))
    try:
        await _route(gw, ctx, AudioTranscription, "transcriptions")
        if form.get("prompt"):
            form["prompt"] = prompt_of(ctx.body) or form["prompt"]

        async def call(provider: Any, target: Target) -> AudioAnswer:
            answer: AudioAnswer = await provider.transcription(ctx, target, form, upload)
            return answer

        answer = await pipeline.attempt_plan(gw, ctx, call)
    except GatewayError as exc:
        return failed(gw, ctx, exc)
    body = json_body(answer)
    ctx.usage = transcription_usage(body)
    ctx.status, ctx.ended = 200, time.monotonic()
    refusal = await pipeline.observe_success(gw, ctx, ProviderResponse(body))
    if refusal is not None:
        return error_response(refusal, ctx.request_id, decision_headers(ctx))
    return HTTPResponse(
        answer.content, headers=decision_headers(ctx), content_type=answer.content_type
    )
