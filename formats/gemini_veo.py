"""Veo video generation on the Gemini API: ``POST models/{model}:predictLongRunning`` starts an
operation, ``GET {operation name}`` polls it until ``done``; the video is at
``response.generateVideoResponse.generatedSamples[0].video.uri``. Pure: no I/O here."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from plugway.formats.video_jobs import JobState, VideoRequest

#: Veo's parameters the client may pass under ``extra_body``.
PARAMETERS = frozenset(
    {"aspectRatio", "resolution", "negativePrompt", "personGeneration", "seed", "sampleCount"}
)


def _image(url: str) -> dict[str, Any] | None:
    """A ``data:`` URL as Veo's inline image; Veo takes no image by http URL."""
    if not url.startswith("data:") or ";base64," not in url:
        return None
    head, data = url[5:].split(";base64,", 1)
    base64.b64decode(data, validate=True)
    return {"bytesBase64Encoded": data, "mimeType": head or "image/png"}


def to_veo_request(request: VideoRequest) -> dict[str, Any]:
    """The body of ``:predictLongRunning``. ``size`` maps to ``aspectRatio`` (16:9 or 9:16)
    and ``resolution`` (720p/1080p), ``seconds`` to ``durationSeconds``."""
    instance: dict[str, Any] = {"prompt": request.prompt}
    if request.image_url is not None:
        image = _image(request.image_url)
        if image is not None:
            instance["image"] = image
    parameters: dict[str, Any] = {}
    if request.size is not None:
        width, height = (int(p) for p in request.size.split("x"))
        parameters["aspectRatio"] = "16:9" if width >= height else "9:16"
        parameters["resolution"] = "1080p" if min(width, height) >= 1080 else "720p"
    if request.seconds is not None:
        parameters["durationSeconds"] = request.seconds
    parameters.update({k: v for k, v in request.extra.items() if k in PARAMETERS})
    body: dict[str, Any] = {"instances": [instance]}
    if parameters:
        body["parameters"] = parameters
    return body


def image_is_url(request: VideoRequest) -> bool:
    """Whether the image reference is one Veo cannot take (an http URL, not inline data)."""
    return request.image_url is not None and not request.image_url.startswith("data:")


def from_operation(data: Mapping[str, Any]) -> JobState:
    """A long-running operation as a :class:`JobState` (its ``name`` is the provider id)."""
    name = str(data.get("name") or "")
    if not data.get("done"):
        return JobState(provider_id=name, status="in_progress", progress=50)
    error = data.get("error")
    if isinstance(error, Mapping):
        return JobState(
            provider_id=name,
            status="failed",
            error={
                "code": str(error.get("status") or error.get("code") or "failed"),
                "message": str(error.get("message") or "the Veo operation failed"),
            },
        )
    response = data.get("response")
    generated = response.get("generateVideoResponse") if isinstance(response, Mapping) else None
    samples = generated.get("generatedSamples") if isinstance(generated, Mapping) else None
    video = samples[0].get("video") if isinstance(samples, list) and samples else None
    uri = video.get("uri") if isinstance(video, Mapping) else None
    if not isinstance(uri, str):
        reason = (
            generated.get("raiMediaFilteredReasons") if isinstance(generated, Mapping) else None
        )
        return JobState(
            provider_id=name,
            status="failed",
            error={
                "code": "no_video",
                "message": str(reason or "the Veo operation finished without a video"),
            },
        )
    return JobState(provider_id=name, status="completed", progress=100, video_url=uri)
