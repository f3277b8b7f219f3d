"""The ``dashboard`` plugin: ``GET /-/dashboard``, one self-contained page (no build step, no
CDN: vanilla JS and inline SVG), and ``GET /-/dashboard/data``, the JSON it draws.

The page polls both ``/-/dashboard/data`` (time series from the request store: requests per
second, latency p50/p99, time to first token, failovers, errors by provider, cost by model and
by key) and ``/metrics`` (live totals, requests in flight, each target's health). It needs the
``store`` plugin for the charts and the ``metrics`` plugin for the live tiles; without either,
that part of the page says so.

Settings (``[plugins.dashboard]``): ``enabled`` (default true), ``refresh`` (seconds between
polls, default 2), ``window`` (seconds of history shown, default 900).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import attrs
import orjson
from plugway.config import Config
from plugway.hooks import hookimpl
from plugway.plugins.store import settings_of as store_settings
from plugway.plugins.store.db import connect, rows_since
from plugway.plugins.store.reports import percentile

#: Writes no prompt or completion text anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False

NAME = "dashboard"
BUCKETS = 90  # points per chart


@attrs.define(kw_only=True)
class DashboardSettings:
    enabled: bool = True
    refresh: float = 2.0
    window: float = 900.0


def bucket_series(
    rows: Sequence[Mapping[str, Any]], now: float, window: float, targets: Sequence[str]
) -> dict[str, Any]:
    """What the dashboard draws, from store rows of the last ``window`` seconds."""
    step = max(1.0, math.ceil(window / BUCKETS))
    start = math.floor((now - window) / step) * step
    count = math.ceil((now - start) / step)
    times = [start + i * step for i in range(count)]
    requests = [0] * count
    errors = [0] * count
    failovers = [0] * count
    latencies: list[list[float]] = [[] for _ in range(count)]
    ttfts: list[list[float]] = [[] for _ in range(count)]
    cost_model: dict[str, list[float]] = defaultdict(lambda: [0.0] * count)
    cost_key: dict[str, list[float]] = defaultdict(lambda: [0.0] * count)
    errors_by_provider: dict[str, int] = defaultdict(int)
    total_cost = 0.0
    all_latency: list[float] = []
    all_ttft: list[float] = []
    for row in rows:
        i = min(count - 1, max(0, int((row["ts"] - start) // step)))
        requests[i] += 1
        status = row["status"] or 0
        if status >= 400:
            errors[i] += 1
            errors_by_provider[row["provider"] or "(none)"] += 1
        failovers[i] += row["failovers"] or 0
        if row["latency_ms"] is not None:
            latencies[i].append(row["latency_ms"])
            all_latency.append(row["latency_ms"])
        if row["ttft_ms"] is not None:
            ttfts[i].append(row["ttft_ms"])
            all_ttft.append(row["ttft_ms"])
        if row["cost"]:
            cost_model[row["model"] or "-"][i] += row["cost"]
            cost_key[row["principal"] or "(anonymous)"][i] += row["cost"]
            total_cost += row["cost"]
    return {
        "now": now,
        "window": window,
        "step": step,
        "times": times,
        "requests_per_s": [n / step for n in requests],
        "requests": requests,
        "errors": errors,
        "failovers": failovers,
        "latency_p50": [percentile(v, 50) for v in latencies],
        "latency_p99": [percentile(v, 99) for v in latencies],
        "ttft_p50": [percentile(v, 50) for v in ttfts],
        "cost_by_model": dict(cost_model),
        "cost_by_key": dict(cost_key),
        "errors_by_provider": dict(errors_by_provider),
        "targets": list(targets),
        "totals": {
            "requests": len(rows),
            "errors": sum(errors),
            "failovers": sum(failovers),
            "cost": round(total_cost, 10),
            "latency_p50": percentile(all_latency, 50),
            "latency_p99": percentile(all_latency, 99),
            "ttft_p50": percentile(all_ttft, 50),
        },
    }


def page(settings: DashboardSettings) -> bytes:
    html = (
        resources.files(__package__ or "plugway.plugins.dashboard")
        .joinpath("dashboard.html")
        .read_text("utf-8")
    )
    return html.replace("__REFRESH_MS__", str(int(settings.refresh * 1000))).encode()


def _targets(config: Config) -> list[str]:
    keys: dict[str, None] = {}
    for route in config.routes().values():
        for target in route.targets:
            keys[target.key] = None
    return list(keys)


def load_data(path: str, now: float, window: float, targets: Sequence[str]) -> dict[str, Any]:
    """Read the store (on a worker thread: it is a blocking call) and bucket it."""
    if not Path(path).exists():
        data = bucket_series([], now, window, targets)
    else:
        conn = connect(path, readonly=True)
        try:
            data = bucket_series(rows_since(conn, now - window), now, window, targets)
        finally:
            conn.close()
    data["store"] = True
    return data


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    register(NAME, DashboardSettings)


@hookimpl
def register_routes(app: Any, config: Config) -> None:
    from sanic import HTTPResponse, Request

    settings = config.plugin_settings.get(NAME)
    if not isinstance(settings, DashboardSettings):
        settings = DashboardSettings()
    if not settings.enabled:
        return
    body = page(settings)
    store = store_settings(config)
    targets = _targets(config)

    async def dashboard(request: Request) -> HTTPResponse:
        return HTTPResponse(
            body, content_type="text/html; charset=utf-8", headers={"cache-control": "no-store"}
        )

    async def data(request: Request) -> HTTPResponse:
        try:
            window = float(request.args.get("window", settings.window))
        except ValueError:
            window = settings.window
        window = min(max(window, 60.0), 30 * 86400.0)
        if not store.enabled:
            out: dict[str, Any] = {"store": False, "targets": targets}
        else:
            out = await asyncio.to_thread(load_data, store.path, time.time(), window, targets)
        out["refresh"] = settings.refresh
        return HTTPResponse(
            orjson.dumps(out),
            content_type="application/json",
            headers={"cache-control": "no-store"},
        )

    app.add_route(dashboard, "/-/dashboard", methods=["GET"], name="plugway_dashboard")
    app.add_route(data, "/-/dashboard/data", methods=["GET"], name="plugway_dashboard_data")
