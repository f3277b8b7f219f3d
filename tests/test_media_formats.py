"""The media wire formats, pure: Seedance task bodies and states, Veo operations, OpenAI's
video request checks, and per-second prices by resolution."""

from __future__ import annotations

import pytest
from plugway.errors import InvalidRequest
from plugway.formats import ark_tasks, gemini_veo, openai_videos
from plugway.formats.video_jobs import VideoRequest
from plugway.plugins.cost.pricing import shipped_table


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ("1280x720", ("16:9", "720p")),
        ("720x1280", ("9:16", "720p")),
        ("1920x1080", ("16:9", "1080p")),
        ("1024x1792", ("9:16", "1080p")),
        ("864x480", ("16:9", "480p")),
        ("1024x1024", ("1:1", "1080p")),
    ],
)
def test_openai_sizes_map_to_seedance_ratio_and_resolution(
    size: str, expected: tuple[str, str]
) -> None:
    assert ark_tasks.ratio_and_resolution(size) == expected


def test_seedance_sizes_back() -> None:
    assert ark_tasks.size_of("16:9", "720p") == "1280x720"
    assert ark_tasks.size_of("9:16", "1080p") == "1080x1920"
    assert ark_tasks.size_of("5:4", "720p") is None


def test_ark_task_states() -> None:
    assert ark_tasks.from_ark_task({"id": "cgt-1"}).status == "queued"
    assert ark_tasks.from_ark_task({"id": "cgt-1", "status": "running"}).status == "in_progress"
    done = ark_tasks.from_ark_task(
        {
            "id": "cgt-1",
            "status": "succeeded",
            "content": {"video_url": "https://tos/v.mp4"},
            "duration": 5,
            "ratio": "16:9",
            "resolution": "1080p",
        }
    )
    assert (done.status, done.video_url, done.redirectable) == (
        "completed",
        "https://tos/v.mp4",
        True,
    )
    assert (done.seconds, done.size) == (5, "1920x1080")
    failed = ark_tasks.from_ark_task(
        {
            "id": "cgt-1",
            "status": "failed",
            "error": {"code": "OutputVideoSensitiveContentDetected", "message": "no"},
        }
    )
    assert failed.error == {"code": "OutputVideoSensitiveContentDetected", "message": "no"}
    cancelled = ark_tasks.from_ark_task({"id": "cgt-1", "status": "cancelled"})
    assert cancelled.status == "failed" and cancelled.error is not None


def test_a_prompt_flag_wins_over_the_mapped_one() -> None:
    body = ark_tasks.to_ark_task(
        VideoRequest(prompt="x --ratio 21:9", size="1280x720", seconds=5), "seedance"
    )
    assert body["content"][0]["text"] == "x --ratio 21:9 --resolution 720p --duration 5"


def test_veo_request_and_operations() -> None:
    body = gemini_veo.to_veo_request(
        VideoRequest(
            prompt="p",
            size="720x1280",
            seconds=8,
            image_url="data:image/png;base64,AAAA",
            extra={"negativePrompt": "rain", "unknown": 1},
        )
    )
    assert body == {
        "instances": [
            {"prompt": "p", "image": {"bytesBase64Encoded": "AAAA", "mimeType": "image/png"}}
        ],
        "parameters": {
            "aspectRatio": "9:16",
            "resolution": "720p",
            "durationSeconds": 8,
            "negativePrompt": "rain",
        },
    }
    assert gemini_veo.from_operation({"name": "models/v/operations/1"}).status == "in_progress"
    filtered = gemini_veo.from_operation(
        {
            "name": "op",
            "done": True,
            "response": {"generateVideoResponse": {"raiMediaFilteredReasons": ["unsafe"]}},
        }
    )
    assert filtered.status == "failed" and "unsafe" in (filtered.error or {})["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "p", "seconds": 0}, "seconds"),
        ({"prompt": "p", "seconds": True}, "seconds"),
        ({"prompt": "p", "size": "1280*720"}, "size"),
        ({"prompt": "p", "input_reference": 3}, "input_reference"),
    ],
)
def test_video_request_mistakes_name_the_field(body: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidRequest) as error:
        openai_videos.parse(body)
    assert error.value.param == param


def test_video_prices_by_resolution() -> None:
    entry = shipped_table().lookup("ark", "seedance-1-0-pro-250528")
    assert entry is not None
    assert entry.video_cost(5, "1280x720") == pytest.approx(0.27)
    assert entry.video_cost(5, "1920x1080") == pytest.approx(0.6075)
    assert entry.video_cost(5, "640x360") == pytest.approx(0.1215)  # next priced size up
    assert entry.video_cost(5, None) == pytest.approx(0.6075)  # unknown: the dearest
    veo = shipped_table().lookup("gemini", "veo-3.1-generate-preview")
    assert veo is not None and veo.video_cost(8, "1280x720") == pytest.approx(3.2)
