"""OpenAI's video API (``/v1/videos``): checking a create request, the ``video`` object, the
list page and the deletion answer. Pure: no I/O here."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from plugway.errors import InvalidRequest
from plugway.formats.video_jobs import JobState, Status, VideoRequest

#: What OpenAI's API allows for ``seconds`` is 4, 8 or 12; other providers take other
#: durations (Seedance 2-12, Veo 4-8), so any whole number in this range is passed on.
MAX_SECONDS = 60
_SIZE = re.compile(r"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$")
#: Fields the door reads itself; every other field is a provider parameter (``extra_body``).
OWN_FIELDS = frozenset({"model", "prompt", "seconds", "size", "input_reference"})


def parse(body: Mapping[str, Any]) -> VideoRequest:
    """Check a create request (JSON, or a multipart form already read into a dict, an uploaded
    ``input_reference`` as a ``data:`` URL string). A client's mistake raises
    :class:`InvalidRequest` naming the field."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequest("prompt is required and must be a non-empty string", param="prompt")
    seconds = _seconds(body.get("seconds"))
    size = body.get("size")
    if size is not None and (not isinstance(size, str) or not _SIZE.match(size)):
        raise InvalidRequest("size must be a string WIDTHxHEIGHT such as 1280x720", param="size")
    image_url = _reference(body.get("input_reference"))
    extra = {k: v for k, v in body.items() if k not in OWN_FIELDS}
    return VideoRequest(prompt=prompt, seconds=seconds, size=size, image_url=image_url, extra=extra)


def _seconds(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_SECONDS:
        raise InvalidRequest(
            f'seconds must be a whole number of seconds from 1 to {MAX_SECONDS} (e.g. "8")',
            param="seconds",
        )
    return value


def _reference(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and value.startswith(("data:", "http://", "https://")):
        return value
    if isinstance(value, Mapping):
        url = value.get("image_url")
        if isinstance(url, str) and url:
            return url
        if "file_id" in value:
            raise InvalidRequest(
                "input_reference.file_id is not served by this gateway; send "
                "input_reference.image_url (a URL or a data: URL) or upload the image",
                param="input_reference.file_id",
            )
    raise InvalidRequest(
        'input_reference must be an uploaded image or {"image_url": URL}',
        param="input_reference",
    )


def video_object(
    video_id: str,
    *,
    model: str,
    state: JobState,
    created_at: int,
    seconds: int | None,
    size: str | None,
    prompt: str | None = None,
    completed_at: int | None = None,
    expires_at: int | None = None,
) -> dict[str, Any]:
    """OpenAI's ``video`` object for a job the gateway knows as ``video_id``."""
    error = None
    if state.status == "failed":
        failure = state.error or {}
        error = {
            "code": failure.get("code") or "video_generation_failed",
            "message": failure.get("message") or "the video job failed",
        }
    return {
        "id": video_id,
        "object": "video",
        "model": model,
        "status": state.status,
        "progress": 100 if state.status == "completed" else state.progress,
        "created_at": created_at,
        "completed_at": completed_at,
        "expires_at": expires_at,
        "error": error,
        "prompt": prompt,
        "remixed_from_video_id": None,
        "seconds": str(state.seconds or seconds or 4),
        "size": state.size or size or "1280x720",
    }


def list_page(items: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }


def deleted(video_id: str) -> dict[str, Any]:
    return {"id": video_id, "object": "video.deleted", "deleted": True}


# -- OpenAI as an upstream ---------------------------------------------------------------------

_STATUSES: dict[str, Status] = {
    "queued": "queued",
    "in_progress": "in_progress",
    "completed": "completed",
    "failed": "failed",
}


def to_openai_json(request: VideoRequest, model: str) -> dict[str, Any]:
    """The JSON body of ``POST /v1/videos`` for an OpenAI upstream (``extra_body`` fields
    passed through as they came)."""
    body: dict[str, Any] = {**request.extra, "model": model, "prompt": request.prompt}
    if request.seconds is not None:
        body["seconds"] = str(request.seconds)
    if request.size is not None:
        body["size"] = request.size
    if request.image_url is not None:
        body["input_reference"] = {"image_url": request.image_url}
    return body


def from_openai_video(data: Mapping[str, Any]) -> JobState:
    """An upstream ``video`` object as a :class:`JobState`."""
    status = _STATUSES.get(str(data.get("status")), "in_progress")
    error = data.get("error")
    seconds = data.get("seconds")
    return JobState(
        provider_id=str(data.get("id") or ""),
        status=status,
        progress=int(data.get("progress") or 0),
        error=(
            {"code": str(error.get("code") or ""), "message": str(error.get("message") or "")}
            if isinstance(error, Mapping)
            else None
        ),
        seconds=int(seconds) if isinstance(seconds, str) and seconds.isdigit() else None,
        size=data.get("size") if isinstance(data.get("size"), str) else None,
    )
