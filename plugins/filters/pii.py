"""The ``pii`` filter: emails, phone numbers, card numbers (Luhn-checked), IBANs (mod-97
checked), national ids (US SSN, UK National Insurance numbers) and IP addresses, in prompts,
answers and streams. ``action`` is ``redact`` (replace each with ``[EMAIL]``, ``[CARD]``
...), ``block`` (refuse with 400 ``pii_detected``) or ``off``; a key overrides it with
``metadata.pii``. Streams are redacted as they pass, with a bounded carry-over for entities
split across chunks. Fails closed."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

import attrs
from plugway.context import RequestContext
from plugway.errors import GatewayError
from plugway.hooks import hookimpl
from plugway.plugins.filters.text import (
    StreamScanner,
    enabled_when_acting,
    fail_closed,
    filter_slots,
    first_match_spans,
    key_action,
    refusal,
    replace_spans,
    request_texts,
    response_texts,
    scan_chunk,
)
from plugway.provider import ProviderResponse
from plugway.tools import ToolCall, ToolResult

#: Reads text to filter it and keeps none.
PLUGWAY_RETAINS_CONTENT = False

NAME = "pii"
ENTITIES = ("email", "phone", "card", "iban", "national_id", "ip")


@attrs.define(kw_only=True)
class PiiSettings:
    """``[plugins.pii]``."""

    #: "redact", "block" or "off" (the default: the filter is installed but idle).
    action: str = "off"
    #: Stay active while ``action`` is off, so that keys can turn the filter on for
    #: themselves through ``metadata.pii``.
    per_key: bool = False
    entities: list[str] = attrs.field(factory=lambda: list(ENTITIES))
    #: Also filter answers (non-streamed and streamed).
    responses: bool = True


def luhn(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, digit in enumerate(reversed(digits)):
        doubled = digit * 2 - 9 if digit > 4 else digit * 2
        total += doubled if i % 2 else digit
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    digits = "".join(str(int(c, 36)) for c in moved)
    return int(digits) % 97 == 1


def ip_ok(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def ssn_ok(text: str) -> bool:
    area, group, serial = text.split("-")
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


_PATTERNS: dict[str, tuple[re.Pattern[str], Callable[[str], bool] | None]] = {
    "email": (re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,24}"), None),
    "card": (re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"), luhn),
    "iban": (re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"), iban_ok),
    "national_id": (
        re.compile(
            r"\b(?:\d{3}-\d{2}-\d{4}|[A-CEGHJ-PR-TW-Z]{2} ?\d{2} ?\d{2} ?\d{2}"
            r" ?[A-D])\b"
        ),
        lambda t: "-" not in t or ssn_ok(t),
    ),
    "phone": (
        re.compile(
            r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?)?\d{2,4}"
            r"(?:[ .-]\d{2,4}){2,4}(?![\w])|(?<![\w+])\+\d{9,15}(?!\w)"
        ),
        lambda t: 9 <= sum(c.isdigit() for c in t) <= 15,
    ),
    "ip": (
        re.compile(
            r"(?<![\w.:])(?:\d{1,3}(?:\.\d{1,3}){3}|"
            r"[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{0,4}){2,7})(?![\w.:])"
        ),
        ip_ok,
    ),
}
_LABELS = {
    "email": "EMAIL",
    "phone": "PHONE",
    "card": "CARD",
    "iban": "IBAN",
    "national_id": "NATIONAL_ID",
    "ip": "IP",
}
# longest entity the patterns can report, for the stream carry-over
HOLD = 64


def finder(entities: list[str]) -> Callable[[str], list[tuple[int, int, str]]]:
    # card before phone and national id: a card number also looks like a phone number
    order = ["email", "iban", "card", "national_id", "ip", "phone"]
    patterns = [(_LABELS[e], _PATTERNS[e][0], _PATTERNS[e][1]) for e in order if e in entities]

    def find(text: str) -> list[tuple[int, int, str]]:
        return [s for s in first_match_spans(patterns, text) if s[1] - s[0] <= HOLD]

    return find


_find = finder(list(ENTITIES))


@attrs.define
class _Runtime:
    """This worker's settings and detector, set at startup."""

    settings: PiiSettings = attrs.field(factory=PiiSettings)
    find: Callable[[str], list[tuple[int, int, str]]] = _find


_rt = _Runtime()


#: Idle (unregistered, costing nothing) unless an action is configured or keys may pick one.
plugway_enabled = enabled_when_acting(NAME)


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    register(NAME, PiiSettings)


@hookimpl
def check_config(config: Any) -> list[str] | None:
    settings: PiiSettings = config.plugin_settings[NAME]
    problems = []
    if settings.action not in ("redact", "block", "off"):
        problems.append(f"plugins.pii.action: {settings.action!r}; use redact, block or off")
    unknown = [e for e in settings.entities if e not in ENTITIES]
    if unknown:
        problems.append(f"plugins.pii.entities: unknown {unknown}; known: {list(ENTITIES)}")
    return problems or None


@hookimpl
def plugway_startup(config: Any) -> None:
    _rt.settings = config.plugin_settings[NAME]
    _rt.find = finder(_rt.settings.entities)


def _labels(spans: list[tuple[int, int, str]]) -> str:
    return ", ".join(sorted({label.lower() for _, _, label in spans}))


@hookimpl
def pre_route(ctx: RequestContext) -> None:
    action = key_action(ctx, NAME, _rt.settings.action)
    if action == "off":
        return
    try:
        for text, set_text in request_texts(ctx.body):
            spans = _rt.find(text)
            if not spans:
                continue
            if action == "block":
                raise refusal(NAME, f"it contains personal data ({_labels(spans)})", "pii_detected")
            set_text(replace_spans(text, spans))
            ctx.tags["pii"] = "redacted"
    except Exception as exc:
        raise fail_closed(NAME, exc) from None


@hookimpl
def post_response(ctx: RequestContext, response: ProviderResponse | None) -> None:
    action = key_action(ctx, NAME, _rt.settings.action)
    if response is None or action == "off" or not _rt.settings.responses:
        return
    try:
        body = response.body
        changed = False
        for text, set_text in response_texts(body):
            spans = _rt.find(text)
            if spans:
                if action == "block":
                    raise refusal(
                        NAME,
                        f"the answer contains personal data ({_labels(spans)})",
                        "pii_detected",
                    )
                set_text(replace_spans(text, spans))
                changed = True
        if changed:
            response.replace_body(body)
    except GatewayError:
        raise
    except Exception as exc:
        raise fail_closed(NAME, exc) from None


@hookimpl
def stream_chunk(ctx: RequestContext, chunk: dict[str, Any]) -> None:
    action = key_action(ctx, NAME, _rt.settings.action)
    if action == "off" or not _rt.settings.responses:
        return
    try:
        spans = scan_chunk(ctx, chunk, "pii.stream", lambda: StreamScanner(_rt.find, HOLD))
    except Exception as exc:
        raise fail_closed(NAME, exc) from None
    if spans and action == "block":
        raise refusal(NAME, f"the answer contains personal data ({_labels(spans)})", "pii_detected")


def _refuse_in(where: str) -> Callable[[list[tuple[int, int, str]]], GatewayError]:
    def refuse(spans: list[tuple[int, int, str]]) -> GatewayError:
        return refusal(NAME, f"{where} contains personal data ({_labels(spans)})", "pii_detected")

    return refuse


@hookimpl
def pre_tool_call(ctx: RequestContext, call: ToolCall) -> None:
    """Personal data in an MCP tool call's arguments: redacted or refused, as in prompts."""
    action = key_action(ctx, NAME, _rt.settings.action)
    if action == "off":
        return
    try:
        if filter_slots(call.texts(), _rt.find, action, _refuse_in("the tool call's arguments")):
            ctx.tags["pii"] = "redacted"
    except Exception as exc:
        raise fail_closed(NAME, exc) from None


@hookimpl(tryfirst=True)
def post_tool_call(ctx: RequestContext, result: ToolResult) -> None:
    """Personal data in an MCP tool's result, when ``responses`` is on (as for answers)."""
    action = key_action(ctx, NAME, _rt.settings.action)
    if action == "off" or not _rt.settings.responses:
        return
    try:
        if filter_slots(result.texts(), _rt.find, action, _refuse_in("the tool's result")):
            ctx.tags["pii"] = "redacted"
    except Exception as exc:
        raise fail_closed(NAME, exc) from None
