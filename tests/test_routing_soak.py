"""A short run of bench/routing_soak.py: a flaky primary (5xx, 429, resets, hangs, slow
answers) and a steady backup; every client request succeeds and same-target retries plus
hedges stay within the retry budget."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SOAK = Path(__file__).resolve().parent.parent / "bench" / "routing_soak.py"


def test_soak_every_request_succeeds_within_the_retry_budget() -> None:
    spec = importlib.util.spec_from_file_location("routing_soak", SOAK)
    assert spec is not None and spec.loader is not None
    soak = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(soak)
    figures = soak.run(requests=500, concurrency=16, seed=3)
    assert figures["client_failures"] == 0
    assert figures["logged"] == 500
    assert figures["extra_attempts_budgeted"] <= figures["retry_budget"]
    assert figures["retries"] > 0 and figures["failovers"] > 0  # the primary did fail
    # the attempts the gateway logged are the calls the upstream saw: none is hidden
    assert figures["primary_upstream_requests"] == figures["primary"]
    assert figures["failovers"] <= 500  # at most one per request: the plan has two targets
