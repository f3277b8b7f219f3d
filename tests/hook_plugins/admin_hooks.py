"""A plugin implementing the administrative hooks with effects a test can see
(tests/test_hooks_admin.py)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from plugway.hooks import hookimpl
from plugway.state import MemoryBackend


class RecordingBackend(MemoryBackend):
    """The in-process backend, remembering that this plugin made it."""

    made_by = "admin_hooks"


@hookimpl
def register_state_backends(register: Callable[..., None]) -> None:
    register("hooktest_state", RecordingBackend)


@hookimpl
def check_config(config: Any) -> list[str] | None:
    if any(model.name == "forbidden" for model in config.models):
        return ["models.forbidden: the hook test refuses this name; use another one"]
    return None


def _hello(args: argparse.Namespace) -> int:
    print(f"hello {args.who}")
    return 3


@hookimpl
def register_commands(commands: Any) -> None:
    parser = commands.add_parser("hooktest-hello", help="say hello")
    parser.add_argument("who")
    parser.set_defaults(handler=_hello)


@hookimpl
def audit_event(event: dict[str, Any]) -> None:
    path = os.environ.get("HOOKTEST_AUDIT_FILE")
    if path:
        with Path(path).open("ab") as out:
            out.write(orjson.dumps(event) + b"\n")
