"""Video generation jobs, whatever the provider: the request the gateway hands a provider, the
job's state as the provider reports it, and the :class:`VideoJobs` protocol a provider
implements to serve ``/v1/videos`` (submit, poll, content, delete). Pure: no I/O here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal, Protocol, runtime_checkable

import attrs
from plugway.context import RequestContext, Target

Status = Literal["queued", "in_progress", "completed", "failed"]


@attrs.define(kw_only=True)
class VideoRequest:
    """What a client asked for, checked (see :func:`plugway.formats.openai_videos.parse`).

    ``seconds`` and ``size`` are None when the client left them to the provider's default.
    ``image_url`` is an image reference (an http(s) URL or a ``data:`` URL) for image-to-video.
    ``extra`` holds provider parameters the client passed under ``extra_body`` (Seedance's
    ``ratio``, ``resolution``, ``watermark``, ``seed``, ``camera_fixed`` ...)."""

    prompt: str
    seconds: int | None = None
    size: str | None = None
    image_url: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict)


@attrs.define
class JobState:
    """A job as its provider reports it: ``provider_id`` is the provider's own id; ``error`` is
    ``{"code", "message"}`` for a failed job; ``video_url`` the provider's download URL when it
    gives one; ``seconds`` and ``size`` what the video is (when the provider says)."""

    provider_id: str
    status: Status
    progress: int = 0
    error: dict[str, str] | None = None
    video_url: str | None = None
    #: ``video_url`` needs no key, so a client may be redirected to it.
    redirectable: bool = False
    seconds: int | None = None
    size: str | None = None


class VideoBytes(Protocol):
    """An open download: the body is read in pieces, never whole; ``aclose`` releases it."""

    @property
    def content_type(self) -> str: ...

    @property
    def content_length(self) -> int | None: ...

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class VideoJobs(Protocol):
    """What a provider implements to serve video jobs. Every method raises an
    :class:`~plugway.errors.UpstreamError` subclass when the upstream refuses or fails."""

    async def video_submit(
        self, ctx: RequestContext, target: Target, request: VideoRequest
    ) -> JobState:
        """Start a job for ``target.model``; return once the provider accepted it."""

    async def video_poll(self, target: Target, provider_id: str) -> JobState:
        """The job's state now."""

    async def video_content(self, target: Target, job: JobState) -> VideoBytes:
        """Open the finished video's bytes (``job`` is a completed poll's state)."""

    async def video_delete(self, target: Target, provider_id: str) -> None:
        """Delete the job and its video at the provider (a job already gone is no error)."""


@attrs.frozen
class StaticBytes:
    """A :class:`VideoBytes` over bytes already in memory (the fake provider's)."""

    data: bytes
    content_type: str = "video/mp4"

    @property
    def content_length(self) -> int | None:
        return len(self.data)

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        step = 64 * 1024
        for start in range(0, len(self.data), step):
            yield self.data[start : start + step]

    async def aclose(self) -> None:
        return None


def prompt_of(body: Mapping[str, Any]) -> str:
    """The prompt from the canonical chat form a media door routes with (a filter may have
    rewritten it): the text of the first user message."""
    for message in body.get("messages") or ():
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""
