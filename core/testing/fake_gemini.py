"""A fake of Google's Gemini API (``generativelanguage.googleapis.com``) on loopback.

Speaks the REST wire format of ``googleapis/python-genai`` and ai.google.dev/api:

* ``POST /v1beta/models/{model}:generateContent`` -> ``GenerateContentResponse``
  (``candidates[].content.parts``, ``finishReason``, ``usageMetadata``, ``modelVersion``,
  ``responseId``);
* ``POST .../{model}:streamGenerateContent?alt=sse`` -> ``data: {GenerateContentResponse}``
  events separated by ``\\r\\n\\r\\n`` as Google sends them, no ``[DONE]``; text arrives in
  pieces, each ``functionCall`` whole, the last event carries ``finishReason`` and usage;
* ``:embedContent`` -> ``{"embedding": {"values"}}``, ``:batchEmbedContents`` ->
  ``{"embeddings": [{"values"}]}``; ``:countTokens`` -> ``{"totalTokens"}`` (words of the
  ``contents``);
* errors as ``{"error": {"code", "message", "status"}}`` (``RetryInfo`` detail on 429).

Like the real API it refuses what it does not know: a missing ``x-goog-api-key`` (403
``PERMISSION_DENIED``), unknown top-level or ``generationConfig`` fields, roles other than
``user``/``model``, and schema keys outside Gemini's OpenAPI subset (400 ``INVALID_ARGUMENT``),
so a translation that emits a wrong name fails the test that drives it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web
from plugway.testing.fake_upstream import Behaviour, CutStream, FakeUpstream, Reply

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

#: GenerateContentRequest fields (python-genai ``_GenerateContentParameters_to_mldev``).
REQUEST_FIELDS = frozenset(
    {
        "contents",
        "systemInstruction",
        "tools",
        "toolConfig",
        "generationConfig",
        "safetySettings",
        "cachedContent",
        "labels",
    }
)
#: GenerationConfig fields accepted by the Gemini API.
GENERATION_FIELDS = frozenset(
    {
        "stopSequences",
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "responseModalities",
        "candidateCount",
        "maxOutputTokens",
        "temperature",
        "topP",
        "topK",
        "seed",
        "presencePenalty",
        "frequencyPenalty",
        "responseLogprobs",
        "logprobs",
        "enableEnhancedCivicAnswers",
        "speechConfig",
        "thinkingConfig",
        "mediaResolution",
        "imageConfig",
    }
)
#: Part fields (one data field per part, plus the metadata ones).
PART_FIELDS = frozenset(
    {
        "text",
        "inlineData",
        "fileData",
        "functionCall",
        "functionResponse",
        "executableCode",
        "codeExecutionResult",
        "thought",
        "thoughtSignature",
        "videoMetadata",
    }
)
#: Schema fields (Gemini's OpenAPI 3.0 subset).
SCHEMA_FIELDS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "items",
        "minimum",
        "maximum",
    }
)


class InvalidArgument(Exception):
    pass


def _check_schema(schema: Any, path: str) -> None:
    if not isinstance(schema, dict):
        raise InvalidArgument(f"{path}: a schema must be an object")
    for key, value in schema.items():
        if key not in SCHEMA_FIELDS:
            raise InvalidArgument(
                f"Invalid JSON payload received. Unknown name \"{key}\" at '{path}': "
                "Cannot find field."
            )
        if key == "type" and not isinstance(value, str):
            raise InvalidArgument(f"Invalid value at '{path}.type': {value!r} is not a Type")
        if key == "properties":
            if not isinstance(value, dict):
                raise InvalidArgument(f"{path}.properties: must be an object")
            if str(schema.get("type", "object")).lower() == "object" and not value:
                raise InvalidArgument(f"{path}.properties: should be non-empty for OBJECT type")
            for name, sub in value.items():
                _check_schema(sub, f"{path}.properties[{name}]")
        elif key == "items":
            _check_schema(value, f"{path}.items")
        elif key == "anyOf":
            if not isinstance(value, list):
                raise InvalidArgument(f"{path}.anyOf: must be an array")
            for i, sub in enumerate(value):
                _check_schema(sub, f"{path}.anyOf[{i}]")


def check_request(body: Any) -> None:
    """Raise :class:`InvalidArgument` as the Gemini API would answer 400 for ``body``."""
    if not isinstance(body, dict):
        raise InvalidArgument("Invalid JSON payload received.")
    for key in body:
        if key not in REQUEST_FIELDS:
            raise InvalidArgument(
                f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.'
            )
    contents = body.get("contents")
    if not contents:
        raise InvalidArgument("* GenerateContentRequest.contents: contents is not specified")
    for i, content in enumerate(contents):
        if content.get("role") not in ("user", "model"):
            raise InvalidArgument(f"Please use a valid role: user, model. (contents[{i}].role)")
        for j, part in enumerate(content.get("parts") or []):
            unknown = set(part) - PART_FIELDS
            if unknown:
                raise InvalidArgument(
                    f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}" '
                    f"at 'contents[{i}].parts[{j}]': Cannot find field."
                )
    for key in body.get("generationConfig") or {}:
        if key not in GENERATION_FIELDS:
            raise InvalidArgument(
                f'Invalid JSON payload received. Unknown name "{key}" at '
                "'generation_config': Cannot find field."
            )
    schema = (body.get("generationConfig") or {}).get("responseSchema")
    if schema is not None:
        _check_schema(schema, "generation_config.response_schema")
    for tool in body.get("tools") or []:
        for k, decl in enumerate(tool.get("functionDeclarations") or []):
            if not decl.get("name"):
                raise InvalidArgument(f"function_declarations[{k}].name: is required")
            if "parameters" in decl:
                _check_schema(decl["parameters"], f"function_declarations[{k}].parameters")


def _last_user_text(body: dict[str, Any]) -> str:
    for content in reversed(body.get("contents") or []):
        if content.get("role") == "user":
            texts = [p["text"] for p in content.get("parts") or [] if "text" in p]
            if texts:
                return " ".join(texts)
    return ""


class FakeGemini(FakeUpstream):
    """Gemini's wire format. Answers ``echo: <last user text>`` (or ``Reply.text``), calls the
    first declared function with ``{"city": "Paris"}`` when ``toolConfig`` mode is ``ANY``,
    and reports ``thoughts_tokens`` thinking tokens in ``usageMetadata``.

    ``Status(200, body=...)`` answers any raw body, e.g. a ``promptFeedback.blockReason``."""

    model_version = "gemini-fake-001"
    thoughts_tokens = 5
    cached_tokens = 2

    def wants_stream(self, request: web.Request, body: Any) -> bool:
        return request.path.endswith(":streamGenerateContent")

    def error_body(self, status: int, message: str, code: str | None) -> Any:
        error: dict[str, Any] = {
            "code": status,
            "message": message,
            "status": code or _STATUS_NAMES.get(status, "UNKNOWN"),
        }
        return {"error": error}

    async def _respond(
        self, request: web.Request, body: Any, behaviour: Behaviour
    ) -> web.StreamResponse:
        if not request.headers.get("x-goog-api-key"):
            return self._invalid(
                403,
                "Method doesn't allow unregistered callers (callers "
                "without established identity). Please use API Key or other "
                "form of API consumer identity to call this API.",
            )
        if "key" in request.query:
            return self._invalid(400, "the key was sent in the URL")
        if self.wants_stream(request, body) and request.query.get("alt") != "sse":
            return self._invalid(400, "this fake only streams with alt=sse")
        method = request.path.rsplit(":", 1)[-1]
        if (
            method
            not in (
                "generateContent",
                "streamGenerateContent",
                "embedContent",
                "batchEmbedContents",
                "countTokens",
            )
            or "/models/" not in request.path
        ):
            return self._invalid(404, f"Method not found: {request.path}")
        if isinstance(behaviour, Reply | CutStream) and method in (
            "generateContent",
            "streamGenerateContent",
        ):
            try:
                check_request(body)
            except InvalidArgument as exc:
                return self._invalid(400, str(exc))
        return await super()._respond(request, body, behaviour)

    def _invalid(self, status: int, message: str) -> web.Response:
        return web.Response(
            body=orjson.dumps(self.error_body(status, message, None)),
            status=status,
            content_type="application/json",
        )

    # -- answers -------------------------------------------------------------------------------

    def _text(self, body: dict[str, Any], behaviour: Reply | CutStream) -> str:
        if isinstance(behaviour, Reply) and behaviour.text is not None:
            return behaviour.text
        return f"echo: {_last_user_text(body)}"

    def _cut(self, body: dict[str, Any], text: str) -> tuple[str, str]:
        """``text`` cut at ``generationConfig.maxOutputTokens`` (counted in words) and the
        finish reason: ``MAX_TOKENS`` when it was cut, else ``STOP``."""
        limit = (body.get("generationConfig") or {}).get("maxOutputTokens")
        words = text.split(" ")
        if isinstance(limit, int) and 0 < limit < len(words):
            return " ".join(words[:limit]), "MAX_TOKENS"
        return text, "STOP"

    def _forced_function(self, body: dict[str, Any]) -> str | None:
        config = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
        if config.get("mode") != "ANY":
            return None
        allowed = config.get("allowedFunctionNames")
        if allowed:
            return str(allowed[0])
        for tool in body.get("tools") or []:
            for decl in tool.get("functionDeclarations") or []:
                return str(decl["name"])
        return None

    def _usage(self, body: dict[str, Any], output: int) -> dict[str, Any]:
        prompt = (
            sum(
                len(str(p.get("text", "")).split())
                for c in body.get("contents") or []
                for p in c.get("parts") or []
            )
            or 1
        )
        return {
            "promptTokenCount": prompt,
            "candidatesTokenCount": output,
            "thoughtsTokenCount": self.thoughts_tokens,
            "cachedContentTokenCount": self.cached_tokens,
            "totalTokenCount": prompt + output + self.thoughts_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
        }

    def answer(self, request: web.Request, body: Any, behaviour: Reply | CutStream) -> Any:
        method = request.path.rsplit(":", 1)[-1]
        if method == "embedContent":
            return {"embedding": {"values": self._vector(body)}}
        if method == "batchEmbedContents":
            return {"embeddings": [{"values": self._vector(r)} for r in body["requests"]]}
        if method == "countTokens":
            counted = body.get("generateContentRequest") or body
            return {"totalTokens": self._usage(counted, 0)["promptTokenCount"]}
        function = self._forced_function(body)
        finish = "STOP"
        if function:
            parts: list[dict[str, Any]] = [
                {
                    "functionCall": {"name": function, "args": {"city": "Paris"}},
                    "thoughtSignature": "c2lnbmF0dXJl",
                }
            ]
            output = 4
        else:
            text, finish = self._cut(body, self._text(body, behaviour))
            parts, output = [{"text": text}], len(text.split())
        candidates = [
            {"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": i}
            for i in range((body.get("generationConfig") or {}).get("candidateCount", 1))
        ]
        return {
            "candidates": candidates,
            "usageMetadata": self._usage(body, output),
            "modelVersion": self.model_version,
            "responseId": uuid.uuid4().hex[:20],
        }

    def _vector(self, request_body: dict[str, Any]) -> list[float]:
        text = " ".join(p.get("text", "") for p in request_body["content"]["parts"])
        # Gemini's largest is 3072; beyond it the fake does not build a vector of that size.
        size = min(request_body.get("outputDimensionality") or 3, 3072)
        return [float(len(text)), 0.25, -1.5, *([0.5] * (size - 3))][:size]

    def stream_events(
        self, request: web.Request, body: Any, behaviour: Reply | CutStream
    ) -> Iterator[bytes]:
        response_id = uuid.uuid4().hex[:20]

        def event(parts: list[dict[str, Any]], output: int, finish: str | None = None) -> bytes:
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
            if finish:
                candidate["finishReason"] = finish
            data = {
                "candidates": [candidate],
                "usageMetadata": self._usage(body, output),
                "modelVersion": self.model_version,
                "responseId": response_id,
            }
            return b"data: " + orjson.dumps(data) + b"\r\n\r\n"

        function = self._forced_function(body)
        if function:
            yield event([{"text": "Checking."}], 1)
            yield event(
                [{"functionCall": {"name": function, "args": {"city": "Paris", "days": [1, 2]}}}],
                9,
                "STOP",
            )
            return
        text, finish = self._cut(body, self._text(body, behaviour))
        words = text.split(" ")
        for i, word in enumerate(words):
            last = i == len(words) - 1
            piece = word if i == 0 else " " + word
            yield event([{"text": piece}], i + 1, finish if last else None)
