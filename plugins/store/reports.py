"""``plugway usage`` and ``plugway whatif``: reports over the request store.

``usage`` groups the stored rows (by model, provider, key or day) and prints requests, error
rate, tokens, cost and latency percentiles. ``whatif`` replays the stored request metadata
against another config's routing: each row's model is resolved and planned by that config
(its strategies and ``select_provider`` hooks, with a fixed random seed), the first target of
the plan is taken as the one that would have served it, and the row's tokens are priced at
that target's price. Strategies that look at a request's size (``lowest-cost``, ``rules`` on
prompt tokens) see the stored token counts; what was not stored (tools, images, headers,
metadata) is absent from the replay. It cannot know whether that target would have failed: it
answers "what would this traffic have cost, routed this way".
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import sqlite3
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import attrs
from plugway.context import RequestContext
from plugway.errors import ConfigError, GatewayError
from plugway.plugins.cost import price_routing, pricer_for
from plugway.plugins.cost.pricing import Tokens, cost_of
from plugway.plugins.routing.common import DEFAULT_OUTPUT_TOKENS, RequestShape
from plugway.plugins.store import settings_of
from plugway.plugins.store.db import connect, rows_since

GROUPS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "model": lambda r: r["model"] or "-",
    "provider": lambda r: r["provider"] or "-",
    "key": lambda r: r["principal"] or "(anonymous)",
    "team": lambda r: r["team"] or "-",
    "day": lambda r: time.strftime("%Y-%m-%d", time.gmtime(r["ts"])),
}
_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str) -> float:
    """``"24h"``, ``"7d"``, ``"30m"``, ``"90s"``, ``"2w"`` -> seconds."""
    match = _SPAN.match(text)
    if not match:
        raise ConfigError(
            f"--since: {text!r} is not a duration; write a number and a unit, "
            "for example 30m, 24h, 7d or 2w"
        )
    return float(match.group(1)) * _UNIT[match.group(2)]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q`` percentile (0-100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@attrs.define
class Totals:
    """Aggregates over a group of store rows."""

    requests: int = 0
    errors: int = 0
    failovers: int = 0
    input: int = 0
    cached_input: int = 0
    cache_write: int = 0
    output: int = 0
    reasoning: int = 0
    cost: float = 0.0
    unpriced: int = 0
    cache_hits: int = 0
    cache_asked: int = 0  # requests the response cache saw (hit, miss or bypass)
    cache_saved: float = 0.0
    latencies: list[float] = attrs.field(factory=list)
    ttfts: list[float] = attrs.field(factory=list)

    def add(self, row: Mapping[str, Any]) -> None:
        self.requests += 1
        cache = row.get("cache")  # absent from rows read through an old store's schema
        if cache is not None:
            self.cache_asked += 1
            self.cache_hits += cache == "hit"
            self.cache_saved += row.get("cache_saved_usd") or 0.0
        if (row["status"] or 0) >= 400:
            self.errors += 1
        self.failovers += row["failovers"] or 0
        self.input += row["input_tokens"] or 0
        self.cached_input += row["cached_tokens"] or 0
        self.cache_write += row["cache_write_tokens"] or 0
        self.output += row["output_tokens"] or 0
        self.reasoning += row["reasoning_tokens"] or 0
        if row["cost"] is None:
            self.unpriced += (row["status"] or 0) < 400
        else:
            self.cost += row["cost"]
        if row["latency_ms"] is not None:
            self.latencies.append(row["latency_ms"])
        if row["ttft_ms"] is not None:
            self.ttfts.append(row["ttft_ms"])

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def cache_hit_rate(self) -> float:
        """Hits among the requests the response cache saw."""
        return self.cache_hits / self.cache_asked if self.cache_asked else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 6),
            "failovers": self.failovers,
            "tokens": {
                "input": self.input,
                "cached_input": self.cached_input,
                "cache_write": self.cache_write,
                "output": self.output,
                "reasoning": self.reasoning,
            },
            "cost": round(self.cost, 10),
            "unpriced": self.unpriced,
            "cache": {
                "hits": self.cache_hits,
                "hit_rate": round(self.cache_hit_rate, 6),
                "saved_usd": round(self.cache_saved, 10),
            },
            "latency_ms": {f"p{q}": percentile(self.latencies, q) for q in (50, 95, 99)},
            "ttft_ms": {f"p{q}": percentile(self.ttfts, q) for q in (50, 95, 99)},
        }


def group_rows(rows: Iterable[Mapping[str, Any]], by: str) -> dict[str, Totals]:
    key = GROUPS[by]
    groups: dict[str, Totals] = defaultdict(Totals)
    for row in rows:
        groups[key(row)].add(row)
    return dict(sorted(groups.items()))


# -- terminal output ---------------------------------------------------------------------------


def _fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if value < 10 else f"{value:,.0f}"


def _fmt_usd(value: float) -> str:
    return f"${value:,.4f}" if value < 100 else f"${value:,.2f}"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO) -> None:
    """A plain aligned table: text left, numbers right."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(line(headers), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in rows:
        print(line(row), file=out)


def usage_rows(groups: Mapping[str, Totals], total: Totals) -> list[list[str]]:
    out = []
    for name, t in [*groups.items(), ("TOTAL", total)]:
        out.append(
            [
                name,
                f"{t.requests:,}",
                f"{t.error_rate:.1%}",
                f"{t.input + t.cached_input + t.cache_write:,}",
                f"{t.cached_input:,}",
                f"{t.output + t.reasoning:,}",
                f"{t.reasoning:,}",
                _fmt_usd(t.cost),
                _fmt_ms(percentile(t.latencies, 50)),
                _fmt_ms(percentile(t.latencies, 95)),
                _fmt_ms(percentile(t.latencies, 99)),
            ]
        )
    return out


USAGE_HEADERS = (
    "",
    "requests",
    "errors",
    "prompt tok",
    "cached",
    "completion tok",
    "reasoning",
    "cost",
    "p50 ms",
    "p95 ms",
    "p99 ms",
)


def open_store(db: str | None, config_path: str | None) -> sqlite3.Connection:
    """The store named by ``--db``, else by the config's ``[plugins.store] path``."""
    if db is None:
        from plugway.gateway import load_gateway

        db = settings_of(load_gateway(config_path).config).path
    if not Path(db).exists():
        raise ConfigError(
            f"plugins.store.path: no request store at {db}; has the gateway "
            "served requests with the store plugin enabled? (or pass --db)"
        )
    return connect(db, readonly=True)


def usage(
    *,
    db: str | None,
    config_path: str | None,
    by: str,
    since: str,
    as_json: bool,
    out: TextIO = sys.stdout,
) -> int:
    span = parse_since(since)
    with_conn = open_store(db, config_path)
    try:
        rows = rows_since(with_conn, time.time() - span)
    finally:
        with_conn.close()
    groups = group_rows(rows, by)
    total = Totals()
    for row in rows:
        total.add(row)
    if as_json:
        import orjson

        data = {
            "by": by,
            "since": since,
            "groups": {k: v.summary() for k, v in groups.items()},
            "total": total.summary(),
        }
        out.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    print(f"plugway usage by {by}, last {since} ({total.requests:,} requests)", file=out)
    render_table(USAGE_HEADERS, usage_rows(groups, total), out)
    if total.cache_asked:
        print(
            f"\nresponse cache: {total.cache_hits:,} hits of {total.cache_asked:,} requests "
            f"({total.cache_hit_rate:.1%} hit rate), {_fmt_usd(total.cache_saved)} saved",
            file=out,
        )
    if total.unpriced:
        print(
            f"\n{total.unpriced} successful requests had no price (see the gateway log).", file=out
        )
    return 0


# -- what if -----------------------------------------------------------------------------------


@attrs.define
class WhatIfLine:
    model: str
    actual: str  # provider/upstream model that served it
    would: str  # target the other config would have chosen, or why none
    requests: int = 0
    actual_cost: float = 0.0
    whatif_cost: float = 0.0
    unpriced: int = 0
    routable: bool = True  # False: the other config has no target for the model


def _tokens(row: Mapping[str, Any]) -> Tokens:
    return Tokens(
        row["input_tokens"] or 0,
        row["cached_tokens"] or 0,
        row["cache_write_tokens"] or 0,
        row["output_tokens"] or 0,
        row["reasoning_tokens"] or 0,
    )


async def replay(gateway: Any, rows: Sequence[Mapping[str, Any]]) -> list[WhatIfLine]:
    """Plan each row under ``gateway``'s routing and price its tokens at the chosen target."""
    pricer = pricer_for(gateway.config)
    price_routing(gateway.env, pricer)
    lines: dict[tuple[str, str, str], WhatIfLine] = {}
    for row in rows:
        model = row["model"] or ""
        actual = f"{row['provider']}/{row['upstream_model']}" if row["provider"] else "-"
        ctx = RequestContext(
            endpoint=row["endpoint"] or "chat.completions",
            body={"model": model},
            headers={},
            model=model,
            stream=bool(row["stream"]),
            principal=row["principal"],
        )
        ctx.env = gateway.env
        # Strategies that look at the request's size see the stored token counts.
        tokens = _tokens(row)
        ctx.state["routing.shape"] = RequestShape(
            prompt_tokens=tokens.prompt,
            tools=False,
            images=False,
            output_tokens=tokens.completion or DEFAULT_OUTPUT_TOKENS,
        )
        target, routable = None, True
        try:
            ctx.route = gateway.router.resolve(model)
            plan = await gateway.hooks.call_first(
                "select_provider", ctx=ctx, candidates=ctx.route.targets
            )
            target = plan[0] if plan else None
            would = target.key if target is not None else "(no target)"
        except GatewayError as exc:
            would, routable = f"({exc.code or type(exc).__name__})", False
        line = lines.setdefault(
            (model, actual, would), WhatIfLine(model, actual, would, routable=routable)
        )
        line.requests += 1
        line.actual_cost += row["cost"] or 0.0
        price = pricer.price_of(target) if target is not None else None
        if target is not None and price is None:
            line.unpriced += 1
        if price is not None:
            line.whatif_cost += cost_of(_tokens(row), price)
    return sorted(lines.values(), key=lambda x: (x.model, x.actual, x.would))


def whatif(
    *,
    db: str | None,
    config_path: str | None,
    other_config: str,
    since: str,
    as_json: bool,
    out: TextIO = sys.stdout,
) -> int:
    from plugway.gateway import load_gateway
    from plugway.routing import StrategyEnv

    span = parse_since(since)
    conn = open_store(db, config_path)
    try:
        rows = rows_since(conn, time.time() - span)
    finally:
        conn.close()
    other = load_gateway(other_config, env=StrategyEnv(random=random.Random(0)))
    lines = asyncio.run(replay(other, rows))
    # Compare only what the other config can route; the rest is reported apart.
    compared = [line for line in lines if line.routable]
    actual = sum(line.actual_cost for line in compared)
    would = sum(line.whatif_cost for line in compared)
    skipped = [line for line in lines if not line.routable]
    if as_json:
        import orjson

        data = {
            "since": since,
            "config": other_config,
            "requests": len(rows),
            "compared_requests": sum(line.requests for line in compared),
            "actual_cost": round(actual, 10),
            "whatif_cost": round(would, 10),
            "unroutable_requests": sum(line.requests for line in skipped),
            "unroutable_cost": round(sum(line.actual_cost for line in skipped), 10),
            "lines": [attrs.asdict(line) for line in lines],
        }
        out.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    print(
        f"plugway whatif: the last {since} ({len(rows):,} requests) routed by {other_config}",
        file=out,
    )
    table = [
        [
            line.model,
            line.actual,
            line.would,
            f"{line.requests:,}",
            _fmt_usd(line.actual_cost),
            _fmt_usd(line.whatif_cost),
        ]
        for line in lines
    ]
    count = sum(line.requests for line in compared)
    table.append(["TOTAL routable", "", "", f"{count:,}", _fmt_usd(actual), _fmt_usd(would)])
    render_table(
        ("model", "served by", "would use", "requests", "cost", "what-if cost"), table, out
    )
    delta = would - actual
    sign = "+" if delta >= 0 else "-"
    change = f" ({delta / actual:+.1%})" if actual else ""
    print(f"\ndifference: {sign}{_fmt_usd(abs(delta))}{change}", file=out)
    if skipped:
        print(
            f"{sum(line.requests for line in skipped):,} requests "
            f"({_fmt_usd(sum(line.actual_cost for line in skipped))}) have no route in "
            f"{other_config} and are left out of the totals.",
            file=out,
        )
    unpriced = sum(line.unpriced for line in lines)
    if unpriced:
        print(f"{unpriced} requests would use a target with no price (counted as $0).", file=out)
    return 0
