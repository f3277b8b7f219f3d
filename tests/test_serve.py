"""``plugway serve`` as users run it: several workers, each with its own gateway."""

from __future__ import annotations

import time

import httpx
from plugway.testing import GatewayProcess


def test_two_workers_serve_and_log_json_lines() -> None:
    with GatewayProcess(args=["--workers", "2"]) as gw:
        deadline = time.monotonic() + 30
        while gw.output().count("Worker ready") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gw.output().count("Worker ready") == 2
        with httpx.Client() as client:
            statuses = {
                client.post(
                    gw.base_url + "/chat/completions",
                    json={"model": "fake-chat", "messages": [{"role": "user", "content": "x"}]},
                ).status_code
                for _ in range(20)
            }
        assert statuses == {200}
        records = gw.request_logs(wait_for=20)
        assert len(records) == 20
        assert {r["provider"] for r in records} == {"fake"}
