"""BytePlus ModelArk's content-generation task API (Seedance video):
``POST /api/v3/contents/generations/tasks``, ``GET .../tasks/{id}``, ``DELETE .../tasks/{id}``.

A task's ``content`` is a list of a text part (the prompt, followed by Seedance's parameter
flags such as ``--ratio 16:9 --duration 5 --resolution 720p``) and ``image_url`` parts for
image-to-video. OpenAI-shaped ``size`` and ``seconds`` map to ``--ratio``/``--resolution`` and
``--duration``; parameters the client passed under ``extra_body`` become flags when Seedance
knows them as flags and top-level task fields otherwise. Pure: no I/O here."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from plugway.formats.video_jobs import JobState, Status, VideoRequest

TASKS_PATH = "/contents/generations/tasks"
#: Seedance's parameter flags, in the text part; ``camera_fixed`` is accepted for ``camerafixed``.
FLAGS = ("ratio", "resolution", "duration", "framespersecond", "watermark", "seed", "camerafixed")
ALIASES = {"camera_fixed": "camerafixed", "fps": "framespersecond"}
#: Seedance's aspect ratios, and the short side of each resolution.
RATIOS = ("21:9", "16:9", "4:3", "1:1", "3:4", "9:16")
RESOLUTIONS = {"480p": 480, "720p": 720, "1080p": 1080}
_STATUS: dict[str, Status] = {
    "queued": "queued",
    "running": "in_progress",
    "succeeded": "completed",
    "failed": "failed",
    "cancelled": "failed",
    "expired": "failed",
}


def _flag_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def ratio_and_resolution(size: str) -> tuple[str, str]:
    """The Seedance ratio and resolution closest to an OpenAI ``WIDTHxHEIGHT`` size."""
    width, height = (int(part) for part in size.split("x"))
    aspect = width / height

    def distance(ratio: str) -> float:
        w, h = (int(p) for p in ratio.split(":"))
        return abs(math.log(aspect) - math.log(w / h))

    ratio = min(RATIOS, key=distance)
    short = min(width, height)
    resolution = min(RESOLUTIONS, key=lambda name: abs(RESOLUTIONS[name] - short))
    return ratio, resolution


def size_of(ratio: str | None, resolution: str | None) -> str | None:
    """The ``WIDTHxHEIGHT`` of a Seedance ratio at a resolution (``16:9``, ``720p`` ->
    ``1280x720``), or None when either is unknown."""
    if ratio not in RATIOS or resolution not in RESOLUTIONS:
        return None
    w, h = (int(p) for p in ratio.split(":"))
    short = RESOLUTIONS[resolution]
    if w >= h:
        return f"{round(short * w / h)}x{short}"
    return f"{short}x{round(short * h / w)}"


def to_ark_task(request: VideoRequest, model: str) -> dict[str, Any]:
    """The body of ``POST /api/v3/contents/generations/tasks``."""
    flags: dict[str, str] = {}
    fields: dict[str, Any] = {}
    if request.size is not None:
        flags["ratio"], flags["resolution"] = ratio_and_resolution(request.size)
    if request.seconds is not None:
        flags["duration"] = str(request.seconds)
    for key, value in request.extra.items():
        name = ALIASES.get(key, key)
        if name in FLAGS:
            flags[name] = _flag_value(value)
        else:
            fields[key] = value
    text = request.prompt
    for name, value in flags.items():
        if f"--{name} " not in text:
            text += f" --{name} {value}"
    content: list[dict[str, Any]] = [{"type": "text", "text": text}]
    if request.image_url is not None:
        content.append({"type": "image_url", "image_url": {"url": request.image_url}})
    return {**fields, "model": model, "content": content}


def from_ark_task(data: Mapping[str, Any]) -> JobState:
    """A task (the answer of create or get) as a :class:`JobState`."""
    status = _STATUS.get(str(data.get("status") or "queued"), "in_progress")
    if "status" not in data:  # the create answer is only {"id": ...}
        status = "queued"
    content = data.get("content")
    video_url = content.get("video_url") if isinstance(content, Mapping) else None
    error = data.get("error")
    failure = None
    if status == "failed":
        failure = {
            "code": str((error or {}).get("code") or data.get("status") or "failed"),
            "message": str((error or {}).get("message") or f"the task {data.get('status')}"),
        }
    duration = data.get("duration")
    return JobState(
        provider_id=str(data.get("id") or ""),
        status=status,
        progress=100 if status == "completed" else (50 if status == "in_progress" else 0),
        error=failure,
        video_url=video_url if isinstance(video_url, str) else None,
        redirectable=isinstance(video_url, str),
        seconds=duration if isinstance(duration, int) and not isinstance(duration, bool) else None,
        size=size_of(data.get("ratio"), data.get("resolution")),
    )
