"""``GET /v1/models`` answers each client in its own API's shape: OpenAI's for OpenAI clients,
Anthropic's (``type: "model"``, ``created_at`` in RFC 3339, ``has_more``/``first_id``/``last_id``
pages) for Anthropic clients, so both SDKs' strict validation passes."""

from __future__ import annotations

import anthropic
import httpx
import pytest
from plugway.testing import GatewayProcess


def anthropic_client(gateway: GatewayProcess) -> anthropic.Anthropic:
    # The strict client validates every answer against the SDK's types.
    return anthropic.Anthropic(
        base_url=gateway.url, api_key="sk-ant-any", max_retries=0, _strict_response_validation=True
    )


def test_anthropic_sdk_lists_models_in_its_own_shape(gateway: GatewayProcess) -> None:
    client = anthropic_client(gateway)
    listed = [model.id for model in client.models.list()]
    openai_ids = [m["id"] for m in httpx.get(f"{gateway.base_url}/models").json()["data"]]
    assert listed == openai_ids
    assert {"chat", "solo", "embed", "primary/gpt-4o-mini"} <= set(listed)
    first = client.models.list().data[0]
    assert first.type == "model" and first.display_name == first.id
    assert first.created_at.year >= 2025


def test_anthropic_pages_follow_the_cursor(gateway: GatewayProcess) -> None:
    client = anthropic_client(gateway)
    everything = [model.id for model in client.models.list()]
    page = client.models.list(limit=2)
    assert [m.id for m in page.data] == everything[:2]
    assert page.has_more is True and page.last_id == everything[1]
    # The SDK's own auto-paging walks every page with after_id.
    assert [m.id for m in client.models.list(limit=2)] == everything
    before = client.models.list(limit=2, before_id=everything[3])
    assert [m.id for m in before.data] == everything[1:3]
    assert before.has_more is True


def test_anthropic_retrieve_a_model(gateway: GatewayProcess) -> None:
    model = anthropic_client(gateway).models.retrieve("chat")
    assert model.id == "chat" and model.type == "model"
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client(gateway).models.retrieve("no-such-model")


@pytest.mark.parametrize(
    ("query", "param"),
    [("limit=0", "limit"), ("limit=x", "limit"), ("after_id=nope", "after_id")],
)
def test_a_bad_page_request_is_a_400(gateway: GatewayProcess, query: str, param: str) -> None:
    answer = httpx.get(
        f"{gateway.base_url}/models?{query}", headers={"anthropic-version": "2023-06-01"}
    )
    assert answer.status_code == 400
    assert param in answer.text


def test_openai_clients_keep_openai_shape(gateway: GatewayProcess) -> None:
    models = gateway.openai().models.list()
    assert {m.id for m in models} >= {"chat", "solo"}
    assert all(m.object == "model" and isinstance(m.created, int) for m in models)
    assert gateway.openai().models.retrieve("chat").owned_by == "primary"
