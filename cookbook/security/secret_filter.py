"""A security filter: refuse requests that carry credentials (cloud keys, API keys, private
keys) before they leave for a provider, with a 400 the client can act on. Fails closed, like
every ``pre_route`` impl. Add ``[plugins] disabled = ["secret_filter"]`` to turn it off."""

from __future__ import annotations

import re
from typing import Any

from plugway import RequestContext, hookimpl
from plugway.errors import InvalidRequest

#: This plugin writes no prompt or completion text anywhere: it may run under [privacy] zdr.
PLUGWAY_RETAINS_CONTENT = False

PATTERNS = {
    "an AWS access key": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "an API key": re.compile(r"\b(?:sk|sk-proj|sk-ant)-[A-Za-z0-9_-]{20,}"),
    "a GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "a private key": re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH )?PRIVATE KEY-----"),
}


def texts(body: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            out += [p.get("text", "") for p in content if isinstance(p, dict)]
    return out


@hookimpl
def pre_route(ctx: RequestContext) -> None:
    for text in texts(ctx.body):
        for what, pattern in PATTERNS.items():
            if pattern.search(text):
                # Name the kind of secret, never echo it back.
                raise InvalidRequest(
                    f"the request contains what looks like {what}; remove it and retry",
                    param="messages",
                    code="secret_detected",
                )
