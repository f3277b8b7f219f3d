"""``POST /v1/moderations``: routed like any model, passed through to OpenAI-format targets,
answered by the ``fake`` provider, refused with a 400 naming the route where no target serves
it, and under the same keys, limits and filters as every other door."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from plugway.testing import FakeAnthropic, FakeOpenAI, GatewayProcess
from sec_kit import MASTER, assert_openai_error, create_key, keyed_config, new_db
from test_limits import avoid_window_edge


@pytest.fixture(scope="module")
def moderating(primary: FakeOpenAI, claude_up: FakeAnthropic) -> Iterator[GatewayProcess]:
    config = f"""
[providers.primary]
type = "openai"
base_url = "{primary.url}/v1"
api_key = "sk-primary-secret-0123456789"

[providers.claude]
type = "anthropic"
base_url = "{claude_up.url}"
api_key = "sk-ant-secret-0123456789"

[providers.local]
type = "fake"

[[models]]
name = "omni-moderation-latest"
targets = [{{ provider = "primary", model = "omni-moderation-2024-09-26" }}]

[[models]]
name = "local-moderation"
targets = [{{ provider = "local", model = "fake-moderation" }}]

[[models]]
name = "claude"
targets = [{{ provider = "claude", model = "claude-sonnet-4-5" }}]

[plugins.pii]
action = "redact"
"""
    with GatewayProcess(config) as gw:
        yield gw


def test_passed_through_to_an_openai_format_target(
    moderating: GatewayProcess, primary: FakeOpenAI
) -> None:
    answer = moderating.openai().moderations.create(
        model="omni-moderation-latest", input=["you idiot", "have a nice day"]
    )
    assert [r.flagged for r in answer.results] == [True, False]
    assert answer.results[0].categories.harassment is True
    (seen,) = primary.requests
    assert seen.path == "/v1/moderations"
    assert seen.body["model"] == "omni-moderation-2024-09-26"
    assert seen.headers["authorization"] == "Bearer sk-primary-secret-0123456789"


def test_text_and_image_parts_and_the_fake_provider(moderating: GatewayProcess) -> None:
    raw = moderating.openai().moderations.with_raw_response.create(
        model="local-moderation",
        input=[
            {"type": "text", "text": "I will attack at dawn"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ],
    )
    assert raw.headers["x-plugway-provider"] == "local"
    (result,) = raw.parse().results
    assert result.flagged and result.categories.violence
    assert result.category_applied_input_types.violence == ["image"]


def test_the_pii_filter_sees_moderation_text(
    moderating: GatewayProcess, primary: FakeOpenAI
) -> None:
    moderating.openai().moderations.create(
        model="omni-moderation-latest",
        input=[{"type": "text", "text": "mail jane.doe@example.com now"}],
    )
    (seen,) = primary.requests
    assert "jane.doe@example.com" not in str(seen.body)


def test_a_target_without_moderations_is_a_400_naming_the_route(
    moderating: GatewayProcess, claude_up: FakeAnthropic
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        moderating.openai().moderations.create(model="claude", input="hello")
    assert "route 'claude'" in caught.value.message
    assert caught.value.code == "unsupported_endpoint"
    assert claude_up.requests == []


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": 7}, "input"),
        ({"input": []}, "input"),
        ({"input": [{"type": "text", "text": {}}]}, "input[0].text"),
        ({"input": [{"type": "audio"}]}, "input[0].type"),
        ({"input": ["ok", {"type": "image_url", "image_url": "x"}]}, "input[1].image_url.url"),
    ],
)
def test_malformed_bodies_are_400s_before_any_upstream_call(
    moderating: GatewayProcess, primary: FakeOpenAI, body: dict[str, object], param: str
) -> None:
    answer = httpx.post(
        f"{moderating.base_url}/moderations", json={"model": "omni-moderation-latest", **body}
    )
    assert assert_openai_error(answer, 400)["param"] == param
    assert primary.requests == []


def test_keys_and_rate_limits_hold_at_this_door(primary: FakeOpenAI) -> None:
    extra = '\n[[models]]\nname = "mod"\ntargets = [{ provider = "primary", model = "omni" }]\n'
    with GatewayProcess(
        keyed_config(primary, new_db(), extra), env={"PLUGWAY_MASTER_KEY": MASTER}
    ) as gw:
        anonymous = httpx.post(f"{gw.base_url}/moderations", json={"model": "mod", "input": "x"})
        assert_openai_error(anonymous, 401)
        key = create_key(gw, team="t", limits={"rpm": 1})["key"]
        client = gw.openai(api_key=key)
        avoid_window_edge()
        client.moderations.create(model="mod", input="fine")
        with pytest.raises(openai.RateLimitError):
            client.moderations.create(model="mod", input="again")
    assert len(primary.requests) == 1


def test_model_is_optional_as_in_openais_api(
    moderating: GatewayProcess, primary: FakeOpenAI
) -> None:
    answer = httpx.post(f"{moderating.base_url}/moderations", json={"input": "hello"})
    assert answer.status_code == 200, answer.text
    assert primary.requests[0].body["model"] == "omni-moderation-2024-09-26"
