"""``plugway serve | check | route | plugins | usage | whatif``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from plugway.errors import ConfigError, PluginError
from plugway.gateway import CONFIG_ENV, Gateway, load_gateway


def _plugin_commands(commands: Any) -> None:
    """Let plugins add subcommands (``register_commands``)."""
    from plugway.hookcall import HookRunner
    from plugway.plugin_loader import load_plugins

    try:
        hooks = HookRunner(load_plugins().pm)
    except (PluginError, ConfigError):
        return  # the command itself reports a broken plugin
    hooks.call_sync_results("register_commands", commands=commands)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plugway", description="A plugin-based AI gateway.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", "-c", help="TOML config file (default: built-in)")
    serve.add_argument("--host", help="address to bind (overrides server.host)")
    serve.add_argument("--port", type=int, help="port to bind (overrides server.port)")
    serve.add_argument("--workers", type=int, help="worker processes (overrides server.workers)")
    serve.add_argument("--log-level", default="INFO")
    check = commands.add_parser("check", help="validate a config and print its routing table")
    check.add_argument("config", help="TOML config file")
    route = commands.add_parser(
        "route", help="print the plan the gateway would follow for a request, sending nothing"
    )
    route.add_argument("--config", "-c", help="TOML config file (default: built-in)")
    route.add_argument("--model", "-m", required=True, help="the model a client would ask for")
    route.add_argument(
        "--prompt-tokens",
        type=int,
        default=100,
        help="estimated prompt tokens of the request (default 100)",
    )
    route.add_argument("--tools", action="store_true", help="the request carries tools")
    route.add_argument("--stream", action="store_true", help="the request is streamed")
    route.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="a request header (repeatable), e.g. x-plugway-require-region:eu",
    )
    route.add_argument("--json", action="store_true", help="print JSON")
    plugins = commands.add_parser("plugins", help="list installed plugins and their hooks")
    plugins.add_argument("--config", "-c", help="TOML config file (for [plugins] disabled)")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    _add_report_parsers(commands)
    new = commands.add_parser("new", help="create things; `plugway new plugin NAME --kind K`")
    new_what = new.add_subparsers(dest="what", required=True)
    new_plugin = new_what.add_parser("plugin", help="write an installable, tested plugin package")
    new_plugin.add_argument("name", help="plugin name, e.g. my-router (-> plugway-my-router)")
    new_plugin.add_argument(
        "--kind", required=True, choices=["provider", "strategy", "filter", "logger"]
    )
    new_plugin.add_argument("--dir", default=".", help="parent folder (default: here)")
    _plugin_commands(commands)
    return parser


def _add_report_parsers(commands: Any) -> None:
    """``usage`` and ``whatif``: reports over the request store (plugway.plugins.store)."""
    usage = commands.add_parser(
        "usage", help="cost, tokens, errors and latency from the request store"
    )
    whatif = commands.add_parser(
        "whatif", help="replay stored traffic against another routing config and price it"
    )
    for sub, default_since in ((usage, "24h"), (whatif, "7d")):
        sub.add_argument("--db", help="the request store file (default: [plugins.store] path)")
        sub.add_argument(
            "--since",
            default=default_since,
            help=f"how far back, e.g. 30m, 24h, 7d (default {default_since})",
        )
        sub.add_argument("--json", action="store_true", help="print JSON")
    usage.add_argument("--config", "-c", help="the gateway's config (to find the store)")
    usage.add_argument(
        "--by",
        choices=["model", "provider", "key", "team", "day"],
        default="model",
        help="group rows by (default model)",
    )
    whatif.add_argument(
        "--config",
        "-c",
        required=True,
        dest="other",
        help="the routing config to replay the traffic against",
    )
    whatif.add_argument("--current", help="the gateway's current config (to find the store)")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args)
        if args.command == "check":
            return check(args.config)
        if args.command == "route":
            return route(args)
        if args.command in ("usage", "whatif"):
            from plugway.plugins.store import reports

            if args.command == "usage":
                return reports.usage(
                    db=args.db,
                    config_path=args.config,
                    by=args.by,
                    since=args.since,
                    as_json=args.json,
                )
            return reports.whatif(
                db=args.db,
                config_path=args.current,
                other_config=args.other,
                since=args.since,
                as_json=args.json,
            )
        if args.command == "new":
            return new_plugin(args.name, args.kind, args.dir)
        if args.command == "plugins":
            return plugins(args.config, as_json=args.json)
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"plugway: config error in {_source(args)}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except PluginError as exc:
        print(f"plugway: {exc}", file=sys.stderr)
        return 2


def _source(args: argparse.Namespace) -> str:
    path = getattr(args, "config", None) or getattr(args, "other", None)
    return str(path or os.environ.get(CONFIG_ENV) or "the built-in config")


def serve(args: argparse.Namespace) -> int:
    from plugway.logs import configure_logging

    overrides: dict[str, Any] = {
        key: value
        for key, value in (("host", args.host), ("port", args.port), ("workers", args.workers))
        if value is not None
    }
    configure_logging(args.log_level)
    gateway = load_gateway(args.config, overrides=overrides)
    server = gateway.config.server
    _print_banner(gateway)
    from plugway.app import LOG_LEVEL_ENV, OVERRIDES_ENV, create_app
    from plugway.edge import ssl_context

    tls = ssl_context(server)
    if server.workers == 1:
        app = create_app(gateway)
        app.run(
            host=server.host,
            port=server.port,
            single_process=True,
            access_log=False,
            motd=False,
            ssl=tls,
            backlog=server.backlog,
        )
        return 0
    from functools import partial

    from plugway.app import app_from_environment
    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    if args.config:
        os.environ[CONFIG_ENV] = str(Path(args.config).resolve())
    os.environ[OVERRIDES_ENV] = orjson.dumps(overrides).decode()
    os.environ[LOG_LEVEL_ENV] = args.log_level
    loader = AppLoader(factory=partial(app_from_environment))
    app = loader.load()
    app.prepare(
        host=server.host,
        port=server.port,
        workers=server.workers,
        access_log=False,
        motd=False,
        # An SSLContext cannot be pickled into worker processes: pass the files, and each
        # worker builds its context (see plugway.edge.worker_tls)
        ssl=None if tls is None else {"cert": server.tls_cert, "key": server.tls_key},
        backlog=server.backlog,
    )
    Sanic.serve(primary=app, app_loader=loader)
    return 0


def _print_banner(gateway: Gateway) -> None:
    config = gateway.config
    server = config.server
    names = ", ".join(gateway.router.model_names()) or "(none)"
    lines = [
        f"plugway: serving {'https' if server.tls_cert else 'http'}://{server.host}:"
        f"{server.port}/v1 from {config.source}",
        f"plugway: models: {names}",
    ]
    lines += [f"plugway: {note}" for note in config.notes]
    print("\n".join(lines), file=sys.stderr, flush=True)


def check(path: str) -> int:
    gateway = load_gateway(path)
    print(f"{path}: OK")
    print("\nproviders:")
    for name, provider in gateway.providers.items():
        settings = provider.public_settings()
        print(
            f"  {name}: type={settings['type']} base_url={settings.get('base_url')} "
            f"api_key={settings.get('api_key') or '-'} timeout={settings['timeout']}s"
        )
    print("\nmodels:")
    for route in gateway.router.routes.values():
        print(f"  {route.name}  (strategy={route.strategy}, deadline={route.deadline}s)")
        for i, target in enumerate(route.targets, 1):
            print(
                f"    {i}. {target.key}"
                + (f"  weight={target.weight}" if target.weight != 1.0 else "")
            )
    return 0


def route(args: argparse.Namespace) -> int:
    """Resolve the model and run ``select_provider`` on a made-up request of the given shape
    (no ``pre_route``, nothing sent). Health and latency figures are this process's: fresh."""
    import asyncio

    from plugway.context import RequestContext
    from plugway.errors import GatewayError

    gateway = load_gateway(args.config)
    headers = {}
    for item in args.header:
        name, sep, value = item.partition(":")
        if not sep:
            print(f"plugway: --header {item!r}: write it as NAME:VALUE", file=sys.stderr)
            return 2
        headers[name.strip().lower()] = value.strip()
    body: dict[str, Any] = {
        "model": args.model,
        "messages": [{"role": "user", "content": "x" * (4 * max(0, args.prompt_tokens))}],
    }
    if args.tools:
        body["tools"] = [{"type": "function", "function": {"name": "tool", "parameters": {}}}]
    ctx = RequestContext(
        endpoint="chat.completions",
        body=body,
        headers=headers,
        model=args.model,
        stream=args.stream,
    )

    async def plan() -> None:
        ctx.route = gateway.router.resolve(ctx.model)
        ctx.env = gateway.env
        ctx.trace.candidates = [t.key for t in ctx.route.targets]
        chosen = await gateway.hooks.call_first(
            "select_provider", ctx=ctx, candidates=ctx.route.targets
        )
        ctx.plan = list(chosen or [])
        ctx.trace.strategy = ctx.trace.strategy or "select_provider hook"
        ctx.trace.plan = [t.key for t in ctx.plan]

    try:
        asyncio.run(plan())
    except GatewayError as exc:
        print(f"plugway: {exc.message}", file=sys.stderr)
        return 1
    trace = ctx.trace.summary([])
    trace.pop("attempts")
    if args.json:
        print(orjson.dumps(trace, option=orjson.OPT_INDENT_2).decode())
        return 0
    route = ctx.route
    assert route is not None
    shown = route.name if route.name == ctx.model else f"{ctx.model} (route {route.name})"
    print(f"model {shown}: strategy={trace['strategy']}, deadline={route.deadline}s")
    for i, target in enumerate(ctx.plan, 1):
        score = ctx.trace.scores.get(target.key)
        extra = f"  score={score:.6g}" if score is not None else ""
        region = f"  region={target.region}" if target.region else ""
        print(f"  {i}. {target.key}{region}{extra}")
    for key, why in ctx.trace.skipped.items():
        print(f"  skipped {key}: {why}")
    for note in ctx.trace.notes:
        print(f"  note: {note}")
    return 0


def new_plugin(name: str, kind: str, parent: str) -> int:
    from plugway.scaffold import ScaffoldError
    from plugway.scaffold import new_plugin as write

    try:
        root = write(name, kind, Path(parent))
    except ScaffoldError as exc:
        print(f"plugway: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {root}")
    print(f"next: pip install -e '{root}[test]' && python -m pytest -q {root}")
    return 0


def plugins(path: str | None, *, as_json: bool) -> int:
    gateway = load_gateway(path)
    described = gateway.describe_plugins()
    if as_json:
        print(orjson.dumps(described, option=orjson.OPT_INDENT_2).decode())
        return 0
    for info in described["plugins"]:
        version = f" {info['version']}" if info["version"] else ""
        print(f"{info['name']}  ({info['distribution']}{version})  {info['module']}")
        print(f"    hooks: {', '.join(info['hooks']) or '-'}")
        for key in ("provider_types", "strategies"):
            if info.get(key):
                print(f"    {key.replace('_', ' ')}: {', '.join(info[key])}")
    if described["disabled"]:
        print(f"disabled: {', '.join(described['disabled'])}")
    return 0
