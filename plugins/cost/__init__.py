"""The ``cost`` plugin: prices every request from its usage and the price table.

``post_response`` (tryfirst, so every later observer sees it) splits ``ctx.usage`` into token
classes, prices each class at the target's price, and sets ``ctx.cost`` (USD) and
``ctx.state["cost"]`` (a :class:`CostRecord`). The price of a target is its ``price`` in the
config when it has one, else the price table's entry for its provider type and model.

At startup it also hands its prices to routing (``RoutingState.price``), so the
``lowest-cost`` strategy ranks targets by the price table, not only by prices in the config.

A request a response cache answered (``ctx.tags["cache"] == "hit"``) costs 0.

For non-streamed answers the cost also goes to the client as ``x-plugway-cost`` (USD, decimal).
A stream's cost is known only once it has ended, after its headers went out: it is in the
request log line, the request store and the metrics, not in a header.

Settings (``[plugins.cost]``): ``prices_file`` (a TOML file shaped like the shipped
``prices.toml``, merged over it) and ``header`` (send ``x-plugway-cost``, default true).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
from loguru import logger
from plugway.config import Config
from plugway.context import Price, RequestContext, Target
from plugway.hooks import hookimpl
from plugway.plugins.cost.pricing import (
    PriceEntry,
    PriceTable,
    Tokens,
    cost_of,
    load_table,
    request_tokens,
    tokens_of,
)
from plugway.routing import StrategyEnv

#: Writes no prompt or completion text anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False

NAME = "cost"
HEADER = "x-plugway-cost"


@attrs.define(kw_only=True)
class CostSettings:
    #: A TOML price table (same shape as the shipped prices.toml) merged over the shipped one.
    prices_file: str | None = None
    #: Send the cost of non-streamed answers as the ``x-plugway-cost`` response header.
    header: bool = True


@attrs.frozen
class CostRecord:
    """What the cost plugin found for one request (in ``ctx.state["cost"]``)."""

    tokens: Tokens
    price: Price | None
    usd: float | None


class Pricer:
    """Prices for the targets of one config: config override first, then the table."""

    def __init__(self, config: Config, table: PriceTable) -> None:
        self.table = table
        self.types = {name: settings.type for name, settings in config.providers.items()}
        self._unpriced: set[str] = set()
        # Table lookups by (provider type, model): a prefix search per request is not free.
        # Bounded, since clients may address "provider/any-model" directly.
        self._entries: dict[tuple[str, str], PriceEntry | None] = {}

    def _lookup(self, provider_type: str, model: str) -> PriceEntry | None:
        key = (provider_type, model)
        if key not in self._entries:
            if len(self._entries) >= 4096:
                self._entries.clear()
            self._entries[key] = self.table.lookup(provider_type, model)
        return self._entries[key]

    def price_of(self, target: Target) -> Price | None:
        if target.price is not None:
            return target.price
        entry = self._lookup(self.types.get(target.provider, target.provider), target.model)
        if entry is None:
            if target.key not in self._unpriced:
                self._unpriced.add(target.key)
                logger.warning(
                    "cost: no price for {} (provider type {!r}); its requests are "
                    "not priced. Add price = {{...}} to the target or a "
                    "prices_file entry.",
                    target.key,
                    self.types.get(target.provider),
                )
            return None
        return entry.price

    def entry_of(self, target: Target) -> PriceEntry | None:
        return self._lookup(self.types.get(target.provider, target.provider), target.model)

    def media_cost(self, target: Target, usage: Mapping[str, Any]) -> float | None:
        """The price of a media answer: ``usage`` ``{"video_seconds": N, "size": "WxH"}``
        (a finished video job), ``{"images": N}`` or ``{"audio_seconds": N}`` (a
        transcription, by the duration its upstream reported); None when the table has no such price
        for the target."""
        entry = self.entry_of(target)
        if entry is None:
            return None
        if "video_seconds" in usage:
            seconds = usage.get("video_seconds")
            if not isinstance(seconds, int | float) or isinstance(seconds, bool):
                return None
            size = usage.get("size")
            return entry.video_cost(seconds, size if isinstance(size, str) else None)
        if "audio_seconds" in usage:
            seconds = usage.get("audio_seconds")
            if entry.per_minute is None or not isinstance(seconds, int | float):
                return None
            return round(seconds / 60 * entry.per_minute, 12)
        images = usage.get("images")
        if entry.per_image is None or not isinstance(images, int) or isinstance(images, bool):
            return None
        return round(images * entry.per_image, 12)

    def record(
        self, target: Target | None, usage: dict[str, Any] | None, tokens: Tokens | None = None
    ) -> CostRecord:
        """The cost of ``usage`` (already split into ``tokens`` when given) on ``target``."""
        if tokens is None:
            tokens = tokens_of(usage)
        if target is None or usage is None:  # no usage (a failure, or a stream without it)
            return CostRecord(tokens, None, None)
        price = self.price_of(target)
        return CostRecord(tokens, price, None if price is None else cost_of(tokens, price))


_state: dict[str, Any] = {}


def is_media(usage: Mapping[str, Any]) -> bool:
    """Whether ``usage`` counts media (video seconds, images), not tokens."""
    return "video_seconds" in usage or "images" in usage or "audio_seconds" in usage


def media_estimate(targets: list[Target], usage: Mapping[str, Any]) -> float | None:
    """The dearest price of a media answer over ``targets`` (a budget's reservation before
    the call); None when the cost plugin is not running or none of them is priced."""
    pricer: Pricer | None = _state.get("pricer")
    if pricer is None:
        return None
    costs = [c for t in targets if (c := pricer.media_cost(t, usage)) is not None]
    return max(costs) if costs else None


def pricer_for(config: Config) -> Pricer:
    """A :class:`Pricer` for ``config`` with its ``[plugins.cost]`` settings applied."""
    settings = config.plugin_settings.get(NAME) or CostSettings()
    return Pricer(config, load_table(settings.prices_file))


def format_usd(usd: float) -> str:
    """A cost as a plain decimal (no exponent), at most 10 places."""
    text = f"{usd:.10f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    register(NAME, CostSettings)


def price_routing(env: StrategyEnv, pricer: Pricer) -> None:
    """Let routing (the ``lowest-cost`` strategy) price targets with this table too, not only
    the targets that carry their own ``price``."""
    from plugway.plugins.routing.state import routing_state

    routing_state(env).price = pricer.price_of


@hookimpl
def plugway_startup(app: Any, config: Config) -> None:
    pricer = pricer_for(config)
    _state["pricer"] = pricer
    _state["settings"] = config.plugin_settings.get(NAME) or CostSettings()
    gateway = getattr(getattr(app, "ctx", None), "gateway", None)
    if gateway is not None:
        price_routing(gateway.env, pricer)


@hookimpl(tryfirst=True)
def post_response(ctx: RequestContext) -> None:
    pricer: Pricer | None = _state.get("pricer")
    if pricer is None:
        return
    # The usage is the final attempt's (a stream cut or cancelled midway included).
    last = ctx.final_attempt
    if last is None and ctx.cost is not None:
        return  # priced by its door, with no model attempt (an MCP tool call's price)
    if ctx.tags.get("cache") == "hit":  # answered from a response cache: no call, no cost
        record = CostRecord(request_tokens(ctx), None, 0.0)
    elif last is not None and ctx.usage is not None and is_media(ctx.usage):
        record = CostRecord(Tokens(), None, pricer.media_cost(last.target, ctx.usage))
    else:
        record = pricer.record(
            last.target if last is not None else None, ctx.usage, request_tokens(ctx)
        )
    ctx.state[NAME] = record
    ctx.cost = record.usd
    if record.usd is not None and not ctx.stream and _state["settings"].header:
        ctx.response_headers[HEADER] = format_usd(record.usd)
