"""The ``otel`` plugin: OpenTelemetry traces with the GenAI semantic conventions.

Needs the extra: ``pip install 'plugway[otel]'``. Off unless ``[plugins.otel] enabled = true``.

Each request becomes a SERVER span named ``{gen_ai.operation.name} {model asked}``, with one
CLIENT child span per upstream attempt named ``{gen_ai.operation.name} {upstream model}``. An
incoming W3C ``traceparent`` (and ``tracestate``) makes the request span its child. Attributes:
``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
``gen_ai.response.model``, ``gen_ai.request.{stream,max_tokens,temperature,top_p,seed}``,
``gen_ai.usage.{input_tokens,output_tokens,cache_read.input_tokens,
cache_creation.input_tokens,reasoning.output_tokens}``, ``gen_ai.response.finish_reasons``,
``gen_ai.response.time_to_first_chunk``, ``error.type``, ``http.response.status_code``,
``server.address``, and ``plugway.{request_id,cost_usd,attempt.number,attempt.outcome}``. The
content-bearing attributes (messages, tool arguments) are never set.

Spans are built when the request has finished, from the times the gateway recorded (their
start and end are those of the request and of each attempt), and exported by a batch processor
on its own thread. So the upstream requests do not carry this trace's ``traceparent``.

Settings: ``exporter`` = ``"otlp"`` (OTLP over HTTP to ``endpoint``, default the SDK's
``OTEL_EXPORTER_OTLP_*`` environment), ``"console"`` (stdout) or ``"file"`` (one JSON span per
line appended to ``file``); ``service_name``; ``export_delay`` (seconds between batches).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import attrs
from plugway.config import Config
from plugway.context import Attempt, RequestContext
from plugway.errors import PluginError
from plugway.hooks import hookimpl
from plugway.plugins.cost.pricing import request_tokens
from plugway.plugins.metrics import OPERATION, genai_provider
from plugway.redact import redact

#: Writes no prompt or completion text anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False

NAME = "otel"


@attrs.define(kw_only=True)
class OtelSettings:
    enabled: bool = False
    exporter: Literal["otlp", "console", "file"] = "otlp"
    #: OTLP/HTTP traces URL, e.g. "http://127.0.0.1:4318/v1/traces" (default: the SDK's env).
    endpoint: str | None = None
    #: The file the "file" exporter appends JSON lines to.
    file: str | None = None
    service_name: str = "plugway"
    #: Seconds between exported batches.
    export_delay: float = 1.0


def _make_exporter(settings: OtelSettings) -> Any:
    if settings.exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if settings.exporter == "file":
        if not settings.file:
            raise PluginError(
                'plugins.otel.file: missing; the "file" exporter needs a path, '
                'for example file = "spans.jsonl"'
            )
        return JsonLinesExporter(settings.file)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return (
        OTLPSpanExporter(endpoint=settings.endpoint) if settings.endpoint else (OTLPSpanExporter())
    )


class JsonLinesExporter:
    """Appends each span as one line of JSON (the SDK's ``to_json``) to a file. Runs on the
    batch processor's thread, never on the event loop."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        lines = "".join(span.to_json(indent=None) + "\n" for span in spans)
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class Tracing:
    """A tracer provider of its own (the global one is left alone) and the span builder."""

    def __init__(self, config: Config, settings: OtelSettings) -> None:
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.trace.propagation.tracecontext import (
                TraceContextTextMapPropagator,
            )
        except ImportError:
            raise PluginError(
                "plugins.otel: enabled, but the OpenTelemetry SDK is not "
                "installed; pip install 'plugway[otel]'"
            ) from None
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": settings.service_name})
        )
        self.provider.add_span_processor(
            BatchSpanProcessor(
                _make_exporter(settings), schedule_delay_millis=int(settings.export_delay * 1000)
            )
        )
        self.tracer = self.provider.get_tracer("plugway")
        self.propagator = TraceContextTextMapPropagator()
        self.types = {name: s.type for name, s in config.providers.items()}
        self.hosts = {
            name: urlparse(s.base_url).hostname
            for name, s in config.providers.items()
            if s.base_url
        }

    def shutdown(self) -> None:
        self.provider.shutdown()

    def record(self, ctx: RequestContext) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        def ns(monotonic: float) -> int:
            return int((ctx.started_wall + (monotonic - ctx.started)) * 1e9)

        carrier = {
            k.lower(): v
            for k, v in ctx.headers.items()
            if k.lower() in ("traceparent", "tracestate")
        }
        parent = self.propagator.extract(carrier)
        operation = OPERATION.get(ctx.endpoint, ctx.endpoint)
        last = ctx.final_attempt
        tokens = request_tokens(ctx)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": redact(ctx.model),
            "gen_ai.request.stream": ctx.stream,
            "plugway.request_id": ctx.request_id,
            "plugway.attempts": len(ctx.attempts),
        }
        for field in ("max_tokens", "max_completion_tokens", "temperature", "top_p", "seed"):
            value = ctx.body.get(field)
            if isinstance(value, int | float) and not isinstance(value, bool):
                name = "max_tokens" if field == "max_completion_tokens" else field
                attributes[f"gen_ai.request.{name}"] = value
        if last is not None:
            attributes["gen_ai.provider.name"] = self._provider(last)
            attributes["gen_ai.response.model"] = last.target.model
            attributes["plugway.provider"] = last.target.provider
        if ctx.usage:
            attributes.update(self._usage(tokens))
        if ctx.finish_reason:
            attributes["gen_ai.response.finish_reasons"] = (ctx.finish_reason,)
        call = ctx.state.get("mcp.call")
        if call is not None:  # an MCP tool call: OTel's execute_tool span attributes
            attributes["gen_ai.tool.name"] = call.tool
            attributes["mcp.server"] = call.server
            attributes["plugway.mcp.outcome"] = ctx.state.get("mcp.outcome", "error")
        if ctx.first_token_at is not None:
            attributes["gen_ai.response.time_to_first_chunk"] = ctx.first_token_at - ctx.started
        if ctx.cost is not None:
            attributes["plugway.cost_usd"] = ctx.cost
        cache = ctx.tags.get("cache")
        if cache is not None:  # the response cache's verdict: hit, miss or bypass
            attributes["plugway.cache"] = cache
            if cache == "hit":
                attributes["plugway.cache.saved_usd"] = ctx.state.get("cache_saved_usd") or 0.0
        if ctx.status is not None:
            attributes["http.response.status_code"] = ctx.status
        if ctx.error is not None:
            attributes["error.type"] = type(ctx.error).__name__
        end = ns(ctx.ended if ctx.ended is not None else ctx.started)
        span = self.tracer.start_span(
            f"{operation} {redact(ctx.model)}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
            start_time=ns(ctx.started),
        )
        if ctx.status is not None and ctx.status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        inside = trace.set_span_in_context(span)
        for attempt in ctx.attempts:
            self._attempt(
                attempt,
                ctx=ctx,
                parent=inside,
                operation=operation,
                tokens=tokens,
                ns=ns,
                request_end=end,
            )
        span.end(end_time=end)

    def _provider(self, attempt: Attempt) -> str:
        return genai_provider(self.types.get(attempt.target.provider, attempt.target.provider))

    @staticmethod
    def _usage(tokens: Any) -> dict[str, Any]:
        return {
            "gen_ai.usage.input_tokens": tokens.prompt,
            "gen_ai.usage.output_tokens": tokens.completion,
            "gen_ai.usage.cache_read.input_tokens": tokens.cached_input,
            "gen_ai.usage.cache_creation.input_tokens": tokens.cache_write,
            "gen_ai.usage.reasoning.output_tokens": tokens.reasoning,
        }

    def _attempt(
        self,
        attempt: Attempt,
        *,
        ctx: RequestContext,
        parent: Any,
        operation: str,
        tokens: Any,
        ns: Callable[[float], int],
        request_end: int,
    ) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        target = attempt.target
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": self._provider(attempt),
            "gen_ai.request.model": target.model,
            "plugway.provider": target.provider,
            "plugway.attempt.number": attempt.number,
            "plugway.attempt.outcome": attempt.outcome,
        }
        host = self.hosts.get(target.provider)
        if host:
            attributes["server.address"] = host
        if attempt.status is not None:
            attributes["http.response.status_code"] = attempt.status
        if attempt.error is not None:
            attributes["error.type"] = type(attempt.error).__name__
        if attempt is ctx.final_attempt and ctx.usage:
            attributes.update(self._usage(tokens))
            attributes["gen_ai.response.model"] = target.model
            if ctx.finish_reason:
                attributes["gen_ai.response.finish_reasons"] = (ctx.finish_reason,)
        span = self.tracer.start_span(
            f"{operation} {target.model}",
            context=parent,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=ns(attempt.started),
        )
        if attempt.error is not None:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=ns(attempt.ended) if attempt.ended is not None else request_end)


_state: dict[str, Tracing] = {}


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    register(NAME, OtelSettings)


@hookimpl
def plugway_startup(config: Config) -> None:
    settings = config.plugin_settings.get(NAME)
    if isinstance(settings, OtelSettings) and settings.enabled:
        _state["tracing"] = Tracing(config, settings)


@hookimpl
async def plugway_shutdown() -> None:
    tracing = _state.pop("tracing", None)
    if tracing is not None:
        await asyncio.to_thread(tracing.shutdown)


@hookimpl
def post_response(ctx: RequestContext) -> None:
    tracing = _state.get("tracing")
    if tracing is not None:
        tracing.record(ctx)
