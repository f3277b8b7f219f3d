"""Every built-in provider passes the provider conformance suite (plugway.testing.conformance)."""

from __future__ import annotations

from plugway.errors import ContextWindowExceeded, UpstreamUnavailable
from plugway.testing import FakeAnthropic, FakeGemini, FakeOpenAI, Status
from plugway.testing.conformance import (
    COMMON_ERROR_CASES,
    ErrorCase,
    ProviderConformance,
    UpstreamConformance,
)


class TestOpenAIConformance(UpstreamConformance):
    provider_type = "openai"
    fake_class = FakeOpenAI
    base_path = "/v1"
    tool_arguments = {"city": "Paris"}
    error_cases = [
        *COMMON_ERROR_CASES,
        ErrorCase(
            "context-window",
            Status(400, "too long for this model", code="context_length_exceeded"),
            ContextWindowExceeded,
            retryable=False,
            status=400,
            message_contains="too long",
        ),
    ]


class TestFakeConformance(ProviderConformance):
    provider_type = "fake"
    echoes_prompt = True
    tool_arguments = {}


class TestGeminiConformance(UpstreamConformance):
    provider_type = "gemini"
    fake_class = FakeGemini
    model = "gemini-2.5-flash"
    tool_arguments = {"city": "Paris", "days": [1, 2]}


class TestAnthropicConformance(UpstreamConformance):
    provider_type = "anthropic"
    fake_class = FakeAnthropic
    model = "claude-sonnet-4-5"
    tool_arguments = {"city": "Paris"}
    error_cases = [
        *COMMON_ERROR_CASES,
        ErrorCase("overloaded", Status(529, "Overloaded"), UpstreamUnavailable, True, 502),
        ErrorCase(
            "context-window",
            Status(400, "prompt is too long: 250000 tokens > 200000 maximum"),
            ContextWindowExceeded,
            retryable=False,
            status=400,
            message_contains="prompt is too long",
        ),
    ]
