"""``[plugins.responses]``: where stored responses live, for how long, and what ``store``
means under ``[privacy] zdr``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs

NAME = "responses"
BACKENDS = ("auto", "sqlite", "state")
ZDR_STORE = ("refuse", "coerce")
DAY = 86400.0


def default_db() -> str:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(state) / "plugway" / "responses.db")


@attrs.define(kw_only=True)
class ResponsesSettings:
    """``[plugins.responses]``."""

    #: ``auto``: the state backend when ``[state]`` names a shared one (Redis), else SQLite;
    #: ``sqlite``: the SQLite file ``db`` (shared by the workers of one machine);
    #: ``state``: the gateway's state backend (``memory`` keeps them in one worker only).
    backend: str = "auto"
    #: The SQLite file; created with its folder when missing.
    db: str = attrs.field(factory=default_db)
    #: Seconds a stored response (or stored chat completion) is kept (default 30 days).
    ttl: float = 30 * DAY
    #: Under ``[privacy] zdr = true``, a request that asks to store (``/v1/responses`` with
    #: ``store`` true or left out, ``/v1/chat/completions`` with ``store: true``): ``refuse``
    #: answers 400; ``coerce`` serves it with ``store`` false.
    zdr_store: str = "refuse"


def check(settings: ResponsesSettings) -> list[str]:
    """Config problems, each naming its TOML path."""
    problems = []
    if settings.backend not in BACKENDS:
        problems.append(
            f"plugins.responses.backend: {settings.backend!r} is not a backend; use one of "
            + ", ".join(BACKENDS)
        )
    if settings.zdr_store not in ZDR_STORE:
        problems.append(
            f"plugins.responses.zdr_store: {settings.zdr_store!r}; use refuse (answer 400 to "
            "a request that asks to store) or coerce (serve it with store false)"
        )
    if not settings.ttl > 0:
        problems.append(
            f"plugins.responses.ttl: {settings.ttl!r}; give the seconds a stored response is "
            "kept, more than 0 (default 2592000, 30 days)"
        )
    if not settings.db:
        problems.append("plugins.responses.db: empty; give the SQLite file's path")
    return problems


def settings_of(config: Any) -> ResponsesSettings:
    found = config.plugin_settings.get(NAME)
    return found if isinstance(found, ResponsesSettings) else ResponsesSettings()
