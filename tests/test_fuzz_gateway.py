"""Hypothesis-fuzzed request bodies and headers against a running gateway: never a 500,
always OpenAI's error shape on errors, and the gateway keeps serving."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plugway.testing import FakeOpenAI, GatewayProcess
from sec_kit import MASTER, keyed_config, new_db

FILTERS = """
[plugins.pii]
action = "redact"

[plugins.secrets]
action = "redact"

[plugins.prompt_guard]
action = "flag"
"""


@pytest.fixture(scope="module")
def fuzzed(primary: FakeOpenAI) -> Iterator[tuple[GatewayProcess, httpx.Client]]:
    with (
        GatewayProcess(
            keyed_config(primary, new_db(), FILTERS), env={"PLUGWAY_MASTER_KEY": MASTER}
        ) as gw,
        httpx.Client(base_url=gw.url, timeout=10) as client,
    ):
        yield gw, client


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
message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "system", "assistant", "tool", "x", ""]),
        "content": st.one_of(
            st.text(max_size=80),
            json_value,
            st.lists(
                st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=40)}),
                max_size=3,
            ),
        ),
    }
)
body = st.one_of(
    st.fixed_dictionaries(
        {
            "model": st.sampled_from(["chat", "other", "nope", "", "primary/x"]),
            "messages": st.one_of(st.lists(message, max_size=3), json_value),
        },
        optional={
            "stream": st.one_of(st.booleans(), json_value),
            "max_tokens": json_value,
            "n": json_value,
            "stream_options": json_value,
            "tools": json_value,
        },
    ),
    json_value,
)
header_value = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=60
)
headers = st.dictionaries(
    st.sampled_from(
        [
            "authorization",
            "x-api-key",
            "api-key",
            "content-type",
            "host",
            "x-forwarded-for",
            "content-encoding",
            "transfer-encoding",
            "expect",
            "accept",
            "x-x",
        ]
    ),
    header_value,
    max_size=4,
)


def check(response: httpx.Response) -> None:
    assert response.status_code != 500 or "plugin" not in response.text, response.text
    assert response.status_code < 500 or response.status_code in (502, 503, 504), response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    payload=body,
    extra_headers=headers,
    as_master=st.booleans(),
    path=st.sampled_from(["/v1/chat/completions", "/v1/embeddings", "/chat/completions"]),
)
def test_fuzzed_bodies_and_headers(
    fuzzed: tuple[GatewayProcess, httpx.Client],
    payload: Any,
    extra_headers: dict[str, str],
    as_master: bool,
    path: str,
) -> None:
    _, client = fuzzed
    sent = dict(extra_headers)
    if as_master:
        sent["authorization"] = f"Bearer {MASTER}"
    sent.pop("transfer-encoding", None)  # httpx itself refuses a conflicting framing
    try:
        response = client.post(path, content=json.dumps(payload).encode(), headers=sent)
    except httpx.RemoteProtocolError:
        return  # the server closed a malformed exchange; it must still be serving (below)
    check(response)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.binary(max_size=200))
def test_fuzzed_raw_bytes(fuzzed: tuple[GatewayProcess, httpx.Client], raw: bytes) -> None:
    _, client = fuzzed
    check(
        client.post(
            "/v1/chat/completions", content=raw, headers={"authorization": f"Bearer {MASTER}"}
        )
    )


def test_still_serving_after_fuzzing(fuzzed: tuple[GatewayProcess, httpx.Client]) -> None:
    gw, client = fuzzed
    ok = client.post(
        "/v1/chat/completions",
        headers={"authorization": f"Bearer {MASTER}"},
        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert ok.status_code == 200
    assert "Traceback" not in gw.output(), gw.output()[-3000:]
