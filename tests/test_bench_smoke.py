"""The benchmark harness still runs: its fake upstream, its load generator (closed, open and
streaming modes) against it, and the per-hook cost probe, each for a second or less. Numbers
are not checked (speed is for benchmarks), only that every request was answered."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from plugway.testing.gateway_process import free_port

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(BENCH / "upstream.py"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def load(url: str, *args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, str(BENCH / "load.py"), *args, "--url", url],
        capture_output=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_upstream_answers_like_openai(upstream: str) -> None:
    answer = httpx.post(upstream, json={"model": "l0-s", "messages": []})
    assert answer.status_code == 200
    body = answer.json()
    assert body["object"] == "chat.completion"
    assert 1200 < len(answer.content) < 1700
    large = httpx.post(upstream, json={"model": "l20-l", "messages": []})
    assert 9000 < len(large.content) < 11000
    assert httpx.post(upstream, json={"model": "nope"}).status_code == 404


def test_closed_and_open_loop(upstream: str) -> None:
    closed = load(upstream, "closed", "--concurrency", "4", "--duration", "1", "--warmup", "0.1")
    assert closed["ok"] and not closed["errors"]
    opened = load(upstream, "open", "--rate", "100", "--duration", "0.5", "--model", "l20-s")
    assert opened["ok"] == 50 and not opened["errors"]


def test_streams_are_counted_whole(upstream: str) -> None:
    result = load(upstream, "stream", "--streams", "4", "--model", "stream", "--ramp", "0")
    assert result["complete"] == 4 and not result["failed"]


@pytest.mark.parametrize("transport", ["aiohttp", "direct", "raw"])
def test_null_proxy_forwards_answers_and_streams(upstream: str, transport: str) -> None:
    port = free_port()
    base = upstream.removesuffix("/chat/completions")
    process = subprocess.Popen(
        [
            *(sys.executable, str(BENCH / "null_proxy.py"), "--port", str(port)),
            *("--upstream", base, "--transport", transport),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.post(url, json={"model": "l0-s", "messages": []}, timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the null proxy did not start"
                time.sleep(0.1)
        assert answer.status_code == 200
        assert answer.json()["choices"][0]["message"]["content"]
        result = load(url, "stream", "--streams", "3", "--model", "stream", "--ramp", "0")
        assert result["complete"] == 3 and not result["failed"]
    finally:
        process.terminate()
        process.wait(10)


def test_hook_cost_probe_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "hook_cost.py"), "--calls", "200"],
        capture_output=True,
        timeout=60,
        check=True,
    )
    result = json.loads(done.stdout)
    assert set(result["noop_cost_us"]) >= {"pre_route", "select_provider", "post_response"}
