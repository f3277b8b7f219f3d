"""OpenAI's moderations API (``POST /v1/moderations``): the request check every door makes
before routing, and the answer shape for providers that classify on their own (the ``fake``
provider, test upstreams). Targets that serve moderations natively get the body as it is."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from plugway.errors import InvalidRequest

#: The model OpenAI uses when a request names none; the gateway routes it like any name.
DEFAULT_MODEL = "omni-moderation-latest"

#: Each category and the input kinds it applies to, as OpenAI's omni-moderation models answer.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "harassment": ("text",),
    "harassment/threatening": ("text",),
    "hate": ("text",),
    "hate/threatening": ("text",),
    "illicit": ("text",),
    "illicit/violent": ("text",),
    "self-harm": ("text", "image"),
    "self-harm/instructions": ("text", "image"),
    "self-harm/intent": ("text", "image"),
    "sexual": ("text", "image"),
    "sexual/minors": ("text",),
    "violence": ("text", "image"),
    "violence/graphic": ("text", "image"),
}


def check_request(body: Mapping[str, Any]) -> None:
    """Refuse a body OpenAI would refuse: ``input`` must be a non-empty string, a non-empty
    list of strings, or a non-empty list of ``text`` / ``image_url`` parts."""
    value = body.get("input")
    if isinstance(value, str):
        if not value:
            raise InvalidRequest("input must not be empty", param="input")
        return
    if not isinstance(value, list) or not value:
        raise InvalidRequest(
            "input must be a string, an array of strings or an array of text and image_url parts",
            param="input",
        )
    for i, item in enumerate(value):
        if isinstance(item, str):
            continue
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where} must be a string or an object", param=where)
        kind = item.get("type")
        if kind == "text":
            if not isinstance(item.get("text"), str):
                raise InvalidRequest(f"{where}.text must be a string", param=f"{where}.text")
        elif kind == "image_url":
            image = item.get("image_url")
            if not isinstance(image, dict) or not isinstance(image.get("url"), str):
                raise InvalidRequest(
                    f"{where}.image_url.url must be a string", param=f"{where}.image_url.url"
                )
        else:
            raise InvalidRequest(
                f"{where}.type must be 'text' or 'image_url', not {kind!r}", param=f"{where}.type"
            )


def inputs(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The request's inputs as ``(kind, text or URL)``, one result each; a list of parts is one
    input (OpenAI answers one result for it), strings are one input each."""
    value = body.get("input")
    if isinstance(value, str):
        return [("text", value)]
    items = value if isinstance(value, list) else []
    if any(isinstance(item, dict) for item in items):
        texts = [str(item.get("text", "")) for item in items if isinstance(item, dict)]
        has_image = any(isinstance(i, dict) and i.get("type") == "image_url" for i in items)
        return [("image" if has_image else "text", " ".join(texts))]
    return [("text", str(item)) for item in items]


def result(flags: Iterable[str], kind: str = "text") -> dict[str, Any]:
    """One moderation result flagging ``flags`` (category names), every category present."""
    flagged = set(flags)
    return {
        "flagged": bool(flagged),
        "categories": {name: name in flagged for name in CATEGORIES},
        "category_scores": {name: 0.99 if name in flagged else 0.001 for name in CATEGORIES},
        "category_applied_input_types": {
            name: [kind] if kind in kinds else [] for name, kinds in CATEGORIES.items()
        },
    }


def moderation_body(response_id: str, model: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    """The whole answer: ``{"id", "model", "results"}``."""
    return {"id": response_id, "model": model, "results": results}
