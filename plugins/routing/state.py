"""What routing plugins share per gateway: target health (circuit breakers), latency and
in-flight figures, and the retry budget; and the ``[plugins.routing]`` settings for them.

Everything here runs on the gateway's injectable clock (``StrategyEnv.clock``), so tests are
exact. The state is in-process, one per gateway (worker), reached as
``routing_state(env)`` from strategies and ``routing_state(ctx.env)`` from hooks. Health sits
behind the small :class:`HealthBackend` protocol so a shared backend (Redis, for several
workers) can replace :class:`LocalHealth` without touching the strategies.
"""

from __future__ import annotations

import collections
import enum
import math
from collections.abc import Callable
from typing import Protocol

import attrs
from plugway.context import Price, Target
from plugway.hooks import hookimpl
from plugway.routing import StrategyEnv

#: Writes no prompt or completion text anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False

SETTINGS = "routing"


@attrs.define(kw_only=True)
class HealthSettings:
    #: Consecutive failures that open a target's breaker.
    consecutive_failures: int = 5
    #: Error rate (0..1) over ``window`` seconds that opens it, once ``min_requests`` were seen.
    error_rate: float = 0.5
    min_requests: int = 10
    window: float = 30.0
    #: Seconds a target stays in cool-down; a 429's ``retry-after`` sets it instead.
    cooldown: float = 10.0
    max_cooldown: float = 300.0
    #: Seconds a half-open probe may stay unanswered before another request may probe.
    probe_timeout: float = 30.0


@attrs.define(kw_only=True)
class RetrySettings:
    #: Retries (same-target retries and hedges) allowed as a share of live requests.
    budget_ratio: float = 0.2
    #: Retries always allowed per window, so a quiet gateway can still retry.
    budget_min: int = 3
    #: Seconds over which requests and retries are counted.
    budget_window: float = 10.0


@attrs.define(kw_only=True)
class LatencySettings:
    #: Weight of each new sample in the decaying averages (0..1).
    decay: float = 0.3
    #: Chance that least-latency puts a random target first, so a recovered one is noticed.
    exploration: float = 0.05
    #: Recent samples kept per target for percentiles (hedging).
    samples: int = 64


@attrs.define(kw_only=True)
class RoutingSettings:
    """``[plugins.routing]``: health = {...}, retry = {...}, latency = {...}."""

    health: HealthSettings = attrs.field(factory=HealthSettings)
    retry: RetrySettings = attrs.field(factory=RetrySettings)
    latency: LatencySettings = attrs.field(factory=LatencySettings)


# -- health ------------------------------------------------------------------------------------


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class HealthBackend(Protocol):
    """Per-target circuit breakers, keyed by ``Target.key``. Times are the gateway clock's."""

    def admit(self, key: str, now: float, *, take_probe: bool = True) -> tuple[bool, str]:
        """May a request be planned on this target now? ``(True, "")`` when closed;
        ``(False, "cooldown")`` while open; half-open admits one probe at a time (taking it
        unless ``take_probe`` is false) and answers ``(False, "probing")`` to the others."""
        ...

    def record(self, key: str, ok: bool, now: float, retry_after: float | None = None) -> None:
        """An attempt's outcome. ``retry_after`` (a 429's) opens the breaker for that long."""
        ...

    def release_probe(self, key: str) -> None:
        """A probe was taken but the target was never tried: let another request probe."""
        ...

    def state(self, key: str, now: float) -> BreakerState: ...


@attrs.define
class _Breaker:
    state: BreakerState = BreakerState.CLOSED
    consecutive: int = 0
    open_until: float = 0.0
    probe_since: float | None = None
    window_start: float = 0.0
    requests: int = 0
    failures: int = 0


class LocalHealth:
    """:class:`HealthBackend` in this process's memory."""

    def __init__(self, settings: HealthSettings) -> None:
        self.settings = settings
        self._breakers: dict[str, _Breaker] = {}

    def _get(self, key: str, now: float) -> _Breaker:
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = self._breakers[key] = _Breaker(window_start=now)
        if breaker.state is BreakerState.OPEN and now >= breaker.open_until:
            breaker.state, breaker.probe_since = BreakerState.HALF_OPEN, None
        return breaker

    def state(self, key: str, now: float) -> BreakerState:
        return self._get(key, now).state

    def admit(self, key: str, now: float, *, take_probe: bool = True) -> tuple[bool, str]:
        breaker = self._get(key, now)
        if breaker.state is BreakerState.CLOSED:
            return True, ""
        if breaker.state is BreakerState.OPEN:
            return False, "cooldown"
        probing = breaker.probe_since is not None and (
            now - breaker.probe_since < self.settings.probe_timeout
        )
        if probing:
            return False, "probing"
        if take_probe:
            breaker.probe_since = now
        return True, "probe"

    def release_probe(self, key: str) -> None:
        breaker = self._breakers.get(key)
        if breaker is not None:
            breaker.probe_since = None

    def record(self, key: str, ok: bool, now: float, retry_after: float | None = None) -> None:
        s = self.settings
        breaker = self._get(key, now)
        if now - breaker.window_start >= s.window:
            breaker.window_start, breaker.requests, breaker.failures = now, 0, 0
        breaker.requests += 1
        if ok:
            breaker.consecutive = 0
            if breaker.state is BreakerState.HALF_OPEN:
                self._breakers[key] = _Breaker(window_start=now)
            return
        breaker.failures += 1
        breaker.consecutive += 1
        if breaker.state is BreakerState.OPEN and retry_after is None:
            return
        tripped = (
            retry_after is not None
            or breaker.state is BreakerState.HALF_OPEN
            or breaker.consecutive >= s.consecutive_failures
            or (
                breaker.requests >= s.min_requests
                and breaker.failures / breaker.requests >= s.error_rate
            )
        )
        if tripped:
            length = s.cooldown if retry_after is None else retry_after
            breaker.state = BreakerState.OPEN
            breaker.open_until = max(breaker.open_until, now + min(length, s.max_cooldown))
            breaker.probe_since = None


# -- latency and load --------------------------------------------------------------------------


@attrs.define
class TargetStats:
    in_flight: int = 0
    latency: float | None = None  # decaying average of whole-request latency, seconds
    ttft: float | None = None  # decaying average of time to first token, seconds
    recent_ttft: collections.deque[float] = attrs.field(factory=collections.deque)


class Stats:
    """In-flight counts and decaying latency averages per target key."""

    def __init__(self, settings: LatencySettings) -> None:
        self.settings = settings
        self._targets: dict[str, TargetStats] = {}

    def of(self, key: str) -> TargetStats:
        stats = self._targets.get(key)
        if stats is None:
            stats = self._targets[key] = TargetStats(
                recent_ttft=collections.deque(maxlen=self.settings.samples)
            )
        return stats

    def _decay(self, old: float | None, sample: float) -> float:
        return sample if old is None else old + self.settings.decay * (sample - old)

    def add_ttft(self, key: str, seconds: float) -> None:
        stats = self.of(key)
        stats.ttft = self._decay(stats.ttft, seconds)
        stats.recent_ttft.append(seconds)

    def add_latency(self, key: str, seconds: float) -> None:
        stats = self.of(key)
        stats.latency = self._decay(stats.latency, seconds)

    def percentile_ttft(self, key: str, percentile: float) -> float | None:
        samples = sorted(self.of(key).recent_ttft)
        if not samples:
            return None
        rank = max(0, math.ceil(percentile / 100 * len(samples)) - 1)
        return samples[rank]


# -- retry budget ------------------------------------------------------------------------------


class RetryBudget:
    """Retries may be at most ``min + ratio * requests`` over the last ``window`` seconds
    (Envoy's and Finagle's retry budget): an outage cannot multiply the traffic."""

    BUCKETS = 10

    def __init__(self, settings: RetrySettings) -> None:
        self.settings = settings
        self._width = settings.budget_window / self.BUCKETS
        self._requests: collections.deque[tuple[int, int]] = collections.deque()
        self._retries: collections.deque[tuple[int, int]] = collections.deque()
        self.spent = 0
        self.refused = 0

    def _add(self, series: collections.deque[tuple[int, int]], now: float) -> None:
        bucket = int(now // self._width)
        if series and series[-1][0] == bucket:
            series[-1] = (bucket, series[-1][1] + 1)
        else:
            series.append((bucket, 1))

    def _count(self, series: collections.deque[tuple[int, int]], now: float) -> int:
        oldest = int(now // self._width) - self.BUCKETS + 1
        while series and series[0][0] < oldest:
            series.popleft()
        return sum(n for _, n in series)

    def request(self, now: float) -> None:
        """A new client request (its first attempt)."""
        self._add(self._requests, now)

    def allows(self, now: float) -> bool:
        s = self.settings
        allowed = s.budget_min + s.budget_ratio * self._count(self._requests, now)
        return self._count(self._retries, now) + 1 <= allowed

    def refund(self, spent_at: float) -> None:
        """Give back one retry taken at ``spent_at`` that was not used (a hedge that did
        not start); nothing when its bucket has already left the window."""
        bucket = int(spent_at // self._width)
        for i, (b, n) in enumerate(self._retries):
            if b == bucket and n > 0:
                self._retries[i] = (b, n - 1)
                self.spent -= 1
                return

    def try_spend(self, now: float) -> bool:
        """Take one retry from the budget if it has one; False (and counted) otherwise."""
        if not self.allows(now):
            self.refused += 1
            return False
        self._add(self._retries, now)
        self.spent += 1
        return True


# -- prices ------------------------------------------------------------------------------------

PriceLookup = Callable[[Target], Price | None]


def target_price(target: Target) -> Price | None:
    """The price on the target itself (``price = { input, output }``, USD per million)."""
    return target.price


# -- the shared object -------------------------------------------------------------------------


@attrs.define
class RoutingState:
    """Everything routing plugins share in one gateway. ``price`` is swappable: the price
    table plugin sets it to its own lookup."""

    clock: Callable[[], float]
    settings: RoutingSettings
    health: HealthBackend
    stats: Stats
    budget: RetryBudget
    price: PriceLookup = target_price
    round_robin: dict[str, int] = attrs.field(factory=dict)


def _make(env: StrategyEnv) -> RoutingState:
    settings = env.settings.get(SETTINGS)
    if not isinstance(settings, RoutingSettings):
        settings = RoutingSettings()
    return RoutingState(
        clock=env.clock,
        settings=settings,
        health=LocalHealth(settings.health),
        stats=Stats(settings.latency),
        budget=RetryBudget(settings.retry),
    )


def routing_state(env: StrategyEnv | None) -> RoutingState:
    """The gateway's routing state (a default one when called without a gateway)."""
    return (env or StrategyEnv()).service(SETTINGS, _make)


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    register(SETTINGS, RoutingSettings)
