"""OpenAI's embeddings response shape, shared by the providers that build one themselves
(``fake``, ``gemini``). ``encoding_format = "base64"`` (what the ``openai`` SDK asks for by
default) is the vector as little-endian float32 bytes in base64, as OpenAI sends it."""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from typing import Any


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
