"""What every routing strategy shares: the request's shape (estimated prompt tokens, tools,
images), the region and health filter applied before a strategy orders the targets, and the
trace it leaves on the request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
from plugway.context import RequestContext, Target
from plugway.errors import InvalidRequest
from plugway.plugins.routing.state import RoutingState, routing_state
from plugway.routing import StrategyEnv

REQUIRE_REGION_HEADER = "x-plugway-require-region"
PREFER_REGION_HEADER = "x-plugway-prefer-region"
PROBES = "routing.probes"  # ctx.state key: target keys this request took a half-open probe of
CHARS_PER_TOKEN = 4
TOKENS_PER_TOOL = 60
TOKENS_PER_IMAGE = 765
DEFAULT_OUTPUT_TOKENS = 256


@attrs.frozen
class RequestShape:
    """What routing rules and prices look at, estimated without serialising the body."""

    prompt_tokens: int
    tools: bool
    images: bool
    output_tokens: int
    videos: bool = False


def request_shape(ctx: RequestContext) -> RequestShape:
    """The shape of ``ctx.body``, computed once per request."""
    cached = ctx.state.get("routing.shape")
    if isinstance(cached, RequestShape):
        return cached
    shape = shape_of(ctx.body)
    ctx.state["routing.shape"] = shape
    return shape


def shape_of(body: dict[str, Any]) -> RequestShape:
    chars, images, videos = 0, 0, 0
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    continue
                if isinstance(part.get("text"), str):
                    chars += len(part["text"])
                elif part.get("type") in ("image_url", "input_image", "image"):
                    images += 1
                elif part.get("type") == "video_url":
                    videos += 1
    inputs = body.get("input")  # embeddings
    if isinstance(inputs, str):
        chars += len(inputs)
    elif isinstance(inputs, list):
        chars += sum(len(x) for x in inputs if isinstance(x, str))
    tools = body.get("tools")
    n_tools = len(tools) if isinstance(tools, list) else 0
    output = body.get("max_completion_tokens") or body.get("max_tokens")
    return RequestShape(
        prompt_tokens=chars // CHARS_PER_TOKEN
        + n_tools * TOKENS_PER_TOOL
        + images * TOKENS_PER_IMAGE,
        tools=n_tools > 0,
        images=images > 0,
        videos=videos > 0,
        output_tokens=output if isinstance(output, int) and output > 0 else DEFAULT_OUTPUT_TOKENS,
    )


def _metadata(ctx: RequestContext) -> dict[str, Any]:
    metadata = ctx.body.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def regions(ctx: RequestContext) -> tuple[set[str], list[str]]:
    """The regions this request must be served in (every one must hold: the model's, the
    key's via ``ctx.tags``, the request's via header or ``metadata``) and those it prefers."""
    route = ctx.route
    metadata = _metadata(ctx)
    required: set[str] = set()
    preferred: list[str] = []
    sources = (
        (
            route.policy.require_region if route else None,
            route.policy.prefer_region if route else None,
        ),
        (ctx.tags.get("require_region"), ctx.tags.get("prefer_region")),
        (ctx.headers.get(REQUIRE_REGION_HEADER), ctx.headers.get(PREFER_REGION_HEADER)),
        (metadata.get("require_region"), metadata.get("prefer_region")),
    )
    for require, prefer in sources:
        if isinstance(require, str) and require:
            required.add(require)
        if isinstance(prefer, str) and prefer:
            preferred.insert(0, prefer)  # later sources (the request) take precedence
    return required, preferred


class BaseStrategy:
    """A strategy in three steps: keep the usable candidates (required region, health),
    ``order`` them (the strategy's own job), then move preferred-region targets first.

    Targets in cool-down are skipped unless every candidate is; a half-open target is
    planned for one request at a time (its probe). What was skipped, and why, goes in
    ``ctx.trace``.
    """

    name: ClassVar[str] = ""

    def __init__(self, env: StrategyEnv) -> None:
        self.env = env

    @property
    def state(self) -> RoutingState:
        return routing_state(self.env)

    def plan(self, ctx: RequestContext, candidates: Sequence[Target]) -> list[Target]:
        return self.finish(ctx, self.order(ctx, self.usable(ctx, candidates)))

    def order(self, ctx: RequestContext, targets: list[Target]) -> list[Target]:
        raise NotImplementedError

    def usable(self, ctx: RequestContext, candidates: Sequence[Target]) -> list[Target]:
        required, _ = regions(ctx)
        in_region = []
        for target in candidates:
            if required and {target.region} != required:
                ctx.trace.skipped[target.key] = f"region!={'+'.join(sorted(required))}"
            else:
                in_region.append(target)
        if not in_region:
            raise InvalidRequest(
                f"no target of model '{ctx.model}' is in the required region "
                f"{' and '.join(sorted(required))}",
                code="region_unavailable",
            )
        state = self.state
        now = state.clock()
        healthy: list[Target] = []
        probes: list[str] = ctx.state.setdefault(PROBES, [])
        for target in in_region:
            admitted, why = state.health.admit(target.key, now)
            if admitted:
                healthy.append(target)
                if why == "probe":
                    probes.append(target.key)
            else:
                ctx.trace.skipped[target.key] = why
        if not healthy:
            ctx.trace.notes.append("all targets unhealthy: trying them anyway")
            for target in in_region:
                ctx.trace.skipped.pop(target.key, None)
            return in_region
        return healthy

    def finish(self, ctx: RequestContext, ordered: list[Target]) -> list[Target]:
        _, preferred = regions(ctx)
        if preferred:
            rank = {region: i for i, region in enumerate(preferred)}
            ordered = sorted(ordered, key=lambda t: rank.get(t.region or "", len(rank)))
        return ordered
