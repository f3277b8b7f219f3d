"""The ``responses`` plugin: OpenAI's Responses API (``POST /v1/responses``) to every target,
with its conversation state.

- :mod:`.endpoint`: ``POST /v1/responses``, streamed and not, passed through to hosts that
  serve it natively and translated through chat completions for every other target;
- :mod:`.resources`: ``GET``/``DELETE /v1/responses/{id}``, ``GET
  /v1/responses/{id}/input_items``;
- :mod:`.store`: where responses are kept (SQLite by default, the state backend, so Redis,
  when ``[state]`` is shared);
- :mod:`.native`: the chat view of a native answer, a stored conversation as input items.

State: ``store`` (default true, as OpenAI) keeps, per response id, its owner (the caller's team,
else its key), the Response object, its input items and the conversation so far as chat
messages, for ``ttl`` seconds; ``previous_response_id`` continues that conversation on any
target, and another tenant's id is not found. Under ``[privacy] zdr = true`` nothing is stored
and the store is not opened: a request asking to store is refused (400) or, with ``zdr_store =
"coerce"``, served with ``store: false``.

Settings: ``[plugins.responses]`` (:class:`.settings.ResponsesSettings`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from plugway.config import Config
from plugway.errors import PluginError
from plugway.hooks import hookimpl
from plugway.plugins.responses import endpoint, resources
from plugway.plugins.responses.runtime import runtime
from plugway.plugins.responses.settings import NAME, ResponsesSettings, check, settings_of
from plugway.plugins.responses.store import (
    ResponseStore,
    SqliteResponseStore,
    StateResponseStore,
)
from sanic import Sanic


def PLUGWAY_RETAINS_CONTENT(config: Config) -> bool:
    """Stored responses hold prompts and answers, except under ``[privacy] zdr``: then the
    store stays closed and ``store: true`` is refused or coerced to false."""
    return not config.privacy.zdr


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    register(NAME, ResponsesSettings)


@hookimpl
def check_config(config: Config) -> list[str] | None:
    return check(settings_of(config)) or None


@hookimpl
def register_routes(app: Sanic[Any, Any], config: Config) -> None:
    # Served with and without the /v1 prefix, as the core serves chat.
    for prefix in ("/v1", ""):
        tag = prefix.strip("/") or "bare"
        app.add_route(
            endpoint.create, f"{prefix}/responses", methods=["POST"], name=f"responses_create_{tag}"
        )
        app.add_route(
            resources.retrieve,
            f"{prefix}/responses/<response_id>",
            methods=["GET"],
            name=f"responses_retrieve_{tag}",
        )
        app.add_route(
            resources.delete,
            f"{prefix}/responses/<response_id>",
            methods=["DELETE"],
            name=f"responses_delete_{tag}",
        )
        app.add_route(
            resources.list_input_items,
            f"{prefix}/responses/<response_id>/input_items",
            methods=["GET"],
            name=f"responses_input_items_{tag}",
        )


def make_store(app: Any, config: Config) -> ResponseStore | None:
    settings = settings_of(config)
    if config.privacy.zdr:
        return None
    backend = settings.backend
    if backend == "auto":
        backend = "sqlite" if config.state.backend == "memory" else "state"
    if backend == "state":
        return StateResponseStore(app.ctx.gateway.state, settings.ttl)
    return SqliteResponseStore(settings.db, settings.ttl)


@hookimpl
async def plugway_startup(app: Any, config: Config) -> None:
    runtime.settings = settings_of(config)
    store = make_store(app, config)
    if store is not None:
        try:
            await store.startup()
        except (OSError, sqlite3.Error) as exc:
            raise PluginError(
                f"plugins.responses.db: cannot open the response store "
                f"{runtime.settings.db!r}: {exc}; give a writable path"
            ) from None
    runtime.store = store


@hookimpl
async def plugway_shutdown() -> None:
    store, runtime.store = runtime.store, None
    if store is not None:
        await store.aclose()
