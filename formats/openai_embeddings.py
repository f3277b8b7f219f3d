"""OpenAI's embeddings response shape, shared by the providers that build one themselves
(``fake``, ``gemini``). ``encoding_format = "base64"`` (what the ``openai`` SDK asks for by
default) is the vector as little-endian float32 bytes in base64, as OpenAI sends it.
:func:`validate_embeddings_request` checks a request the way OpenAI does."""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from plugway.errors import InvalidRequest


def encode_embedding(vector: Sequence[float], encoding_format: Any) -> list[float] | str:
    """``vector`` as floats, or as base64 of little-endian float32 when asked for base64."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return [float(x) for x in vector]


def embeddings_body(
    vectors: Sequence[Sequence[float]],
    *,
    model: str,
    encoding_format: Any = None,
    prompt_tokens: int = 0,
) -> dict[str, Any]:
    """The whole ``{"object": "list", "data": [...], "model", "usage"}`` answer."""
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode_embedding(v, encoding_format)}
            for i, v in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def validate_embeddings_request(body: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidRequest` (param = the field path) when a field the gateway reads
    or translates has not the type OpenAI's schema gives it: ``input`` a string, an array of
    strings, an array of token ids or an array of such arrays; ``dimensions`` an integer of
    at least 1; ``encoding_format`` ``float`` or ``base64``; ``user`` a string."""
    inputs = body.get("input")
    if inputs is None or inputs in ("", []):
        raise InvalidRequest("input is required: a string or an array of them", param="input")
    if not isinstance(inputs, str):
        if not isinstance(inputs, list):
            raise InvalidRequest(
                "input must be a string, an array of strings or an array of token ids",
                param="input",
            )
        for i, item in enumerate(inputs):
            if isinstance(item, str) or _is_int(item):
                continue
            if isinstance(item, list) and item and all(_is_int(t) for t in item):
                continue
            raise InvalidRequest(
                f"input[{i}] must be a string, a token id or a non-empty array of token ids",
                param=f"input[{i}]",
            )
    dimensions = body.get("dimensions")
    if dimensions is not None and (not _is_int(dimensions) or dimensions < 1):
        raise InvalidRequest("dimensions must be an integer of at least 1", param="dimensions")
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ("float", "base64"):
        raise InvalidRequest("encoding_format must be 'float' or 'base64'", param="encoding_format")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise InvalidRequest("user must be a string", param="user")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
