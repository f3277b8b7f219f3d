"""``plugway serve | check | plugins``."""

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
    plugins = commands.add_parser("plugins", help="list installed plugins and their hooks")
    plugins.add_argument("--config", "-c", help="TOML config file (for [plugins] disabled)")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args)
        if args.command == "check":
            return check(args.config)
        return plugins(args.config, as_json=args.json)
    except ConfigError as exc:
        print(f"plugway: config error in {_source(args)}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except PluginError as exc:
        print(f"plugway: {exc}", file=sys.stderr)
        return 2


def _source(args: argparse.Namespace) -> str:
    return str(getattr(args, "config", None) or os.environ.get(CONFIG_ENV) or "the built-in config")


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

    if server.workers == 1:
        app = create_app(gateway)
        app.run(
            host=server.host, port=server.port, single_process=True, access_log=False, motd=False
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
        host=server.host, port=server.port, workers=server.workers, access_log=False, motd=False
    )
    Sanic.serve(primary=app, app_loader=loader)
    return 0


def _print_banner(gateway: Gateway) -> None:
    config = gateway.config
    server = config.server
    names = ", ".join(gateway.router.model_names()) or "(none)"
    lines = [
        f"plugway: serving http://{server.host}:{server.port}/v1 from {config.source}",
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
