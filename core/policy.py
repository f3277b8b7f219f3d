"""Per-model routing policy: the typed optional fields of a ``[[models]]`` entry that routing
plugins read from ``ctx.route.policy`` (retries, hedging, rules, fallbacks, regions).

They are plain attrs classes so that the config loader checks them like every other table:
an unknown field or a wrong type is an error naming its TOML path.
"""

from __future__ import annotations

import attrs


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Retries of the *same* target after a retryable failure, before moving on.

    The n-th retry waits a random time in ``[0, min(cap, base * 2**n))`` (full jitter), always
    inside the request's deadline and only while the retry budget allows it.
    """

    attempts: int = 1
    base: float = 0.05
    cap: float = 1.0


@attrs.frozen(kw_only=True)
class HedgePolicy:
    """Hedged requests: when the attempt has not produced its first token after ``after``
    seconds (or after the ``percentile`` of its target's recent time to first token, clamped
    to ``[min, max]``), start the next target too; the first to answer wins."""

    after: float | None = None
    percentile: float | None = None
    min: float = 0.05
    max: float = 5.0


@attrs.frozen(kw_only=True)
class Rule:
    """One routing rule (strategy ``rules``): every condition given must hold; ``use`` then
    names the targets to try, in order. A target is named by ``provider/model``, by its
    provider name, or by one of its tags. A rule with no condition matches every request."""

    use: tuple[str, ...]
    name: str | None = None
    min_prompt_tokens: int | None = None
    max_prompt_tokens: int | None = None
    tools: bool | None = None
    images: bool | None = None
    #: The request has ``video_url`` content parts (video understanding).
    videos: bool | None = None
    stream: bool | None = None
    metadata: dict[str, str] = attrs.field(factory=dict, hash=False)
    tags: dict[str, str] = attrs.field(factory=dict, hash=False)
    header: dict[str, str] = attrs.field(factory=dict, hash=False)
    principal: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class Fallbacks:
    """Where to go when a target refuses the request itself. ``context_window``: targets to
    try when the prompt is too long (default: the route's targets with a larger
    ``context_window``); ``content_filter``: targets to try after a content-filter refusal
    (default: none, the refusal is answered). Targets are named as in :class:`Rule`."""

    context_window: tuple[str, ...] = ()
    content_filter: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class RoutePolicy:
    """The routing policy of one model (all optional)."""

    retry: RetryPolicy | None = None
    hedge: HedgePolicy | None = None
    rules: tuple[Rule, ...] = ()
    fallbacks: Fallbacks = attrs.field(factory=Fallbacks)
    require_region: str | None = None
    prefer_region: str | None = None
