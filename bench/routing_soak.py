"""A bounded resilience soak on loopback: the real gateway in front of a primary that fails at
random (5xx, 429, resets, slow answers, hangs) and a healthy backup, driven by many
concurrent clients. Every client request must succeed, and the upstream attempts beyond one
per request (same-target retries and hedges; failovers to the next target are bounded by the
plan instead) must stay within the retry budget.

    python bench/routing_soak.py --requests 3000 --concurrency 32

prints the figures as JSON and exits non-zero when a client request failed or the budget was
exceeded. ``tests/test_routing_soak.py`` runs a short one in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import random
import sys
import threading
import time
from typing import Any

import httpx
import orjson
from plugway.testing import Behaviour, FakeOpenAI, GatewayProcess, Hang, Reply, Reset, Status

BUDGET_RATIO, BUDGET_MIN, BUDGET_WINDOW = 0.2, 3, 10.0


class FlakyOpenAI(FakeOpenAI):
    """A fake OpenAI whose every answer is drawn at random (seeded) from a failure mix."""

    MIX: tuple[tuple[float, Behaviour], ...] = (
        (0.12, Status(503)),
        (0.05, Status(429)),
        (0.03, Status(500)),
        (0.03, Reset()),
        (0.02, Hang()),
        (0.05, Reply(delay=0.15)),
    )

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        self.draw_lock = threading.Lock()

    def _next(self) -> Behaviour:
        with self.draw_lock:
            point = self.rng.random()
        for share, behaviour in self.MIX:
            if point < share:
                return behaviour
            point -= share
        return Reply()


def soak_config(primary: FakeOpenAI, backup: FakeOpenAI) -> str:
    return f"""
[providers.primary]
type = "openai"
base_url = "{primary.url}/v1"
api_key = "sk-primary-0123456789"
timeout = 0.4

[providers.backup]
type = "openai"
base_url = "{backup.url}/v1"
api_key = "sk-backup-0123456789"
timeout = 2

[plugins.routing]
retry = {{ budget_ratio = {BUDGET_RATIO}, budget_min = {BUDGET_MIN}, budget_window = {BUDGET_WINDOW} }}

[[models]]
name = "soak"
deadline = 5
retry = {{ attempts = 2, base = 0.01, cap = 0.1 }}
hedge = {{ percentile = 95, min = 0.05, max = 0.3 }}
targets = [
  {{ provider = "primary", model = "flaky" }},
  {{ provider = "backup", model = "steady" }},
]
"""


async def drive(
    gw: GatewayProcess, requests: int, concurrency: int, stream_share: float, rng: random.Random
) -> list[tuple[int, float]]:
    results: list[tuple[int, float]] = []
    queue = list(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            queue.pop()
            stream = rng.random() < stream_share
            body = {
                "model": "soak",
                "messages": [{"role": "user", "content": "ping"}],
                "stream": stream,
            }
            started = time.monotonic()
            try:
                response = await client.post(gw.base_url + "/chat/completions", json=body)
                ok = response.status_code == 200 and (
                    b"data: [DONE]" in response.content
                    if stream
                    else b'"choices"' in response.content
                )
                status = response.status_code if ok else -response.status_code
            except httpx.HTTPError:
                status = 0
            results.append((status, time.monotonic() - started))

    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return results


def count_attempts(records: list[dict[str, Any]]) -> dict[str, int]:
    counts = {
        "attempts": 0,
        "primary": 0,
        "backup": 0,
        "retries": 0,
        "hedges": 0,
        "failovers": 0,
        "cancelled": 0,
    }
    for record in records:
        previous = None
        for attempt in record["attempts"]:
            counts["attempts"] += 1
            counts[attempt["target"].split("/")[0]] += 1
            if attempt.get("hedge"):
                counts["hedges"] += 1
            elif previous is not None and attempt["target"] == previous:
                counts["retries"] += 1
            elif previous is not None:
                counts["failovers"] += 1
            counts["cancelled"] += attempt["outcome"] == "cancelled"
            previous = attempt["target"]
    return counts


def run(
    requests: int = 3000, concurrency: int = 32, seed: int = 1, stream_share: float = 0.2
) -> dict[str, Any]:
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)  # the scripted resets
    with (
        FlakyOpenAI(seed) as primary,
        FakeOpenAI() as backup,
        GatewayProcess(soak_config(primary, backup)) as gw,
    ):
        started = time.monotonic()
        results = asyncio.run(drive(gw, requests, concurrency, stream_share, random.Random(seed)))
        elapsed = time.monotonic() - started
        records = gw.request_logs(wait_for=requests, timeout=15)
    counts = count_attempts(records)
    latencies = sorted(latency for _, latency in results)
    windows = math.ceil(elapsed / BUDGET_WINDOW) + 1
    budget = math.floor(BUDGET_RATIO * requests + BUDGET_MIN * windows)
    failed = [status for status, _ in results if status != 200]
    return {
        "requests": requests,
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "requests_per_second": round(requests / elapsed, 1),
        "client_failures": len(failed),
        "logged": len(records),
        **counts,
        "retry_budget": budget,
        "extra_attempts_budgeted": counts["retries"] + counts["hedges"],
        "primary_upstream_requests": len(primary.requests),
        "primary_disconnects": primary.disconnects,
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
        "max_ms": round(latencies[-1] * 1000, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    figures = run(args.requests, args.concurrency, args.seed)
    print(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())
    ok = (
        figures["client_failures"] == 0
        and figures["logged"] == args.requests
        and figures["extra_attempts_budgeted"] <= figures["retry_budget"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
