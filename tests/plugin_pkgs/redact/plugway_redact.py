"""A test plugin that rewrites the canonical request in pre_route (a stand-in for a PII
redaction filter): every "secret" in a user message's text becomes "[redacted]"."""

from __future__ import annotations

from plugway import hookimpl


@hookimpl
def pre_route(ctx):
    for message in ctx.body.get("messages", []):
        content = message.get("content")
        if message.get("role") == "user" and isinstance(content, str):
            message["content"] = content.replace("secret", "[redacted]")
