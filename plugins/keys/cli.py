"""``plugway keys create | list | revoke``: manage virtual keys in the store the config names
(``[plugins.keys] db``), or the one ``--db`` names."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import orjson
from plugway.plugins.keys.store import KeyStore, limits_from


def add_commands(commands: Any) -> None:
    keys = commands.add_parser("keys", help="create, list and revoke virtual keys")
    sub = keys.add_subparsers(dest="keys_command", required=True)
    for name, help_text in (
        ("create", "make a key (shown once)"),
        ("list", "list keys"),
        ("revoke", "revoke a key by id"),
    ):
        parser = sub.add_parser(name, help=help_text)
        parser.add_argument("--config", "-c", help="TOML config file ([plugins.keys] db)")
        parser.add_argument("--db", help="the key store file (overrides the config)")
        parser.set_defaults(handler=run)
    create, list_, revoke = (sub.choices[n] for n in ("create", "list", "revoke"))
    create.add_argument("--team", required=True)
    create.add_argument("--name", default="")
    create.add_argument(
        "--model",
        action="append",
        default=[],
        dest="models",
        help="a model the key may use (repeat); none means every model",
    )
    create.add_argument("--expires-in", type=float, help="seconds until the key expires")
    create.add_argument("--rpm", type=int, help="requests per minute")
    create.add_argument("--tpm", type=int, help="tokens per minute")
    create.add_argument("--max-parallel", type=int, help="requests in flight")
    create.add_argument("--budget-usd", type=float, help="USD per budget period")
    create.add_argument(
        "--budget-period", default="month", choices=["day", "week", "month", "total"]
    )
    create.add_argument(
        "--model-limit",
        action="append",
        default=[],
        metavar="MODEL:RPM:TPM",
        help="per-model limits, e.g. gpt-4o:10:20000 (empty = no limit)",
    )
    create.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE")
    create.add_argument(
        "--mcp-tools",
        action="append",
        default=None,
        metavar="GLOBS",
        help="MCP tools the key may list and call, as comma-separated server/tool globs "
        '(repeatable; e.g. "github/*,docs/search"); not given means every tool',
    )
    create.add_argument("--json", action="store_true", help="print JSON")
    list_.add_argument("--team")
    list_.add_argument("--json", action="store_true", help="print JSON")
    revoke.add_argument("key_id")


def _store(args: argparse.Namespace) -> tuple[KeyStore, Any]:
    from plugway.gateway import load_gateway

    gateway = load_gateway(args.config) if args.config else None
    path = args.db or (gateway.config.plugin_settings["keys"].db if gateway else None)
    if path is None:
        raise SystemExit("plugway keys: give --config or --db")
    return KeyStore(path), gateway


def _audit(gateway: Any, event: dict[str, Any]) -> None:
    if gateway is not None:
        gateway.hooks.call_sync_each(
            "audit_event", lambda _p: {"event": event, "config": gateway.config}
        )


def run(args: argparse.Namespace) -> int:
    store, gateway = _store(args)
    try:
        if args.keys_command == "create":
            return _create(args, store, gateway)
        if args.keys_command == "list":
            records = [r.public() for r in store.list(args.team)]
            if args.json:
                print(orjson.dumps(records, option=orjson.OPT_INDENT_2).decode())
            for r in [] if args.json else records:
                state = (
                    "revoked"
                    if r["revoked_at"]
                    else (
                        "expired" if r["expires_at"] and r["expires_at"] < time.time() else "live"
                    )
                )
                print(
                    f"{r['id']}  team={r['team']}  {state}  models="
                    f"{','.join(r['models']) or '*'}  name={r['name'] or '-'}"
                )
            return 0
        if not store.revoke(args.key_id):
            print(f"plugway keys: no live key has id {args.key_id!r}", file=sys.stderr)
            return 1
        _audit(gateway, {"action": "key.revoke", "actor": "cli", "key_id": args.key_id})
        print(f"revoked {args.key_id}")
        return 0
    finally:
        store.close()


def _create(args: argparse.Namespace, store: KeyStore, gateway: Any) -> int:
    per_model: dict[str, dict[str, int]] = {}
    for item in args.model_limit:
        model, _, rest = item.partition(":")
        rpm, _, tpm = rest.partition(":")
        per_model[model] = {k: int(v) for k, v in (("rpm", rpm), ("tpm", tpm)) if v}
    limits = limits_from(
        {
            k: v
            for k, v in {
                "rpm": args.rpm,
                "tpm": args.tpm,
                "max_parallel": args.max_parallel,
                "budget_usd": args.budget_usd,
                "budget_period": args.budget_period,
                "models": per_model,
            }.items()
            if v is not None
        }
    )
    metadata = dict(item.partition("=")[::2] for item in args.meta)
    expires_at = None if args.expires_in is None else time.time() + args.expires_in
    key, record = store.create(
        args.team,
        name=args.name,
        models=args.models,
        expires_at=expires_at,
        limits=limits,
        metadata=metadata,
        mcp_tools=mcp_tools_from(args.mcp_tools),
    )
    _audit(
        gateway, {"action": "key.create", "actor": "cli", "key_id": record.id, "team": record.team}
    )
    if args.json:
        print(orjson.dumps({"key": key, **record.public()}).decode())
    else:
        print(
            f"id:   {record.id}\nteam: {record.team}\nkey:  {key}\n"
            "This key is shown once: store it now."
        )
    return 0


def mcp_tools_from(values: list[str] | None) -> list[str] | None:
    """``--mcp-tools`` values (each a comma-separated list of globs) as one list; ``None``
    when the option was not given."""
    if values is None:
        return None
    return [glob.strip() for value in values for glob in value.split(",") if glob.strip()]
