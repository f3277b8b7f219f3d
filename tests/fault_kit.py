"""Shared by tests/test_faults.py and tests/test_fuzz_gateway.py: one gateway with two targets
of every upstream format (OpenAI, Anthropic, Gemini) and a buggy provider, the health plugin
on, and helpers that read each target's health from ``/metrics``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from plugway.testing import FakeAnthropic, FakeGemini, FakeOpenAI
from prometheus_client.parser import text_string_to_metric_families

FAULTY = Path(__file__).parent / "hook_plugins" / "faulty.py"

#: model -> its two targets (provider instance, upstream model).
ROUTES: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "oai": (("oai1", "gpt-4o-mini"), ("oai2", "gpt-4o-mini-backup")),
    "claude": (("ant1", "claude-haiku-4-5"), ("ant2", "claude-sonnet-4-5")),
    "gem": (("gem1", "gemini-2.5-flash"), ("gem2", "gemini-2.5-pro")),
    "buggy": (("bug1", "b1"), ("bug2", "b2")),
}


def three_formats_config(
    primary: FakeOpenAI, backup: FakeOpenAI, claude: FakeAnthropic, gemini: FakeGemini
) -> str:
    models = "\n".join(
        f"""
[[models]]
name = "{name}"
targets = [{{ provider = "{a[0]}", model = "{a[1]}" }}, {{ provider = "{b[0]}", model = "{b[1]}" }}]
"""
        for name, (a, b) in ROUTES.items()
    )
    return f"""
[providers.oai1]
type = "openai"
base_url = "{primary.url}/v1"
api_key = "sk-oai1-secret-0123456789"
timeout = 3

[providers.oai2]
type = "openai"
base_url = "{backup.url}/v1"
api_key = "sk-oai2-secret-0123456789"
timeout = 3

[providers.ant1]
type = "anthropic"
base_url = "{claude.url}"
api_key = "sk-ant-one-secret-0123456789"
timeout = 3

[providers.ant2]
type = "anthropic"
base_url = "{claude.url}"
api_key = "sk-ant-two-secret-0123456789"
timeout = 3

[providers.gem1]
type = "gemini"
base_url = "{gemini.url}"
api_key = "AIzaSyFAKE-gem1-key-0123456789abcdef"
timeout = 3

[providers.gem2]
type = "gemini"
base_url = "{gemini.url}"
api_key = "AIzaSyFAKE-gem2-key-0123456789abcdef"
timeout = 3

[providers.bug1]
type = "buggy"

[providers.bug2]
type = "buggy"

[routing]
deadline = 8
{models}
"""


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url + "/metrics").text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    """The sum over samples of ``name`` whose labels include ``labels``."""
    return sum(
        v
        for (n, ls), v in samples.items()
        if n == name and all(dict(ls).get(k) == x for k, x in labels.items())
    )


def health(url: str) -> dict[str, tuple[float | None, float | None]]:
    """Per target ``provider/model``: (``plugway_target_up``, ``plugway_target_circuit_state``)
    as /metrics reports them (None when never reported)."""
    samples = scrape(url)
    out: dict[str, tuple[float | None, float | None]] = {}
    for (name, labels), v in samples.items():
        if name not in ("plugway_target_up", "plugway_target_circuit_state"):
            continue
        ls = dict(labels)
        key = f"{ls['provider']}/{ls['upstream_model']}"
        up, circuit = out.get(key, (None, None))
        out[key] = (v, circuit) if name == "plugway_target_up" else (up, v)
    return out


def all_healthy(url: str) -> None:
    """Every target /metrics knows of is up with its circuit closed, and /ready says closed."""
    for key, (up, circuit) in health(url).items():
        assert up in (None, 1.0), f"{key} is down: {up}"
        assert circuit in (None, 0.0), f"{key}'s circuit is {circuit}"
    ready = httpx.get(url + "/ready").json()
    assert all(state == "closed" for state in ready.get("targets", {}).values()), ready


_USER = {"role": "user", "content": "hi"}
_CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def _with(**fields: Any) -> dict[str, Any]:
    return {"messages": [_USER], **fields}


def _assistant(**fields: Any) -> dict[str, Any]:
    return {"messages": [_USER, {"role": "assistant", **fields}]}


#: Chat bodies that break OpenAI's published schema (OpenAI answers each with a 400), with the
#: field path the gateway names. Every body that once got a 5xx, a failover or a health mark,
#: or went through translated, stays here as a regression case.
SCHEMA_VIOLATIONS: list[tuple[dict[str, Any], str]] = [
    (_with(n="two"), "n"),
    (_with(n=0), "n"),
    (_with(temperature="hot"), "temperature"),
    (_with(temperature=True), "temperature"),
    (_with(top_p="1"), "top_p"),
    (_with(presence_penalty=[1]), "presence_penalty"),
    (_with(frequency_penalty={}), "frequency_penalty"),
    (_with(max_tokens="100"), "max_tokens"),
    (_with(max_tokens=1.5), "max_tokens"),
    (_with(max_completion_tokens=[]), "max_completion_tokens"),
    (_with(seed="7"), "seed"),
    (_with(stop=7), "stop"),
    (_with(stop=["a", 1]), "stop[1]"),
    (_with(stop={"x": 1}), "stop"),
    (_with(logprobs="yes"), "logprobs"),
    (_with(top_logprobs="3"), "top_logprobs"),
    (_with(parallel_tool_calls="no"), "parallel_tool_calls"),
    (_with(user=42), "user"),
    (_with(logit_bias=[1]), "logit_bias"),
    (_with(logit_bias={"50256": "x"}), "logit_bias.50256"),
    (_with(stream_options={"include_usage": "yes"}), "stream_options.include_usage"),
    (_with(stream_options="usage"), "stream_options"),
    (_with(metadata="x"), "metadata"),
    (_with(modalities="text"), "modalities"),
    (_with(tools={"type": "function", "function": {"name": "f"}}), "tools"),
    (_with(tools=[{"type": "function"}]), "tools[0].function"),
    (_with(tools=[{"type": "function", "function": {"name": 1}}]), "tools[0].function.name"),
    (
        _with(tools=[{"type": "function", "function": {"name": "f", "parameters": "{}"}}]),
        "tools[0].function.parameters",
    ),
    (_with(tools=["f"]), "tools[0]"),
    (_with(tool_choice="sometimes"), "tool_choice"),
    (_with(tool_choice={"type": "function", "function": "f"}), "tool_choice.function.name"),
    (_with(response_format="json"), "response_format"),
    (_with(response_format={"type": "yaml"}), "response_format.type"),
    (
        _with(response_format={"type": "json_schema", "json_schema": "x"}),
        "response_format.json_schema",
    ),
    (
        _with(response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": 1}}),
        "response_format.json_schema.schema",
    ),
    ({"messages": "hi"}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": ["hi"]}, "messages[0]"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": ["user"], "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user"}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": 7}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": {"text": "x"}}]}, "messages[0].content"),
    (
        {"messages": [{"role": "user", "content": [{"type": "text", "text": {}}]}]},
        "messages[0].content[0].text",
    ),
    ({"messages": [{"role": "user", "content": [{"text": "x"}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": ["x"]}]}, "messages[0].content[0]"),
    (
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "u"}]}]},
        "messages[0].content[0].image_url",
    ),
    (
        {
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": 1}}]}
            ]
        },
        "messages[0].content[0].image_url.url",
    ),
    ({"messages": [{"role": "user", "content": "x", "name": 5}]}, "messages[0].name"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    (_assistant(content=None, tool_calls={"id": "c"}), "messages[1].tool_calls"),
    (_assistant(tool_calls=["c"]), "messages[1].tool_calls[0]"),
    (_assistant(tool_calls=[{**_CALL, "id": 1}]), "messages[1].tool_calls[0].id"),
    (_assistant(tool_calls=[{**_CALL, "function": "f"}]), "messages[1].tool_calls[0].function"),
    (
        _assistant(tool_calls=[{**_CALL, "function": {"name": "f", "arguments": {}}}]),
        "messages[1].tool_calls[0].function.arguments",
    ),
    (_assistant(content=5), "messages[1].content"),
    (_assistant(content="x", refusal=1), "messages[1].refusal"),
]


_GEM_TOOL = {"type": "function", "name": "f"}

#: Bodies at the doors after chat, found failing by tests/test_fuzz_doors.py, as (path, the
#: routes of fuzz_kit.FORMAT_ROUTES it is sent to, body without the model, the field path the
#: 400 names). Each got a 400 that named no field (an upstream's, or a chat field the client
#: never sent) or went upstream untranslatable.
DOOR_VIOLATIONS: list[tuple[str, tuple[str, ...], dict[str, Any], str]] = [
    ("/v1/responses", ("oai", "claude", "gem"), {"input": 7}, "input"),
    ("/v1/completions", ("oai", "claude", "gem"), {"prompt": "x", "n": "two"}, "n"),
    # Refused by the Anthropic translation naming chat's response_format.type.
    (
        "/v1/responses",
        ("claude",),
        {"input": "x", "text": {"format": {"type": "json_object"}}},
        "text.format.type",
    ),
    # Only empty texts: Anthropic answered 400 "messages: Field required" (no param).
    ("/v1/responses", ("claude",), {"input": ""}, "input"),
    ("/v1/completions", ("claude",), {"prompt": ""}, "prompt"),
    # OpenAI's range, not Anthropic's: the upstream's 400 named no field.
    ("/v1/responses", ("claude",), {"input": "x", "temperature": 2.0}, "temperature"),
    ("/v1/completions", ("claude",), {"prompt": "x", "temperature": 1.5}, "temperature"),
    # A tool schema Gemini refuses with a 400 that names no field of the request.
    (
        "/v1/responses",
        ("gem",),
        {"input": "x", "tools": [{**_GEM_TOOL, "parameters": {"type": None, "properties": {}}}]},
        "tools[0].parameters.type",
    ),
    (
        "/v1/responses",
        ("gem",),
        {"input": "x", "tools": [{**_GEM_TOOL, "parameters": {"properties": {"a": None}}}]},
        "tools[0].parameters.properties.a",
    ),
    (
        "/v1/responses",
        ("gem",),
        {"input": "x", "tools": [{**_GEM_TOOL, "parameters": {"properties": True}}]},
        "tools[0].parameters.properties",
    ),
    (
        "/v1/chat/completions",
        ("gem",),
        {
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": 1}}}],
        },
        "tools[0].function.parameters.type",
    ),
    # Found by the OpenAPI-generated bodies: sent on to Gemini as outputDimensionality (the
    # fake Gemini then built a vector of that size).
    ("/v1/embeddings", ("gem",), {"input": "x", "dimensions": 10**9}, "dimensions"),
    # The same in a response schema (Gemini's responseSchema).
    (
        "/v1/responses",
        ("gem",),
        {
            "input": "x",
            "text": {"format": {"type": "json_schema", "name": "s", "schema": {"type": None}}},
        },
        "text.format.schema.type",
    ),
]
