"""The audit trail: append-only, hash-chained JSON lines of admin actions (keys created and
revoked, config loaded) and of every request's metadata (never its content, never a key).

Each record holds ``seq``, ``ts``, ``kind``, its fields, ``prev`` (the previous record's
hash) and ``hash`` = SHA-256 of ``prev`` and the record's canonical JSON without ``hash``.
The head (last ``seq`` and ``hash``) is also kept in ``PATH.head``, so a truncated tail is
detected too. Appends take an exclusive ``flock``, so several workers can share one file.
``plugway audit verify`` walks the chain and names the first record that does not fit.

Records are written by one thread per worker, off the event loop.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import orjson
from plugway.context import RequestContext
from plugway.hooks import hookimpl
from plugway.redact import redact

#: Request records hold metadata only: no prompt or completion text.
PLUGWAY_RETAINS_CONTENT = False

GENESIS = "0" * 64


@attrs.define(kw_only=True)
class AuditSettings:
    """``[plugins.audit]``."""

    #: The audit file; empty (the default) turns the trail off.
    path: str = ""
    #: Also record every request's metadata (not only admin actions).
    requests: bool = True


def _digest(prev: str, record: dict[str, Any]) -> str:
    body = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev.encode() + body).hexdigest()


class AuditLog:
    """One audit file. :meth:`append` is thread- and process-safe."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.head_path = Path(str(self.path) + ".head")
        self._lock = threading.Lock()

    def _head(self) -> tuple[int, str]:
        try:
            data = orjson.loads(self.head_path.read_bytes())
            return int(data["seq"]), str(data["hash"])
        except FileNotFoundError:
            return 0, GENESIS

    def append(self, kind: str, fields: dict[str, Any]) -> None:
        with self._lock, self.path.open("ab") as out:
            fcntl.flock(out, fcntl.LOCK_EX)
            try:
                seq, prev = self._head()
                record = {
                    "seq": seq + 1,
                    "ts": round(time.time(), 6),
                    "kind": kind,
                    **fields,
                    "prev": prev,
                }
                record["hash"] = _digest(prev, record)
                out.write(orjson.dumps(record) + b"\n")
                out.flush()
                os.fsync(out.fileno())
                tmp = self.head_path.with_suffix(".tmp")
                tmp.write_bytes(orjson.dumps({"seq": record["seq"], "hash": record["hash"]}))
                tmp.replace(self.head_path)
            finally:
                fcntl.flock(out, fcntl.LOCK_UN)


def verify(path: str | Path) -> tuple[bool, str]:
    """Walk the chain; (True, summary) when intact, else (False, the first problem)."""
    path = Path(path)
    prev, expected_seq = GENESIS, 1
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return False, f"{path}: no such audit file"
    for number, line in enumerate(lines, 1):
        try:
            record = orjson.loads(line)
            claimed = record.pop("hash")
        except (orjson.JSONDecodeError, KeyError, AttributeError):
            return False, f"line {number}: not an audit record (edited or corrupted)"
        if record.get("seq") != expected_seq:
            return False, (
                f"line {number}: seq {record.get('seq')} where {expected_seq} was "
                "expected (a record was deleted or inserted)"
            )
        if record.get("prev") != prev:
            return False, f"line {number}: does not link to the record before it"
        if _digest(prev, record) != claimed:
            return False, f"line {number} (seq {expected_seq}): content does not match its hash"
        prev, expected_seq = claimed, expected_seq + 1
    head = Path(str(path) + ".head")
    if head.exists():
        data = orjson.loads(head.read_bytes())
        if data.get("seq") != expected_seq - 1 or data.get("hash") != prev:
            return False, (
                f"the file ends at seq {expected_seq - 1} but its head says "
                f"{data.get('seq')}: records were removed from the end"
            )
    return True, f"{path}: {expected_seq - 1} records, chain intact"


class Writer:
    """Drains records to the log in a daemon thread, off the event loop."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log
        self.queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue(100_000)
        self.thread = threading.Thread(target=self._run, name="plugway-audit", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            try:
                self.log.append(*item)
            except Exception as exc:  # the trail must not take the gateway down
                print(f"plugway: audit write failed: {type(exc).__name__}", file=sys.stderr)

    def put(self, kind: str, fields: dict[str, Any]) -> None:
        self.queue.put_nowait((kind, fields))

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(10)


@attrs.define
class _Runtime:
    settings: AuditSettings = attrs.field(factory=AuditSettings)
    writer: Writer | None = None


_rt = _Runtime()


def plugway_enabled(config: Any) -> bool:
    return bool(config.plugin_settings["audit"].path)


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    register("audit", AuditSettings)


@hookimpl
def plugway_startup(config: Any) -> None:
    _rt.settings = config.plugin_settings["audit"]
    _rt.writer = writer = Writer(AuditLog(_rt.settings.path))
    config_hash = None
    if config.source and Path(config.source).is_file():
        config_hash = hashlib.sha256(Path(config.source).read_bytes()).hexdigest()
    writer.put(
        "admin",
        {
            "action": "config.load",
            "actor": "gateway",
            "pid": os.getpid(),
            "source": config.source,
            "config_sha256": config_hash,
        },
    )


@hookimpl
async def plugway_shutdown() -> None:
    import asyncio

    if _rt.writer is not None:
        await asyncio.to_thread(_rt.writer.close)


@hookimpl
def audit_event(event: dict[str, Any], config: Any) -> None:
    fields = {k: v for k, v in event.items() if k in _ADMIN_FIELDS}
    if _rt.writer is not None:
        _rt.writer.put("admin", fields)
    else:  # a CLI command: no writer thread, append now
        AuditLog(config.plugin_settings["audit"].path).append("admin", fields)


_ADMIN_FIELDS = frozenset({"action", "actor", "key_id", "team", "source", "detail"})


@hookimpl(trylast=True)
def post_response(ctx: RequestContext) -> None:
    writer = _rt.writer
    if writer is None or not _rt.settings.requests:
        return
    served = ctx.served_by
    usage = ctx.usage or {}
    writer.put(
        "request",
        {
            "request_id": ctx.request_id,
            "principal": ctx.principal,
            "team": ctx.tags.get("team"),
            "endpoint": ctx.endpoint,
            "model": redact(ctx.model[:200]),  # client-supplied: may hold a pasted key
            "target": served.key if served else None,
            "status": ctx.status,
            "error": None if ctx.error is None else ctx.error.code or type(ctx.error).__name__,
            "attempts": len(ctx.attempts),
            "prompt_tokens": usage.get("prompt_tokens"),
            "completion_tokens": usage.get("completion_tokens"),
            "cost": ctx.cost,
            "client_ip": ctx.client_ip,
        },
    )


# -- plugway audit verify ------------------------------------------------------------------------


@hookimpl
def register_commands(commands: Any) -> None:
    audit = commands.add_parser("audit", help="check the audit trail")
    sub = audit.add_subparsers(dest="audit_command", required=True)
    check = sub.add_parser("verify", help="detect edited, inserted or deleted records")
    check.add_argument("--config", "-c", help="TOML config file ([plugins.audit] path)")
    check.add_argument("--path", help="the audit file (overrides the config)")
    check.set_defaults(handler=_verify_command)


def _verify_command(args: argparse.Namespace) -> int:
    path = args.path
    if path is None and args.config:
        from plugway.gateway import load_gateway

        path = load_gateway(args.config).config.plugin_settings["audit"].path
    if not path:
        print("plugway audit: give --path or a --config with [plugins.audit] path", file=sys.stderr)
        return 2
    ok, message = verify(path)
    print(("OK: " if ok else "TAMPERED: ") + message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1
