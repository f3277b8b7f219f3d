"""OpenAI's audio API: ``POST /v1/audio/speech`` (text to speech, answered with audio bytes)
and ``POST /v1/audio/transcriptions`` (a multipart upload, answered with JSON or text), and
the protocols a provider implements to serve them. Pure: no I/O here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import attrs
from plugway.context import RequestContext, Target
from plugway.errors import InvalidRequest
from plugway.formats.video_jobs import VideoBytes

MAX_SPEECH_CHARS = 4096


@attrs.frozen
class Upload:
    """An uploaded file: its name, bytes and content type."""

    name: str
    data: bytes
    content_type: str


@attrs.frozen
class AudioAnswer:
    """A transcription's answer as the upstream gave it (JSON, text, SRT or VTT)."""

    content: bytes
    content_type: str


@runtime_checkable
class AudioSpeech(Protocol):
    async def speech(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> VideoBytes:
        """Open the audio of ``body`` (``model`` replaced by ``target.model``), streamed."""


@runtime_checkable
class AudioTranscription(Protocol):
    async def transcription(
        self, ctx: RequestContext, target: Target, form: Mapping[str, str], file: Upload
    ) -> AudioAnswer:
        """Transcribe ``file`` with the form's fields (``model`` replaced)."""


def check_speech(body: Mapping[str, Any]) -> str:
    """Check a speech request; return its input text."""
    text = body.get("input")
    if not isinstance(text, str) or not text:
        raise InvalidRequest("input is required and must be a non-empty string", param="input")
    if len(text) > MAX_SPEECH_CHARS:
        raise InvalidRequest(f"input must be at most {MAX_SPEECH_CHARS} characters", param="input")
    voice = body.get("voice")
    if not isinstance(voice, str | dict) or not voice:
        raise InvalidRequest('voice is required (a voice name or {"id": ...})', param="voice")
    return text
