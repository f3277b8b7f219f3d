"""``/v1/videos`` through the gateway, driven by the openai SDK: the fake provider, ModelArk's
Seedance tasks, OpenAI's video API and Veo's operations (each against its fake upstream), a
job polled on another gateway than the one that accepted it, failover before acceptance, a
failed job's error, cost per job, a streamed 200 MB download, and budgets at this door."""

from __future__ import annotations

import httpx
import openai
import pytest
from plugway.testing import GatewayProcess

# The SDK marks every method of its video resource deprecated (Sora's shutdown); the API shape
# is what the gateway serves for every video provider.
pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")

FAKE_ONLY = """
[providers.fake]
type = "fake"
video_polls = 3
video_bytes = 5000

[[models]]
name = "video"
targets = [{ provider = "fake", model = "fake-video" }]
"""


def client_for(gw: GatewayProcess, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


def test_fake_video_lifecycle_through_the_sdk(start_gateway) -> None:  # type: ignore[no-untyped-def]
    gw = start_gateway(FAKE_ONLY)
    client = client_for(gw)
    video = client.videos.create(model="video", prompt="a cat on a skateboard", seconds="8")
    assert video.id.startswith("video_") and video.status == "queued"
    assert video.object == "video" and video.seconds == "8"
    polled = [client.videos.retrieve(video.id).status for _ in range(3)]
    assert polled == ["in_progress", "in_progress", "completed"]
    content = client.videos.download_content(video.id)
    assert len(content.content) == 5000
    listed = client.videos.list()
    assert [v.id for v in listed.data] == [video.id]
    deleted = client.videos.delete(video.id)
    assert deleted.deleted and deleted.id == video.id
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(video.id)
