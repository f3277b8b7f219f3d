"""Rate limits and budgets for virtual keys, on the gateway's state backend.

Per key (from its record, see :mod:`plugway.plugins.keys`) and per key and model:
requests per minute, tokens per minute and requests in flight; budgets in USD per period per
key and per team (``[plugins.limits.teams.NAME]``).

How it stays exact under concurrency, in one worker or many sharing Redis:

* requests per minute and in flight: an atomic increment *admits* the request when the value
  it returns is within the limit; a refused request takes its increment back. Fixed windows
  are numbered from the Unix epoch so every worker counts in the same window.
* budgets: the estimate of the call is *reserved* by an atomic increment before the call
  (refused when the reservation would pass the budget) and corrected to the real cost after
  it (``real - estimate``, a refund when the call failed), streams included.
* tokens per minute: tokens are known only after a call, so a key whose window already used
  its tokens is refused; a call in progress may end above the limit (as OpenAI's own does).

Throttled requests get 429 with ``retry-after`` and OpenAI's ``x-ratelimit-*`` headers;
admitted ones carry the ``x-ratelimit-*`` headers of the key's own limits.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any

import attrs
from plugway.config import Config
from plugway.context import RequestContext
from plugway.errors import RateLimited
from plugway.gateway import Gateway
from plugway.hooks import hookimpl
from plugway.plugins.keys.store import VirtualKey
from plugway.state import StateBackend, window

#: Counts tokens and dollars; keeps no prompt or completion text.
PLUGWAY_RETAINS_CONTENT = False

MINUTE = 60
STATE = "limits"
#: ``ctx.state`` key of a request's known price in USD (see :func:`estimate_cost`).
ESTIMATE = "limits.estimate"
PERIODS = {
    "day": ("%Y-%m-%d", 2 * 86400),
    "week": ("%G-W%V", 8 * 86400),
    "month": ("%Y-%m", 32 * 86400),
    "total": ("", None),
}


@attrs.define(kw_only=True)
class TeamBudget:
    budget_usd: float
    period: str = "month"


@attrs.define(kw_only=True)
class LimitsSettings:
    """``[plugins.limits]``."""

    #: Team budgets: ``[plugins.limits.teams.ml] budget_usd = 100, period = "month"``.
    teams: dict[str, TeamBudget] = attrs.field(factory=dict)
    #: Output tokens the budget estimate assumes when a request sets no max_tokens.
    default_max_tokens: int = 256
    #: Safety expiry (seconds) of an in-flight counter, should a worker die mid-request.
    inflight_ttl: float = 900.0


@attrs.define
class Reservation:
    """What pre_route took for a request, released or settled in post_response."""

    inflight: str | None = None
    tpm: list[str] = attrs.field(factory=list)
    budgets: list[str] = attrs.field(factory=list)
    estimate: float = 0.0


#: Wall clock used for windows and periods (tests may replace it).
clock: Callable[[], float] = time.time


@attrs.define
class _Runtime:
    gateway: Gateway | None = None
    settings: LimitsSettings = attrs.field(factory=LimitsSettings)


_rt = _Runtime()


def plugway_enabled(config: Config) -> bool:
    """Limits apply to virtual keys: idle (unregistered) when authentication is off."""
    keys = config.plugin_settings.get("keys")
    return bool(os.environ.get("PLUGWAY_MASTER_KEY")) or bool(getattr(keys, "required", False))


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    register("limits", LimitsSettings)


@hookimpl
def check_config(config: Config) -> list[str] | None:
    settings: LimitsSettings = config.plugin_settings["limits"]
    return [
        f"plugins.limits.teams.{name}.period: {team.period!r} is not a period; use day, "
        "week, month or total"
        for name, team in settings.teams.items()
        if team.period not in PERIODS
    ] or None


@hookimpl
def plugway_startup(app: Any, config: Config) -> None:
    _rt.gateway = app.ctx.gateway
    _rt.settings = config.plugin_settings["limits"]


def _reset(seconds: float) -> str:
    return f"{max(1, math.ceil(seconds))}s"


def _throttled(
    message: str,
    retry_after: float | None,
    headers: dict[str, str],
    code: str = "rate_limit_exceeded",
    error_type: str | None = None,
) -> RateLimited:
    return RateLimited(
        message, retry_after=retry_after, headers=headers, code=code, error_type=error_type
    )


@hookimpl
async def pre_route(ctx: RequestContext) -> None:
    key: VirtualKey | None = ctx.state.get("keys")
    gw = _rt.gateway
    if key is None or gw is None:
        return
    admission = Admission(gw.state, key, ctx.model, clock())
    try:
        await admission.requests()
        await admission.tokens()
        await admission.inflight()
        await admission.budgets(gw, ctx)
    except RateLimited:
        await admission.give_back()
        raise
    ctx.state[STATE] = admission.reservation
    ctx.response_headers.update(admission.headers)


class Admission:
    """The checks of one request, in order; each records what it took, so that a refusal
    gives everything back (:meth:`give_back`)."""

    def __init__(self, state: StateBackend, key: VirtualKey, model: str, now: float) -> None:
        self.state, self.key, self.model, self.now = state, key, model, now
        self.limits = key.limits
        self.per_model = self.limits.models.get(model, {})
        self.number, self.left = window(now, MINUTE)
        self.taken: list[str] = []  # request counters incremented so far
        self.headers: dict[str, str] = {}
        self.reservation = Reservation()

    def _pairs(self, kind: str) -> list[tuple[str, int]]:
        pairs = [
            (f"rl:{self.key.id}:{kind}:{self.number}", getattr(self.limits, kind)),
            (f"rl:{self.key.id}:m:{self.model}:{kind}:{self.number}", self.per_model.get(kind)),
        ]
        return [(k, limit) for k, limit in pairs if limit is not None]

    async def requests(self) -> None:
        rpm = self._pairs("rpm")
        if not rpm:
            return
        values = await self.state.incr_many([(k, 1, MINUTE + 5) for k, _ in rpm])
        self.taken += [k for k, _ in rpm]
        for (_, limit), value in zip(rpm, values, strict=True):
            self.headers.setdefault("x-ratelimit-limit-requests", str(limit))
            self.headers.setdefault(
                "x-ratelimit-remaining-requests", str(max(0, int(limit - value)))
            )
            self.headers.setdefault("x-ratelimit-reset-requests", _reset(self.left))
            if value > limit:
                self.headers["x-ratelimit-remaining-requests"] = "0"
                scope = f" for model '{self.model}'" if limit == self.per_model.get("rpm") else ""
                raise _throttled(
                    f"Rate limit reached for requests: {limit} per minute{scope}. "
                    f"Try again in {_reset(self.left)}.",
                    self.left,
                    self.headers,
                )

    async def tokens(self) -> None:
        tpm = self._pairs("tpm")
        for k, limit in tpm:
            used = float(await self.state.get(k) or 0)
            self.headers.setdefault("x-ratelimit-limit-tokens", str(limit))
            self.headers.setdefault("x-ratelimit-remaining-tokens", str(max(0, int(limit - used))))
            self.headers.setdefault("x-ratelimit-reset-tokens", _reset(self.left))
            if used >= limit:
                self.headers["x-ratelimit-remaining-tokens"] = "0"
                raise _throttled(
                    f"Rate limit reached for tokens: {limit} per minute. "
                    f"Try again in {_reset(self.left)}.",
                    self.left,
                    self.headers,
                )
        self.reservation.tpm = [k.rsplit(":", 1)[0] for k, _ in tpm]

    async def inflight(self) -> None:
        limit = self.limits.max_parallel
        if limit is None:
            return
        counter = f"rl:{self.key.id}:inflight"
        value = await self.state.incr(counter, 1, _rt.settings.inflight_ttl)
        self.reservation.inflight = counter
        if value > limit:
            raise _throttled(f"Too many requests in flight: {limit} at a time.", 1.0, self.headers)

    async def budgets(self, gw: Gateway, ctx: RequestContext) -> None:
        candidates: list[tuple[str, float | None, str]] = [
            (f"key:{self.key.id}", self.limits.budget_usd, self.limits.budget_period)
        ]
        team = _rt.settings.teams.get(self.key.team)
        if team is not None:
            candidates.append((f"team:{self.key.team}", team.budget_usd, team.period))
        budgets = [(who, b, p) for who, b, p in candidates if b is not None]
        if not budgets:
            return
        estimate = estimate_cost(gw, ctx, _rt.settings.default_max_tokens)
        counters = [_budget_key(who, period, self.now) for who, _, period in budgets]
        spent = await self.state.incr_many(
            [(k, estimate, PERIODS[p][1]) for k, (_, _, p) in zip(counters, budgets, strict=True)]
        )
        self.reservation.estimate = estimate
        self.reservation.budgets = counters
        over = [(who, b, p) for (who, b, p), s in zip(budgets, spent, strict=True) if s > b + 1e-9]
        if over:
            who, budget, period = over[0]
            raise _throttled(
                f"The budget of this {who.split(':')[0]} is used up (${budget:g} per {period}).",
                None,
                {**self.headers, "x-should-retry": "false"},
                code="budget_exceeded",
                error_type="insufficient_quota",
            )

    async def give_back(self) -> None:
        """Undo every increment this admission made (it was refused)."""
        items: list[tuple[str, float, float | None]] = [(k, -1, None) for k in self.taken]
        if self.reservation.inflight:
            items.append((self.reservation.inflight, -1, None))
        items += [(k, -self.reservation.estimate, None) for k in self.reservation.budgets]
        if items:
            await self.state.incr_many(items)


@hookimpl(trylast=True)  # after the cost plugin has set ctx.cost
async def post_response(ctx: RequestContext) -> None:
    reservation: Reservation | None = ctx.state.pop(STATE, None)
    gw = _rt.gateway
    if reservation is None or gw is None:
        return
    state = gw.state
    if reservation.inflight:
        await state.incr(reservation.inflight, -1)
    # A cached answer counts as a request, not as tokens (it cost nothing upstream).
    tokens = 0 if ctx.tags.get("cache") == "hit" else _tokens(ctx.usage)
    if tokens and reservation.tpm:
        number, _ = window(clock(), MINUTE)
        await state.incr_many([(f"{k}:{number}", tokens, MINUTE + 5) for k in reservation.tpm])
    if reservation.budgets:
        real = request_cost(ctx)
        if real is None:
            # A stream cut before its usage arrived still cost something: keep the estimate.
            real = reservation.estimate if ctx.first_token_at is not None else 0.0
        delta = real - reservation.estimate
        if delta:
            await state.incr_many([(k, delta, None) for k in reservation.budgets])


def _budget_key(who: str, period: str, now: float) -> str:
    fmt = PERIODS[period][0]
    return f"budget:{who}:{time.strftime(fmt, time.gmtime(now)) if fmt else 'total'}"


def _tokens(usage: dict[str, Any] | None) -> int:
    if not usage:
        return 0
    total = usage.get("total_tokens")
    if isinstance(total, int):
        return total
    parts = (usage.get("prompt_tokens"), usage.get("completion_tokens"))
    return sum(p for p in parts if isinstance(p, int))


def request_cost(ctx: RequestContext) -> float | None:
    """The USD cost of a finished request: ``ctx.cost`` when a cost plugin set it, else the
    usage priced at the serving target's price; None when the usage is unknown."""
    if ctx.cost is not None:
        return ctx.cost
    usage = ctx.usage
    target = ctx.served_by
    if not usage:
        return None
    if target is None or target.price is None:
        return 0.0
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    price = target.price
    return (prompt * price.input + completion * price.output) / 1_000_000


def estimate_cost(gw: Gateway, ctx: RequestContext, default_max_tokens: int) -> float:
    """An upper-leaning estimate before the call: the prompt at ~4 characters a token plus
    the most output the request allows, at the route's dearest target price. A door whose
    calls have a known price (an MCP tool call's ``price_per_call``) puts it in
    ``ctx.state[ESTIMATE]``, which is then the estimate."""
    hinted = ctx.state.get(ESTIMATE)
    if isinstance(hinted, int | float) and not isinstance(hinted, bool):
        return float(hinted)
    try:
        route = gw.router.resolve(ctx.model)
    except Exception:
        return 0.0
    prices = [t.price for t in route.targets if t.price is not None]
    if not prices:
        return 0.0
    chars = 0
    for message in ctx.body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(
                len(p.get("text", ""))
                for p in content
                if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
    inp = ctx.body.get("input")
    if isinstance(inp, str):
        chars += len(inp)
    elif isinstance(inp, list):
        chars += sum(len(x) for x in inp if isinstance(x, str))
    out = ctx.body.get("max_completion_tokens") or ctx.body.get("max_tokens")
    output_tokens = out if isinstance(out, int) and out > 0 else default_max_tokens
    if ctx.endpoint == "embeddings":
        output_tokens = 0
    prompt_tokens = chars / 4 + 8
    return max((prompt_tokens * p.input + output_tokens * p.output) / 1_000_000 for p in prices)
