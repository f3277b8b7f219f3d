"""The ``ark`` provider: BytePlus ModelArk. Chat, embeddings and Seedream images are OpenAI's
API on ModelArk's host, served as by the ``openai`` provider; Seedance video is ModelArk's own
content-generation task API (:mod:`plugway.formats.ark_tasks`), added here.

A subclass rather than a setting of the ``openai`` provider: the task API is ModelArk's alone,
and a setting would offer every OpenAI-compatible host calls that no other host has. The
finished video is on ModelArk's object storage (a signed URL, not ModelArk's API host): it is
fetched with a client that carries no key."""

from __future__ import annotations

from urllib.parse import quote

import httpx
from plugway.builtin_providers.media_http import HTTPVideoBytes, call_json, open_download
from plugway.builtin_providers.openai import OpenAIProvider
from plugway.context import RequestContext, Target
from plugway.errors import InvalidRequest
from plugway.formats import ark_tasks
from plugway.formats.video_jobs import JobState, VideoRequest
from plugway.upstream import make_http_client


class ArkProvider(OpenAIProvider):
    plain: httpx.AsyncClient

    async def startup(self) -> None:
        await super().startup()
        self.plain = make_http_client(self.settings, base_url="", headers={})

    async def aclose(self) -> None:
        await super().aclose()
        if hasattr(self, "plain"):
            await self.plain.aclose()

    def _task_url(self, task_id: str = "") -> str:
        path = ark_tasks.TASKS_PATH + (f"/{quote(task_id, safe='')}" if task_id else "")
        return self.direct.url(path, self._params)

    async def video_submit(
        self, ctx: RequestContext, target: Target, request: VideoRequest
    ) -> JobState:
        payload = ark_tasks.to_ark_task(request, target.model)
        data = await call_json(
            self.client,
            "POST",
            self._task_url(),
            provider=self.name,
            error_of=self._error,
            payload=payload,
        )
        return ark_tasks.from_ark_task(data)

    async def video_poll(self, target: Target, provider_id: str) -> JobState:
        data = await call_json(
            self.client,
            "GET",
            self._task_url(provider_id),
            provider=self.name,
            error_of=self._error,
        )
        return ark_tasks.from_ark_task(data)

    async def video_content(self, target: Target, job: JobState) -> HTTPVideoBytes:
        if job.video_url is None:
            raise InvalidRequest("the task has no video", code="video_not_ready")
        return await open_download(
            self.client, job.video_url, provider=self.name, error_of=self._error, plain=self.plain
        )

    async def video_delete(self, target: Target, provider_id: str) -> None:
        await call_json(
            self.client,
            "DELETE",
            self._task_url(provider_id),
            provider=self.name,
            error_of=self._error,
        )
