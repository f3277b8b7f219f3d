"""Images on the Gemini API: Imagen (``models/{model}:predict`` with ``instances`` and
``parameters``, answered with ``predictions`` of ``bytesBase64Encoded``) and the Gemini image
models (``:generateContent`` with ``responseModalities`` ``IMAGE``, answered with
``inlineData`` parts). Pure: no I/O here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plugway.formats.gemini import model_path

#: OpenAI sizes as Imagen's aspect ratios.
ASPECTS = {"1024x1024": "1:1", "1536x1024": "3:2", "1024x1536": "2:3", "1792x1024": "16:9"}


def is_imagen(model: str) -> bool:
    """Imagen models take ``:predict``; every other image model ``:generateContent``."""
    return model_path(model).removeprefix("models/").startswith("imagen")


def to_imagen_request(prompt: str, n: int, size: Any) -> dict[str, Any]:
    parameters: dict[str, Any] = {"sampleCount": n}
    if isinstance(size, str) and size in ASPECTS:
        parameters["aspectRatio"] = ASPECTS[size]
    return {"instances": [{"prompt": prompt}], "parameters": parameters}


def from_imagen(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(base64, mime type)`` of each image Imagen returned."""
    out = []
    for prediction in data.get("predictions") or ():
        if isinstance(prediction, Mapping) and isinstance(
            prediction.get("bytesBase64Encoded"), str
        ):
            out.append(
                (prediction["bytesBase64Encoded"], str(prediction.get("mimeType") or "image/png"))
            )
    return out


def to_image_content_request(prompt: str) -> dict[str, Any]:
    return {
        "contents": [{"role": "user", "parts": [{"text": prompt}]}],
        "generationConfig": {"responseModalities": ["IMAGE"]},
    }


def from_image_content(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The inline images of a ``generateContent`` answer (text parts are left out)."""
    out = []
    for candidate in data.get("candidates") or ():
        content = candidate.get("content") if isinstance(candidate, Mapping) else None
        for part in (content or {}).get("parts") or ():
            inline = part.get("inlineData") if isinstance(part, Mapping) else None
            if isinstance(inline, Mapping) and isinstance(inline.get("data"), str):
                out.append((inline["data"], str(inline.get("mimeType") or "image/png")))
    return out
