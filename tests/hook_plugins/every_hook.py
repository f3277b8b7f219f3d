"""A plugin implementing every plugway hook with an effect a test can see (tests/test_hooks.py)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from plugway import Attempt, FailureDecision, ProviderResponse, RequestContext, Target, hookimpl
from plugway.builtin_providers.fake import FakeProvider
from plugway.errors import PermissionDenied, UpstreamRejected
from sanic import Sanic, response

STARTED: list[str] = []


@attrs.define(kw_only=True)
class EveryHookSettings:
    greeting: str = "hello"


class ShoutingFake(FakeProvider):
    """The fake provider, answering in capitals."""

    async def chat(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        answer = await super().chat(ctx, target, body)
        message = answer.body["choices"][0]["message"]
        message["content"] = (message["content"] or "").upper()
        return answer


class Reverse:
    def __init__(self, env: Any) -> None:
        self.env = env

    def plan(self, ctx: RequestContext, candidates: Sequence[Target]) -> list[Target]:
        return list(reversed(candidates))


@hookimpl
def register_providers(register: Callable[..., None]) -> None:
    register("hooktest_shout", ShoutingFake)


@hookimpl
def register_strategies(register: Callable[..., None]) -> None:
    register("hooktest_reverse", Reverse)


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    register("every_hook", EveryHookSettings)


@hookimpl
def register_routes(app: Sanic[Any, Any], config: Any) -> None:
    settings = config.plugin_settings["every_hook"]

    @app.get("/hooktest/greeting")
    async def greeting(request: Any) -> Any:
        return response.json({"greeting": settings.greeting, "started": STARTED})


@hookimpl
def render_error(request: Any, error: Any, request_id: str) -> Any:
    if not request.path.startswith("/hooktest/"):
        return None  # not our route: the default (OpenAI's) shape
    return response.json(
        {"hooktest_error": error.message, "request_id": request_id}, status=error.status
    )


@hookimpl
async def plugway_startup(app: Sanic[Any, Any], config: Any) -> None:
    STARTED.append(config.plugin_settings["every_hook"].greeting)


@hookimpl
def plugway_shutdown(app: Sanic[Any, Any]) -> None:
    marker = os.environ.get("HOOKTEST_SHUTDOWN_FILE")
    if marker:
        Path(marker).write_text("closed")


def _said(ctx: RequestContext) -> str:
    return str((ctx.body.get("messages") or [{}])[-1].get("content", ""))


@hookimpl
def pre_route(ctx: RequestContext) -> None:
    if "forbidden-word" in _said(ctx):
        raise PermissionDenied("the hook test refuses this", code="hooktest_refused")


@hookimpl
async def select_provider(ctx: RequestContext, candidates: Sequence[Target]) -> list[Target] | None:
    if _said(ctx).startswith("last please"):
        return [candidates[-1]]
    return None


@hookimpl
def on_failure(ctx: RequestContext, error: Any) -> FailureDecision | None:
    if isinstance(error, UpstreamRejected) and error.upstream_status == 418:
        return FailureDecision.next("teapots are worth a second opinion")
    return None


@hookimpl
def hedge_delay(ctx: RequestContext, target: Target) -> float | None:
    if _said(ctx).startswith("hedge please") and target.provider == "slow":
        return 0.05  # start the next target if this one has not answered within 50 ms
    return None


@hookimpl
def attempt_started(ctx: RequestContext, attempt: Attempt) -> None:
    ctx.state.setdefault("every_hook", []).append(f"started:{attempt.target.provider}")


@hookimpl
def attempt_ended(ctx: RequestContext, attempt: Attempt) -> None:
    ctx.state.setdefault("every_hook", []).append(f"ended:{attempt.outcome}")


@hookimpl
def stream_chunk(chunk: dict[str, Any]) -> dict[str, Any] | None:
    for choice in chunk.get("choices") or []:
        content = choice.get("delta", {}).get("content")
        if content and "secret" in content:
            choice["delta"]["content"] = content.replace("secret", "******")
    return None


@hookimpl
def post_response(ctx: RequestContext, response: ProviderResponse | None) -> None:
    if response is not None and response.usage:
        ctx.response_headers["x-hooktest-total-tokens"] = str(response.usage["total_tokens"])
    ctx.response_headers["x-hooktest-attempts"] = ",".join(ctx.state.get("every_hook", []))
