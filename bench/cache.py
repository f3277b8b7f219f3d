"""What the response cache costs on a miss and what a hit gives, end to end: the bench
upstream on core 1 with the load generator, each gateway alone on core 0, interleaved rounds.

Targets: ``null`` (the aiohttp pass-through, the limit for this stack), ``plugway`` (no
cache), ``cache-miss`` (cache on; every request sends ``cache-control: no-cache``, so each one
computes its key and stores its answer: a miss's work less one dict lookup), ``cache-hit``
(cache on, the same request every time: all hits after the first). Also an in-process figure
per request for the key and the store. Prints JSON.

``python bench/cache.py [--rounds 3] [--duration 3] [--out bench/results/cache.json]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from run import HERE, PY, UP_PORT, Target, load, log, median, plugway_config, rotate, settle

CACHE = "\n[plugins.cache]\nenabled = true\n"


def micro(calls: int) -> dict[str, float]:
    """Microseconds per call for the miss path's own work (key, lookup, entry, store) and a
    hit's (lookup, decode), in-process, on the load generator's request."""
    import asyncio

    import orjson
    from plugway.context import RequestContext
    from plugway.plugins.cache import keying
    from plugway.plugins.cache.stores import MemoryStore

    sys.path.insert(0, str(HERE))
    from load import PROMPT

    body = {"model": "l0-s", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 64}
    # about the bench upstream's 1.4 KB answer
    answer = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "l0-s",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "tok " * 300},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 30, "completion_tokens": 64, "total_tokens": 94},
    }
    store = MemoryStore(10_000, 64 << 20)

    async def run() -> dict[str, float]:
        ctx = RequestContext(endpoint="chat.completions", body=body, headers={}, model="l0-s")
        t0 = time.perf_counter()
        for i in range(calls):
            key = keying.cache_key(ctx, "l0-s", "team")
            await store.get(key + str(i))
            data = orjson.dumps({"body": answer, "deltas": None, "cost": 0.001, "at": 0.0})
            await store.put(key, data, 60)
        miss = (time.perf_counter() - t0) / calls * 1e6
        t0 = time.perf_counter()
        for _ in range(calls):
            key = keying.cache_key(ctx, "l0-s", "team")
            raw = await store.get(key)
            assert raw is not None
            orjson.loads(raw)
        hit = (time.perf_counter() - t0) / calls * 1e6
        return {"miss_us": round(miss, 2), "hit_us": round(hit, 2)}

    return asyncio.run(run())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--concurrency", default="16,64")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="plugway-bench-cache-"))
    serve = [str(Path(PY).parent / "plugway"), "serve", "--log-level", "WARNING", "--config"]
    null = [PY, str(HERE / "null_proxy.py"), "--upstream", f"http://127.0.0.1:{UP_PORT}/v1"]

    def config(port: int, name: str, extra: str = "") -> str:
        path = plugway_config(port, tmp / f"{name}.toml")
        path.write_text(path.read_text() + extra)
        return str(path)

    targets = [
        Target("null", 9201, [*null, "--port", "9201", "--transport", "aiohttp"]),
        Target("plugway", 9300, [*serve, config(9300, "plugway")]),
        Target(
            "cache-miss",
            9302,
            [*serve, config(9302, "miss", CACHE)],
            headers={"cache-control": "no-cache"},
        ),
        Target("cache-hit", 9303, [*serve, config(9303, "hit", CACHE)]),
    ]
    upstream = subprocess.Popen(
        ["taskset", "-c", "1", PY, str(HERE / "upstream.py"), "--port", str(UP_PORT)]
    )
    results: dict[str, Any] = {"micro": micro(20_000)}
    log("in-process", results["micro"])
    try:
        for target in targets:
            target.start("0")
        for target in targets:
            if not target.wait_ready():
                raise SystemExit(f"{target.name}: {target.error}")
        points = [int(c) for c in args.concurrency.split(",")]
        raw: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for r in range(args.rounds):
            for conc in points:
                for target in rotate(targets, r):
                    result = load(
                        target,
                        "closed",
                        model="l0-s",
                        concurrency=conc,
                        duration=args.duration,
                        warmup=0.5,
                    )
                    settle(target)
                    raw.setdefault(str(conc), {}).setdefault(target.name, []).append(result)
                    log(
                        f"r{r} @{conc} {target.name}: rps={result.get('rps')} "
                        f"p50={result.get('p50')} cpu/req={result.get('cpu_ms_per_req')}ms"
                    )
        results["closed"] = {
            conc: {
                name: {
                    key: median([run.get(key) for run in runs])
                    for key in ("rps", "p50", "p99", "cpu_ms_per_req", "errors")
                }
                for name, runs in by_target.items()
            }
            for conc, by_target in raw.items()
        }
        results["raw"] = raw
    finally:
        for target in targets:
            target.stop()
        upstream.terminate()
        upstream.wait(10)
    text = json.dumps(results, indent=2)
    if args.out:
        args.out.write_text(text)
    summary = {k: v for k, v in results.items() if k != "raw"}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
