"""The objects the tool-call hooks see (``pre_tool_call``, ``post_tool_call``, ``tools_listed``):
one MCP tool call and its result, in MCP's own JSON shapes, free of any transport.

A result is MCP's ``CallToolResult``: ``content`` is a list of content blocks (``{"type":
"text", "text": ...}``, images, resources ...), ``structured`` its ``structuredContent`` and
``is_error`` its ``isError``. Filters walk :meth:`ToolCall.texts` and :meth:`ToolResult.texts`,
which yield every string with a setter that rewrites it in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs

#: A text found in a call or a result, and how to replace it in place.
TextSlot = tuple[str, Callable[[str], None]]


@attrs.define(kw_only=True)
class ToolCall:
    """One call of tool ``tool`` on the configured upstream server ``server``."""

    server: str
    tool: str
    arguments: dict[str, Any] = attrs.field(factory=dict)

    @property
    def qualified(self) -> str:
        """``server/tool``: how scopes, logs and metrics name the tool."""
        return f"{self.server}/{self.tool}"

    def texts(self) -> Iterator[TextSlot]:
        """Every string among the arguments, at any depth."""
        yield from walk_strings(self.arguments)


@attrs.define(kw_only=True)
class ToolResult:
    """What a tool call answered (or the gateway answered in its place)."""

    content: list[dict[str, Any]] = attrs.field(factory=list)
    structured: dict[str, Any] | None = None
    is_error: bool = False

    @classmethod
    def error(cls, message: str) -> ToolResult:
        """An error result carrying ``message`` as its text."""
        return cls(content=[{"type": "text", "text": message}], is_error=True)

    @classmethod
    def from_mcp(cls, data: dict[str, Any]) -> ToolResult:
        """From a ``CallToolResult`` as JSON (camelCase keys)."""
        content = data.get("content")
        structured = data.get("structuredContent")
        return cls(
            content=[c for c in content if isinstance(c, dict)]
            if isinstance(content, list)
            else [],
            structured=structured if isinstance(structured, dict) else None,
            is_error=bool(data.get("isError")),
        )

    def to_mcp(self) -> dict[str, Any]:
        """As a ``CallToolResult`` JSON object."""
        out: dict[str, Any] = {"content": self.content, "isError": self.is_error}
        if self.structured is not None:
            out["structuredContent"] = self.structured
        return out

    def texts(self) -> Iterator[TextSlot]:
        """Every text the client would read: text blocks, embedded text resources and every
        string of the structured content."""
        for block in self.content:
            if isinstance(block.get("text"), str):
                yield block["text"], _setter(block, "text")
            resource = block.get("resource")
            if isinstance(resource, dict) and isinstance(resource.get("text"), str):
                yield resource["text"], _setter(resource, "text")
        if self.structured is not None:
            yield from walk_strings(self.structured)

    def size(self) -> int:
        """Characters of text in the result (for logs: how big an answer was)."""
        return sum(len(text) for text, _ in self.texts())


def walk_strings(value: Any) -> Iterator[TextSlot]:
    """Every string inside nested dicts and lists, with a setter for each."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str):
                yield item, _setter(value, key)
            else:
                yield from walk_strings(item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str):
                yield item, _setter(value, index)
            else:
                yield from walk_strings(item)


def _setter(container: Any, key: Any) -> Callable[[str], None]:
    def set_(text: str) -> None:
        container[key] = text

    return set_
