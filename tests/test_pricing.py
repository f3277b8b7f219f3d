"""The price table and the cost of one usage object, as pure functions."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import pytest
from plugway.context import Price
from plugway.errors import ConfigError
from plugway.plugins.cost import format_usd
from plugway.plugins.cost.pricing import (
    MEDIA_FIELDS,
    PRICE_FIELDS,
    Tokens,
    cost_of,
    load_table,
    parse_table,
    shipped_table,
    tokens_of,
)


def test_openai_usage_splits_into_disjoint_classes() -> None:
    usage = {
        "prompt_tokens": 300,
        "completion_tokens": 90,
        "total_tokens": 390,
        "prompt_tokens_details": {"cached_tokens": 120, "cache_write_tokens": 80},
        "completion_tokens_details": {"reasoning_tokens": 50},
    }
    tokens = tokens_of(usage)
    assert tokens == Tokens(input=100, cached_input=120, cache_write=80, output=40, reasoning=50)
    assert tokens.prompt == 300 and tokens.completion == 90


def test_usage_without_details_or_with_nulls() -> None:
    assert tokens_of({"prompt_tokens": 11, "completion_tokens": 7}) == Tokens(11, 0, 0, 7, 0)
    nulls = {"prompt_tokens": 5, "completion_tokens": None, "prompt_tokens_details": None}
    assert tokens_of(nulls) == Tokens(5, 0, 0, 0, 0)
    assert tokens_of(None) == Tokens()
    # Embeddings: prompt only.
    assert tokens_of({"prompt_tokens": 4, "total_tokens": 4}) == Tokens(4, 0, 0, 0, 0)


def test_inconsistent_details_never_count_a_token_twice() -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 3,
        "prompt_tokens_details": {"cached_tokens": 8, "cache_write_tokens": 8},
        "completion_tokens_details": {"reasoning_tokens": 9},
    }
    tokens = tokens_of(usage)
    assert tokens == Tokens(input=0, cached_input=8, cache_write=2, output=0, reasoning=3)


def test_each_class_at_its_own_price() -> None:
    price = Price(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75, reasoning=20.0)
    tokens = Tokens(
        input=100_000, cached_input=120_000, cache_write=80_000, output=20_000, reasoning=10_000
    )
    # 0.3 + 0.036 + 0.3 + 0.3 + 0.2
    assert cost_of(tokens, price) == pytest.approx(1.136, abs=1e-12)


def test_unset_class_prices_fall_back_to_input_and_output() -> None:
    price = Price(input=2.0, output=8.0)
    tokens = Tokens(
        input=1_000_000,
        cached_input=1_000_000,
        cache_write=1_000_000,
        output=1_000_000,
        reasoning=1_000_000,
    )
    assert cost_of(tokens, price) == pytest.approx(2 + 2 + 2 + 8 + 8)


def test_shipped_table_entries_name_source_and_date() -> None:
    text = resources.files("plugway.plugins.cost").joinpath("prices.toml").read_text("utf-8")
    data = tomllib.loads(text)
    assert data["version"]
    entries = 0
    for kind, models in data.items():
        if kind in ("version", "aliases"):
            continue
        for model, entry in models.items():
            entries += 1
            assert entry.get("source"), f"{kind}.{model} has no source"
            assert entry.get("date"), f"{kind}.{model} has no date"
            assert any(field in entry for field in (*PRICE_FIELDS, *MEDIA_FIELDS))
    table = shipped_table()
    for kind in (
        "openai",
        "anthropic",
        "gemini",
        "ark",
        "mistral",
        "deepseek",
        "groq",
        "xai",
        "together",
        "fireworks",
        "ollama",
        "vllm",
        "fake",
    ):
        assert table.entries.get(kind), f"no prices for provider type {kind}"
    assert entries > 40


def test_lookup_prefix_alias_wildcard_and_vendor() -> None:
    table = shipped_table()
    dated = table.lookup("openai", "gpt-4o-mini-2024-07-18")
    assert dated is not None and dated.price.input == 0.15  # not gpt-4o's 2.50
    assert table.lookup("openai", "gpt-4o-2024-08-06").price.input == 2.50  # type: ignore[union-attr]
    azure = table.lookup("azure", "gpt-4.1")
    assert azure is not None and azure.price == table.lookup("openai", "gpt-4.1").price  # type: ignore[union-attr]
    assert table.lookup("ollama", "llama3.2:3b").price.input == 0.0  # type: ignore[union-attr]
    routed = table.lookup("openrouter", "anthropic/claude-opus-4-5")
    assert routed is not None and routed.price.output == 25.0
    assert table.lookup("openai", "no-such-model") is None
    assert table.lookup("no-such-type", "gpt-4o") is None


def test_extra_price_file_overrides_and_adds(tmp_path: Path) -> None:
    extra = tmp_path / "prices.toml"
    extra.write_text(
        'version = "mine"\n[openai."gpt-4o"]\ninput = 1.0\noutput = 2.0\n'
        '[acme."*"]\ninput = 0.5\noutput = 0.5\n'
    )
    table = load_table(str(extra))
    assert table.version == "mine"
    assert table.lookup("openai", "gpt-4o").price == Price(input=1.0, output=2.0)  # type: ignore[union-attr]
    assert table.lookup("acme", "anything").price.input == 0.5  # type: ignore[union-attr]
    assert table.lookup("openai", "gpt-4o-mini").price.input == 0.15  # type: ignore[union-attr]


def test_bad_price_table_names_the_entry() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_table({"openai": {"gpt-x": {"input": "cheap", "outptu": 1}}}, "mine.toml")
    assert "mine.toml: openai.'gpt-x': unknown field(s) outptu" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        parse_table({"openai": {"gpt-x": {"input": -1}}}, "mine.toml")
    assert "openai.'gpt-x'.input: -1 is not a price" in str(caught.value)


def test_cost_header_is_a_plain_decimal() -> None:
    assert format_usd(0.45) == "0.45"
    assert format_usd(5.625e-06) == "0.000005625"
    assert format_usd(0.0) == "0.0"
    assert format_usd(12.0) == "12.0"
