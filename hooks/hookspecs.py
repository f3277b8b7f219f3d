"""Every plugway hook. Each docstring is that hook's full contract.

How hooks are called
--------------------
* Every impl may be a plain function or an ``async def``; the core awaits what an impl
  returns. Impls take any subset of a hook's arguments, by name.
* Order: pluggy's order. Impls marked ``tryfirst=True`` run first, ``trylast=True`` last;
  otherwise the plugin registered last runs first. Built-ins register before installed
  plugins, so an installed plugin runs before a built-in.
* ``firstresult`` hooks stop at the first impl that returns something other than ``None``
  (after awaiting it): return ``None`` to defer to the next impl.
* ``hookwrapper``/``wrapper`` impls are refused at load time: they would only ever see
  un-awaited coroutines.
* Errors: request-path hooks (``pre_route``, ``select_provider``, ``cached_response``,
  ``on_failure``, ``hedge_delay``, ``stream_chunk``, ``pre_tool_call``, ``post_tool_call``) fail *closed*: a :class:`plugway.errors.GatewayError` is
  answered to the client as it is, any other exception as a 500 naming the plugin. Observer
  hooks (``post_response``, ``attempt_started``, ``attempt_ended``) fail *open*: the error is logged with the plugin's name and the
  response is not affected. Lifecycle and registration errors stop startup.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from plugway.hooks import hookspec

if TYPE_CHECKING:
    from plugway.config import Config
    from plugway.context import Attempt, FailureDecision, RequestContext, Target
    from plugway.errors import GatewayError
    from plugway.provider import CacheLookup, ProviderResponse
    from plugway.tools import ToolCall, ToolResult
    from sanic import HTTPResponse, Request, Sanic


# -- registration: called once while the config is loaded --------------------------------------


@hookspec
def register_providers(register: Callable[..., None]) -> None:
    """Add provider types.

    Call ``register(type_name, provider_class, **defaults)`` once per type. ``provider_class``
    subclasses :class:`plugway.provider.Provider`; ``defaults`` pre-fill its settings (so an
    OpenAI-compatible host is one line: ``register("groq", OpenAIProvider,
    base_url="https://api.groq.com/openai/v1")``). A ``[providers.NAME]`` table whose ``type``
    is ``type_name`` then makes an instance. Registering a type name twice is a startup error
    naming both plugins. Sync only.
    """


@hookspec
def register_strategies(register: Callable[..., None]) -> None:
    """Add routing strategies.

    Call ``register(name, strategy_class)``. The core makes one instance per worker as
    ``strategy_class(env)``, where ``env`` (:class:`plugway.routing.StrategyEnv`) carries the
    injectable ``clock`` and ``random`` that routing must use, and then calls
    ``instance.plan(ctx, candidates) -> list[Target]`` (sync or async) for every request whose
    route names the strategy (``strategy = "name"`` on a ``[[models]]`` entry). Sync only.
    """


@hookspec
def register_settings(register: Callable[..., None]) -> None:
    """Declare the settings a plugin takes under ``[plugins.NAME]``.

    Call ``register(name, settings_class)`` with an attrs class. The loader checks the table
    against it (unknown fields, wrong types, missing fields are config errors naming the TOML
    path) and the instance is then ``config.plugin_settings[name]``. A ``[plugins.NAME]`` table
    that no plugin declared is a config error. ``register(name, settings_class, section=True)``
    makes the plugin own a top-level ``[NAME]`` section instead (``[mcp]``, say), checked the
    same way; a core section's name cannot be taken. Sync only.
    """


@hookspec
def register_routes(app: Sanic[Any, Any], config: Config) -> None:
    """Add HTTP routes to the gateway's Sanic app (``/metrics``, a dashboard, an admin API).

    Called once per worker while the app is built, before it serves. Paths under ``/v1/`` and
    ``/-/`` that the core serves cannot be taken. Sync only.
    """


@hookspec
def register_state_backends(register: Callable[..., None]) -> None:
    """Add shared-state backends (see :mod:`plugway.state`).

    Call ``register(name, factory)``; ``factory(state_config)`` returns a
    :class:`plugway.state.StateBackend`. ``[state] backend = "name"`` picks one; the core's
    ``memory`` backend is the default. The gateway makes one backend per worker, opens it
    before ``plugway_startup`` and closes it after ``plugway_shutdown``; plugins use it as
    ``gateway.state``. Registering a name twice is a startup error. Sync only.
    """


@hookspec
def check_config(config: Config) -> list[str] | None:
    """Check the whole validated config once it is built, before anything starts.

    Return a list of problems (each ``path: what is wrong; what would be right``) to refuse
    the config, or ``None``. An impl may also append startup notes to ``config.notes`` (the
    banner prints them). Called by ``plugway serve`` and ``plugway check``. Sync only.
    """


@hookspec
def register_commands(commands: Any) -> None:
    """Add ``plugway`` subcommands (``plugway keys ...``, ``plugway audit ...``).

    ``commands`` is the CLI's argparse sub-parsers object: call
    ``parser = commands.add_parser(name, help=...)``, add arguments, then
    ``parser.set_defaults(handler=fn)``; ``fn(args) -> int`` runs the command and returns the
    exit status. Plugins are loaded without a config for this, so ``[plugins] disabled`` does
    not hide commands. Sync only.
    """


@hookspec
def audit_event(event: dict[str, Any], config: Config) -> None:
    """Record one administrative action: a key created or revoked, a config loaded.

    ``config`` is the config of the gateway (or CLI command) the action happened in.
    ``event`` holds ``action`` (``"key.create"``, ``"key.revoke"``, ``"config.load"``),
    ``actor`` (``"master"``, ``"cli"``, a key id) and details such as ``key_id`` and ``team``;
    never a key, a digest or a secret. Called from the event loop and from CLI commands, so keep
    it short (append a line, enqueue). Sync only. Fails open.
    """


@hookspec(firstresult=True)
def render_error(request: Request, error: GatewayError, request_id: str) -> HTTPResponse | None:
    """Render an error the framework raised (404, 405, 413, a slow client) for a route the
    plugin owns, in that API's own error shape (an Anthropic-compatible endpoint answers
    Anthropic's). Return ``None`` for requests that are not yours; OpenAI's shape is the
    default. May be async. An exception here is logged and the default shape is used.
    """


# -- lifecycle ---------------------------------------------------------------------------------


@hookspec
def plugway_startup(app: Sanic[Any, Any], config: Config) -> None:
    """Open what the plugin holds (pools, files, connections), once per worker, inside the
    running loop, after providers have started and before the first request. May be async.
    An exception stops the worker from starting."""


@hookspec
def plugway_shutdown(app: Sanic[Any, Any]) -> None:
    """Close what :func:`plugway_startup` opened. Called once per worker at shutdown, after
    the last request. May be async. Errors are logged and do not stop other impls."""


# -- the request path --------------------------------------------------------------------------


@hookspec
def pre_route(ctx: RequestContext) -> None:
    """Inspect, change or refuse a request before it is routed.

    Called for every request to a gateway endpoint, after the body is parsed and before the
    model resolves, in hook order. Authentication, rate limits, budgets, size limits and
    content filters live here.

    Whatever API the client speaks, ``ctx.body`` is the canonical OpenAI Chat Completions form
    of its request (the formats layer translated it), so one filter serves every door;
    ``ctx.endpoint`` names the door: ``chat.completions``, ``embeddings``, ``moderations``,
    ``completions`` (legacy text completions: one user message per prompt), ``responses``
    (input items as messages; ``instructions`` as the system message), ``messages`` and
    ``messages.count_tokens`` (Anthropic's API), or a plugin's own (``mcp.tools/call`` ...).
    A door whose client body can pass through to a same-format upstream untranslated sends the
    canonical body instead when a ``pre_route`` impl changed it, so a redaction always reaches
    the upstream. Set ``ctx.principal``, ``ctx.tags`` or ``ctx.state[...]``;
    change ``ctx.body`` (and ``ctx.model``, to re-route) in place. Refuse by raising a
    :class:`plugway.errors.GatewayError` subclass: it is answered as is and no later impl runs.
    The return value is ignored. May be async. Fails closed: any other exception is the
    gateway's fault, answered 500 ``internal_error`` and counted in
    ``plugway_internal_errors_total{stage="pre_route", plugin}``.
    """


@hookspec(firstresult=True)
def select_provider(ctx: RequestContext, candidates: Sequence[Target]) -> list[Target] | None:
    """Choose the ordered plan of targets to try for this request.

    ``candidates`` are the targets of the resolved route (``ctx.route``), in config order.
    Return a list of targets (a subset, reordered, or targets of other routes) to make that the
    plan, or ``None`` to defer. The first impl that returns a list wins, so a team's routing
    hook overrides the route's strategy for exactly the requests it answers. The core's own
    impl runs last and applies the strategy the route names. An empty list is refused as a
    503. May be async. Fails closed.
    """


@hookspec(firstresult=True)
def cached_response(ctx: RequestContext) -> CacheLookup | None:
    """Answer a request without an upstream call (a response cache), or watch it go by.

    Called once per request by :func:`plugway.pipeline.attempt_plan`, so at every door that
    walks a plan (chat, embeddings, endpoint plugins), after ``pre_route``, the route's
    resolution and ``select_provider``, before the first attempt. Only called when some plugin
    implements it. Return ``None`` to stay out, or a :class:`plugway.provider.CacheLookup`:

    * ``hit``: a provider answering from the cache. The door's per-target call runs once with
      it and ``ctx.plan[0]``; no attempt is recorded and no other hook of the walk runs. If it
      raises a :class:`plugway.errors.GatewayError` (it cannot answer this door), the plan is
      walked as on a miss. ``post_response`` still runs as for any answer: the impl marks the
      hit in ``ctx.tags["cache"] = "hit"`` (a hit is priced 0 by the ``cost`` plugin and counts
      no tokens against limits) and may add ``ctx.response_headers``.
    * ``record``: on a miss, a wrapper the core applies to each provider the walk calls, so a
      cache can see a stream's bytes as the provider yields them; storing the answer is then
      the impl's own ``post_response``.

    May be async. Fails closed: a cache whose store is down should answer ``None`` (a miss).
    """


@hookspec(firstresult=True)
def on_failure(
    ctx: RequestContext, attempt: Attempt, error: GatewayError
) -> FailureDecision | None:
    """Decide what happens after an attempt fails.

    Called once per failed attempt with the attempt (its target, number and timing) and the
    error. Return :class:`plugway.context.FailureDecision` ``.retry(delay)`` to try the same
    target again, ``.next()`` for the next target in the plan, ``.stop()`` to answer the
    client with this error, or ``None`` to defer. An impl may rewrite the part of
    ``ctx.plan`` after ``attempt.plan_index`` (a fallback to larger-context targets, say)
    before it returns ``.next()``. The built-in policy runs last: see
    :mod:`plugway.plugins.failure_policy` (retries with back-off within a retry budget,
    failover, context-window and content-filter fallbacks; other errors stop). The core never waits past the
    request's deadline whatever a decision says. Observers (health tracking) return ``None``.
    For streams this is only called before any byte reached the client. May be async.
    """


@hookspec(firstresult=True)
def hedge_delay(ctx: RequestContext, target: Target) -> float | None:
    """Opt a request into hedging: seconds to wait for ``target``'s first token before the
    next target of the plan is started alongside it.

    Asked before an attempt when the plan has a target after it. Return ``None`` (the
    default) for no hedge. When the delay passes without an answer (for a stream: without its
    first event), the core starts the next target; the first attempt to succeed wins, the
    other is cancelled at once (its connection is closed, its outcome is "cancelled"). Each
    failed attempt of the race still goes through ``on_failure``; the decision about the last
    one to fail steers the walk on. The extra attempt counts against nothing in the core:
    an impl that hedges should consult its retry budget. Should be sync (called per attempt);
    an awaitable is awaited. Fails closed.
    """


@hookspec
def attempt_started(ctx: RequestContext, attempt: Attempt) -> None:
    """Observe the start of one attempt (``attempt.target``, ``attempt.started``), before
    the provider is called. For in-flight counts and latency figures. Only called when some
    plugin implements it. Should be sync and cheap. Fails open.
    """


@hookspec
def attempt_ended(ctx: RequestContext, attempt: Attempt) -> None:
    """Observe the end of one attempt, once per :func:`attempt_started`, whatever its
    ``outcome`` ("ok", "error" or "cancelled"; ``attempt.error`` holds the error). For a
    stream, an attempt ends when its first event arrives, so ``attempt.latency`` is then the
    time to first token. Called before ``on_failure`` for a failed attempt. Only called when
    some plugin implements it. Should be sync and cheap. Fails open.
    """


@hookspec
def stream_chunk(ctx: RequestContext, chunk: dict[str, Any]) -> dict[str, Any] | None:
    """See or rewrite one streamed chunk (an OpenAI ``chat.completion.chunk`` dict) before it
    is sent.

    Return ``None`` to leave the chunk as it is (mutating it in place is allowed), or a dict to
    replace it for the later impls and the client. Costs nothing when no plugin implements it:
    the core then never parses a streamed chunk. Called in hook order for every chunk,
    including the usage chunk. Should be sync: it runs once per chunk; an awaitable is awaited.
    Fails closed: an error ends the stream with an in-band error event.
    """


@hookspec
def post_response(ctx: RequestContext, response: ProviderResponse | None) -> None:
    """Observe, and for non-streamed answers filter, a finished request: log it, count it,
    price it, audit it, redact it.

    Called once for every request that got past parsing, in hook order:

    * non-streamed success: after the upstream answered and *before* the client gets it, with
      the complete ``response``. A response filter may rewrite it with
      ``response.replace_body(...)`` or refuse it by raising a
      :class:`plugway.errors.GatewayError`, which the client then gets instead; the impls
      after it are called with ``response=None`` and ``ctx.error`` set, so the refusal is
      still logged (mark a filter ``tryfirst=True``). A plugin may add headers for the client
      in ``ctx.response_headers`` (a cost header, say).
    * streams: once, after the stream has ended (completed, failed or cancelled), with
      ``response=None`` and ``ctx.usage`` holding the stream's usage when the upstream sent it.
    * failures: with ``response=None``; ``ctx.error`` and ``ctx.status`` say what the client got.

    ``ctx.attempts`` lists every attempt with its outcome. Keep impls cheap: heavy work (a
    database write) goes to a queue drained off the request path. May be async. An exception
    other than a ``GatewayError`` raised for a non-streamed success is the gateway's fault:
    the client gets a 500 ``internal_error`` instead of the response (a broken response filter
    must not let through what it filters), and it is logged with the plugin's name and counted
    in ``plugway_internal_errors_total``; the impls after it still run. For streams and
    failures it is logged and counted and changes nothing (fails open).
    """


# -- MCP tool calls ----------------------------------------------------------------------------


@hookspec
def tools_listed(server: str, tools: list[dict[str, Any]]) -> None:
    """See or rewrite the tools an upstream MCP server lists, before any client sees them.

    ``tools`` are the server's ``Tool`` objects as JSON (``name``, ``description``,
    ``inputSchema`` ...), unscoped: called once each time the gateway fetches the server's
    list, not per client. Change the list in place: remove a tool to hide it from every key
    (a poisoned description, say), rewrite a description, or add an annotation. The return
    value is ignored. May be async. Fails closed: an exception leaves the server's tools out
    of the answer (the server is reported as failing) rather than passing them unchecked.
    """


@hookspec
def pre_tool_call(ctx: RequestContext, call: ToolCall) -> None:
    """Veto or rewrite an MCP tool call before the upstream server gets it.

    Called for every ``tools/call`` on ``/mcp`` and ``/mcp/{server}``, after ``pre_route``
    (keys, rate limits and budgets have admitted it: ``ctx.endpoint`` is
    ``"mcp.tools/call"``, ``ctx.principal``, ``ctx.tags["team"]`` and ``ctx.state["keys"]`` are
    set) and after the key's ``mcp_tools`` scope allowed ``call.server``/``call.tool``.
    ``call.arguments`` is what the upstream will get: change it in place (see
    :meth:`plugway.tools.ToolCall.texts`) or assign a new dict; later impls see the change.
    The return value is ignored. Veto by raising a
    :class:`plugway.errors.GatewayError`: the upstream is not called, the client gets a tool
    result with ``isError: true`` and the error's message, and ``ctx.error`` is set for the
    observers. May be async. Fails closed: another exception vetoes the call the same way,
    naming the plugin.
    """


@hookspec
def post_tool_call(ctx: RequestContext, call: ToolCall, result: ToolResult) -> ToolResult | None:
    """Observe or rewrite the result of an MCP tool call before the client gets it.

    Called once per call that got past ``pre_route``, in hook order, whatever its outcome:
    the upstream's answer (``result.is_error`` when the tool itself reported an error), or
    the gateway's error result when the call was vetoed, timed out or the server was
    unreachable (then ``ctx.error`` holds the error and ``ctx.state["mcp.outcome"]`` says
    which: ``"ok"``, ``"tool_error"``, ``"denied"``, ``"timeout"``, ``"unavailable"``,
    ``"error"``). Rewrite the result in place (see :meth:`plugway.tools.ToolResult.texts`)
    or return a :class:`plugway.tools.ToolResult` to replace it for later impls and the
    client; refuse it by raising a :class:`plugway.errors.GatewayError` (the client then gets
    an error result with its message). ``ctx.ended`` is set, so observers (metrics, logs)
    read the call's latency there. ``post_response`` still runs after this, once, with
    ``response=None``. May be async. Fails closed: another exception replaces the result with
    an error result naming the plugin, so a broken filter never passes a result unchecked.
    """
