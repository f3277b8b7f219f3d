"""Prices and token counts: the price table shipped as data, and the cost of one usage object.

Every provider translates its usage into OpenAI's shape, so this is the one place that reads
it: ``prompt_tokens`` (cached and cache-write tokens included), ``completion_tokens`` (reasoning
tokens included), ``prompt_tokens_details.cached_tokens`` / ``.cache_write_tokens`` and
``completion_tokens_details.reasoning_tokens``. Each token is counted in exactly one class, at
that class's price.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import attrs
from plugway.context import Price, RequestContext
from plugway.errors import ConfigError

PRICE_FIELDS = ("input", "cached_input", "cache_write", "output", "reasoning")
#: Media prices: USD per second of generated video (a number, or a table by resolution such as
#: ``{ "720p" = 0.1, "1080p" = 0.3 }``), USD per generated image and USD per minute of audio.
MEDIA_FIELDS = ("video_per_second", "per_image", "per_minute")
ENTRY_FIELDS = (*PRICE_FIELDS, *MEDIA_FIELDS, "source", "date")
TOKEN_CLASSES = ("input", "cached_input", "cache_write", "output", "reasoning")


@attrs.frozen
class Tokens:
    """One request's tokens, each in exactly one class."""

    input: int = 0  # prompt tokens neither read from nor written to a cache
    cached_input: int = 0
    cache_write: int = 0
    output: int = 0  # completion tokens that are not reasoning tokens
    reasoning: int = 0

    @property
    def prompt(self) -> int:
        return self.input + self.cached_input + self.cache_write

    @property
    def completion(self) -> int:
        return self.output + self.reasoning

    def by_class(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in TOKEN_CLASSES}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def tokens_of(usage: Mapping[str, Any] | None) -> Tokens:
    """Split an OpenAI-shaped usage object into token classes (all zero when it is None)."""
    if not usage:
        return Tokens()
    prompt = _int(usage.get("prompt_tokens"))
    completion = _int(usage.get("completion_tokens"))
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    cached = _int(prompt_details.get("cached_tokens")) if isinstance(prompt_details, dict) else 0
    written = (
        _int(prompt_details.get("cache_write_tokens")) if isinstance(prompt_details, dict) else 0
    )
    reasoning = (
        _int(completion_details.get("reasoning_tokens"))
        if isinstance(completion_details, dict)
        else 0
    )
    cached = min(cached, prompt)
    written = min(written, prompt - cached)
    reasoning = min(reasoning, completion)
    return Tokens(prompt - cached - written, cached, written, completion - reasoning, reasoning)


_TOKENS = "cost.tokens"


def request_tokens(ctx: RequestContext) -> Tokens:
    """``tokens_of(ctx.usage)`` for a finished request, split once and shared by every
    ``post_response`` observer (cost, store, metrics, traces)."""
    tokens = ctx.state.get(_TOKENS)
    if tokens is None:
        tokens = ctx.state[_TOKENS] = tokens_of(ctx.usage)
    return tokens


def cost_of(tokens: Tokens, price: Price) -> float:
    """USD for ``tokens`` at ``price`` (USD per million tokens); unset class prices fall back
    to the input price (cache classes) or the output price (reasoning)."""
    cached = price.cached_input if price.cached_input is not None else price.input
    written = price.cache_write if price.cache_write is not None else price.input
    reasoning = price.reasoning if price.reasoning is not None else price.output
    micro = (
        tokens.input * price.input
        + tokens.cached_input * cached
        + tokens.cache_write * written
        + tokens.output * price.output
        + tokens.reasoning * reasoning
    )
    return round(micro / 1_000_000, 12)


@attrs.frozen
class PriceEntry:
    price: Price
    source: str = ""
    date: str = ""
    #: USD per second of video by resolution label (``"720p"``), ``"*"`` for any.
    video_per_second: Mapping[str, float] = attrs.field(factory=dict)
    per_image: float | None = None
    per_minute: float | None = None

    def video_cost(self, seconds: float, size: str | None) -> float | None:
        """The price of ``seconds`` of video at ``size`` (``WIDTHxHEIGHT``): the rate of its
        resolution (the short side, ``720x1280`` is ``720p``), else the nearest priced
        resolution above it, else ``*``, else the dearest rate; None when unpriced."""
        rates = self.video_per_second
        if not rates:
            return None
        rate = rates.get("*")
        labelled = sorted(
            (int(k[:-1]), v) for k, v in rates.items() if k.endswith("p") and k[:-1].isdigit()
        )
        if labelled:
            short = resolution_of(size)
            above = [v for height, v in labelled if short is not None and height >= short]
            rate = above[0] if above else (rate if rate is not None else labelled[-1][1])
        return None if rate is None else round(seconds * rate, 12)


def resolution_of(size: str | None) -> int | None:
    """The short side of a ``WIDTHxHEIGHT`` size (its "p" resolution), or None."""
    if not size or "x" not in size:
        return None
    width, _, height = size.partition("x")
    if not (width.isdigit() and height.isdigit()):
        return None
    return min(int(width), int(height))


@attrs.define
class PriceTable:
    """Provider type -> model -> price, with prefix matching, ``*`` and aliases."""

    version: str = ""
    entries: dict[str, dict[str, PriceEntry]] = attrs.field(factory=dict)
    aliases: dict[str, str] = attrs.field(factory=dict)

    def lookup(self, provider_type: str, model: str) -> PriceEntry | None:
        """The entry for ``model`` served by ``provider_type``: an exact name, else the longest
        table name that prefixes the model, else ``*``; then the alias's table; then, for
        "vendor/model" names (aggregators), the vendor's table."""
        seen: set[str] = set()
        kind: str | None = provider_type
        while kind is not None and kind not in seen:
            seen.add(kind)
            found = self._match(self.entries.get(kind, {}), model)
            if found is not None:
                return found
            kind = self.aliases.get(kind)
        vendor, sep, rest = model.partition("/")
        if sep and rest and vendor in self.entries and vendor != provider_type:
            return self.lookup(vendor, rest)
        return None

    @staticmethod
    def _match(models: Mapping[str, PriceEntry], model: str) -> PriceEntry | None:
        if model in models:
            return models[model]
        best = max(
            (name for name in models if model.startswith(name) and name != "*"),
            key=len,
            default=None,
        )
        if best is not None:
            return models[best]
        return models.get("*")

    def merged(self, other: PriceTable) -> PriceTable:
        """This table with ``other``'s entries and aliases on top."""
        entries = {kind: dict(models) for kind, models in self.entries.items()}
        for kind, models in other.entries.items():
            entries.setdefault(kind, {}).update(models)
        return PriceTable(other.version or self.version, entries, {**self.aliases, **other.aliases})


def parse_table(data: Mapping[str, Any], where: str) -> PriceTable:
    """Check and convert a price table's TOML data; every mistake is a ConfigError naming
    ``where`` and the entry's path."""
    problems: list[str] = []
    table = PriceTable(version=str(data.get("version", "")))
    aliases = data.get("aliases", {})
    if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
        problems.append(f"{where}: aliases: expected a table of provider type names")
    else:
        table.aliases = dict(aliases)
    for kind, models in data.items():
        if kind in ("version", "aliases"):
            continue
        if not isinstance(models, dict):
            problems.append(f"{where}: {kind}: expected a table of models, got {models!r}")
            continue
        for model, entry in models.items():
            path = f"{where}: {kind}.{model!r}"
            if not isinstance(entry, dict):
                problems.append(f"{path}: expected a table of prices")
                continue
            unknown = sorted(set(entry) - set(ENTRY_FIELDS))
            if unknown:
                problems.append(
                    f"{path}: unknown field(s) {', '.join(unknown)}; allowed "
                    f"fields are: {', '.join(ENTRY_FIELDS)}"
                )
                continue
            values: dict[str, float] = {}
            for name in PRICE_FIELDS:
                value = entry.get(name)
                if value is None:
                    continue
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    problems.append(
                        f"{path}.{name}: {value!r} is not a price; write USD per "
                        "million tokens as a number, 0 or more"
                    )
                    continue
                values[name] = float(value)
            video, per_image = _media_prices(entry, path, problems)
            per_minute = entry.get("per_minute")
            if per_minute is not None and not _is_price(per_minute):
                problems.append(
                    f"{path}.per_minute: {per_minute!r} is not a price; write USD per minute"
                )
                per_minute = None
            table.entries.setdefault(kind, {})[model] = PriceEntry(
                Price(**values),
                str(entry.get("source", "")),
                str(entry.get("date", "")),
                video,
                per_image,
                None if per_minute is None else float(per_minute),
            )
    if problems:
        raise ConfigError(problems)
    return table


def _is_price(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and value >= 0


def _media_prices(
    entry: Mapping[str, Any], path: str, problems: list[str]
) -> tuple[dict[str, float], float | None]:
    video = entry.get("video_per_second")
    rates: dict[str, float] = {}
    if isinstance(video, int | float) and _is_price(video):
        rates["*"] = float(video)
    elif isinstance(video, dict) and all(_is_price(v) for v in video.values()):
        rates = {str(k): float(v) for k, v in video.items()}
    elif video is not None:
        problems.append(
            f"{path}.video_per_second: {video!r} is not a price; write USD per second as a "
            'number, or a table by resolution such as { "720p" = 0.1, "1080p" = 0.3 }'
        )
    per_image = entry.get("per_image")
    if per_image is not None and not _is_price(per_image):
        problems.append(f"{path}.per_image: {per_image!r} is not a price; write USD per image")
        per_image = None
    return rates, None if per_image is None else float(per_image)


def shipped_table() -> PriceTable:
    """The price table in this package (``prices.toml``)."""
    text = resources.files(__package__ or "plugway.plugins.cost").joinpath("prices.toml")
    return parse_table(tomllib.loads(text.read_text("utf-8")), "prices.toml")


def load_table(extra_file: str | None = None) -> PriceTable:
    """The shipped table, with ``extra_file`` (same shape) on top when given."""
    table = shipped_table()
    if extra_file is None:
        return table
    path = Path(extra_file)
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"plugins.cost.prices_file: cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"plugins.cost.prices_file: {path} is not valid TOML: {exc}") from None
    return table.merged(parse_table(data, str(path)))
