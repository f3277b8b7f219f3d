"""The MCP gateway end to end: real MCP servers made with the mcp SDK (one over Streamable
HTTP in a subprocess, one over stdio started by the gateway), the mcp SDK's own client
against ``/mcp`` and ``/mcp/{server}`` in both protocol eras, keys and their ``mcp_tools``
scopes, filters on tool results, limits and budgets, a dead server, a slow tool, a crashed
stdio server, metrics, the request log and the audit trail."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from plugway.testing import GatewayProcess
from plugway.testing.gateway_process import free_port, run_plugway
from sec_kit import MASTER, create_key, new_db

HERE = Path(__file__).parent
SERVER = HERE / "fixtures" / "mcp_tool_server.py"
HOOKS = HERE / "hook_plugins" / "mcp_tool_hooks.py"
UPSTREAM_TOKEN = "upstream-token-7f3a9c2e5b1d"
MODERN, HANDSHAKE = "2026-07-28", "2025-11-25"


def serve_http(kind: str, name: str, path: str, env: dict[str, str]) -> Iterator[str]:
    """The fixture server over HTTP (``kind`` "http" or "sse") in a subprocess; its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(SERVER), kind, str(port)],
        env={"MCP_SERVER_NAME": name, "PATH": "/usr/bin", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}{path}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.head(url, timeout=1)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(10)


@pytest.fixture(scope="module")
def web_server() -> Iterator[str]:
    """The Streamable HTTP server, which answers only with the upstream token."""
    yield from serve_http("http", "web", "/mcp", {"MCP_REQUIRE_TOKEN": UPSTREAM_TOKEN})


@pytest.fixture(scope="module")
def sse_server() -> Iterator[str]:
    """A server on the legacy HTTP+SSE transport."""
    yield from serve_http("sse", "old", "/sse", {})


def gateway_config(web_url: str, db: Path, extra: str = "") -> str:
    return f"""
[mcp.servers.web]
url = "{web_url}"
headers = {{ Authorization = "Bearer ${{WEB_MCP_TOKEN}}" }}
timeout = 2
price_per_call = 0.01

[mcp.servers.local]
command = "{sys.executable}"
args = ["{SERVER}", "stdio"]
env = {{ MCP_SERVER_NAME = "local" }}
timeout = 10

[mcp.servers.dead]
url = "http://127.0.0.1:{free_port()}/mcp"
connect_timeout = 1

[plugins.keys]
db = "{db}"
cache_seconds = 0.2

[plugins.secrets]
action = "redact"

[plugins.prompt_guard]
tool_descriptions = "hide"
{extra}
"""


@pytest.fixture(scope="module")
def audit_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audit") / "trail.jsonl"


@pytest.fixture(scope="module")
def silent_server() -> Iterator[str]:
    """A port that accepts connections and never answers (a hung server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/mcp"


@pytest.fixture(scope="module")
def gw(
    web_server: str, sse_server: str, silent_server: str, audit_path: Path
) -> Iterator[GatewayProcess]:
    extra = f"""
[plugins.audit]
path = "{audit_path}"

[mcp.servers.silent]
url = "{silent_server}"
connect_timeout = 1

[mcp.servers.old]
url = "{sse_server}"
transport = "sse"
"""
    with GatewayProcess(
        gateway_config(web_server, new_db(), extra),
        env={"PLUGWAY_MASTER_KEY": MASTER, "WEB_MCP_TOKEN": UPSTREAM_TOKEN},
        plugins=[HOOKS],
    ) as process:
        yield process


@asynccontextmanager
async def mcp_client(url: str, key: str | None, mode: str = "auto") -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {key}"} if key else None
    async with (
        create_mcp_http_client(headers=headers) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        yield client


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


async def tool_names(client: Client) -> list[str]:
    return [tool.name for tool in (await client.list_tools()).tools]


# -- serving -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "era"), [("auto", MODERN), ("legacy", HANDSHAKE)])
def test_all_servers_on_mcp_in_both_protocol_eras(gw: GatewayProcess, mode: str, era: str) -> None:
    async def main() -> None:
        async with mcp_client(gw.url + "/mcp", MASTER, mode) as client:
            assert client.protocol_version == era
            names = await tool_names(client)
            assert {"web__add", "web__echo", "local__echo", "local__whoami"} <= set(names)
            assert not [n for n in names if n.startswith("dead__")]  # down: left out
            added = await client.call_tool("web__add", {"a": 2, "b": 3})
            assert not added.is_error and added.structured_content == {"result": 5}
            echoed = await client.call_tool("local__echo", {"text": "hi"})
            assert text_of(echoed) == "local: HI"  # the hook plugin upper-cased the argument
            prompts = [p.name for p in (await client.list_prompts()).prompts]
            assert {"web__greet", "local__greet"} <= set(prompts)
            greeting = await client.get_prompt("local__greet", {"name": "Ada"})
            assert "Ada" in str(greeting.messages[0].content)
            read = await client.read_resource("docs://readme")
            assert read.contents[0].text in ("readme of web", "readme of local")  # type: ignore[union-attr]

    run(main())


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_one_server_keeps_its_tool_names(gw: GatewayProcess, mode: str) -> None:
    async def main() -> None:
        async with mcp_client(gw.url + "/mcp/local", MASTER, mode) as client:
            names = await tool_names(client)
            assert "echo" in names and not any("__" in n for n in names)
            assert text_of(await client.call_tool("echo", {"text": "x"})) == "local: X"
            resources = (await client.list_resources()).resources
            assert [str(r.uri) for r in resources] == ["docs://readme"]
            read = await client.read_resource("docs://readme")
            assert read.contents[0].text == "readme of local"  # type: ignore[union-attr]
            with pytest.raises(MCPError, match="Unknown tool"):
                await client.call_tool("web__echo", {"text": "x"})

    run(main())
    stream = httpx.get(gw.url + "/mcp/local", headers={"authorization": f"Bearer {MASTER}"})
    assert stream.status_code == 405  # no server-initiated stream in stateless mode
    missing = httpx.post(gw.url + "/mcp/nosuch", headers={"authorization": f"Bearer {MASTER}"})
    assert missing.status_code == 404 and "nosuch" in missing.json()["error"]["message"]


def test_upstream_credentials_stay_upstream(gw: GatewayProcess) -> None:
    # the web server refuses requests without its token: the gateway sends it from config
    async def main() -> str:
        async with mcp_client(gw.url + "/mcp/web", MASTER) as client:
            return text_of(await client.call_tool("echo", {"text": "t"}))

    assert run(main()) == "web: T"
    plugins = httpx.get(gw.url + "/-/plugins", headers={"authorization": f"Bearer {MASTER}"})
    ready = httpx.get(gw.url + "/ready")
    assert plugins.json()["status"]["mcp"]["web"]["transport"] == "streamable-http"
    assert plugins.json()["status"]["mcp"]["local"]["transport"] == "stdio"
    for text in (plugins.text, ready.text, gw.output()):
        assert UPSTREAM_TOKEN not in text


# -- auth and scopes ---------------------------------------------------------------------------


def test_mcp_needs_a_key(gw: GatewayProcess) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    for headers in ({}, {"authorization": "Bearer pw-not-a-key"}):
        for path in ("/mcp", "/mcp/web"):
            response = httpx.post(gw.url + path, json=body, headers=headers)
            assert response.status_code == 401, response.text

    async def main() -> None:
        async with mcp_client(gw.url + "/mcp", None) as client:
            await client.list_tools()

    with pytest.raises(Exception):  # noqa: B017 - the SDK's error type for a 401 varies
        run(main())


def test_key_scopes_decide_what_is_listed_and_callable(gw: GatewayProcess) -> None:
    key = create_key(gw, team="agents", mcp_tools=["web/add", "local/e*"])
    assert key["mcp_tools"] == ["web/add", "local/e*"]

    async def main() -> None:
        async with mcp_client(gw.url + "/mcp", key["key"]) as client:
            assert sorted(await tool_names(client)) == ["local__echo", "web__add"]
            assert (await client.call_tool("web__add", {"a": 1, "b": 1})).structured_content == {
                "result": 2
            }
            for outside in ("web__echo", "local__whoami", "dead__anything", "nosuch"):
                with pytest.raises(MCPError, match="Unknown tool"):
                    await client.call_tool(outside, {"text": "x"})
        async with mcp_client(gw.url + "/mcp/web", key["key"], "legacy") as client:
            assert await tool_names(client) == ["add"]
            with pytest.raises(MCPError, match="Unknown tool"):
                await client.call_tool("echo", {"text": "x"})

    run(main())
    bad = httpx.post(
        gw.url + "/admin/keys",
        json={"team": "t", "mcp_tools": "web/*"},
        headers={"authorization": f"Bearer {MASTER}"},
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "mcp_tools"


def test_keys_cli_takes_mcp_tools(tmp_path: Path) -> None:
    db = tmp_path / "keys.db"
    made = run_plugway(
        "keys", "create", "--db", str(db), "--team", "t", "--json",
        "--mcp-tools", "github/*,docs/search", "--mcp-tools", "files/read_*",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert orjson.loads(made.stdout)["mcp_tools"] == ["github/*", "docs/search", "files/read_*"]
    unscoped = run_plugway("keys", "create", "--db", str(db), "--team", "t", "--json")
    assert orjson.loads(unscoped.stdout)["mcp_tools"] is None


# -- hooks and filters -------------------------------------------------------------------------


def test_hook_pre_tool_call(gw: GatewayProcess) -> None:
    async def main() -> None:
        async with mcp_client(gw.url + "/mcp/web", MASTER) as client:
            vetoed = await client.call_tool("echo", {"text": "forbidden"})
            assert vetoed.is_error and "not allowed" in text_of(vetoed)
            assert text_of(await client.call_tool("echo", {"text": "ok"})) == "web: OK"

    run(main())


def test_hook_post_tool_call(gw: GatewayProcess) -> None:
    async def main() -> str:
        async with mcp_client(gw.url + "/mcp/web", MASTER) as client:
            return text_of(await client.call_tool("add", {"a": 1, "b": 2}))

    assert run(main()) == "3checked by hook (master)"


def test_hook_tools_listed(gw: GatewayProcess) -> None:
    # prompt_guard (tool_descriptions = "hide") hides the poisoned tool: not listed, not callable
    async def main() -> None:
        async with mcp_client(gw.url + "/mcp/web", MASTER) as client:
            names = await tool_names(client)
            assert "poisoned" not in names and "echo" in names
            with pytest.raises(MCPError, match="Unknown tool"):
                await client.call_tool("poisoned", {"date": "today"})

    run(main())


def test_secret_in_a_tool_result_is_redacted(gw: GatewayProcess) -> None:
    async def main() -> str:
        async with mcp_client(gw.url + "/mcp", MASTER, "legacy") as client:
            return text_of(await client.call_tool("web__leak", {}))

    text = run(main())
    assert "sk-proj-" not in text and "[SECRET]" in text and text.startswith("deploy with")


# -- limits and budgets ------------------------------------------------------------------------


def test_rate_limit_and_budget_refused_without_an_upstream_call(gw: GatewayProcess) -> None:
    limited = create_key(gw, team="t", limits={"rpm": 1})["key"]
    broke = create_key(gw, team="t", limits={"budget_usd": 0.015})["key"]

    async def count(key: str) -> int:
        async with mcp_client(gw.url + "/mcp/web", key) as client:
            return int(text_of(await client.call_tool("count", {})))

    async def refused(key: str) -> MCPError:
        async with mcp_client(gw.url + "/mcp/web", key) as client:
            with pytest.raises(MCPError) as caught:
                await client.call_tool("count", {})
        return caught.value

    if time.time() % 60 > 50:  # rpm windows are whole minutes: keep both calls in one
        time.sleep(60.5 - time.time() % 60)
    before = run(count(MASTER))
    assert run(count(limited)) == before + 1
    throttled = run(refused(limited))
    assert throttled.code == -32040 and throttled.data["status"] == 429
    assert "Rate limit reached" in throttled.message
    assert run(count(broke)) == before + 2  # charged price_per_call = 0.01: the budget is spent
    spent = run(refused(broke))
    assert spent.data["code"] == "budget_exceeded" and spent.data["status"] == 429
    assert run(count(MASTER)) == before + 3  # neither refused call reached the server


# -- failures ----------------------------------------------------------------------------------


def test_dead_server_is_a_clear_error_and_never_takes_mcp_down(gw: GatewayProcess) -> None:
    async def main() -> None:
        async with mcp_client(gw.url + "/mcp/dead", MASTER) as client:
            with pytest.raises(MCPError, match="'dead' is unavailable") as caught:
                await client.list_tools()
            assert caught.value.code == -32050
        async with mcp_client(gw.url + "/mcp/silent", MASTER) as client:
            # a server that never answers is given up on at its connect timeout (1 s)
            with pytest.raises(MCPError, match=r"'silent' is unavailable.*no answer within 1s"):
                await client.list_tools()
            silent = await client.call_tool("anything", {})
            assert silent.is_error and "'silent' is unavailable" in text_of(silent)
        async with mcp_client(gw.url + "/mcp", MASTER) as client:
            names = await tool_names(client)
            assert "web__add" in names and not [n for n in names if n.startswith("silent__")]

    run(main())
    detail = httpx.get(gw.url + "/ready").json()["detail"]["mcp"]
    assert detail["silent"]["state"] == "unavailable"
    assert detail["dead"]["state"] == "unavailable" and detail["dead"]["error"]
    assert detail["web"]["state"] == "connected"


def test_slow_tool_ends_as_an_error_result(gw: GatewayProcess) -> None:
    async def main() -> None:
        async with mcp_client(gw.url + "/mcp/web", MASTER) as client:
            slow = await client.call_tool("slow", {"seconds": 4})
            assert slow.is_error and "did not answer within 2s" in text_of(slow)
            # the session outlives the timeout
            assert (await client.call_tool("add", {"a": 1, "b": 1})).structured_content == {
                "result": 2
            }
            broken = await client.call_tool("broken", {})
            assert broken.is_error and "broken" in text_of(broken)

    run(main())


def test_crashed_stdio_server_is_restarted(gw: GatewayProcess) -> None:
    async def main() -> None:
        async with mcp_client(gw.url + "/mcp/local", MASTER) as client:
            first = text_of(await client.call_tool("whoami", {}))
            crashed = await client.call_tool("crash", {})
            assert crashed.is_error and "local" in text_of(crashed)
            second = text_of(await client.call_tool("whoami", {}))
            assert second.isdigit() and second != first

    run(main())


# -- observability -----------------------------------------------------------------------------


def test_tool_calls_are_logged_counted_and_audited(gw: GatewayProcess, audit_path: Path) -> None:
    key = create_key(gw, team="observed", mcp_tools=["web/*"])

    async def main() -> None:
        async with mcp_client(gw.url + "/mcp", key["key"]) as client:
            await client.call_tool("web__echo", {"text": "private words"})
            await client.call_tool("web__slow", {"seconds": 3})

    run(main())
    records = [
        r for r in gw.request_logs(wait_for=1) if r.get("mcp") and r["principal"] == key["id"]
    ]
    deadline = time.monotonic() + 5
    while len(records) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        records = [r for r in gw.request_logs() if r.get("mcp") and r["principal"] == key["id"]]
    by_tool = {r["mcp"]["tool"]: r for r in records}
    echo = by_tool["echo"]
    assert echo["endpoint"] == "mcp.tools/call" and echo["status"] == 200
    assert echo["mcp"]["server"] == "web" and echo["mcp"]["team"] == "observed"
    assert echo["mcp"]["outcome"] == "ok" and echo["mcp"]["result_chars"] > 0
    assert echo["latency_ms"] is not None
    assert by_tool["slow"]["mcp"]["outcome"] == "timeout" and by_tool["slow"]["status"] == 504
    assert "private words" not in gw.output()

    metrics = httpx.get(gw.url + "/metrics", headers={"authorization": f"Bearer {MASTER}"}).text
    assert 'plugway_mcp_calls_total{outcome="ok",server="web",tool="echo"}' in metrics
    assert 'plugway_mcp_calls_total{outcome="timeout",server="web",tool="slow"}' in metrics
    assert 'plugway_mcp_call_duration_seconds_count{server="web",tool="echo"}' in metrics

    deadline = time.monotonic() + 10
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        if audit_path.exists():
            rows = [orjson.loads(line) for line in audit_path.read_bytes().splitlines()]
            rows = [r for r in rows if r.get("principal") == key["id"]]
            if len(rows) >= 2:
                break
        time.sleep(0.2)
    models = {r["model"] for r in rows if r["kind"] == "request"}
    assert {"mcp/web/echo", "mcp/web/slow"} <= models
    assert all(r["endpoint"] == "mcp.tools/call" and r["team"] == "observed" for r in rows)
    assert "private words" not in audit_path.read_text()

    # plugway usage reports tool calls beside model calls, by "mcp/server/tool"
    assert gw.config_path is not None
    deadline = time.monotonic() + 10
    while True:
        done = run_plugway(
            "usage", "--config", str(gw.config_path), "--by", "model", "--json", env=gw.env
        )
        assert done.returncode == 0, done.stderr
        groups = orjson.loads(done.stdout)["groups"]
        if "mcp/web/slow" in groups or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert groups["mcp/web/echo"]["requests"] >= 1
    assert groups["mcp/web/slow"]["errors"] >= 1


# -- several workers ---------------------------------------------------------------------------


def sse_message(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC answer in a Streamable HTTP response (an SSE ``message`` event)."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    data = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
    message: dict[str, Any] = orjson.loads(data[-1])
    return message


def test_two_workers_serve_both_eras_without_affinity(web_server: str) -> None:
    """No session lives between requests: a handshake made on one connection (and worker)
    is not needed by the next, so each request may land on either worker."""
    config = gateway_config(web_server, new_db())
    env = {"PLUGWAY_MASTER_KEY": MASTER, "WEB_MCP_TOKEN": UPSTREAM_TOKEN}
    with GatewayProcess(config, env=env, args=["--workers", "2"]) as two:
        headers = {
            "authorization": f"Bearer {MASTER}",
            "accept": "application/json, text/event-stream",
        }
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": HANDSHAKE,
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
        answered = httpx.post(two.url + "/mcp", json=init, headers=headers)
        assert sse_message(answered)["result"]["protocolVersion"] == HANDSHAKE
        pids = set()
        for i in range(12):
            # a new connection each time, so the kernel may hand it to either worker
            with httpx.Client(headers={**headers, "mcp-protocol-version": HANDSHAKE}) as fresh:
                call = {
                    "jsonrpc": "2.0",
                    "id": i + 2,
                    "method": "tools/call",
                    "params": {"name": "local__whoami", "arguments": {}},
                }
                result = sse_message(fresh.post(two.url + "/mcp", json=call))["result"]
                assert result["isError"] is False
                pids.add(result["content"][0]["text"])

        async def modern() -> None:
            for _ in range(3):
                async with mcp_client(two.url + "/mcp", MASTER) as client:
                    assert client.protocol_version == MODERN
                    added = await client.call_tool("web__add", {"a": 20, "b": 22})
                    assert added.structured_content == {"result": 42}

        run(modern())
        assert pids  # one stdio process per worker that served a call


# -- config ------------------------------------------------------------------------------------


def check_fails(tmp_path: Path, text: str, expected: list[str]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    checked = run_plugway("check", str(config))
    assert checked.returncode != 0
    out = checked.stdout + checked.stderr
    for line in expected:
        assert line in out, out


def test_config_errors_name_the_toml_path(tmp_path: Path) -> None:
    check_fails(
        tmp_path,
        """
[mcp.servers.slow]
command = "uvx"
timeout = "long"

[mcp.servers.typo]
comand = "uvx"

[plugins.mcp]
x = 1
""",
        [
            "mcp.servers.slow.timeout: expected a number",
            "mcp.servers.typo: unknown field 'comand' (did you mean 'command'?)",
            "plugins.mcp: these settings are a top-level section; write them as [mcp]",
        ],
    )
    check_fails(
        tmp_path,
        """
[mcp]
tools_cache_seconds = -1

[mcp.servers.both]
url = "http://127.0.0.1:9/mcp"
command = "uvx"

[mcp.servers.ftp]
url = "ftp://example.com/mcp"

[mcp.servers.bad__name]
command = "uvx"
connect_timeout = 0
""",
        [
            "mcp.servers.both: give exactly one of url",
            "mcp.servers.ftp.url: 'ftp://example.com/mcp' is not an http(s) URL",
            "mcp.servers.bad__name: 'bad__name' is not a usable server name",
            "mcp.servers.bad__name.connect_timeout: 0.0 must be more than 0 seconds",
            "mcp.tools_cache_seconds: must be 0 or more seconds",
        ],
    )


def test_legacy_sse_server_behind_the_gateway(gw: GatewayProcess) -> None:
    async def main() -> None:
        async with mcp_client(gw.url + "/mcp/old", MASTER) as client:
            assert "add" in await tool_names(client)
            added = await client.call_tool("add", {"a": 40, "b": 2})
            assert added.structured_content == {"result": 42}
            assert text_of(await client.call_tool("echo", {"text": "x"})) == "old: X"

    run(main())


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_progress_reaches_the_client(gw: GatewayProcess, mode: str) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async def main() -> str:
        async with mcp_client(gw.url + "/mcp", MASTER, mode) as client:
            result = await client.call_tool(
                "web__steps", {"count": 3}, progress_callback=on_progress
            )
            return text_of(result)

    assert run(main()) == "3 steps"
    assert seen == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]


def test_secret_in_tool_arguments_is_redacted_before_the_server_sees_it(
    gw: GatewayProcess,
) -> None:
    async def main() -> str:
        async with mcp_client(gw.url + "/mcp/local", MASTER) as client:
            return text_of(await client.call_tool("echo", {"text": "password=hunter2hunter2"}))

    # the echo server answers what it got: the credential never reached it
    assert run(main()) == "local: [SECRET]"


def test_scoped_key_sees_only_its_servers_resources_and_prompts(gw: GatewayProcess) -> None:
    key = create_key(gw, team="t", mcp_tools=["local/*"])["key"]

    async def main() -> None:
        async with mcp_client(gw.url + "/mcp", key) as client:
            prompts = [p.name for p in (await client.list_prompts()).prompts]
            assert prompts == ["local__greet"]
            with pytest.raises(MCPError, match="Unknown prompt"):
                await client.get_prompt("web__greet", {"name": "x"})
            read = await client.read_resource("docs://readme")
            assert read.contents[0].text == "readme of local"  # type: ignore[union-attr]
        async with mcp_client(gw.url + "/mcp/web", key) as client:
            with pytest.raises(MCPError, match="may not use this MCP server"):
                await client.list_resources()

    run(main())


def test_a_tool_call_is_an_otel_execute_tool_span(start_gateway: Any) -> None:
    from test_otel_otlp import FakeCollector

    with FakeCollector() as collector:
        gw = start_gateway(f"""
[mcp.servers.local]
command = "{sys.executable}"
args = ["{SERVER}", "stdio"]
env = {{ MCP_SERVER_NAME = "local" }}

[plugins.otel]
enabled = true
exporter = "otlp"
endpoint = "{collector.url}/v1/traces"
export_delay = 0.05
""")
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"

        async def main() -> str:
            traceparent = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
            async with (
                create_mcp_http_client(headers=traceparent) as http,
                Client(streamable_http_client(gw.url + "/mcp", http_client=http)) as client,
            ):
                return text_of(await client.call_tool("local__echo", {"text": "t"}))

        assert run(main()) == "local: t"
        assert collector.wait_for(lambda: len(collector.spans()) >= 1)
        span = next(s for s in collector.spans() if s.name == "execute_tool mcp/local/echo")
        assert span.trace_id.hex() == trace_id
        attributes = {a.key: a.value for a in span.attributes}
        assert attributes["gen_ai.operation.name"].string_value == "execute_tool"
        assert attributes["gen_ai.tool.name"].string_value == "echo"
        assert attributes["mcp.server"].string_value == "local"
        assert attributes["plugway.mcp.outcome"].string_value == "ok"


def test_a_cancelled_call_is_cancelled_upstream_and_logged(gw: GatewayProcess) -> None:
    key = create_key(gw, team="t")

    async def main() -> None:
        async with mcp_client(gw.url + "/mcp/local", key["key"]) as client:
            seen = asyncio.Event()

            async def on_progress(*_: Any) -> None:
                seen.set()

            call = asyncio.create_task(
                client.call_tool("steps", {"count": 400}, progress_callback=on_progress)
            )
            await seen.wait()  # the call is running upstream
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            # the session goes on, and the server was told: its tool stopped
            assert text_of(await client.call_tool("echo", {"text": "y"})) == "local: Y"
            for _ in range(100):
                state = text_of(await client.call_tool("steps_state", {}))
                if state != "running":
                    break
                await asyncio.sleep(0.05)
            assert state == "cancelled"

    run(main())
    deadline = time.monotonic() + 10
    records: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        records = [r for r in gw.request_logs() if r["principal"] == key["id"] and r.get("mcp")]
        if {r["mcp"]["tool"] for r in records} >= {"steps", "echo", "steps_state"}:
            break
        time.sleep(0.1)
    outcomes = {r["mcp"]["tool"]: r["mcp"]["outcome"] for r in records}
    assert outcomes == {"steps": "cancelled", "echo": "ok", "steps_state": "ok"}
