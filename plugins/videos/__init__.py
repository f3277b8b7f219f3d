"""The ``videos`` plugin: OpenAI's video API (``/v1/videos``) in front of every video job API:
ModelArk's Seedance tasks, OpenAI's own ``/v1/videos``, Veo's long-running operations, and the
``fake`` provider. A provider serves videos by implementing
:class:`plugway.formats.video_jobs.VideoJobs`.

Job ids are the gateway's own (``video_...``), mapped to the provider's id and owner (the
caller's team, else its key) in the state backend for ``ttl`` seconds (:mod:`.jobs`). A job's
cost is recorded once, when a poll first sees it completed (``post_response`` with endpoint
``videos.completed`` and ``usage = {"video_seconds": N, "size": ...}``, priced by the cost
plugin).

Settings (``[plugins.videos]``): ``ttl`` (seconds a job is kept, default 86400) and
``redirect`` (answer the content download with a redirect to the provider's URL when that URL
needs no key, instead of streaming the bytes through; default false).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from plugway.config import Config
from plugway.hooks import hookimpl
from plugway.plugins.videos import endpoint
from plugway.plugins.videos.jobs import VideoJobStore
from sanic import Sanic

#: Writes no prompt or completion text anywhere (see [privacy] zdr): job records hold ids,
#: owner, model, size and status only.
PLUGWAY_RETAINS_CONTENT = False

NAME = "videos"


@attrs.define(kw_only=True)
class VideosSettings:
    #: Seconds a job's record (and so its id) is kept.
    ttl: float = attrs.field(default=86400.0, validator=attrs.validators.gt(0))
    #: Redirect content downloads to the provider's keyless URL instead of streaming.
    redirect: bool = False


def settings_of(config: Config) -> VideosSettings:
    settings = config.plugin_settings.get(NAME)
    return settings if isinstance(settings, VideosSettings) else VideosSettings()


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    register(NAME, VideosSettings)


@hookimpl
def register_routes(app: Sanic[Any, Any], config: Config) -> None:
    app.add_route(endpoint.create, "/v1/videos", methods=["POST"], name="videos_create")
    app.add_route(endpoint.list_videos, "/v1/videos", methods=["GET"], name="videos_list")
    app.add_route(
        endpoint.retrieve, "/v1/videos/<video_id>", methods=["GET"], name="videos_retrieve"
    )
    app.add_route(
        endpoint.delete, "/v1/videos/<video_id>", methods=["DELETE"], name="videos_delete"
    )
    app.add_route(
        endpoint.content, "/v1/videos/<video_id>/content", methods=["GET"], name="videos_content"
    )


@hookimpl
def plugway_startup(app: Any, config: Config) -> None:
    settings = settings_of(config)
    app.ctx.video_jobs = VideoJobStore(app.ctx.gateway.state, settings.ttl)
    app.ctx.video_redirect = settings.redirect
