"""Helpers for the security tests: a real redis-server on loopback, configs with keys."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from plugway.testing import FakeOpenAI, GatewayProcess
from plugway.testing.gateway_process import free_port

MASTER = "mk-test-master-key-0123456789abcdef"


class RedisServer:
    """``redis-server`` on a free loopback port, no persistence."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed (.ci/run installs it)"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()
        return self

    def flush(self) -> None:
        import redis

        with redis.Redis(port=self.port) as client:
            client.flushall()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def keyed_config(
    upstream: FakeOpenAI,
    db: Path,
    extra: str = "",
    price: str = "{ input = 1000.0, output = 2000.0 }",
) -> str:
    """One OpenAI-format provider, models ``chat`` and ``other``, keys in ``db``."""
    return f"""
[providers.primary]
type = "openai"
base_url = "{upstream.url}/v1"
api_key = "sk-provider-canary-PROVIDERSECRET123"
timeout = 5

[[models]]
name = "chat"
targets = [{{ provider = "primary", model = "gpt-4o-mini", price = {price} }}]

[[models]]
name = "other"
targets = [{{ provider = "primary", model = "gpt-4o-other" }}]

[plugins.keys]
db = "{db}"
cache_seconds = 0.5
{extra}
"""


def new_db() -> Path:
    return Path(tempfile.mkdtemp(prefix="plugway-keys-")) / "keys.db"


def create_key(gw: GatewayProcess, **body: Any) -> dict[str, Any]:
    response = httpx.post(
        gw.url + "/admin/keys", json=body, headers={"authorization": f"Bearer {MASTER}"}
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


def chat(
    gw: GatewayProcess, key: str | None, model: str = "chat", text: str = "hi", **extra: Any
) -> httpx.Response:
    headers = {} if key is None else {"authorization": f"Bearer {key}"}
    return httpx.post(
        gw.base_url + "/chat/completions",
        headers=headers,
        timeout=10,
        json={"model": model, "messages": [{"role": "user", "content": text}], **extra},
    )


def assert_openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error
