"""The redaction fast path (skip a pattern whose required substrings are absent) redacts
exactly what the patterns alone would, case tricks included."""

from __future__ import annotations

import re

import pytest
from plugway import redact as redact_module
from plugway.redact import MASK, redact


def slow(text: str) -> str:
    for pattern in redact_module._PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer abcdefghijklmnop",
        "AUTHORIZATION: basic Zm9vOmJhcg==",
        "authorİzation: token-value-123",  # dotted capital I: IGNORECASE matches it to i
        "maſter_key=supersecretvalue",  # noqa: RUF001 - long s: IGNORECASE matches it to s
        '{"x-api-key": "abc123def456"}',
        "GET /v1/models?KEY=abc&x=1",
        "see sk-proj-abcdefghijklmnopqrstuvwxyz and AIza" + "b" * 35,
        "sk-ant-api03-abcdefghijklmnopqrst",
        '{"event":"request","request_id":"req_1","model":"gpt-4o","status":200}',
    ],
)
def test_fast_path_redacts_what_the_patterns_redact(text: str) -> None:
    assert redact(text) == slow(text)


def test_every_case_insensitive_pattern_is_covered_by_its_substrings() -> None:
    for pattern, (folded, _needs) in zip(
        redact_module._PATTERNS, redact_module._NEEDS, strict=True
    ):
        assert bool(pattern.flags & re.IGNORECASE) == folded
