"""The request store's writer thread and the report helpers, without a gateway."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from plugway.config import build_config
from plugway.errors import ConfigError
from plugway.gateway import load_gateway
from plugway.plugins.store.db import NAMES, StoreWriter, connect, rows_since
from plugway.plugins.store.reports import parse_since, percentile


def row(request_id: str, ts: float) -> tuple[object, ...]:
    values: dict[str, object] = dict.fromkeys(NAMES)
    values.update(request_id=request_id, ts=ts, model="m", status=200, cost=0.5)
    return tuple(values[name] for name in NAMES)


def count(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0])
    finally:
        conn.close()


def test_writer_batches_off_thread_and_purges_past_retention(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "requests.db"
    old = time.time() - 3 * 86400
    conn = connect(path)
    conn.executemany(
        f"INSERT INTO requests ({', '.join(NAMES)}) VALUES ({', '.join('?' * len(NAMES))})",
        [row("old", old)],
    )
    conn.commit()
    conn.close()
    writer = StoreWriter(path, retention_days=1, flush_interval=0.02)
    writer.start()
    for i in range(250):
        writer.put(row(f"r{i}", time.time()))
    writer.stop()
    assert writer.written == 250 and writer.dropped == 0
    kept = rows_since(connect(path, readonly=True), 0)
    assert len(kept) == 250 and "old" not in {r["request_id"] for r in kept}


def test_put_never_blocks_when_the_queue_is_full(tmp_path: Path) -> None:
    writer = StoreWriter(tmp_path / "r.db", retention_days=1, max_queue=3)  # not started
    started = time.monotonic()
    for i in range(10):
        writer.put(row(f"r{i}", time.time()))
    assert writer.dropped == 7
    assert time.monotonic() - started < 1.0


def test_since_and_percentiles() -> None:
    assert parse_since("24h") == 86400 and parse_since("7d") == 604800
    assert parse_since("30m") == 1800 and parse_since("1.5h") == 5400
    with pytest.raises(ConfigError):
        parse_since("week")
    assert percentile([], 50) is None
    assert percentile([5.0], 99) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99)) == (
        50.0,
        95.0,
        99.0,
    )


def test_plugin_settings_are_checked_with_their_path(tmp_path: Path) -> None:
    gateway = load_gateway()
    data = {
        "plugins": {
            "otel": {"enabled": True, "exporter": "zipkin"},
            "store": {"retention": 3},
            "cost": {"header": "yes"},
        }
    }
    with pytest.raises(ConfigError) as caught:
        build_config(data, gateway.registry)
    text = str(caught.value)
    assert "plugins.otel.exporter: expected one of 'otlp', 'console', 'file', got 'zipkin'" in text
    assert "plugins.store: unknown field 'retention' (did you mean 'retention_days'?)" in text
    assert "plugins.cost.header: expected true or false" in text
