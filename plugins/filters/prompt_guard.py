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
from loguru import logger
from plugway.context import RequestContext
from plugway.hooks import hookimpl
from plugway.plugins.filters.text import (
    enabled_when_acting,
    fail_closed,
    key_action,
    refusal,
    request_texts,
)
from plugway.tools import ToolResult

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
    #: What to do with an upstream MCP tool whose description looks like an injection (tool
    #: poisoning): "hide" it from every client (and refuse calls to it), "flag" it (logged),
    #: or "off". Scanned whenever a server's tool list is fetched.
    tool_descriptions: str = "off"


@attrs.define
class _Runtime:
    settings: PromptGuardSettings = attrs.field(factory=PromptGuardSettings)


_rt = _Runtime()


def score(text: str) -> list[str]:
    """The signals found in ``text`` (normalised: NFKC, lower case, zero-widths removed)."""
    norm = unicodedata.normalize("NFKC", text).lower()
    norm = re.sub(r"[\u200b-\u200f\u2060\ufeff]", "", norm)
    return [name for name, pattern in SIGNALS.items() if pattern.search(norm)]


_acting = enabled_when_acting(NAME)


def plugway_enabled(config: Any) -> bool:
    """Idle (unregistered, costing nothing) unless an action is configured, keys may pick
    one, or MCP tool descriptions are scanned."""
    return _acting(config) or config.plugin_settings[NAME].tool_descriptions != "off"


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    register(NAME, PromptGuardSettings)


@hookimpl
def check_config(config: Any) -> list[str] | None:
    settings = config.plugin_settings[NAME]
    problems = []
    if settings.action not in ("flag", "block", "off"):
        problems.append(f"plugins.prompt_guard.action: {settings.action!r}; use flag, block or off")
    if settings.tool_descriptions not in ("hide", "flag", "off"):
        problems.append(
            f"plugins.prompt_guard.tool_descriptions: {settings.tool_descriptions!r}; "
            "use hide, flag or off"
        )
    return problems or None


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


def _signals(texts: Any) -> set[str]:
    found: set[str] = set()
    for text, _ in texts:
        found.update(score(text[:100_000]))
    return found


@hookimpl
def tools_listed(server: str, tools: list[dict[str, Any]]) -> None:
    """Tool poisoning: an upstream tool whose description (or title) reads like an
    injection is hidden from every client or flagged, as ``tool_descriptions`` says."""
    mode = _rt.settings.tool_descriptions
    if mode == "off":
        return
    kept = []
    for tool in tools:
        texts = [(tool.get(f), None) for f in ("description", "title")]
        signals = _signals((t, s) for t, s in texts if isinstance(t, str))
        if len(signals) < max(1, _rt.settings.threshold):
            kept.append(tool)
            continue
        names = ", ".join(sorted(signals))
        logger.warning(
            "prompt_guard: MCP tool {}/{} has a suspicious description ({}){}",
            server,
            tool.get("name"),
            names,
            "; hidden" if mode == "hide" else "",
        )
        if mode == "flag":
            kept.append(tool)
    tools[:] = kept


@hookimpl(tryfirst=True)
def post_tool_call(ctx: RequestContext, result: ToolResult) -> None:
    """An injected instruction in an MCP tool's result (a web page, an issue body): refused
    or flagged before the model reads it, as for tool messages in prompts."""
    action = key_action(ctx, NAME, _rt.settings.action)
    if action == "off":
        return
    try:
        signals = _signals(result.texts())
    except Exception as exc:
        raise fail_closed(NAME, exc) from None
    if len(signals) < max(1, _rt.settings.threshold):
        return
    names = ", ".join(sorted(signals))
    if action == "block":
        raise refusal(
            NAME,
            f"the tool's result looks like a prompt injection ({names})",
            "prompt_injection_detected",
        )
    ctx.tags["prompt_guard"] = names
