"""The ``prompt_guard`` filter: prompt-injection signals in user and tool messages, by
heuristics (no model). ``action`` is ``flag`` (tag the request and answer with
``x-plugway-prompt-guard: flagged``), ``block`` (400 ``prompt_injection_detected``) or
``off`` (the default: idle); a key overrides it with ``metadata.prompt_guard``. A request is flagged when its
score (the number of distinct signals) reaches ``threshold``. Fails closed."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any

import attrs
from plugway.context import RequestContext
from plugway.hooks import hookimpl
from plugway.plugins.filters.text import (
    enabled_when_acting,
    fail_closed,
    key_action,
    refusal,
    request_texts,
)

#: Reads prompts to score them and keeps none.
PLUGWAY_RETAINS_CONTENT = False

NAME = "prompt_guard"

SIGNALS: dict[str, re.Pattern[str]] = {
    "override": re.compile(
        r"\b(?:ignore|disregard|forget|override|bypass)\b.{0,40}\b(?:previous|prior|above|"
        r"earlier|preceding|all|any|your|the|system)\b.{0,30}\b(?:instructions?|prompts?|"
        r"rules|directions|guidelines|context)\b"
    ),
    "reveal": re.compile(
        r"\b(?:reveal|show|print|repeat|output|leak|tell me)\b.{0,40}\b(?:system|hidden|"
        r"initial|original|secret)\s+(?:prompt|instructions?|message)\b"
    ),
    "persona": re.compile(
        r"\b(?:you are now|from now on you are|act as|pretend to be|roleplay as)\b.{0,40}"
        r"\b(?:dan|jailbroken|unfiltered|unrestricted|without (?:any )?(?:rules|limits|"
        r"restrictions))\b|\bdeveloper mode\b|\bjailbreak\b"
    ),
    "role_tokens": re.compile(
        r"<\|(?:im_start|im_end|system|endoftext)\|>|\[/?inst\]|<<sys>>|^\s*#{2,}\s*system\s*:",
        re.MULTILINE,
    ),
    "exfiltrate": re.compile(
        r"\b(?:send|post|upload|exfiltrate)\b.{0,60}\b(?:https?://|api key|password|"
        r"credentials)"
    ),
}


@attrs.define(kw_only=True)
class PromptGuardSettings:
    """``[plugins.prompt_guard]``."""

    action: str = "off"
    #: Stay active while ``action`` is off, so that keys can turn the filter on for
    #: themselves through ``metadata.prompt_guard``.
    per_key: bool = False
    threshold: int = 1


@attrs.define
class _Runtime:
    settings: PromptGuardSettings = attrs.field(factory=PromptGuardSettings)


_rt = _Runtime()


def score(text: str) -> list[str]:
    """The signals found in ``text`` (normalised: NFKC, lower case, zero-widths removed)."""
    norm = unicodedata.normalize("NFKC", text).lower()
    norm = re.sub(r"[\u200b-\u200f\u2060\ufeff]", "", norm)
    return [name for name, pattern in SIGNALS.items() if pattern.search(norm)]


#: Idle (unregistered, costing nothing) unless an action is configured or keys may pick one.
plugway_enabled = enabled_when_acting(NAME)


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    register(NAME, PromptGuardSettings)


@hookimpl
def check_config(config: Any) -> list[str] | None:
    settings = config.plugin_settings[NAME]
    if settings.action not in ("flag", "block", "off"):
        return [f"plugins.prompt_guard.action: {settings.action!r}; use flag, block or off"]
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
        signals: set[str] = set()
        for text, _ in request_texts(ctx.body, roles=("user", "tool", "function")):
            signals.update(score(text[:100_000]))
    except Exception as exc:
        raise fail_closed(NAME, exc) from None
    if len(signals) < max(1, _rt.settings.threshold):
        return
    names = ", ".join(sorted(signals))
    if action == "block":
        raise refusal(
            NAME, f"it looks like a prompt injection ({names})", "prompt_injection_detected"
        )
    ctx.tags["prompt_guard"] = names
    ctx.response_headers["x-plugway-prompt-guard"] = "flagged"
