"""A plugin implementing every request hook and doing nothing: what a plugin costs per hook
just by being installed. Put this folder on PYTHONPATH to install it (a dist-info, like the
test suite's plugin packages)."""

from __future__ import annotations

from typing import Any

from plugway.hooks import hookimpl


@hookimpl
def pre_route(ctx: Any) -> None:
    return None


@hookimpl
def select_provider(ctx: Any, candidates: Any) -> None:
    return None


@hookimpl
def on_failure(ctx: Any, attempt: Any, error: Any) -> None:
    return None


@hookimpl
def stream_chunk(ctx: Any, chunk: Any) -> None:
    return None


@hookimpl
def post_response(ctx: Any, response: Any) -> None:
    return None
