"""The peers' CVE classes as regression tests against the running gateway, and the edge
hardening: SSRF through api_base or headers, Host-header auth bypass, SQL injection in the
key lookup, keys in error bodies, hop-by-hop and client auth headers, X-Forwarded-For, CORS,
size limits, slow clients, TLS."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from plugway.testing import FakeOpenAI, GatewayProcess
from sec_kit import MASTER, assert_openai_error, chat, create_key, keyed_config, new_db


@pytest.fixture(scope="module")
def attacker() -> Iterator[FakeOpenAI]:
    """A host the attacker controls: it must never see a request."""
    with FakeOpenAI() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def secured(
    primary: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, Path]]:
    trail = tmp_path_factory.mktemp("audit") / "trail.jsonl"
    extra = f'\n[plugins.audit]\npath = "{trail}"\n'
    with GatewayProcess(
        keyed_config(primary, new_db(), extra).replace(
            "[providers.primary]",
            "[server]\nmax_body_bytes = 65536\nmax_header_bytes = 4096\n"
            "client_timeout = 1\n\n[providers.primary]",
        ),
        env={"PLUGWAY_MASTER_KEY": MASTER},
    ) as gw:
        yield gw, trail


def test_ssrf_client_cannot_choose_the_upstream(
    secured: tuple[GatewayProcess, Path], primary: FakeOpenAI, attacker: FakeOpenAI
) -> None:
    gw, _ = secured
    body = {
        "model": "chat",
        "messages": [{"role": "user", "content": "x"}],
        "api_base": attacker.url + "/v1",
        "base_url": attacker.url + "/v1",
        "litellm_params": {"api_base": attacker.url},
        "extra_headers": {"host": "x"},
    }
    headers = {
        "authorization": f"Bearer {MASTER}",
        "x-portkey-custom-host": attacker.url,
        "x-forwarded-host": "evil.example",
        "x-upstream-url": attacker.url,
        "x-api-base": attacker.url,
    }
    response = httpx.post(gw.base_url + "/chat/completions", json=body, headers=headers)
    assert response.status_code == 200
    assert attacker.requests == []
    assert primary.requests[-1].headers["authorization"].endswith("PROVIDERSECRET123")
    # a model name shaped like a URL is not a host either
    assert_openai_error(chat(gw, MASTER, model=f"{attacker.url}/v1/x"), 404)
    assert_openai_error(chat(gw, MASTER, model="http://169.254.169.254/latest"), 404)
    assert attacker.requests == []


def test_host_header_cannot_bypass_auth(secured: tuple[GatewayProcess, Path]) -> None:
    gw, _ = secured
    for host in (
        f"localhost:{gw.port}/#@attacker.example",
        "localhost/health?",
        f"127.0.0.1:{gw.port}/health#",
        "attacker.example",
    ):
        with httpx.Client() as client:
            admin = client.post(gw.url + "/admin/keys", json={"team": "x"}, headers={"host": host})
            models = client.get(gw.base_url + "/models", headers={"host": host})
        assert admin.status_code in (400, 401), (host, admin.text)
        assert models.status_code in (400, 401), (host, models.text)
        assert "pw-" not in admin.text


@pytest.mark.parametrize(
    "injected",
    [
        "' OR '1'='1",
        "' OR 1=1 --",
        '" OR ""="',
        "x'; DROP TABLE keys; --",
        "pw-' UNION SELECT id, team, name, models, expires_at, limits, metadata, created_at, "
        "revoked_at FROM keys --",
    ],
)
def test_sql_injection_in_key_lookup(secured: tuple[GatewayProcess, Path], injected: str) -> None:
    gw, _ = secured
    live = create_key(gw, team="sqli")["key"]
    for header in ("authorization", "x-api-key"):
        value = f"Bearer {injected}" if header == "authorization" else injected
        models = httpx.get(gw.base_url + "/models", headers={header: value})
        assert_openai_error(models, 401)
        completion = httpx.post(
            gw.base_url + "/chat/completions",
            headers={header: value},
            json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
        )
        assert_openai_error(completion, 401)
        assert injected not in completion.text
    assert chat(gw, live).status_code == 200  # the table is still there


def test_keys_not_echoed_in_error_bodies(secured: tuple[GatewayProcess, Path]) -> None:
    gw, _ = secured
    key = create_key(gw, team="t", models=["other"])["key"]
    wrong = key[:-4] + "AAAA"
    for response in (chat(gw, wrong), chat(gw, key), chat(gw, key, model=key)):
        assert response.status_code in (401, 403)
        assert key not in response.text and wrong not in response.text
        assert key[3:20] not in response.text and key not in str(response.headers)


def test_client_auth_and_hop_by_hop_headers_not_forwarded(
    secured: tuple[GatewayProcess, Path], primary: FakeOpenAI
) -> None:
    gw, _ = secured
    response = httpx.post(
        gw.base_url + "/chat/completions",
        headers={
            "authorization": f"Bearer {MASTER}",
            "x-api-key": "client-x-key",
            "api-key": "client-azure-key",
            "x-goog-api-key": "client-goog-key",
            "proxy-authorization": "Basic Zm9vOmJhcg==",
            "connection": "keep-alive, x-hop",
            "x-hop": "1",
            "te": "trailers",
            "cookie": "session=abc",
        },
        json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
    )
    assert response.status_code == 200
    sent = {k.lower(): v for k, v in primary.requests[-1].headers.items()}
    assert sent["authorization"] == "Bearer sk-provider-canary-PROVIDERSECRET123"
    for name in (
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "proxy-authorization",
        "x-hop",
        "cookie",
        "te",
    ):
        assert name not in sent, name
    assert MASTER not in str(sent)
    assert "proxy-authorization" not in response.headers


def test_forwarded_for_ignored_unless_configured(
    secured: tuple[GatewayProcess, Path], primary: FakeOpenAI, start_gateway: object, tmp_path: Path
) -> None:
    gw, trail = secured
    rid = chat(gw, MASTER, text="xff").headers["x-request-id"]
    httpx.post(
        gw.base_url + "/chat/completions",
        headers={
            "authorization": f"Bearer {MASTER}",
            "x-forwarded-for": "6.6.6.6",
            "x-real-ip": "6.6.6.6",
            "forwarded": "for=6.6.6.6",
        },
        json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
    )
    time.sleep(0.3)
    records = [orjson.loads(line) for line in trail.read_bytes().splitlines()]
    requests = [r for r in records if r["kind"] == "request"]
    assert any(r["request_id"] == rid for r in requests)
    assert "6.6.6.6" not in trail.read_text()
    assert requests[-1]["client_ip"] == "127.0.0.1"
    # behind one configured proxy, the proxy's X-Forwarded-For entry is believed
    trail2 = tmp_path / "t2.jsonl"
    gw2 = start_gateway(
        keyed_config(
            primary,
            new_db(),
            f"\n[plugins.audit]\npath = "  # type: ignore[operator]
            f'"{trail2}"\n',
        ).replace("[providers.primary]", "[server]\nforwarded_proxies = 1\n\n[providers.primary]")
    )
    httpx.post(
        gw2.base_url + "/chat/completions",
        headers={"x-forwarded-for": "6.6.6.6"},
        json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
    )
    gw2.stop()
    assert '"client_ip":"6.6.6.6"' in trail2.read_text()


def test_cors_off_by_default_and_on_when_configured(
    secured: tuple[GatewayProcess, Path], primary: FakeOpenAI, start_gateway: object
) -> None:
    gw, _ = secured
    pre = {"origin": "https://evil.example", "access-control-request-method": "POST"}
    preflight = httpx.options(gw.base_url + "/chat/completions", headers=pre)
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code >= 400 and "error" in preflight.json()
    answer = chat(gw, MASTER)
    assert "access-control-allow-origin" not in answer.headers
    gw2 = start_gateway(
        keyed_config(primary, new_db()).replace(  # type: ignore[operator]
            "[providers.primary]",
            '[server]\ncors_origins = ["https://app.example"]\n\n[providers.primary]',
        )
    )
    ok = httpx.options(
        gw2.base_url + "/chat/completions", headers={**pre, "origin": "https://app.example"}
    )
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == "https://app.example"
    assert httpx.options(gw2.base_url + "/chat/completions", headers=pre).status_code == 403
    served = httpx.post(
        gw2.base_url + "/chat/completions",
        headers={"origin": "https://app.example"},
        json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
    )
    assert served.headers["access-control-allow-origin"] == "https://app.example"


def test_body_and_header_limits(secured: tuple[GatewayProcess, Path]) -> None:
    gw, _ = secured
    big = {"model": "chat", "messages": [{"role": "user", "content": "x" * 70_000}]}
    too_large = httpx.post(
        gw.base_url + "/chat/completions", json=big, headers={"authorization": f"Bearer {MASTER}"}
    )
    error = assert_openai_error(too_large, 413)
    assert error["type"] == "invalid_request_error"
    huge_header = httpx.post(
        gw.base_url + "/chat/completions",
        headers={"authorization": f"Bearer {MASTER}", "x-filler": "y" * 8000},
        json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
    )
    assert huge_header.status_code in (413, 431)
    assert chat(gw, MASTER).status_code == 200  # still serving


def test_slow_client_is_cut(secured: tuple[GatewayProcess, Path]) -> None:
    gw, _ = secured
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")
        started = time.monotonic()
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        waited = time.monotonic() - started
    assert waited < 4  # client_timeout = 1: the gateway closed on the dawdler
    assert data == b"" or b" 408 " in data.split(b"\r\n", 1)[0]


def test_client_stalling_inside_its_body_is_cut(secured: tuple[GatewayProcess, Path]) -> None:
    """The head arrives whole, the body stops after 10 of its 100 bytes: the gateway closes
    the connection after client_timeout (1 s) rather than holding it until the response
    timeout (longer than every upstream deadline)."""
    gw, _ = secured
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {MASTER}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            + b'{"model":"'
        )
        data = b""
        while chunk := sock.recv(4096):  # a socket timeout (5 s) here fails the test
            data += chunk
    assert b" 200 " not in data.split(b"\r\n", 1)[0]
    # a head sent in full, then a body that stalls
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
            b"Authorization: Bearer " + MASTER.encode() + b"\r\n\r\n{"
        )
        started = time.monotonic()
        while sock.recv(4096):
            pass
        waited = time.monotonic() - started
    assert waited < 4
    assert chat(gw, MASTER).status_code == 200


def _self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class TlsGateway(GatewayProcess):
    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


@pytest.mark.parametrize("workers", [1, 2])
def test_tls_with_minimum_1_3(
    primary: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    cert, key = _self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    config = keyed_config(primary, new_db()).replace(
        "[providers.primary]",
        f'[server]\nworkers = {workers}\ntls_cert = "{cert}"\ntls_key = "{key}"\n'
        'tls_min_version = "1.3"\n\n[providers.primary]',
    )
    with TlsGateway(config) as gw:
        context = ssl.create_default_context(cafile=str(cert))
        for _ in range(2 * workers):  # reach every worker
            response = httpx.post(
                gw.base_url + "/chat/completions",
                verify=context,
                json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
            )
            assert response.status_code == 200
            old = ssl.create_default_context(cafile=str(cert))
            old.maximum_version = ssl.TLSVersion.TLSv1_2
            with pytest.raises(httpx.ConnectError):
                httpx.get(gw.url + "/health", verify=old)
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{gw.port}/health", timeout=3)
