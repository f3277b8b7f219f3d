"""The ``secrets`` filter: API keys, tokens and private keys in prompts. ``action`` is
``block`` (400 ``secret_detected``), ``redact`` (replace each with ``[SECRET]``) or
``off`` (the default: idle); a key overrides it with ``metadata.secrets``. Fails closed."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import attrs
from plugway.context import RequestContext
from plugway.errors import InvalidRequest
from plugway.hooks import hookimpl
from plugway.plugins.filters.text import (
    enabled_when_acting,
    fail_closed,
    filter_slots,
    first_match_spans,
    key_action,
    refusal,
    replace_spans,
    request_texts,
)
from plugway.tools import ToolCall, ToolResult

#: Reads prompts to filter them and keeps none.
PLUGWAY_RETAINS_CONTENT = False

NAME = "secrets"

PATTERNS: list[tuple[str, re.Pattern[str], Callable[[str], bool] | None]] = [
    (
        "PRIVATE_KEY",
        re.compile(
            r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----[\s\S]*?"
            r"(?:-----END (?:[A-Z]+ )?PRIVATE KEY-----|$)"
        ),
        None,
    ),
    ("SECRET", re.compile(r"\bsk-(?:ant-|proj-|svcacct-)?[A-Za-z0-9_-]{20,}"), None),
    ("SECRET", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), None),
    ("SECRET", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), None),
    (
        "SECRET",
        re.compile(
            r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b|"
            r"\bgithub_pat_[A-Za-z0-9_]{22,}\b"
        ),
        None,
    ),
    ("SECRET", re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}\b"), None),
    ("SECRET", re.compile(r"\b(?:sk|rk|pk)_live_[A-Za-z0-9]{16,}\b"), None),
    ("SECRET", re.compile(r"\bglpat-[A-Za-z0-9_-]{20}\b"), None),
    ("SECRET", re.compile(r"\bpw-[A-Za-z0-9_-]{40,}"), None),
    (
        "SECRET",
        re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
        None,
    ),
    (
        "SECRET",
        re.compile(
            r"(?i)\b(?:password|passwd|secret|api[_-]?key|token)\s*[:=]\s*"
            r"['\"]?[^\s'\"]{8,}"
        ),
        None,
    ),
]


@attrs.define(kw_only=True)
class SecretsSettings:
    """``[plugins.secrets]``."""

    action: str = "off"
    #: Stay active while ``action`` is off, so that keys can turn the filter on for
    #: themselves through ``metadata.secrets``.
    per_key: bool = False


@attrs.define
class _Runtime:
    settings: SecretsSettings = attrs.field(factory=SecretsSettings)


_rt = _Runtime()


def find(text: str) -> list[tuple[int, int, str]]:
    return first_match_spans(PATTERNS, text)


#: Idle (unregistered, costing nothing) unless an action is configured or keys may pick one.
plugway_enabled = enabled_when_acting(NAME)


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    register(NAME, SecretsSettings)


@hookimpl
def check_config(config: Any) -> list[str] | None:
    action = config.plugin_settings[NAME].action
    if action not in ("block", "redact", "off"):
        return [f"plugins.secrets.action: {action!r}; use block, redact or off"]
    return None


@hookimpl
def plugway_startup(config: Any) -> None:
    _rt.settings = config.plugin_settings[NAME]


@hookimpl
def pre_route(ctx: RequestContext) -> None:
    action = key_action(ctx, NAME, _rt.settings.action)
    if action == "off":
        return
    try:
        for text, set_text in request_texts(ctx.body):
            spans = find(text)
            if not spans:
                continue
            if action == "block":
                kinds = "a private key" if spans[0][2] == "PRIVATE_KEY" else "a credential"
                raise refusal(
                    NAME, f"the prompt contains {kinds}; remove it and retry", "secret_detected"
                )
            set_text(replace_spans(text, spans))
            ctx.tags["secrets"] = "redacted"
    except Exception as exc:
        raise fail_closed(NAME, exc) from None


def _refuse_in(where: str) -> Callable[[list[tuple[int, int, str]]], InvalidRequest]:
    def refuse(spans: list[tuple[int, int, str]]) -> InvalidRequest:
        kinds = "a private key" if spans[0][2] == "PRIVATE_KEY" else "a credential"
        return refusal(NAME, f"{where} contains {kinds}", "secret_detected")

    return refuse


@hookimpl
def pre_tool_call(ctx: RequestContext, call: ToolCall) -> None:
    """A credential in an MCP tool call's arguments: redacted or refused, as in prompts."""
    action = key_action(ctx, NAME, _rt.settings.action)
    if action == "off":
        return
    try:
        if filter_slots(call.texts(), find, action, _refuse_in("the tool call's arguments")):
            ctx.tags["secrets"] = "redacted"
    except Exception as exc:
        raise fail_closed(NAME, exc) from None


@hookimpl(tryfirst=True)
def post_tool_call(ctx: RequestContext, result: ToolResult) -> None:
    """A credential in an MCP tool's result (a config file, an environment dump): redacted
    or refused before the client, and so the model, reads it."""
    action = key_action(ctx, NAME, _rt.settings.action)
    if action == "off":
        return
    try:
        if filter_slots(result.texts(), find, action, _refuse_in("the tool's result")):
            ctx.tags["secrets"] = "redacted"
    except Exception as exc:
        raise fail_closed(NAME, exc) from None
