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
