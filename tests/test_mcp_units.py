"""Unit tests beside the MCP gateway's end-to-end ones: the key store migration, scopes and
names, the tool-call objects filters walk, and the plugin-owned [mcp] section."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from plugway.config import build_config
from plugway.errors import ConfigError
from plugway.hookcall import HookRunner
from plugway.plugin_loader import load_plugins
from plugway.plugins.keys.store import KeyStore
from plugway.plugins.mcp.config import McpSettings, ServerSettings, check
from plugway.plugins.mcp.scopes import Caller, public_name, resolve
from plugway.registry import Registry
from plugway.tools import ToolCall, ToolResult

OLD_SCHEMA = """
CREATE TABLE keys (
    id TEXT PRIMARY KEY, digest TEXT NOT NULL UNIQUE, team TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '', models TEXT NOT NULL DEFAULT '[]', expires_at REAL,
    limits TEXT NOT NULL DEFAULT '{}', metadata TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL, revoked_at REAL
);
INSERT INTO keys (id, digest, team, created_at) VALUES ('key_old', 'd1', 'ml', 1.0);
"""


def test_a_store_made_before_mcp_gains_mcp_tools(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
    store = KeyStore(path)
    old = store.get("key_old")
    assert old is not None and old.mcp_tools is None and old.allows_tool("any", "tool")
    _, scoped = store.create("ml", mcp_tools=["github/*"])
    assert scoped.mcp_tools == ("github/*",) and scoped.public()["mcp_tools"] == ["github/*"]
    store.close()
    again = KeyStore(path)  # opening a migrated store again changes nothing
    assert again.get(scoped.id) == scoped
    again.close()


def test_scope_globs() -> None:
    store = KeyStore(":memory:")
    _, key = store.create("t", mcp_tools=["github/search_*", "docs/*"])
    caller = Caller(principal=key.id, key=key, server=None)
    assert caller.may_use("github", "search_code") and caller.may_use("docs", "anything")
    assert not caller.may_use("github", "delete_repo") and not caller.may_use("files", "read")
    _, empty = store.create("t", mcp_tools=[])
    assert not Caller(principal=None, key=empty, server=None).may_use("docs", "x")
    assert Caller(principal="master", key=None, server=None).may_use("any", "thing")


def test_names_on_each_endpoint() -> None:
    everything = Caller(principal=None, key=None, server=None)
    one = Caller(principal=None, key=None, server="files")
    assert public_name(everything, "files", "read") == "files__read"
    assert public_name(one, "files", "read") == "read"
    servers = ["files", "git"]
    assert resolve(everything, "files__read__deep", servers) == ("files", "read__deep")
    assert resolve(everything, "nosuch__read", servers) is None
    assert resolve(everything, "read", servers) is None
    assert resolve(everything, "files__", servers) is None
    assert resolve(one, "git__read", servers) == ("files", "git__read")


def test_tool_objects_expose_every_text() -> None:
    call = ToolCall(server="s", tool="t", arguments={"q": "a", "deep": [{"x": "b"}, 3]})
    for text, set_text in call.texts():
        set_text(text.upper())
    assert call.arguments == {"q": "A", "deep": [{"x": "B"}, 3]}
    result = ToolResult.from_mcp(
        {
            "content": [
                {"type": "text", "text": "one"},
                {"type": "resource", "resource": {"uri": "x://", "text": "two"}},
                {"type": "image", "data": "AAAA", "mimeType": "image/png"},
            ],
            "structuredContent": {"k": ["three"]},
            "isError": False,
        }
    )
    assert [text for text, _ in result.texts()] == ["one", "two", "three"]
    for text, set_text in result.texts():
        set_text(f"<{text}>")
    out: dict[str, Any] = result.to_mcp()
    assert out["content"][1]["resource"]["text"] == "<two>"
    assert out["structuredContent"] == {"k": ["<three>"]} and out["isError"] is False
    assert result.size() == len("<one><two><three>")
    assert ToolResult.error("no").to_mcp() == {
        "content": [{"type": "text", "text": "no"}],
        "isError": True,
    }


def test_server_settings_checks() -> None:
    settings = McpSettings(
        servers={
            "ok": ServerSettings(url="https://example.com/mcp"),
            "stdio": ServerSettings(command="uvx", headers={"a": "b"}),
            "url_with_args": ServerSettings(url="http://x/mcp", args=["--x"]),
            "cheap": ServerSettings(command="uvx", price_per_call=-1),
        }
    )
    problems = check(settings)
    assert problems == [
        "mcp.servers.stdio.headers: only for url servers; give a stdio server its credentials "
        "in env = { ... }",
        "mcp.servers.url_with_args.args: only for stdio servers (command = ...); remove it",
        "mcp.servers.cheap.price_per_call: must be 0 or more (USD per call)",
    ]


def test_the_mcp_section_belongs_to_its_plugin() -> None:
    loaded = load_plugins()
    reg = Registry.collect(HookRunner(loaded.pm))
    assert "mcp" in reg.sections
    config = build_config({"mcp": {"servers": {"a": {"url": "http://127.0.0.1:1/mcp"}}}}, reg)
    assert config.plugin_settings["mcp"].servers["a"].timeout == 60.0
    with pytest.raises(ConfigError) as caught:
        build_config({"mcpp": {}}, reg)
    assert "mcpp: unknown section (did you mean 'mcp'?)" in str(caught.value)
