"""A third-party plugin on the MCP tool-call hooks, for tests: it vetoes ``echo`` of the text
"forbidden", rewrites other ``echo`` arguments to upper case, and marks results of ``add``."""

from __future__ import annotations

from plugway.context import RequestContext
from plugway.errors import PermissionDenied
from plugway.hooks import hookimpl
from plugway.tools import ToolCall, ToolResult


@hookimpl
def pre_tool_call(ctx: RequestContext, call: ToolCall) -> None:
    if call.tool != "echo":
        return
    if call.arguments.get("text") == "forbidden":
        raise PermissionDenied("echoing that is not allowed here")
    for text, set_text in call.texts():
        set_text(text.upper())


@hookimpl
def post_tool_call(ctx: RequestContext, call: ToolCall, result: ToolResult) -> ToolResult | None:
    if call.tool != "add":
        return None
    return ToolResult(
        content=[*result.content, {"type": "text", "text": f"checked by hook ({ctx.principal})"}],
        structured=result.structured,
    )
