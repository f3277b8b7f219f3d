"""Shared by the fuzz tests (tests/test_fuzz_gateway.py, tests/test_fuzz_doors.py): hypothesis
strategies for arbitrary JSON and for "a valid body with one value replaced", the gateway with
two targets of every upstream format, and the invariants every fuzzed request must keep (no
5xx, at most one attempt, no target's health or circuit changed)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Iterator
from typing import Any

import httpx
from fault_kit import FAULTY, health, three_formats_config
from hypothesis import strategies as st
from plugway.testing import FakeAnthropic, FakeGemini, FakeOpenAI, GatewayProcess

#: The model names of three_formats_config's routes with two targets each: OpenAI, Anthropic
#: and Gemini upstreams.
FORMAT_ROUTES = ["oai", "claude", "gem"]

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=40)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
short_text = st.text(max_size=20)


def one_value_replaced(
    valid: st.SearchStrategy[dict[str, Any]], keep: Collection[str] = ("model",)
) -> st.SearchStrategy[dict[str, Any]]:
    """Bodies drawn from ``valid`` with one value anywhere in them (not a top-level key in
    ``keep``) replaced by an arbitrary JSON value: the schema-violating bodies."""

    @st.composite
    def replaced(draw: st.DrawFn) -> dict[str, Any]:
        # A copy: strategies such as st.just hand out the same objects every time.
        body: dict[str, Any] = copy.deepcopy(draw(valid))
        spots: list[tuple[Any, Any]] = []

        def walk(node: Any) -> None:
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, child in items:
                if node is body and key in keep:
                    continue
                spots.append((node, key))
                if isinstance(child, (dict, list)):
                    walk(child)

        walk(body)
        if not spots:
            return body
        node, key = draw(st.sampled_from(spots))
        node[key] = draw(json_value)
        return body

    return replaced()


def formats_gateway_at(
    primary: FakeOpenAI, backup: FakeOpenAI, claude_up: FakeAnthropic, extra: str = ""
) -> Iterator[tuple[GatewayProcess, httpx.Client]]:
    """The gateway of three_formats_config (plus ``extra`` TOML) and a client to it."""
    with (
        FakeGemini() as gemini,
        GatewayProcess(
            three_formats_config(primary, backup, claude_up, gemini) + extra, plugins=[FAULTY]
        ) as gw,
        httpx.Client(base_url=gw.url, timeout=15) as client,
    ):
        yield gw, client


def openai_error(response: httpx.Response) -> dict[str, Any]:
    """The error of an OpenAI-shaped error answer (asserting the shape)."""
    error: dict[str, Any] = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}, response.text
    return error


def anthropic_error(response: httpx.Response) -> dict[str, Any]:
    """The error of an Anthropic-shaped error answer (asserting the shape)."""
    data = response.json()
    assert data["type"] == "error" and isinstance(data["error"]["message"], str), response.text
    error: dict[str, Any] = data["error"]
    return error


def hurt_no_target(
    gw: GatewayProcess,
    response: httpx.Response,
    sent: Any,
    shape: Callable[[httpx.Response], dict[str, Any]] = openai_error,
) -> None:
    """The invariants of a fuzzed request: no 5xx, at most one attempt, an error in the door's
    ``shape``, and no target's ``plugway_target_up`` / ``plugway_target_circuit_state`` in
    /metrics showing a failure."""
    assert response.status_code < 500, (sent, response.text)
    assert int(response.headers.get("x-plugway-attempts", "0")) <= 1, (sent, response.headers)
    if response.status_code >= 400:
        shape(response)
    for key, (up, circuit) in health(gw.url).items():
        assert up != 0.0 and circuit in (None, 0.0), (sent, key, up, circuit)
