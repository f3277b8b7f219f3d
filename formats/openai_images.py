"""OpenAI's image generation API (``POST /v1/images/generations``): checking a request, the
images answer, and the :class:`ImageGeneration` protocol a provider implements to serve it.
Pure: no I/O here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from plugway.context import RequestContext, Target
from plugway.errors import InvalidRequest
from plugway.provider import ProviderResponse

MAX_IMAGES = 10
FORMATS = ("url", "b64_json")


@runtime_checkable
class ImageGeneration(Protocol):
    """A provider that generates images answers OpenAI's images object (``created``,
    ``data`` of ``{"b64_json"}`` or ``{"url"}``) for ``body`` (an OpenAI images request with
    ``model`` to be replaced by ``target.model``)."""

    async def images(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse: ...


def check(body: Mapping[str, Any]) -> int:
    """Check a generation request; return how many images it asks for. A client's mistake
    raises :class:`InvalidRequest` naming the field."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequest("prompt is required and must be a non-empty string", param="prompt")
    n = body.get("n", 1)
    if n is None:
        n = 1
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_IMAGES:
        raise InvalidRequest(f"n must be an integer from 1 to {MAX_IMAGES}", param="n")
    response_format = body.get("response_format")
    if response_format is not None and response_format not in FORMATS:
        raise InvalidRequest("response_format must be url or b64_json", param="response_format")
    return n


def images_body(
    images: list[tuple[str, str]], created: int, response_format: str | None
) -> dict[str, Any]:
    """OpenAI's images answer for ``(base64 data, mime type)`` pairs; ``response_format``
    ``url`` gives each as a ``data:`` URL (the provider returned no hosted file)."""
    if response_format == "url":
        data = [{"url": f"data:{mime};base64,{b64}"} for b64, mime in images]
    else:
        data = [{"b64_json": b64} for b64, _ in images]
    return {"created": created, "data": data}


def image_count(body: Mapping[str, Any]) -> int:
    data = body.get("data")
    return len(data) if isinstance(data, list) else 0
