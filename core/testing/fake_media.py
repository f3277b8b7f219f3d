"""A fake media upstream: one loopback server speaking ModelArk's content-generation task API
(Seedance) and image API (Seedream), OpenAI's video and image APIs, and Veo's long-running
operations and Imagen's ``:predict`` on the Gemini API, each at its own paths, with failure
injection.

Scripted behaviours apply to the calls that start work (a job's create, an image request):
``Status(400)`` refuses the job (a rejected job), :class:`FailJob` accepts it and lets it fail,
:class:`SlowJob` makes it take ``polls`` polls (any other request takes the default: a job
finishes after ``polls`` polls, 1 unless set). The video is ``video_bytes`` deterministic
bytes, written piece by piece (a 200 MB video is never held whole)."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
import uuid
from typing import Any

import attrs
import orjson
from aiohttp import web
from plugway.testing.fake_upstream import Behaviour, FakeUpstream, Recorded, Reply, Status

#: A 1x1 PNG, base64.
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="

#: What the fake's text-to-speech answers.
SPEECH = b"ID3fake-mpeg-audio" * 64

_ARK_TASK = re.compile(r"^/api/v3/contents/generations/tasks(?:/([^/]+))?$")
_OPENAI_VIDEO = re.compile(r"^/v1/videos(?:/([^/]+)(/content)?)?$")
_VEO_START = re.compile(r"^/v1beta/models/([^/:]+):predictLongRunning$")
_VEO_OPERATION = re.compile(r"^/v1beta/(models/[^/]+/operations/[^/]+)$")
_GEMINI_PREDICT = re.compile(r"^/v1beta/models/([^/:]+):(predict|generateContent)$")
_FILE = re.compile(r"^/(?:files|v1beta/files)/([^/:.]+)(?:\.mp4|:download)?$")


@attrs.frozen
class FailJob:
    """Accept the job, then report it failed with this code and message."""

    code: str = "content_policy_violation"
    message: str = "the video was blocked by the content policy"
    polls: int = 1


@attrs.frozen
class SlowJob:
    """Accept the job and finish it only after ``polls`` polls."""

    polls: int = 5


@attrs.define
class Job:
    id: str
    model: str
    polls_left: int
    seconds: int
    failure: FailJob | None = None
    polled: int = 0


class FakeMedia(FakeUpstream):
    """See the module docstring. ``jobs`` holds every job it accepted, by its id."""

    def __init__(self, host: str = "127.0.0.1", polls: int = 1, video_bytes: int = 4096) -> None:
        super().__init__(host)
        self.polls = polls
        self.video_bytes = video_bytes
        self.jobs: dict[str, Job] = {}

    def reset(self) -> None:
        super().reset()
        self.jobs.clear()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body: Any
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw
        path = request.path
        self.requests.append(
            Recorded(
                request.method,
                path,
                dict(request.query),
                {k.lower(): v for k, v in request.headers.items()},
                body,
            )
        )
        starts = request.method == "POST"
        behaviour: Behaviour | FailJob | SlowJob = self._next() if starts else Reply()
        if isinstance(behaviour, Status):
            return self._error(path, behaviour.status, behaviour.message, behaviour.code)
        if isinstance(behaviour, Reply) and behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        response = await self._route(request, path, body, behaviour)
        self.completed += 1
        return response

    # -- routing -------------------------------------------------------------------------------

    async def _route(
        self, request: web.Request, path: str, body: Any, behaviour: Any
    ) -> web.StreamResponse:
        method = request.method
        if match := _ARK_TASK.match(path):
            task_id = match.group(1)
            if method == "POST" and task_id is None:
                job = self._start(body, behaviour, "cgt-")
                return _json({"id": job.id})
            job_or_none = self.jobs.get(task_id or "")
            if job_or_none is None:
                return self._error(path, 404, "task not found", "ResourceNotFound")
            if method == "DELETE":
                self.jobs.pop(job_or_none.id, None)
                return _json({})
            return _json(self._ark_task(request, self._poll(job_or_none)))
        if match := _OPENAI_VIDEO.match(path):
            video_id, content = match.group(1), match.group(2)
            if method == "POST" and video_id is None:
                return _json(self._openai_video(self._start(body, behaviour, "video_")))
            job_or_none = self.jobs.get(video_id or "")
            if job_or_none is None:
                return self._error(path, 404, "video not found", "not_found")
            if content:
                return await self._video(request, job_or_none)
            if method == "DELETE":
                self.jobs.pop(job_or_none.id, None)
                return _json({"id": job_or_none.id, "object": "video.deleted", "deleted": True})
            return _json(self._openai_video(self._poll(job_or_none)))
        if match := _VEO_START.match(path):
            job = self._start(body, behaviour, "op", model=match.group(1))
            return _json({"name": f"models/{job.model}/operations/{job.id}"})
        if match := _VEO_OPERATION.match(path):
            job_or_none = self.jobs.get(match.group(1).rsplit("/", 1)[-1])
            if job_or_none is None:
                return self._error(path, 404, "operation not found", None)
            return _json(self._veo_operation(request, self._poll(job_or_none)))
        if match := _FILE.match(path):
            job_or_none = self.jobs.get(match.group(1))
            if job_or_none is None or job_or_none.polls_left > 0:
                return self._error(path, 404, "file not found", None)
            return await self._video(request, job_or_none)
        if path == "/v1/audio/speech":
            return web.Response(body=SPEECH, content_type="audio/mpeg")
        if path == "/v1/audio/transcriptions":
            if not isinstance(body, bytes) or b'name="file"' not in body:
                return self._error(path, 400, "file is required", None)
            return _json(
                {
                    "text": "hello from the fake transcription",
                    "usage": {"type": "duration", "seconds": 90},
                }
            )
        if path in ("/v1/images/generations", "/api/v3/images/generations"):
            return _json(self._openai_images(request, body))
        if match := _GEMINI_PREDICT.match(path):
            if match.group(2) == "predict":
                count = ((body or {}).get("parameters") or {}).get("sampleCount", 1)
                return _json(
                    {"predictions": [{"bytesBase64Encoded": PNG, "mimeType": "image/png"}] * count}
                )
            return _json(_gemini_image_answer())
        return self._error(path, 404, f"no such path {path}", None)

    # -- jobs ----------------------------------------------------------------------------------

    def _start(self, body: Any, behaviour: Any, prefix: str, model: str | None = None) -> Job:
        polls = self.polls
        failure = None
        if isinstance(behaviour, SlowJob):
            polls = behaviour.polls
        elif isinstance(behaviour, FailJob):
            failure, polls = behaviour, behaviour.polls
        seconds = 5
        if isinstance(body, dict):
            model = model or str(body.get("model") or "")
            if isinstance(body.get("seconds"), str) and body["seconds"].isdigit():
                seconds = int(body["seconds"])
            for part in body.get("content") or ():
                found = re.search(r"--duration (\d+)", str(part.get("text", "")))
                if found:
                    seconds = int(found.group(1))
            params = body.get("parameters")
            if isinstance(params, dict) and isinstance(params.get("durationSeconds"), int):
                seconds = params["durationSeconds"]
        job = Job(prefix + uuid.uuid4().hex[:20], model or "", polls, seconds, failure)
        self.jobs[job.id] = job
        return job

    def _poll(self, job: Job) -> Job:
        job.polled += 1
        job.polls_left = max(0, job.polls_left - 1)
        return job

    def _status(self, job: Job) -> str:
        if job.polls_left > 0:
            return "running" if job.polled else "queued"
        return "failed" if job.failure else "succeeded"

    def _ark_task(self, request: web.Request, job: Job) -> dict[str, Any]:
        status = self._status(job)
        task: dict[str, Any] = {
            "id": job.id,
            "model": job.model,
            "status": status,
            "created_at": int(time.time()),
            "updated_at": int(time.time()),
            "duration": job.seconds,
            "ratio": "16:9",
            "resolution": "720p",
        }
        if status == "succeeded":
            task["content"] = {"video_url": f"{self.url}/files/{job.id}.mp4"}
            task["usage"] = {"completion_tokens": 108900, "total_tokens": 108900}
        if status == "failed" and job.failure is not None:
            task["error"] = {"code": job.failure.code, "message": job.failure.message}
        return task

    def _openai_video(self, job: Job) -> dict[str, Any]:
        status = {"queued": "queued", "running": "in_progress", "succeeded": "completed"}.get(
            self._status(job), "failed"
        )
        failure = job.failure
        return {
            "id": job.id,
            "object": "video",
            "model": job.model,
            "status": status,
            "progress": 100 if status == "completed" else 0,
            "created_at": int(time.time()),
            "completed_at": None,
            "expires_at": None,
            "error": (
                {"code": failure.code, "message": failure.message}
                if status == "failed" and failure
                else None
            ),
            "prompt": None,
            "remixed_from_video_id": None,
            "seconds": str(job.seconds),
            "size": "1280x720",
        }

    def _veo_operation(self, request: web.Request, job: Job) -> dict[str, Any]:
        name = f"models/{job.model}/operations/{job.id}"
        status = self._status(job)
        if status in ("queued", "running"):
            return {"name": name}
        if status == "failed" and job.failure is not None:
            return {
                "name": name,
                "done": True,
                "error": {"code": 400, "message": job.failure.message, "status": job.failure.code},
            }
        uri = f"{self.url}/v1beta/files/{job.id}:download?alt=media"
        samples = [{"video": {"uri": uri}}]
        return {
            "name": name,
            "done": True,
            "response": {
                "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse",
                "generateVideoResponse": {"generatedSamples": samples},
            },
        }

    async def _video(self, request: web.Request, job: Job) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"content-type": "video/mp4", "content-length": str(self.video_bytes)}
        )
        await response.prepare(request)
        block = video_block(job.id)
        left = self.video_bytes
        while left > 0:
            piece = block[: min(left, len(block))]
            left -= len(piece)
            await response.write(piece)
        await response.write_eof()
        return response

    # -- images and errors ---------------------------------------------------------------------

    def _openai_images(self, request: web.Request, body: Any) -> dict[str, Any]:
        count = body.get("n", 1) if isinstance(body, dict) else 1
        as_url = isinstance(body, dict) and body.get("response_format") == "url"
        item = {"url": f"{self.url}/files/image.png"} if as_url else {"b64_json": PNG}
        return {"created": int(time.time()), "data": [dict(item) for _ in range(count)]}

    def _error(self, path: str, status: int, message: str, code: str | None) -> web.Response:
        if path.startswith("/v1beta/"):
            body: dict[str, Any] = {
                "error": {"code": status, "message": message, "status": code or "INVALID_ARGUMENT"}
            }
        else:
            body = {
                "error": {
                    "message": message,
                    "type": "invalid_request_error",
                    "param": None,
                    "code": code,
                }
            }
        return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def video_block(job_id: str) -> bytes:
    """The 64 KiB block a fake video repeats (a function of the job id)."""
    return hashlib.sha256(job_id.encode()).digest() * 2048


def _json(data: Any) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


def _gemini_image_answer() -> dict[str, Any]:
    parts = [
        {"text": "Here is the image."},
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
    ]
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}],
        "usageMetadata": {
            "promptTokenCount": 5,
            "candidatesTokenCount": 1290,
            "totalTokenCount": 1295,
        },
    }


__all__ = ["PNG", "FailJob", "FakeMedia", "SlowJob", "video_block"]
