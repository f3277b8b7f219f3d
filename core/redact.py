"""Redaction of credentials from any text that leaves the process: log lines (loguru and the
standard ``logging`` Sanic uses, tracebacks included), error bodies and CLI output.

Two layers:

* patterns: the values of ``Authorization``, ``x-api-key``, ``api-key`` and
  ``x-goog-api-key`` (as headers, in dict reprs and JSON), ``key=`` and ``api_key=`` query
  values, bearer tokens, and well-known key shapes (``sk-...``, ``pw-...``, ``AIza...``);
* exact secrets: every value registered with :func:`register_secret` (the gateway registers
  each provider's ``api_key`` and header values and ``PLUGWAY_MASTER_KEY``), whatever shape.

A redacted value reads ``[REDACTED]``: no prefix or suffix, which would leak part of a key.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, TextIO

MASK = "[REDACTED]"
_HEADER_NAMES = (
    r"authorization|proxy-authorization|x-api-key|api[-_]key|x-goog-api-key|master[-_]key"
)
_PATTERNS = (
    # header: value  /  'header': 'value'  /  "header":"value"
    re.compile(
        rf"""(?ix)(["']?(?:{_HEADER_NAMES})["']?\s*[:=]\s*["']?)
        (?:bearer\s+|basic\s+)?([^"'\s,}}\]&]+)"""
    ),
    re.compile(r"(?i)([?&](?:key|api_key|api-key|apikey|access_token|token)=)([^&\s\"'#]+)"),
    re.compile(r"(?i)(bearer\s+)([A-Za-z0-9._~+/=-]{8,})"),
    re.compile(r"()\b(?:sk|pw|mk|rk)-[A-Za-z0-9_-]{16,}"),
    re.compile(r"()\bAIza[0-9A-Za-z_-]{30,}"),
    re.compile(r"()\bsk-ant-[A-Za-z0-9_-]{16,}"),
)
_secrets: set[str] = set()
#: [the compiled pattern of every registered secret], a one-item list so it can be replaced
_secret_pattern: list[re.Pattern[str]] = []


def register_secret(value: str | None) -> None:
    """Redact ``value`` wherever it appears from now on (values under 8 characters are too
    short to match safely and are skipped)."""
    if not value or len(value) < 8 or value in _secrets:
        return
    _secrets.add(value)
    ordered = sorted(_secrets, key=len, reverse=True)
    _secret_pattern[:] = [re.compile("|".join(re.escape(s) for s in ordered))]


# For each of _PATTERNS, substrings one of which every match contains (in the lowered text
# for the case-insensitive ones): a pattern whose substrings are all absent cannot match and
# is skipped. Scanning a 500-byte request log line with all six patterns cost ~90 us, more
# than the rest of a request's logging; the substring checks cost ~1 us.
_NEEDS: tuple[tuple[bool, tuple[str, ...]], ...] = (
    (True, ("authorization", "api-key", "api_key", "master-key", "master_key")),
    (True, ("key=", "token=")),
    (True, ("bearer",)),
    (False, ("sk-", "pw-", "mk-", "rk-")),
    (False, ("AIza",)),
    (False, ("sk-ant-",)),
)
# The characters re's IGNORECASE matches to an ASCII letter of those substrings that
# str.lower() does not turn into it (checked over all of Unicode).
_FOLD = {0x130: "i", 0x131: "i", 0x17F: "s"}


def _folded(text: str) -> str:
    return (text if text.isascii() else text.translate(_FOLD)).lower()


def redact(text: str) -> str:
    """``text`` with every credential replaced by ``[REDACTED]``."""
    if _secret_pattern and any(secret in text for secret in _secrets):
        text = _secret_pattern[0].sub(MASK, text)
    lowered = _folded(text)
    for pattern, (folded, needs) in zip(_PATTERNS, _NEEDS, strict=True):
        haystack = lowered if folded else text
        if any(need in haystack for need in needs):
            text = pattern.sub(lambda m: m.group(1) + MASK, text)
            lowered = _folded(text)
    return text


def redact_value(value: Any) -> Any:
    """Redact every string inside a JSON-like value (dicts, lists), keys included."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(k)): redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


class RedactingSink:
    """A loguru sink that redacts each formatted message (traceback included) before
    writing it to ``stream``."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, message: Any) -> None:
        self.stream.write(redact(str(message)))
        self.stream.flush()


class RedactingFilter(logging.Filter):
    """A ``logging`` filter that redacts the message and any exception text of a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info:
            formatter = logging.Formatter()
            record.exc_text = redact(formatter.formatException(record.exc_info))
            record.exc_info = None
        return True


def install_logging_filter(
    names: tuple[str, ...] = ("", "sanic.root", "sanic.error", "sanic.access", "sanic.server"),
) -> None:
    """Put :class:`RedactingFilter` on the handlers of the standard loggers Sanic uses."""
    redacting = RedactingFilter()
    for name in names:
        log = logging.getLogger(name)
        log.addFilter(redacting)
        for handler in log.handlers:
            handler.addFilter(redacting)


Redactor = Callable[[str], str]
