"""``plugway cache stats | clear [--team T] [--model M]``: the response cache of a running
gateway, through its admin API (``/admin/cache``, master key from ``PLUGWAY_MASTER_KEY``).

On a shared backend (Redis) the answer covers every gateway on it; on the in-process backend it
is the one worker that answers (each worker has its own cache).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import orjson


def add_commands(commands: Any) -> None:
    cache = commands.add_parser("cache", help="response cache: show its size or clear it")
    sub = cache.add_subparsers(dest="cache_command", required=True)
    for name, help_text in (
        ("stats", "entries, bytes, hits and misses"),
        ("clear", "remove entries (all, or a team's, or a model's)"),
    ):
        parser = sub.add_parser(name, help=help_text)
        parser.add_argument("--config", "-c", help="TOML config file (finds the gateway's port)")
        parser.add_argument("--url", help="the gateway, e.g. http://127.0.0.1:4000")
        parser.add_argument("--team", help="only this team's entries")
        parser.add_argument("--model", help="only this route's entries")
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.set_defaults(handler=run)


def gateway_url(args: argparse.Namespace) -> str:
    if args.url:
        return str(args.url).rstrip("/")
    from plugway.gateway import load_gateway

    server = load_gateway(args.config).config.server
    host = "127.0.0.1" if server.host in ("0.0.0.0", "::", "") else server.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{server.port}"


def run(args: argparse.Namespace) -> int:
    import httpx

    master = os.environ.get("PLUGWAY_MASTER_KEY")
    if not master:
        print("plugway cache: set PLUGWAY_MASTER_KEY (the admin API needs it)", file=sys.stderr)
        return 2
    query = {k: v for k, v in (("team", args.team), ("model", args.model)) if v}
    method = "GET" if args.cache_command == "stats" else "DELETE"
    url = gateway_url(args) + "/admin/cache"
    try:
        answer = httpx.request(
            method, url, params=query, headers={"authorization": f"Bearer {master}"}, timeout=30
        )
    except httpx.HTTPError as exc:
        print(f"plugway cache: cannot reach {url}: {type(exc).__name__}", file=sys.stderr)
        return 1
    if answer.status_code != 200:
        try:
            message = answer.json()["error"]["message"]
        except Exception:
            message = answer.text[:200]
        print(f"plugway cache: {answer.status_code}: {message}", file=sys.stderr)
        return 1
    data = answer.json()
    if args.json:
        print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    elif args.cache_command == "clear":
        print(f"removed {data['removed']} entries")
    else:
        for key, value in data.items():
            print(f"{key:>12}  {value}")
    return 0
