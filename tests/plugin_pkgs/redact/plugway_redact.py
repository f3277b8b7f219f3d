"""A test plugin that rewrites the canonical request in pre_route (a stand-in for a PII
redaction filter): every "secret" in a user message's text becomes "[redacted]"; and filters
non-streamed answers in post_response."""

from __future__ import annotations

from plugway import hookimpl
from plugway.errors import PermissionDenied


@hookimpl
def pre_route(ctx):
    for message in ctx.body.get("messages", []):
        content = message.get("content")
        if message.get("role") == "user" and isinstance(content, str):
            message["content"] = content.replace("secret", "[redacted]")


@hookimpl(tryfirst=True)
def post_response(ctx, response):
    """A response filter: answers saying "classified" are rewritten, "forbidden" refused."""
    if response is None:
        return
    message = response.body["choices"][0]["message"]
    text = message.get("content") or ""
    if "forbidden" in text:
        raise PermissionDenied("the redact filter refused the answer", code="answer_refused")
    if "classified" in text:
        choice = {**response.body["choices"][0], "message": {**message, "content": "[removed]"}}
        response.replace_body({**response.body, "choices": [choice]})
