"""The ``metrics`` plugin: ``GET /metrics`` in Prometheus' text format (prometheus-client).

Metric names follow Prometheus' conventions (``plugway_`` prefix, base units, ``_total`` on
counters); the two ``gen_ai_client_*`` histograms are the OpenTelemetry GenAI semantic
conventions' metrics as Prometheus names them, with their bucket boundaries. Labels are bounded:
the configured route name (or ``(unknown)``), provider instance, upstream model, status, token
class, error class. Never a key, a principal or any text of a request.

Several workers: when ``server.workers > 1`` the gateway's main process makes a fresh folder,
exports it as ``PROMETHEUS_MULTIPROC_DIR`` before the workers start, and removes it at exit;
every worker then writes its samples there (prometheus-client's multiprocess mode) and any
worker's ``/metrics`` answers for all of them. A ``PROMETHEUS_MULTIPROC_DIR`` you set yourself
is used as it is (empty it before each start, as prometheus-client asks).

Target health: ``plugway_target_up`` is each target's health as routing sees it (1 up, 0
down): 0 while its circuit breaker is open or half-open, or when its most recent attempt that
said something about the target failed for the target's own reason (connect, timeout, reset,
429, 5xx, a malformed answer, a broken stream); 1 once an attempt succeeds with the circuit
closed. A 4xx the request caused and the gateway's own faults leave it as it was.
``plugway_target_circuit_state`` is the routing circuit breaker of each target as the worker
that last tried it saw it (0 closed, 1 half-open, 2 open). Hedged attempts are counted in
``plugway_hedges_total``, not as failovers. ``plugway_internal_errors_total{stage, plugin}``
counts the gateway's own faults (see :mod:`plugway.faults`): a hook that raised (stage = the
hook), a translation or provider that raised while building a request or reading an answer
(``attempt``, ``stream``; plugin = the provider type), or the core (``request``).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
from plugway import faults
from plugway.config import Config
from plugway.context import RequestContext
from plugway.errors import InternalError, UpstreamError, counts_against_target
from plugway.hooks import hookimpl
from plugway.plugins.cost.pricing import request_tokens
from plugway.plugins.routing.state import BreakerState, routing_state

#: Writes no prompt or completion text anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False

NAME = "metrics"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_FLIGHT = "metrics.in_flight"
CIRCUIT_VALUES = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}

#: OTel GenAI bucket boundaries: durations 0.01 s .. 81.92 s (x2), tokens 1 .. 4^13 (x4).
DURATION_BUCKETS = tuple(0.01 * 2**i for i in range(14))
TOKEN_BUCKETS = tuple(4**i for i in range(14))
TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)

#: Provider types -> OTel ``gen_ai.provider.name`` well-known values.
GENAI_PROVIDER = {
    "gemini": "gcp.gemini",
    "azure": "azure.ai.openai",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "ark": "byteplus.modelark",
}
OPERATION = {
    "chat.completions": "chat",
    "messages": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "mcp.tools/call": "execute_tool",  # an MCP tool call (plugway.plugins.mcp)
}


@attrs.define(kw_only=True)
class MetricsSettings:
    enabled: bool = True
    path: str = "/metrics"


def genai_provider(provider_type: str) -> str:
    return GENAI_PROVIDER.get(provider_type, provider_type)


class Metrics:
    """This worker's metric objects. In multiprocess mode they write to the shared folder and
    :meth:`exposition` merges every worker's files; otherwise they live in ``self.registry``."""

    def __init__(self, config: Config, multiprocess_dir: str | None) -> None:
        import prometheus_client as prom
        from prometheus_client import values

        self.multiprocess_dir = multiprocess_dir
        # No ``_created`` twin of every counter and histogram.
        prom.disable_created_metrics()  # type: ignore[no-untyped-call]
        if multiprocess_dir is not None:
            # prometheus-client picks its value class at import time from the environment;
            # choose it here so the order of imports does not matter.
            values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
        self.registry = prom.CollectorRegistry(auto_describe=True)
        reg = None if multiprocess_dir is not None else self.registry
        self.types = {name: s.type for name, s in config.providers.items()}
        # metric.labels(...) takes a lock and checks the values on every call (~2 us, some
        # ten times per request): the children are looked up here instead.
        self._children: dict[tuple[int, tuple[Any, ...]], Any] = {}
        route_labels = ("model", "provider")

        def histogram(
            name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]
        ) -> Any:
            return prom.Histogram(name, doc, labels, registry=reg, buckets=buckets)

        self.requests = prom.Counter(
            "plugway_requests",
            "Requests answered, by route, provider and HTTP status.",
            ("model", "provider", "status"),
            registry=reg,
        )
        self.duration = histogram(
            "plugway_request_duration_seconds",
            "Time from request to the last byte.",
            route_labels,
            DURATION_BUCKETS,
        )
        self.ttft = histogram(
            "plugway_time_to_first_token_seconds",
            "Streams: time to the first chunk sent.",
            route_labels,
            TTFT_BUCKETS,
        )
        self.tpot = histogram(
            "plugway_time_per_output_token_seconds",
            "Streams: time per output token after the first.",
            route_labels,
            TPOT_BUCKETS,
        )
        self.tokens = prom.Counter(
            "plugway_tokens",
            "Tokens by class: input (uncached), cached_input, cache_write, "
            "output (not reasoning), reasoning.",
            ("model", "provider", "type"),
            registry=reg,
        )
        self.cost = prom.Counter(
            "plugway_cost_usd",
            "Cost in US dollars at the configured prices.",
            route_labels,
            registry=reg,
        )
        self.cache_requests = prom.Counter(
            "plugway_cache_requests",
            "Requests the response cache saw, by result: hit, miss or bypass.",
            ("result",),
            registry=reg,
        )
        # Labelled, like every counter here: an unlabelled one writes a sample file in every
        # process that builds the metrics, the main process included.
        self.cache_saved = prom.Counter(
            "plugway_cache_saved_usd",
            "US dollars the response cache saved: what its hits cost when first answered.",
            ("model",),
            registry=reg,
        )
        self.attempts = prom.Counter(
            "plugway_upstream_attempts",
            "Upstream attempts by target and outcome.",
            ("provider", "upstream_model", "outcome"),
            registry=reg,
        )
        self.upstream_errors = prom.Counter(
            "plugway_upstream_errors",
            "Failed upstream attempts by error class.",
            ("provider", "error_type"),
            registry=reg,
        )
        self.failovers = prom.Counter(
            "plugway_failovers",
            "Moves from one target to another within a request.",
            ("model", "from_provider", "to_provider"),
            registry=reg,
        )
        self.hedges = prom.Counter(
            "plugway_hedges",
            "Hedged attempts: a second target started while the first was still running.",
            ("model", "provider"),
            registry=reg,
        )
        self.in_flight = prom.Gauge(
            "plugway_requests_in_flight",
            "Requests being served now.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.internal_errors = prom.Counter(
            "plugway_internal_errors",
            "The gateway's own faults (a hook, a translation or the core raised), by stage "
            "and plugin; never counted against a target.",
            ("stage", "plugin"),
            registry=reg,
        )
        self.target_up = prom.Gauge(
            "plugway_target_up",
            "The target's health: 0 while its circuit is open or half-open or after its own "
            "failure (connect, timeout, 429, 5xx, bad answer); 1 after a success. A 4xx the "
            "request caused and the gateway's own faults do not change it.",
            ("provider", "upstream_model"),
            registry=reg,
            multiprocess_mode="mostrecent",
        )
        self.circuit = prom.Gauge(
            "plugway_target_circuit_state",
            "The routing circuit breaker of each target, as its worker last saw it: "
            "0 closed, 1 half-open (probing), 2 open (in cool-down).",
            ("provider", "upstream_model"),
            registry=reg,
            multiprocess_mode="mostrecent",
        )
        self.mcp_calls = prom.Counter(
            "plugway_mcp_calls",
            "MCP tool calls through the gateway, by server, tool and outcome (ok, tool_error, "
            "denied, timeout, unavailable, error, refused, cancelled).",
            ("server", "tool", "outcome"),
            registry=reg,
        )
        self.mcp_duration = histogram(
            "plugway_mcp_call_duration_seconds",
            "MCP tool calls: time from the request to the result.",
            ("server", "tool"),
            DURATION_BUCKETS,
        )
        self.genai_tokens = histogram(
            "gen_ai_client_token_usage",
            "OTel gen_ai.client.token.usage: tokens per request.",
            (
                "gen_ai_operation_name",
                "gen_ai_provider_name",
                "gen_ai_request_model",
                "gen_ai_token_type",
            ),
            TOKEN_BUCKETS,
        )
        self.genai_duration = histogram(
            "gen_ai_client_operation_duration_seconds",
            "OTel gen_ai.client.operation.duration: one upstream attempt.",
            ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "error_type"),
            DURATION_BUCKETS,
        )

    def exposition(self) -> bytes:
        """The text format, every worker's samples merged in multiprocess mode."""
        from prometheus_client import CollectorRegistry, generate_latest, multiprocess

        if self.multiprocess_dir is None:
            return bytes(generate_latest(self.registry))
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return bytes(generate_latest(registry))

    def _child(self, metric: Any, *labels: Any) -> Any:
        """``metric.labels(*labels)``, made once per label values."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe(self, ctx: RequestContext) -> None:
        """Count one finished request (called from ``post_response``)."""
        model = ctx.route.name if ctx.route is not None else "(unknown)"
        last = ctx.final_attempt
        provider = last.target.provider if last is not None else "(none)"
        operation = OPERATION.get(ctx.endpoint, ctx.endpoint)
        self._child(self.requests, model, provider, str(ctx.status or 0)).inc()
        if ctx.ended is not None:
            self._child(self.duration, model, provider).observe(ctx.ended - ctx.started)
        tokens = request_tokens(ctx)
        if ctx.first_token_at is not None:
            self._child(self.ttft, model, provider).observe(ctx.first_token_at - ctx.started)
            if ctx.ended is not None and tokens.completion > 1:
                self._child(self.tpot, model, provider).observe(
                    (ctx.ended - ctx.first_token_at) / (tokens.completion - 1)
                )
        cache = ctx.tags.get("cache")
        if cache is not None:
            self._child(self.cache_requests, cache).inc()
            saved = ctx.state.get("cache_saved_usd")
            if saved:
                self._child(self.cache_saved, model).inc(saved)
        for kind, count in tokens.by_class().items():
            if count and cache != "hit":  # a cached answer used no upstream tokens
                self._child(self.tokens, model, provider, kind).inc(count)
        if ctx.cost:
            self._child(self.cost, model, provider).inc(ctx.cost)
        if last is not None and ctx.usage:
            genai = genai_provider(self.types.get(last.target.provider, last.target.provider))
            self._child(self.genai_tokens, operation, genai, last.target.model, "input").observe(
                tokens.prompt
            )
            if operation != "embeddings":
                self._child(
                    self.genai_tokens, operation, genai, last.target.model, "output"
                ).observe(tokens.completion)
        previous = None
        for attempt in ctx.attempts:
            target = attempt.target
            self._child(self.attempts, target.provider, target.model, attempt.outcome).inc()
            if attempt.outcome == "ok":
                self._child(self.target_up, target.provider, target.model).set(1)
            elif counts_against_target(attempt.error):
                self._child(self.target_up, target.provider, target.model).set(0)
            error_type = ""
            if attempt.error is not None:
                error_type = type(attempt.error).__name__
                if isinstance(attempt.error, UpstreamError):
                    self._child(self.upstream_errors, target.provider, error_type).inc()
            if attempt.latency is not None:
                genai = genai_provider(self.types.get(target.provider, target.provider))
                self._child(
                    self.genai_duration, operation, genai, target.model, error_type
                ).observe(attempt.latency)
            if attempt.hedge:
                self._child(self.hedges, model, target.provider).inc()
            elif previous is not None and previous.key != target.key:
                self._child(self.failovers, model, previous.provider, target.provider).inc()
            previous = target
        self._observe_circuits(ctx)

    def _observe_circuits(self, ctx: RequestContext) -> None:
        """The breaker state of the targets this request tried, from the routing plugins'
        shared state (after their own ``post_response`` recorded this request)."""
        if ctx.env is None or not ctx.attempts:
            return
        state = routing_state(ctx.env)
        now = state.clock()
        # by key: a Target holds a dict (options) and cannot be hashed
        for target in {attempt.target.key: attempt.target for attempt in ctx.attempts}.values():
            breaker = state.health.state(target.key, now)
            self._child(self.circuit, target.provider, target.model).set(
                CIRCUIT_VALUES.get(breaker, 0)
            )
            if breaker is not BreakerState.CLOSED:
                self._child(self.target_up, target.provider, target.model).set(0)

    def internal_error(self, error: InternalError) -> None:
        """Count one of the gateway's own faults (a :mod:`plugway.faults` subscriber)."""
        self._child(self.internal_errors, error.stage, error.plugin).inc()


_state: dict[str, Any] = {}


def _multiprocess_dir(config: Config) -> str | None:
    """The shared folder for several workers: the environment's, or one made now (in the main
    process, before the workers start, which inherit the variable)."""
    existing = os.environ.get(MULTIPROC_ENV)
    if existing:
        Path(existing).mkdir(parents=True, exist_ok=True)
        return existing
    if config.server.workers <= 1:
        return None
    made = tempfile.mkdtemp(prefix="plugway-metrics-")
    os.environ[MULTIPROC_ENV] = made
    atexit.register(shutil.rmtree, made, True)
    return made


def settings_of(config: Config) -> MetricsSettings:
    settings = config.plugin_settings.get(NAME)
    return settings if isinstance(settings, MetricsSettings) else MetricsSettings()


def metrics() -> Metrics | None:
    """This worker's metrics, once the routes are registered."""
    return _state.get("metrics")


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    register(NAME, MetricsSettings)


@hookimpl
def register_routes(app: Any, config: Config) -> None:
    from sanic import HTTPResponse, Request

    settings = settings_of(config)
    if not settings.enabled:
        return
    collected = Metrics(config, _multiprocess_dir(config))
    _state["metrics"] = collected
    faults.subscribe(NAME, collected.internal_error)

    async def scrape(request: Request) -> HTTPResponse:
        body = await asyncio.to_thread(collected.exposition)
        return HTTPResponse(body, content_type=CONTENT_TYPE)

    app.add_route(scrape, settings.path, methods=["GET"], name="plugway_metrics")


@hookimpl
def plugway_shutdown() -> None:
    collected: Metrics | None = _state.get("metrics")
    if collected is not None and collected.multiprocess_dir is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid(), collected.multiprocess_dir)  # type: ignore[no-untyped-call]


@hookimpl(tryfirst=True)
def pre_route(ctx: RequestContext) -> None:
    collected: Metrics | None = _state.get("metrics")
    if collected is not None:
        collected.in_flight.inc()
        ctx.state[_FLIGHT] = True


@hookimpl(trylast=True)  # after the routing plugins' health bookkeeping and the cost
def post_response(ctx: RequestContext) -> None:
    collected: Metrics | None = _state.get("metrics")
    if collected is None:
        return
    if ctx.state.pop(_FLIGHT, False):
        collected.in_flight.dec()
    collected.observe(ctx)
    call = ctx.state.get("mcp.call")
    if call is not None:  # an MCP tool call (see plugway.plugins.mcp.calls)
        outcome = ctx.state.get("mcp.outcome", "error")
        collected._child(collected.mcp_calls, call.server, call.tool, outcome).inc()
        if ctx.ended is not None:
            elapsed = ctx.ended - ctx.started
            collected._child(collected.mcp_duration, call.server, call.tool).observe(elapsed)
