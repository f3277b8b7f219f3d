"""Helpers shared by provider translations: data URLs, JSON argument parsing."""

from __future__ import annotations

import re
from typing import Any

import orjson

_DATA_URL = re.compile(
    r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[^,;]*)*?);base64,", re.IGNORECASE
)


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``(media_type, base64_data)`` of a ``data:<type>;base64,<data>`` URL, or ``None`` when
    ``url`` is not a base64 data URL. A missing media type reads as ``application/octet-stream``.
    """
    match = _DATA_URL.match(url)
    if match is None:
        return None
    return (match.group("type") or "application/octet-stream").lower(), url[match.end() :]


def loads_object(text: Any) -> dict[str, Any] | None:
    """A JSON object from ``text`` (tool-call arguments), ``{}`` for empty text, ``None`` when
    the text is not a string, not JSON or not an object."""
    if text is None:
        return {}
    if not isinstance(text, str):
        return None
    if not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
