"""The per-request objects every hook sees: targets, attempts, decisions and the request context."""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
from plugway.policy import RoutePolicy

if TYPE_CHECKING:
    from plugway.errors import GatewayError
    from plugway.routing import StrategyEnv


@attrs.frozen
class Price:
    """USD per million tokens."""

    input: float = 0.0
    output: float = 0.0
    cached_input: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None


@attrs.frozen
class Target:
    """One way to serve a model: a provider instance and the model name it knows.

    ``provider`` is the instance name (the ``[providers.NAME]`` table), ``model`` the upstream
    model. ``weight``, ``price``, ``region``, ``tags`` and ``context_window`` (the model's
    context size in tokens, when known) are for routing strategies.
    """

    provider: str
    model: str
    weight: float = 1.0
    price: Price | None = None
    region: str | None = None
    tags: tuple[str, ...] = ()
    # Left out of the hash (a dict is unhashable), so these stay usable in sets and as keys.
    options: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    context_window: int | None = None
    #: The target keeps no prompt or completion data ([privacy] zdr routes only to these).
    zdr: bool = False

    def named_by(self, name: str) -> bool:
        """True when ``name`` (from a rule or a fallback list) names this target: its
        ``provider/model`` key, its provider, or one of its tags."""
        return name in (self.key, self.provider) or name in self.tags

    @property
    def key(self) -> str:
        """``provider/model``: how logs, headers and clients name this target."""
        return f"{self.provider}/{self.model}"


@attrs.frozen
class Route:
    """What a model name resolves to: its targets and the strategy that orders them."""

    name: str
    targets: tuple[Target, ...]
    strategy: str = "fallback"
    deadline: float | None = None
    # Left out of the hash (a dict is unhashable), so these stay usable in sets and as keys.
    options: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    policy: RoutePolicy = attrs.field(factory=RoutePolicy)  # retries, hedging, rules, regions
    #: The regular expression of a ``match = "..."`` route (its ``name`` is then the same
    #: string); None for an exact name or a glob (see :class:`plugway.routing.Router`).
    match: str | None = None


class FailureAction(enum.Enum):
    RETRY = "retry"  # the same target again, after ``delay`` seconds
    NEXT = "next"  # the next target in the plan
    STOP = "stop"  # give up: the client gets this error


@attrs.frozen
class FailureDecision:
    """What ``on_failure`` returns: an action and, for RETRY, the delay before it."""

    action: FailureAction
    delay: float = 0.0
    reason: str = ""

    @classmethod
    def retry(cls, delay: float = 0.0, reason: str = "") -> FailureDecision:
        return cls(FailureAction.RETRY, max(0.0, delay), reason)

    @classmethod
    def next(cls, reason: str = "") -> FailureDecision:
        return cls(FailureAction.NEXT, 0.0, reason)

    @classmethod
    def stop(cls, reason: str = "") -> FailureDecision:
        return cls(FailureAction.STOP, 0.0, reason)


@attrs.define(slots=True)
class Attempt:
    """One try of one target. ``outcome`` is "ok", "error" or "cancelled" once it ends."""

    target: Target
    number: int  # 1-based across the whole request
    plan_index: int  # position of the target in ctx.plan
    retry_of_target: int  # 0 for the first try of this target, 1 for its first retry, ...
    started: float
    ended: float | None = None
    outcome: str = "pending"
    status: int | None = None
    error: GatewayError | None = None
    hedge: bool = False  # started alongside a slower attempt (see the hedge_delay hook)

    @property
    def latency(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    def summary(self) -> dict[str, Any]:
        """A log-safe dict: no payload, no key."""
        out: dict[str, Any] = {
            "target": self.target.key,
            "outcome": self.outcome,
            "status": self.status,
            "latency_ms": None if self.latency is None else round(self.latency * 1000, 2),
        }
        if self.error is not None:
            out["error"] = type(self.error).__name__
        if self.hedge:
            out["hedge"] = True
        return out


@attrs.define(slots=True)
class RouteTrace:
    """Why the plan is what it is: filled by the routing strategy (and the failure policy),
    logged with the request and sent back on ``x-plugway-debug: route``. Target keys only,
    never payload."""

    strategy: str = ""
    candidates: list[str] = attrs.field(factory=list)
    scores: dict[str, float] = attrs.field(factory=dict)
    skipped: dict[str, str] = attrs.field(factory=dict)  # target key -> why it was left out
    plan: list[str] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)  # "rule 2 matched", "hedged after 0.2s", ...

    def summary(self, attempts: list[Attempt]) -> dict[str, Any]:
        """A log-safe dict of the trace and the attempts' outcomes."""
        out: dict[str, Any] = {
            "strategy": self.strategy,
            "candidates": self.candidates,
            "plan": self.plan,
        }
        if self.scores:
            out["scores"] = {key: round(value, 6) for key, value in self.scores.items()}
        if self.skipped:
            out["skipped"] = self.skipped
        if self.notes:
            out["notes"] = self.notes
        out["attempts"] = [_label(a) for a in attempts]
        return out

    def compact(self, attempts: list[Attempt]) -> str:
        """One header line: ``strategy=...; plan=a,b; skipped=c:cooldown; attempts=a:ok``."""
        parts = [f"strategy={self.strategy}", "plan=" + ",".join(self.plan)]
        if self.scores:
            parts.append("scores=" + ",".join(f"{k}:{v:.4g}" for k, v in self.scores.items()))
        if self.skipped:
            parts.append("skipped=" + ",".join(f"{k}:{v}" for k, v in self.skipped.items()))
        if self.notes:
            parts.append("notes=" + ",".join(self.notes))
        parts.append("attempts=" + ",".join(_label(a) for a in attempts))
        text = "; ".join(parts)
        # header values are latin-1 and single-line
        return text.encode("ascii", "replace").decode().replace("\r", " ").replace("\n", " ")


def _label(attempt: Attempt) -> str:
    status = f"({attempt.status})" if attempt.status else ""
    return f"{attempt.target.key}:{attempt.outcome}{status}"


def new_request_id() -> str:
    # 128 random bits as 32 hex digits, like uuid4().hex, without a system call per request
    # (os.urandom's getrandom is a preemption point on a busy core). Request ids need to be
    # unique, not secret; the random module reseeds itself in forked children.
    return f"req_{random.getrandbits(128):032x}"


@attrs.define(slots=True)
class RequestContext:
    """Everything the gateway knows about one request, handed to every request hook.

    ``body`` is the parsed client JSON; fields the gateway does not know stay in it and pass
    through to OpenAI-format upstreams. ``state`` is free for plugins: key it by plugin name.
    Times are ``time.monotonic()`` seconds. ``usage`` is OpenAI's usage object once known.
    """

    endpoint: str  # "chat.completions" | "embeddings" | "responses" | ... (see pre_route)
    body: dict[str, Any]
    headers: Mapping[str, str]
    request_id: str = attrs.field(factory=new_request_id)
    model: str = ""
    stream: bool = False
    principal: str | None = None
    client_ip: str | None = None
    started: float = attrs.field(factory=time.monotonic)
    started_wall: float = attrs.field(factory=time.time)
    deadline: float | None = None
    route: Route | None = None
    plan: list[Target] = attrs.field(factory=list)  # on_failure may rewrite what is not tried yet
    # The gateway's routing environment (clock, random, state routing plugins share); set
    # by the core before select_provider.
    env: StrategyEnv | None = None
    trace: RouteTrace = attrs.field(factory=RouteTrace)  # the routing decision, for logs
    attempts: list[Attempt] = attrs.field(factory=list)
    first_token_at: float | None = None
    ended: float | None = None
    status: int | None = None
    error: GatewayError | None = None
    usage: dict[str, Any] | None = None
    cost: float | None = None
    finish_reason: str | None = None
    tags: dict[str, str] = attrs.field(factory=dict)
    response_headers: dict[str, str] = attrs.field(factory=dict)
    state: dict[str, Any] = attrs.field(factory=dict)

    @property
    def final_attempt(self) -> Attempt | None:
        """The attempt that answered (a hedged race's winner need not be the last one
        started), else the last attempt."""
        for attempt in reversed(self.attempts):
            if attempt.outcome == "ok":
                return attempt
        return self.attempts[-1] if self.attempts else None

    @property
    def served_by(self) -> Target | None:
        """The target that produced the response, if any did."""
        last = self.final_attempt
        return last.target if last is not None and last.outcome == "ok" else None

    def remaining(self, now: float | None = None) -> float | None:
        """Seconds left before the overall deadline, or None when there is none."""
        if self.deadline is None:
            return None
        return self.deadline - (time.monotonic() if now is None else now)
