"""Custom routing in twenty lines: code questions go to the target tagged "code", long
contexts to the target tagged "long"; everything else follows the route's own strategy."""

from plugway import hookimpl

PLUGWAY_RETAINS_CONTENT = False  # reads prompts, keeps nothing: fine under [privacy] zdr

LONG = 8_000  # characters of conversation that count as a long context
CODE_MARKS = ("```", "def ", "class ", "traceback", "stack trace", "compile", "regex")


def tagged(candidates, tag):
    return [t for t in candidates if tag in t.tags] or None


@hookimpl
def select_provider(ctx, candidates):
    text = " ".join(str(m.get("content", "")) for m in ctx.body.get("messages", []))
    if len(text) > LONG:
        return tagged(candidates, "long")
    if any(mark in text.lower() for mark in CODE_MARKS):
        return tagged(candidates, "code")
    return None  # defer to the route's strategy
