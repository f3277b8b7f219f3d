"""Test kit for plugway and its plugins: fake upstreams that speak providers' wire formats
and fail on demand, and the real gateway run in a child process."""

from plugway.testing.fake_anthropic import ErrorEvent, FakeAnthropic
from plugway.testing.fake_gemini import FakeGemini
from plugway.testing.fake_media import FailJob, FakeMedia, SlowJob
from plugway.testing.fake_upstream import (
    Behaviour,
    CutStream,
    FakeOpenAI,
    FakeUpstream,
    Hang,
    Recorded,
    Reply,
    Reset,
    ResponseFailed,
    Status,
)
from plugway.testing.gateway_process import GatewayProcess, free_port, run_plugway

__all__ = [
    "Behaviour",
    "CutStream",
    "ErrorEvent",
    "FailJob",
    "FakeAnthropic",
    "FakeGemini",
    "FakeMedia",
    "FakeOpenAI",
    "FakeUpstream",
    "GatewayProcess",
    "Hang",
    "Recorded",
    "Reply",
    "Reset",
    "ResponseFailed",
    "SlowJob",
    "Status",
    "free_port",
    "run_plugway",
]
