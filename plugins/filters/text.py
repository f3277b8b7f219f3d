"""What the filters share: walking the text of requests and responses, per-key actions,
failing closed, and a streaming scanner with a bounded carry-over."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs
from plugway.context import RequestContext
from plugway.errors import GatewayError, InvalidRequest, PluginFailed

#: A finder returns (start, end, label) spans in a text, non-overlapping, in order.
Finder = Callable[[str], list[tuple[int, int, str]]]


def request_texts(
    body: dict[str, Any], roles: tuple[str, ...] | None = None
) -> Iterator[tuple[str, Callable[[str], None]]]:
    """Each text of a chat, embeddings or moderations request with a setter that rewrites it
    in place."""
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        if roles is not None and message.get("role") not in roles:
            continue
        content = message.get("content")
        if isinstance(content, str):
            yield content, _setter(message, "content")
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield part["text"], _setter(part, "text")
    inp = body.get("input")
    if isinstance(inp, str):
        yield inp, _setter(body, "input")
    elif isinstance(inp, list):
        for i, item in enumerate(inp):
            if isinstance(item, str):
                yield item, _index_setter(inp, i)
            elif isinstance(item, dict) and isinstance(item.get("text"), str):
                yield item["text"], _setter(item, "text")  # a moderation's text part


def response_texts(body: dict[str, Any]) -> Iterator[tuple[str, Callable[[str], None]]]:
    for choice in body.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            yield message["content"], _setter(message, "content")


def _setter(container: dict[str, Any], key: str) -> Callable[[str], None]:
    def set_(value: str) -> None:
        container[key] = value

    return set_


def _index_setter(container: list[Any], index: int) -> Callable[[str], None]:
    def set_(value: str) -> None:
        container[index] = value

    return set_


def replace_spans(text: str, spans: list[tuple[int, int, str]]) -> str:
    out, last = [], 0
    for start, end, label in spans:
        out.append(text[last:start])
        out.append(f"[{label}]")
        last = end
    out.append(text[last:])
    return "".join(out)


def first_match_spans(
    patterns: list[tuple[str, re.Pattern[str], Callable[[str], bool] | None]], text: str
) -> list[tuple[int, int, str]]:
    """Spans of every pattern (label, regex, optional validator), earliest first, without
    overlaps (the earlier or longer span wins)."""
    found: list[tuple[int, int, str]] = []
    for label, pattern, valid in patterns:
        for m in pattern.finditer(text):
            if valid is None or valid(m.group(0)):
                found.append((m.start(), m.end(), label))
    found.sort(key=lambda s: (s[0], -(s[1] - s[0])))
    out: list[tuple[int, int, str]] = []
    for span in found:
        if not out or span[0] >= out[-1][1]:
            out.append(span)
    return out


def key_action(ctx: RequestContext, plugin: str, default: str) -> str:
    """The action for this request: the key's ``metadata[plugin]`` when it names one."""
    key = ctx.state.get("keys")
    metadata = getattr(key, "metadata", None) or {}
    action = metadata.get(plugin)
    return action if isinstance(action, str) else default


def fail_closed(plugin: str, exc: Exception) -> GatewayError:
    """A filter's own failure, answered as a refusal (never a pass)."""
    if isinstance(exc, GatewayError):
        return exc
    return PluginFailed(
        f"the {plugin} filter failed ({type(exc).__name__}); the request was "
        "refused rather than passed unchecked",
        code="filter_failed",
    )


def refusal(plugin: str, what: str, code: str) -> InvalidRequest:
    return InvalidRequest(f"the request was refused by the {plugin} filter: {what}", code=code)


@attrs.define
class StreamScanner:
    """Redacts a streamed text as it passes, holding back at most ``hold`` characters (plus
    one entity that straddles the cut), so an entity split across chunks is still caught
    while the response is never held whole.

    Every entity a finder reports must be at most ``hold`` characters long: then an entity
    is complete by the time its start leaves the held tail."""

    finder: Finder
    hold: int = 64
    carry: str = ""

    def feed(self, text: str) -> tuple[str, list[tuple[int, int, str]]]:
        """Add ``text``; return what may be sent now and the spans found in it."""
        buf = self.carry + text
        spans = self.finder(buf)
        cut = max(0, len(buf) - self.hold)
        for start, end, _ in spans:
            if start < cut < end:
                cut = start
                break
        emitted = [s for s in spans if s[1] <= cut]
        self.carry = buf[cut:]
        return replace_spans(buf[:cut], emitted), emitted

    def flush(self) -> tuple[str, list[tuple[int, int, str]]]:
        buf, self.carry = self.carry, ""
        spans = self.finder(buf)
        return replace_spans(buf, spans), spans


def scan_chunk(
    ctx: RequestContext, chunk: dict[str, Any], state_key: str, make: Callable[[], StreamScanner]
) -> list[tuple[int, int, str]]:
    """Run each choice's delta text of ``chunk`` through its scanner (kept in ``ctx.state``),
    flushing on ``finish_reason``. Returns the spans found."""
    scanners: dict[int, StreamScanner] = ctx.state.setdefault(state_key, {})
    found: list[tuple[int, int, str]] = []
    for choice in chunk.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        index = choice.get("index", 0)
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            delta = choice["delta"] = {}
        scanner = scanners.get(index)
        if scanner is None:
            scanner = scanners[index] = make()
        content = delta.get("content")
        out, spans = scanner.feed(content) if isinstance(content, str) else ("", [])
        found += spans
        if choice.get("finish_reason") is not None:
            rest, spans = scanner.flush()
            out += rest
            found += spans
        if isinstance(content, str) or out:
            delta["content"] = out
    return found


def enabled_when_acting(name: str) -> Callable[[Any], bool]:
    """A filter's ``plugway_enabled``: on when ``[plugins.NAME] action`` is not "off" or keys
    may choose their own action (``per_key``); otherwise the filter is unregistered."""

    def plugway_enabled(config: Any) -> bool:
        settings = config.plugin_settings[name]
        return bool(settings.action != "off" or settings.per_key)

    return plugway_enabled


def filter_slots(
    slots: Iterable[tuple[str, Callable[[str], None]]],
    find: Finder,
    action: str,
    refuse: Callable[[list[tuple[int, int, str]]], GatewayError],
) -> bool:
    """Redact (``action == "redact"``) or refuse (``"block"``: raise ``refuse(spans)``) what
    ``find`` finds in each text of ``slots`` (see :meth:`plugway.tools.ToolCall.texts`).
    Returns True when something was redacted."""
    changed = False
    for text, set_text in list(slots):
        spans = find(text)
        if not spans:
            continue
        if action == "block":
            raise refuse(spans)
        set_text(replace_spans(text, spans))
        changed = True
    return changed
