"""The ``rules`` strategy: the model's ``rules`` (see :class:`plugway.policy.Rule`) are
checked in order; the first that matches names the targets to try, in its order. A rule
without conditions matches everything (a default); when none matches, every target is tried
in config order. For example::

    [[models]]
    name = "auto"
    strategy = "rules"
    targets = [
      { provider = "openai", model = "gpt-4.1-mini", tags = ["cheap"] },
      { provider = "gemini", model = "gemini-2.5-pro", tags = ["long"] },
      { provider = "anthropic", model = "claude-sonnet-4-5", tags = ["tools"] },
    ]
    rules = [
      { tools = true, use = ["tools"] },
      { min_prompt_tokens = 30000, use = ["long"] },
      { max_prompt_tokens = 2000, use = ["cheap", "tools"] },
    ]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from plugway.context import RequestContext, Target
from plugway.hooks import hookimpl
from plugway.plugins.routing.common import BaseStrategy, RequestShape, request_shape
from plugway.policy import Rule

#: Writes no prompt or completion text anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False


def rule_matches(rule: Rule, ctx: RequestContext, shape: RequestShape) -> bool:
    """Every condition the rule gives holds for this request."""
    if rule.min_prompt_tokens is not None and shape.prompt_tokens < rule.min_prompt_tokens:
        return False
    if rule.max_prompt_tokens is not None and shape.prompt_tokens > rule.max_prompt_tokens:
        return False
    if rule.tools is not None and shape.tools != rule.tools:
        return False
    if rule.images is not None and shape.images != rule.images:
        return False
    if rule.videos is not None and shape.videos != rule.videos:
        return False
    if rule.stream is not None and ctx.stream != rule.stream:
        return False
    if rule.principal and ctx.principal not in rule.principal:
        return False
    metadata = ctx.body.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    if any(k not in metadata or str(metadata[k]) != v for k, v in rule.metadata.items()):
        return False
    if any(ctx.tags.get(k) != v for k, v in rule.tags.items()):
        return False
    return all(ctx.headers.get(k.lower()) == v for k, v in rule.header.items())


def named_targets(names: Sequence[str], targets: Sequence[Target]) -> list[Target]:
    """The targets ``names`` name, in the names' order, each once."""
    out: list[Target] = []
    for name in names:
        out.extend(t for t in targets if t.named_by(name) and t not in out)
    return out


class Rules(BaseStrategy):
    name = "rules"

    def plan(self, ctx: RequestContext, candidates: Sequence[Target]) -> list[Target]:
        chosen = list(candidates)
        rules = ctx.route.policy.rules if ctx.route is not None else ()
        shape = request_shape(ctx)
        for i, rule in enumerate(rules):
            if rule_matches(rule, ctx, shape):
                chosen = named_targets(rule.use, candidates) or chosen
                ctx.trace.notes.append(f"rule {rule.name or f'rules[{i}]'} matched")
                break
        else:
            ctx.trace.notes.append("no rule matched")
        return super().plan(ctx, chosen)

    def order(self, ctx: RequestContext, targets: list[Target]) -> list[Target]:
        return targets


@hookimpl
def register_strategies(register: Callable[..., None]) -> None:
    register("rules", Rules)
