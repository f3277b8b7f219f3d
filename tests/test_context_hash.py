"""Targets and routes are hashable, options and all: plugins keep them in sets and as keys
(the metrics plugin collects the targets a request tried in a set)."""

from __future__ import annotations

from plugway.context import Route, Target


def test_targets_with_options_hash_and_compare() -> None:
    a = Target("p", "m", options={"region": "eu"})
    b = Target("p", "m", options={"region": "eu"})
    c = Target("p", "m", options={"region": "us"})
    assert {a, b, c} == {a, c}
    assert len({a, b, c}) == 2
    assert {a: 1}[b] == 1
    assert hash(Route("r", (a, c), options={"x": 1})) == hash(Route("r", (a, c)))
