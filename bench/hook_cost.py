"""What an installed no-op plugin costs per hook, in-process: every request hook called through
the gateway's :class:`~plugway.hookcall.HookRunner` as the pipeline calls it, with and without
``bench/noop_plugin`` registered, on the built-in default config. Prints JSON (microseconds
per call). ``stream_chunk`` also shows the per-chunk price the core pays once any plugin
implements that hook (each chunk parsed and serialised again): zero when none does.

``python bench/hook_cost.py [--calls 20000]``
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from plugway import pipeline
from plugway.context import Attempt, RequestContext
from plugway.errors import UpstreamUnavailable
from plugway.gateway import Gateway, load_gateway

NOOP = Path(__file__).resolve().parent / "noop_plugin" / "plugway_bench_noop.py"
#: The no-op plugin is installed this many times (as distinct modules) and the difference is
#: divided by it: one copy's cost is too close to the noise of a shared machine.
COPIES = 10


def noop_copies() -> list[tuple[str, object]]:
    """Fresh module objects of the no-op plugin, loaded from its file (on sys.path its
    dist-info would install it in the "without" gateway too)."""
    copies: list[tuple[str, object]] = []
    for i in range(COPIES):
        spec = importlib.util.spec_from_file_location(f"plugway_bench_noop_{i}", NOOP)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        copies.append((f"bench_noop_{i}", module))
    return copies


CHUNK = (
    b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"bench","choices":[{"index":0,"delta":{"content":"tok001 "},"logprobs":null,'
    b'"finish_reason":null}]}\n\n'
)


def context() -> RequestContext:
    return RequestContext(
        endpoint="chat.completions",
        body={"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]},
        headers={},
        model="fake-chat",
    )


async def per_call(calls: int, step: Callable[[], Awaitable[Any]]) -> float:
    for _ in range(200):
        await step()
    best = float("inf")
    for _ in range(2):  # best of two: the machine is shared
        start = time.perf_counter()
        for _ in range(calls):
            await step()
        best = min(best, time.perf_counter() - start)
    return best / calls * 1e6


async def measure(gw: Gateway, calls: int) -> dict[str, float]:
    hooks = gw.hooks
    ctx = context()
    ctx.route = gw.router.resolve("fake-chat")
    candidates = ctx.route.targets
    attempt = Attempt(candidates[0], 1, 0, 0, time.monotonic())
    error = UpstreamUnavailable("bench", provider="fake")
    chunk = {"choices": [{"index": 0, "delta": {"content": "tok"}}]}
    steps: dict[str, Callable[[], Awaitable[Any]]] = {
        "pre_route": lambda: hooks.call_all("pre_route", ctx=ctx),
        "select_provider": lambda: hooks.call_first(
            "select_provider", ctx=ctx, candidates=candidates
        ),
        "on_failure": lambda: hooks.call_first("on_failure", ctx=ctx, attempt=attempt, error=error),
        "stream_chunk": lambda: hooks.call_chain("stream_chunk", "chunk", chunk, ctx=ctx),
        "post_response": lambda: hooks.notify("post_response", ctx=ctx, response=None),
    }
    if hooks.has("stream_chunk"):  # per chunk (with every no-op impl present)
        steps["stream_chunk (core: parse + hook + serialise)"] = lambda: pipeline.rewrite_chunks(
            gw, ctx, CHUNK
        )
    return {name: round(await per_call(calls, step), 3) for name, step in steps.items()}


async def main_async(calls: int) -> dict[str, Any]:
    from loguru import logger

    logger.remove()  # the request logger still builds its records; nothing is written
    plain = load_gateway(environ={})
    with_noop = load_gateway(environ={}, extra_plugins=noop_copies())
    base: dict[str, float] = {}
    noop: dict[str, float] = {}
    for _ in range(3):  # interleaved, the best of each
        for into, gw in ((base, plain), (noop, with_noop)):
            for name, value in (await measure(gw, calls)).items():
                into[name] = min(value, into.get(name, value))
    return {
        "calls": calls,
        "copies": COPIES,
        "without_noop_us": base,
        "with_noops_us": noop,
        "noop_cost_us": {
            name: round((noop[name] - base[name]) / COPIES, 3) for name in base if name in noop
        },
        "note": "post_response includes the built-in request logger building its record "
        "(output muted); the difference is the no-op plugin alone",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="cost of a no-op plugin per hook")
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    if args.calls > 1_000_000:
        parser.error("bounded: --calls <= 1000000")
    result = asyncio.run(main_async(args.calls))
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
