"""Routing strategies, health breakers and the retry budget, exactly: time and randomness
are injected through StrategyEnv, so every figure here is deterministic."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from plugway.context import Price, RequestContext, Route, Target
from plugway.errors import InvalidRequest
from plugway.plugins.failure_policy import backoff
from plugway.plugins.routing.common import BaseStrategy, shape_of
from plugway.plugins.routing.fallback import Fallback
from plugway.plugins.routing.least_busy import LeastBusy
from plugway.plugins.routing.least_latency import LeastLatency
from plugway.plugins.routing.lowest_cost import LowestCost
from plugway.plugins.routing.round_robin import RoundRobin
from plugway.plugins.routing.rules import Rules
from plugway.plugins.routing.state import (
    BreakerState,
    HealthSettings,
    LatencySettings,
    LocalHealth,
    RetryBudget,
    RetrySettings,
    RoutingSettings,
    routing_state,
)
from plugway.plugins.routing.weighted import Weighted
from plugway.policy import RetryPolicy, RoutePolicy, Rule
from plugway.routing import StrategyEnv

STRATEGIES: list[type[BaseStrategy]] = [
    Fallback,
    Weighted,
    RoundRobin,
    LeastBusy,
    LeastLatency,
    LowestCost,
    Rules,
]


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_env(seed: int = 7, clock: Clock | None = None, **settings: Any) -> StrategyEnv:
    env = StrategyEnv(clock=clock or Clock(), random=random.Random(seed))
    env.settings = {"routing": RoutingSettings(**settings)}
    return env


def targets(n: int, **common: Any) -> tuple[Target, ...]:
    return tuple(Target(provider=f"p{i}", model=f"m{i}", **common) for i in range(n))


def make_ctx(
    route_targets: Sequence[Target],
    env: StrategyEnv,
    *,
    strategy: str = "fallback",
    policy: RoutePolicy | None = None,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> RequestContext:
    route = Route(
        name="m", targets=tuple(route_targets), strategy=strategy, policy=policy or RoutePolicy()
    )
    ctx = RequestContext(
        endpoint="chat.completions",
        body=body or {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        headers=headers or {},
        model="m",
        **fields,
    )
    ctx.route, ctx.env = route, env
    return ctx


def plan_keys(strategy: BaseStrategy, ctx: RequestContext) -> list[str]:
    assert ctx.route is not None
    return [t.key for t in strategy.plan(ctx, ctx.route.targets)]


# -- weighted ----------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=9), min_size=2, max_size=4).filter(
        lambda ws: sum(ws) > 0
    ),
    st.integers(0, 2**32 - 1),
)
def test_weighted_first_pick_follows_the_weights(weights: list[int], seed: int) -> None:
    env = make_env(seed)
    route_targets = tuple(
        Target(provider=f"p{i}", model="m", weight=w) for i, w in enumerate(weights)
    )
    strategy = Weighted(env)
    draws = 3000
    firsts: Counter[str] = Counter()
    for _ in range(draws):
        plan = plan_keys(strategy, make_ctx(route_targets, env))
        assert sorted(plan) == sorted(t.key for t in route_targets)  # a permutation
        firsts[plan[0]] += 1
    total = sum(weights)
    for target, weight in zip(route_targets, weights, strict=True):
        share = firsts[target.key] / draws
        if weight == 0:
            assert share == 0
        else:
            # 3000 draws: the binomial standard deviation is at most 0.0092
            assert abs(share - weight / total) < 0.05


def test_weighted_is_reproducible_with_a_seed() -> None:
    route_targets = tuple(Target(provider=f"p{i}", model="m", weight=i + 1) for i in range(3))
    runs = []
    for _ in range(2):
        env = make_env(seed=42)
        runs.append([plan_keys(Weighted(env), make_ctx(route_targets, env)) for _ in range(50)])
    assert runs[0] == runs[1]


# -- the others --------------------------------------------------------------------------------


def test_round_robin_rotates_per_model() -> None:
    env = make_env()
    strategy = RoundRobin(env)
    firsts = [plan_keys(strategy, make_ctx(targets(3), env))[0] for _ in range(6)]
    assert firsts == ["p0/m0", "p1/m1", "p2/m2", "p0/m0", "p1/m1", "p2/m2"]


def test_least_busy_prefers_fewest_in_flight() -> None:
    env = make_env()
    state = routing_state(env)
    state.stats.of("p0/m0").in_flight = 3
    state.stats.of("p1/m1").in_flight = 1
    state.stats.of("p2/m2").in_flight = 2
    ctx = make_ctx(targets(3), env)
    assert plan_keys(LeastBusy(env), ctx) == ["p1/m1", "p2/m2", "p0/m0"]
    assert ctx.trace.scores == {"p0/m0": 3.0, "p1/m1": 1.0, "p2/m2": 2.0}


def test_least_latency_orders_by_decaying_average_and_explores() -> None:
    env = make_env(latency=LatencySettings(decay=0.5, exploration=0.0))
    state = routing_state(env)
    state.stats.add_latency("p0/m0", 0.8)
    state.stats.add_latency("p1/m1", 0.2)
    state.stats.add_latency("p1/m1", 1.0)  # decays to 0.6
    state.stats.add_latency("p2/m2", 0.7)
    ctx = make_ctx(targets(3), env)
    assert plan_keys(LeastLatency(env), ctx) == ["p1/m1", "p2/m2", "p0/m0"]
    assert ctx.trace.scores["p1/m1"] == pytest.approx(0.6)
    # streams are ordered by time to first token
    state.stats.add_ttft("p0/m0", 0.05)
    state.stats.add_ttft("p1/m1", 0.5)
    state.stats.add_ttft("p2/m2", 0.3)
    assert plan_keys(LeastLatency(env), make_ctx(targets(3), env, stream=True))[0] == "p0/m0"
    # exploration puts a random target first now and then, so a slow one is re-measured
    state.settings.latency.exploration = 0.2
    firsts = Counter(
        plan_keys(LeastLatency(env), make_ctx(targets(3), env))[0] for _ in range(2000)
    )
    assert firsts["p1/m1"] > 1500
    assert firsts["p0/m0"] > 0


def test_least_latency_measures_unknown_targets_first() -> None:
    env = make_env()
    routing_state(env).settings.latency.exploration = 0.0
    routing_state(env).stats.add_latency("p0/m0", 0.1)
    assert plan_keys(LeastLatency(env), make_ctx(targets(2), env))[0] == "p1/m1"


def test_lowest_cost_uses_tokens_times_price_and_a_swappable_lookup() -> None:
    env = make_env()
    cheap_in = Target(provider="a", model="x", price=Price(input=1.0, output=20.0))
    cheap_out = Target(provider="b", model="y", price=Price(input=5.0, output=2.0))
    unknown = Target(provider="c", model="z")
    short = {"model": "m", "messages": [{"role": "user", "content": "x" * 40}], "max_tokens": 1000}
    long = {
        "model": "m",
        "messages": [{"role": "user", "content": "x" * 400_000}],
        "max_tokens": 10,
    }
    route_targets = (unknown, cheap_in, cheap_out)
    assert plan_keys(LowestCost(env), make_ctx(route_targets, env, body=short)) == [
        "b/y",
        "a/x",
        "c/z",
    ]
    assert plan_keys(LowestCost(env), make_ctx(route_targets, env, body=long)) == [
        "a/x",
        "b/y",
        "c/z",
    ]
    routing_state(env).price = lambda t: (
        Price(input=0.0, output=0.0) if t.provider == "c" else t.price
    )
    assert plan_keys(LowestCost(env), make_ctx(route_targets, env, body=short))[0] == "c/z"


# -- health ------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(STRATEGIES),
    st.lists(st.booleans(), min_size=1, max_size=5),
    st.integers(0, 1000),
)
def test_no_target_in_cooldown_is_chosen_while_another_is_healthy(
    strategy_class: type[BaseStrategy], cooling: list[bool], seed: int
) -> None:
    clock = Clock()
    env = make_env(seed, clock)
    state = routing_state(env)
    route_targets = targets(len(cooling), price=Price(input=1, output=1))
    for target, cool in zip(route_targets, cooling, strict=True):
        if cool:
            state.health.record(target.key, False, clock(), retry_after=60)
    policy = RoutePolicy(rules=(Rule(use=tuple(t.key for t in route_targets)),))
    ctx = make_ctx(route_targets, env, strategy=strategy_class.name, policy=policy)
    plan = plan_keys(strategy_class(env), ctx)
    cooled = {t.key for t, c in zip(route_targets, cooling, strict=True) if c}
    if all(cooling):
        assert sorted(plan) == sorted(t.key for t in route_targets)  # all: try them anyway
    else:
        assert plan and not cooled & set(plan)
        assert {k: ctx.trace.skipped[k] for k in cooled} == dict.fromkeys(cooled, "cooldown")


def test_breaker_opens_on_consecutive_failures_then_half_open_lets_one_probe() -> None:
    clock = Clock()
    health = LocalHealth(HealthSettings(consecutive_failures=3, cooldown=10, probe_timeout=5))
    for _ in range(2):
        health.record("t", False, clock())
    assert health.state("t", clock()) is BreakerState.CLOSED
    health.record("t", False, clock())
    assert health.admit("t", clock()) == (False, "cooldown")
    clock.now += 9.9
    assert health.admit("t", clock()) == (False, "cooldown")
    clock.now += 0.2
    assert health.admit("t", clock()) == (True, "probe")  # one probe
    assert health.admit("t", clock()) == (False, "probing")  # and only one
    assert health.admit("t", clock()) == (False, "probing")
    health.record("t", False, clock())  # the probe failed: cool down again
    assert health.admit("t", clock()) == (False, "cooldown")
    clock.now += 10
    assert health.admit("t", clock()) == (True, "probe")
    health.record("t", True, clock())  # the probe succeeded: closed
    assert health.state("t", clock()) is BreakerState.CLOSED
    assert [health.admit("t", clock()) for _ in range(3)] == [(True, "")] * 3


def test_half_open_probe_expires_or_is_released() -> None:
    clock = Clock()
    health = LocalHealth(HealthSettings(cooldown=1, probe_timeout=5))
    health.record("t", False, clock(), retry_after=1)
    clock.now += 1
    assert health.admit("t", clock())[0]
    clock.now += 5  # the probe never answered
    assert health.admit("t", clock()) == (True, "probe")
    health.release_probe("t")  # planned but never tried
    assert health.admit("t", clock()) == (True, "probe")


def test_breaker_opens_on_error_rate_and_retry_after_sets_the_cooldown() -> None:
    clock = Clock()
    health = LocalHealth(
        HealthSettings(consecutive_failures=100, error_rate=0.5, min_requests=10, cooldown=10)
    )
    for i in range(10):
        health.record("t", i % 2 == 0, clock())  # 5 of 10 fail, never 2 in a row
    assert health.state("t", clock()) is BreakerState.OPEN
    health2 = LocalHealth(HealthSettings(cooldown=10, max_cooldown=300))
    health2.record("u", False, clock(), retry_after=42)
    clock.now += 41.9
    assert health2.state("u", clock()) is BreakerState.OPEN
    clock.now += 0.2
    assert health2.state("u", clock()) is BreakerState.HALF_OPEN


def test_half_open_probe_goes_to_one_request_in_a_strategy() -> None:
    clock = Clock()
    env = make_env(clock=clock)
    state = routing_state(env)
    state.health.record("p0/m0", False, clock(), retry_after=5)
    clock.now += 5
    first = make_ctx(targets(2), env)
    second = make_ctx(targets(2), env)
    assert plan_keys(Fallback(env), first) == ["p0/m0", "p1/m1"]
    assert plan_keys(Fallback(env), second) == ["p1/m1"]
    assert second.trace.skipped == {"p0/m0": "probing"}


# -- rules -------------------------------------------------------------------------------------

RULES = (
    Rule(name="tools", tools=True, use=("claude",)),
    Rule(name="long", min_prompt_tokens=30_000, use=("long",)),
    Rule(name="vision", images=True, use=("gemini",)),
    Rule(name="team", principal=("team-a",), header={"x-tier": "gold"}, use=("claude",)),
    Rule(name="tagged", metadata={"task": "summarise"}, use=("cheap",)),
    Rule(name="short", max_prompt_tokens=2000, use=("cheap", "claude")),
)
RULE_TARGETS = (
    Target(provider="openai", model="gpt-4.1-mini", tags=("cheap",)),
    Target(provider="gemini", model="gemini-2.5-pro", tags=("long",)),
    Target(provider="claude", model="claude-sonnet-4-5"),
)


def _body(chars: int, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "x" * chars}], **extra}


TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
IMAGE = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": "data:,"}},
        ],
    }
]


@pytest.mark.parametrize(
    ("body", "fields", "headers", "expected", "note"),
    [
        (_body(100, tools=TOOLS), {}, {}, ["claude/claude-sonnet-4-5"], "rule tools matched"),
        (_body(200_000), {}, {}, ["gemini/gemini-2.5-pro"], "rule long matched"),
        (_body(200_000, tools=TOOLS), {}, {}, ["claude/claude-sonnet-4-5"], "rule tools matched"),
        (
            {"model": "m", "messages": IMAGE},
            {},
            {},
            ["gemini/gemini-2.5-pro"],
            "rule vision matched",
        ),
        (
            _body(20_000),
            {"principal": "team-a"},
            {"x-tier": "gold"},
            ["claude/claude-sonnet-4-5"],
            "rule team matched",
        ),
        (_body(20_000), {"principal": "team-a"}, {}, None, "no rule matched"),
        (
            _body(20_000, metadata={"task": "summarise"}),
            {},
            {},
            ["openai/gpt-4.1-mini"],
            "rule tagged matched",
        ),
        (
            _body(100),
            {},
            {},
            ["openai/gpt-4.1-mini", "claude/claude-sonnet-4-5"],
            "rule short matched",
        ),
        (_body(20_000), {}, {}, None, "no rule matched"),
    ],
)
def test_rules_match_as_written(
    body: dict[str, Any],
    fields: dict[str, Any],
    headers: dict[str, str],
    expected: list[str] | None,
    note: str,
) -> None:
    env = make_env()
    ctx = make_ctx(
        RULE_TARGETS,
        env,
        strategy="rules",
        policy=RoutePolicy(rules=RULES),
        body=body,
        headers=headers,
        **fields,
    )
    plan = plan_keys(Rules(env), ctx)
    assert plan == (expected or [t.key for t in RULE_TARGETS])
    assert ctx.trace.notes == [note]


def test_request_shape_estimates_without_serialising() -> None:
    shape = shape_of({"messages": IMAGE, "tools": TOOLS, "max_completion_tokens": 50})
    assert shape.images and shape.tools and shape.output_tokens == 50
    assert shape.prompt_tokens == len("what is this") // 4 + 60 + 765


# -- regions -----------------------------------------------------------------------------------

REGIONAL = (
    Target(provider="us1", model="m", region="us"),
    Target(provider="eu1", model="m", region="eu"),
    Target(provider="eu2", model="m", region="eu"),
)


def test_required_region_filters_and_preferred_region_orders() -> None:
    env = make_env()
    ctx = make_ctx(REGIONAL, env, headers={"x-plugway-require-region": "eu"})
    assert plan_keys(Fallback(env), ctx) == ["eu1/m", "eu2/m"]
    assert ctx.trace.skipped == {"us1/m": "region!=eu"}
    ctx = make_ctx(
        REGIONAL[1:] + REGIONAL[:1], env, body=_body(10, metadata={"prefer_region": "us"})
    )
    assert plan_keys(Fallback(env), ctx) == ["us1/m", "eu1/m", "eu2/m"]
    # a key (through ctx.tags) that requires a region cannot be loosened by the request
    ctx = make_ctx(REGIONAL, env, headers={"x-plugway-require-region": "us"})
    ctx.tags["require_region"] = "eu"
    with pytest.raises(InvalidRequest) as caught:
        Fallback(env).plan(ctx, REGIONAL)
    assert caught.value.code == "region_unavailable"


def test_required_region_survives_an_outage_of_every_regional_target() -> None:
    clock = Clock()
    env = make_env(clock=clock)
    for key in ("eu1/m", "eu2/m"):
        routing_state(env).health.record(key, False, clock(), retry_after=30)
    ctx = make_ctx(REGIONAL, env, policy=RoutePolicy(require_region="eu"))
    # never the healthy us target: residency is a requirement, not a preference
    assert plan_keys(Fallback(env), ctx) == ["eu1/m", "eu2/m"]


# -- retries -----------------------------------------------------------------------------------


@given(st.integers(0, 20), st.floats(0, 1, exclude_max=True))
def test_backoff_is_jittered_exponential_and_capped(n: int, draw: float) -> None:
    retry = RetryPolicy(attempts=3, base=0.05, cap=1.0)
    delay = backoff(retry, n, draw)
    assert 0 <= delay <= min(1.0, 0.05 * 2**n)
    assert delay == pytest.approx(draw * min(1.0, 0.05 * 2**n))


def test_retry_budget_bounds_retries_to_a_share_of_requests() -> None:
    clock = Clock()
    budget = RetryBudget(RetrySettings(budget_ratio=0.2, budget_min=3, budget_window=10))
    for _ in range(100):
        budget.request(clock())
    granted = sum(budget.try_spend(clock()) for _ in range(100))
    assert granted == 23  # 3 + 20 % of 100
    assert budget.refused == 77
    clock.now += 10  # the window slides past them all
    assert budget.try_spend(clock())
    assert sum(budget.try_spend(clock()) for _ in range(10)) == 2  # back to the minimum


def test_settings_table_is_checked_like_the_rest_of_the_config() -> None:
    from plugway.config import build_config
    from plugway.errors import ConfigError
    from plugway.hookcall import HookRunner
    from plugway.plugin_loader import load_plugins
    from plugway.registry import Registry

    registry = Registry.collect(HookRunner(load_plugins().pm))
    with pytest.raises(ConfigError) as caught:
        build_config({"plugins": {"routing": {"health": {"cooldwn": 3}}}}, registry)
    assert caught.value.problems[0].startswith(
        "plugins.routing.health: unknown field 'cooldwn' (did you mean 'cooldown'?)"
    )
    config = build_config({"plugins": {"routing": {"retry": {"budget_ratio": 0.1}}}}, registry)
    assert attrs.asdict(config.plugin_settings["routing"])["retry"]["budget_ratio"] == 0.1


# -- the observer plugins ------------------------------------------------------------------


def _attempt(target: Target, number: int, started: float, **fields: Any) -> Any:
    from plugway.context import Attempt

    return Attempt(target, number, 0, 0, started, **fields)


def test_stats_plugin_counts_in_flight_and_decays_latency() -> None:
    from plugway.plugins.routing import stats

    env = make_env()
    state = routing_state(env)
    state.settings.latency.decay = 0.5
    target = targets(1)[0]
    ctx = make_ctx([target], env)
    first, second = _attempt(target, 1, 10.0), _attempt(target, 2, 10.0)
    stats.attempt_started(ctx, first)
    stats.attempt_started(ctx, second)
    assert state.stats.of(target.key).in_flight == 2
    first.outcome, first.ended = "ok", 10.4
    stats.attempt_ended(ctx, first)
    second.outcome, second.ended = "cancelled", 10.1
    stats.attempt_ended(ctx, second)
    figures = state.stats.of(target.key)
    assert figures.in_flight == 0
    assert figures.latency == pytest.approx(0.4) and figures.ttft == pytest.approx(0.4)
    third = _attempt(target, 1, 20.0, outcome="ok", ended=20.2)
    stats.attempt_ended(ctx, third)
    assert figures.latency == pytest.approx(0.3)  # half way from 0.4 to 0.2
    assert list(figures.recent_ttft) == pytest.approx([0.4, 0.2])  # cancelled: not a figure


def test_hedge_delay_fixed_percentile_and_budget() -> None:
    from plugway.plugins.routing import hedging
    from plugway.policy import HedgePolicy

    env = make_env(retry=RetrySettings(budget_min=1, budget_ratio=0.0))
    state = routing_state(env)
    pair = targets(2)
    fixed = make_ctx(pair, env, policy=RoutePolicy(hedge=HedgePolicy(after=0.25)))
    assert hedging.hedge_delay(fixed, pair[0]) == 0.25
    # the attempt answered before the delay: the reserved retry is given back
    hedging.attempt_ended(fixed, _attempt(pair[0], 1, 0.0, outcome="ok", ended=0.1))
    assert state.budget.spent == 0
    policy = RoutePolicy(hedge=HedgePolicy(percentile=50, min=0.05, max=2.0))
    ctx = make_ctx(pair, env, policy=policy)
    assert hedging.hedge_delay(ctx, pair[0]) == 2.0  # no figures yet: the max
    hedging.attempt_ended(ctx, _attempt(pair[0], 1, 0.0, outcome="error", ended=0.1))
    for seconds in (0.1, 0.2, 0.3, 0.4):
        state.stats.add_ttft(pair[0].key, seconds)
    ctx = make_ctx(pair, env, policy=policy)
    assert hedging.hedge_delay(ctx, pair[0]) == pytest.approx(0.2)
    hedging.attempt_started(ctx, _attempt(pair[1], 2, 0.2, hedge=True))  # the hedge started
    assert state.budget.spent == 1
    # the budget (one retry here) is spent: no more hedges
    spent = make_ctx(pair, env, policy=policy)
    assert hedging.hedge_delay(spent, pair[0]) is None
    assert spent.trace.notes == ["no hedge: retry budget spent"]
    assert hedging.hedge_delay(make_ctx(pair, env), pair[0]) is None  # no hedge policy


# -- the failure policy ----------------------------------------------------------------------


def _failed(ctx: RequestContext, index: int, retry_of_target: int = 0) -> Any:
    from plugway.context import Attempt

    attempt = Attempt(ctx.plan[index], len(ctx.attempts) + 1, index, retry_of_target, 0.0)
    attempt.outcome = "error"
    ctx.attempts.append(attempt)
    return attempt


def test_failure_policy_retries_within_deadline_and_budget_then_moves_on() -> None:
    from plugway.context import FailureAction
    from plugway.errors import UpstreamRateLimited, UpstreamUnavailable
    from plugway.plugins import failure_policy

    env = make_env(retry=RetrySettings(budget_min=1, budget_ratio=0.0))
    policy = RoutePolicy(retry=RetryPolicy(attempts=2, base=0.1, cap=0.4))
    ctx = make_ctx(targets(2), env, policy=policy)
    ctx.plan = list(targets(2))
    ctx.deadline = ctx.started + 30
    down = UpstreamUnavailable("down", provider="p0")
    first = failure_policy.on_failure(ctx, _failed(ctx, 0), down)
    assert first.action is FailureAction.RETRY and 0 <= first.delay < 0.1
    # the budget (one retry) is spent: the next target instead of a second retry
    second = failure_policy.on_failure(ctx, _failed(ctx, 0, 1), down)
    assert second.action is FailureAction.NEXT
    assert ctx.trace.notes == ["retry budget spent"]
    # a 429 is not retried on the same target, whatever the retry policy
    fresh = make_ctx(targets(2), make_env(), policy=policy)
    fresh.plan = list(targets(2))
    limited = UpstreamRateLimited("slow down", provider="p0", retry_after=1)
    assert failure_policy.on_failure(fresh, _failed(fresh, 0), limited).action is (
        FailureAction.NEXT
    )
    # on the last target, retry-after only when it fits the deadline
    fresh.deadline = fresh.started + 1000
    assert failure_policy.on_failure(fresh, _failed(fresh, 1), limited) == (
        failure_policy.FailureDecision.retry(1, "retry-after")
    )
    fresh.deadline = fresh.started + 0.5
    assert failure_policy.on_failure(fresh, _failed(fresh, 1), limited).action is (
        FailureAction.STOP
    )


def test_failure_policy_sends_context_window_refusals_to_larger_targets() -> None:
    from plugway.context import FailureAction
    from plugway.errors import ContentFiltered, ContextWindowExceeded
    from plugway.plugins import failure_policy

    sized = (
        Target(provider="a", model="small", context_window=8_000),
        Target(provider="b", model="huge", context_window=1_000_000),
        Target(provider="c", model="large", context_window=128_000),
        Target(provider="d", model="other"),
    )
    ctx = make_ctx(sized, make_env())
    ctx.plan = [sized[0], sized[3]]
    too_long = ContextWindowExceeded("too long", provider="a")
    decision = failure_policy.on_failure(ctx, _failed(ctx, 0), too_long)
    assert decision.action is FailureAction.NEXT
    assert [t.key for t in ctx.plan] == ["a/small", "c/large", "b/huge"]  # smallest first
    # no content-filter fallback configured: the refusal is answered
    filtered = ContentFiltered("no", provider="c")
    assert failure_policy.on_failure(ctx, _failed(ctx, 1), filtered).action is (FailureAction.STOP)
