"""``/v1/videos`` through the gateway, driven by the openai SDK: the fake provider, ModelArk's
Seedance tasks, OpenAI's video API and Veo's operations (each against its fake upstream), a
job polled on another gateway than the one that accepted it, failover before acceptance, a
failed job's error, cost per job, a streamed 200 MB download, and budgets at this door."""

from __future__ import annotations

import base64
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from plugway.testing import FailJob, FakeMedia, GatewayProcess, SlowJob, Status
from plugway.testing.fake_media import video_block
from sec_kit import MASTER, RedisServer, create_key, new_db
from test_limits import avoid_window_edge

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


@pytest.fixture(scope="module")
def media() -> Iterator[FakeMedia]:
    with FakeMedia() as upstream:
        yield upstream


@pytest.fixture(autouse=True)
def _fresh_media(request: pytest.FixtureRequest) -> None:
    if "media" in request.fixturenames:
        request.getfixturevalue("media").reset()


def media_config(media: FakeMedia, extra: str = "") -> str:
    return f"""
[providers.ark]
type = "ark"
base_url = "{media.url}/api/v3"
api_key = "ark-secret-key-0123456789"

[providers.oai]
type = "openai"
base_url = "{media.url}/v1"
api_key = "sk-openai-secret-0123456789"

[providers.veo]
type = "gemini"
base_url = "{media.url}"
api_key = "gemini-secret-key-0123456789"

[providers.fake]
type = "fake"

[plugins]
disabled = ["health"]

[[models]]
name = "seedance"
targets = [{{ provider = "ark", model = "seedance-1-0-pro-250528" }}]

[[models]]
name = "sora"
targets = [{{ provider = "oai", model = "sora-2-2025-12-08" }}]

[[models]]
name = "veo"
targets = [{{ provider = "veo", model = "veo-3.0-generate-001" }}]

[[models]]
name = "any-video"
targets = [
  {{ provider = "ark", model = "seedance-1-0-pro-250528" }},
  {{ provider = "oai", model = "sora-2-2025-12-08" }},
]
{extra}
"""


@pytest.fixture(scope="module")
def media_gateway(media: FakeMedia) -> Iterator[GatewayProcess]:
    with GatewayProcess(media_config(media)) as gw:
        yield gw


def only_job(media: FakeMedia) -> str:
    assert len(media.jobs) == 1
    return next(iter(media.jobs))


def expected_bytes(job_id: str, size: int) -> bytes:
    block = video_block(job_id)
    return (block * (size // len(block) + 1))[:size]


@pytest.mark.parametrize(
    ("model", "create_path"),
    [
        ("seedance", "/api/v3/contents/generations/tasks"),
        ("sora", "/v1/videos"),
        ("veo", "/v1beta/models/veo-3.0-generate-001:predictLongRunning"),
    ],
)
def test_each_provider_through_the_sdk(
    media_gateway: GatewayProcess, media: FakeMedia, model: str, create_path: str
) -> None:
    client = client_for(media_gateway)
    video = client.videos.create(model=model, prompt="a red fox", seconds="8", size="1280x720")
    assert video.id.startswith("video_") and video.status in ("queued", "in_progress")
    job_id = only_job(media)
    assert job_id not in video.id
    created = next(r for r in media.requests if r.method == "POST")
    assert created.path == create_path
    done = client.videos.retrieve(video.id)
    assert done.status == "completed" and done.progress == 100 and done.seconds == "8"
    content = client.videos.download_content(video.id)
    assert content.content == expected_bytes(job_id, media.video_bytes)
    assert video.id in [v.id for v in client.videos.list().data]
    assert client.videos.delete(video.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(video.id)


def test_ark_task_carries_seedance_parameters(
    media_gateway: GatewayProcess, media: FakeMedia
) -> None:
    client = client_for(media_gateway)
    client.videos.create(
        model="seedance",
        prompt="waves at dusk",
        seconds="8",
        size="720x1280",
        input_reference=("frame.png", b"\x89PNG-first-frame", "image/png"),
        extra_body={"watermark": False, "seed": 42, "camera_fixed": True},
    )
    task = next(r for r in media.requests if r.method == "POST").body
    assert task["model"] == "seedance-1-0-pro-250528"
    text, image = task["content"]
    assert text == {
        "type": "text",
        "text": "waves at dusk --ratio 9:16 --resolution 720p --duration 8 --watermark false "
        "--seed 42 --camerafixed true",
    }
    frame = "data:image/png;base64," + base64.b64encode(b"\x89PNG-first-frame").decode()
    assert image == {"type": "image_url", "image_url": {"url": frame}}
    auth = next(r for r in media.requests if r.method == "POST").headers["authorization"]
    assert auth == "Bearer ark-secret-key-0123456789"


def test_json_create_with_an_image_url_reference(
    media_gateway: GatewayProcess, media: FakeMedia
) -> None:
    response = httpx.post(
        media_gateway.url + "/v1/videos",
        json={
            "model": "seedance",
            "prompt": "a cat --ratio 1:1",
            "input_reference": {"image_url": "https://example.com/cat.png"},
            "resolution": "1080p",
        },
    )
    assert response.status_code == 200, response.text
    task = next(r for r in media.requests if r.method == "POST").body
    assert task["content"] == [
        {"type": "text", "text": "a cat --ratio 1:1 --resolution 1080p"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]


def test_failover_when_the_first_provider_refuses_the_job(
    media_gateway: GatewayProcess, media: FakeMedia
) -> None:
    media.script(Status(503, "overloaded"))
    client = client_for(media_gateway)
    video = client.videos.with_raw_response.create(model="any-video", prompt="a lighthouse")
    assert video.headers["x-plugway-provider"] == "oai"
    assert video.headers["x-plugway-attempts"] == "2"
    parsed = video.parse()
    job_id = only_job(media)
    assert job_id.startswith("video_")  # OpenAI's fake names its jobs video_...
    # pinned: polls go to the provider that accepted it, never to the one that refused
    assert client.videos.retrieve(parsed.id).status == "completed"
    polls = [r.path for r in media.requests if r.method == "GET"]
    assert polls == [f"/v1/videos/{job_id}"]


def test_a_refused_job_is_an_error_in_openais_shape(
    media_gateway: GatewayProcess, media: FakeMedia
) -> None:
    media.script(Status(400, "prompt rejected", code="InputTextSensitiveContentDetected"))
    response = httpx.post(
        media_gateway.url + "/v1/videos", json={"model": "seedance", "prompt": "something"}
    )
    assert response.status_code == 400
    assert set(response.json()["error"]) >= {"message", "type", "param", "code"}
    assert "ark-secret" not in response.text


@pytest.mark.parametrize("model", ["seedance", "sora", "veo"])
def test_a_failed_job_reports_its_error_in_openais_shape(
    media_gateway: GatewayProcess, media: FakeMedia, model: str
) -> None:
    media.script(FailJob(code="content_policy_violation", message="blocked by policy"))
    client = client_for(media_gateway)
    video = client.videos.create(model=model, prompt="a storm")
    failed = client.videos.retrieve(video.id)
    assert failed.status == "failed"
    assert failed.error is not None and failed.error.message == "blocked by policy"
    assert failed.error.code == "content_policy_violation"
    with pytest.raises(openai.BadRequestError) as refused:
        client.videos.download_content(video.id)
    assert refused.value.code == "video_not_ready"


def test_bad_input_is_a_400_naming_the_field(media_gateway: GatewayProcess) -> None:
    url = media_gateway.url + "/v1/videos"
    cases = [
        ({"model": "seedance"}, "prompt"),
        ({"model": "seedance", "prompt": "x", "seconds": "ten"}, "seconds"),
        ({"model": "seedance", "prompt": "x", "size": "big"}, "size"),
        (
            {"model": "seedance", "prompt": "x", "input_reference": {"file_id": "f"}},
            "input_reference.file_id",
        ),
        ({"prompt": "x"}, "model"),
    ]
    for body, param in cases:
        response = httpx.post(url, json=body)
        assert response.status_code == 400, body
        assert response.json()["error"]["param"] == param


def test_another_tenants_video_is_not_found(start_gateway, media: FakeMedia) -> None:  # type: ignore[no-untyped-def]
    keys = f'\n[plugins.keys]\ndb = "{new_db()}"\ncache_seconds = 0.5\n'
    gw = start_gateway(media_config(media, keys), env={"PLUGWAY_MASTER_KEY": MASTER})
    alice = create_key(gw, team="alice")["key"]
    bob = create_key(gw, team="bob")["key"]
    video = client_for(gw, alice).videos.create(model="seedance", prompt="a kite")
    assert client_for(gw, alice).videos.retrieve(video.id).id == video.id
    with pytest.raises(openai.NotFoundError):
        client_for(gw, bob).videos.retrieve(video.id)
    with pytest.raises(openai.NotFoundError):
        client_for(gw, bob).videos.download_content(video.id)
    assert client_for(gw, bob).videos.list().data == []


# -- across workers and machines ----------------------------------------------------------------


def test_a_job_accepted_by_one_gateway_is_polled_on_another(
    start_gateway,
    media: FakeMedia,  # type: ignore[no-untyped-def]
) -> None:
    with RedisServer() as redis:
        shared = f'\n[state]\nbackend = "redis"\nurl = "{redis.url}"\n'
        one = start_gateway(media_config(media, shared))
        two = start_gateway(media_config(media, shared))
        video = client_for(one).videos.create(model="seedance", prompt="a train", seconds="8")
        job_id = only_job(media)
        polled = client_for(two).videos.retrieve(video.id)
        assert polled.id == video.id and polled.status == "completed"
        assert client_for(two).videos.download_content(video.id).content == expected_bytes(
            job_id, media.video_bytes
        )
        assert [v.id for v in client_for(two).videos.list().data] == [video.id]
        assert client_for(two).videos.delete(video.id).deleted
        with pytest.raises(openai.NotFoundError):
            client_for(one).videos.retrieve(video.id)


# -- the download is streamed -------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and its children (the gateway's workers)."""
    total = 0
    for each in [pid, *children_of(pid)]:
        try:
            status = Path(f"/proc/{each}/status").read_text()
        except OSError:
            continue
        line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
        total += int(line.split()[1]) * 1024
    return total


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def test_a_200_mb_video_is_streamed_through_not_held(start_gateway) -> None:  # type: ignore[no-untyped-def]
    size = 200 * 1024 * 1024
    with FakeMedia(video_bytes=size) as big:
        gw = start_gateway(media_config(big))
        assert gw.process is not None
        client = client_for(gw)
        video = client.videos.create(model="seedance", prompt="a long take")
        assert client.videos.retrieve(video.id).status == "completed"
        before = peak = rss_bytes(gw.process.pid)
        received = 0
        with client.with_options(timeout=120).videos.with_streaming_response.download_content(
            video.id
        ) as response:
            for index, piece in enumerate(response.iter_bytes(1024 * 1024)):
                received += len(piece)
                if index % 8 == 0:
                    peak = max(peak, rss_bytes(gw.process.pid))
        assert received == size
        # Held whole, the video alone would add 200 MB; streamed, the gateway's memory
        # grows by its buffers only.
        assert peak - before < 40 * 1024 * 1024, (before, peak)


# -- budgets and limits at this door ------------------------------------------------------------


def test_a_spent_budget_is_refused_with_no_upstream_call(
    start_gateway,
    media: FakeMedia,  # type: ignore[no-untyped-def]
) -> None:
    keys = f'\n[plugins.keys]\ndb = "{new_db()}"\ncache_seconds = 0.5\n'
    gw = start_gateway(media_config(media, keys), env={"PLUGWAY_MASTER_KEY": MASTER})
    # An 8-second 720p Seedance job costs $0.432: the first is reserved on the budget, the
    # second would pass it.
    spent = create_key(gw, team="t", limits={"budget_usd": 0.5})["key"]
    limited = create_key(gw, team="u", limits={"rpm": 1})["key"]
    avoid_window_edge()  # the two calls must fall in one minute window
    asked = {"model": "seedance", "prompt": "a kite", "seconds": "8", "size": "1280x720"}
    client_for(gw, spent).videos.create(**asked)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError) as refused:
        client_for(gw, spent).videos.create(**asked)  # type: ignore[arg-type]
    assert refused.value.code == "budget_exceeded"
    client_for(gw, limited).videos.create(model="seedance", prompt="a kite")
    with pytest.raises(openai.RateLimitError) as limited_out:
        client_for(gw, limited).videos.create(model="seedance", prompt="a kite")
    assert limited_out.value.code == "rate_limit_exceeded"
    assert len([r for r in media.requests if r.method == "POST"]) == 2


# -- cost ---------------------------------------------------------------------------------------


def test_cost_per_job_is_exact_in_the_log_store_and_metrics(
    start_gateway,
    media: FakeMedia,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    store = tmp_path / "requests.db"
    gw = start_gateway(media_config(media, f'\n[plugins.store]\npath = "{store}"\n'))
    client = client_for(gw)
    media.script(SlowJob(polls=2))
    video = client.videos.create(model="seedance", prompt="a bay", seconds="8", size="1280x720")
    assert client.videos.retrieve(video.id).status == "in_progress"
    assert client.videos.retrieve(video.id).status == "completed"
    client.videos.retrieve(video.id)  # polled again: priced once only
    records = [r for r in gw.request_logs(wait_for=2) if r["endpoint"] == "videos.completed"]
    # Seedance 1.0 Pro at 720p: $0.054 a second, 8 seconds
    assert len(records) == 1 and records[0]["cost"] == pytest.approx(0.432, abs=1e-12)
    assert records[0]["provider"] == "ark" and records[0]["model"] == "seedance"
    conn = sqlite3.connect(store)
    deadline = time.monotonic() + 5
    while True:
        costs = conn.execute(
            "SELECT cost FROM requests WHERE endpoint = 'videos.completed'"
        ).fetchall()
        if costs or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    conn.close()
    assert costs == [(pytest.approx(0.432, abs=1e-12),)]
    metrics = httpx.get(gw.url + "/metrics").text
    total = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("plugway_cost_usd_total{")
    )
    assert total == pytest.approx(0.432, abs=1e-12)


def test_fake_jobs_cost_by_their_seconds_and_failed_jobs_nothing(start_gateway) -> None:  # type: ignore[no-untyped-def]
    gw = start_gateway(FAKE_ONLY.replace("video_polls = 3", "video_polls = 1"))
    client = client_for(gw)
    ok = client.videos.create(model="video", prompt="a dune", seconds="12")
    bad = client.videos.create(model="video", prompt="[fail] a dune", seconds="12")
    assert client.videos.retrieve(ok.id).status == "completed"
    failed = client.videos.retrieve(bad.id)
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.code == "content_policy_violation"
    ends = [r for r in gw.request_logs(wait_for=4) if r["endpoint"] == "videos.completed"]
    assert sorted(r["cost"] for r in ends) == [0.0, pytest.approx(0.12, abs=1e-12)]


def test_redirect_to_the_providers_keyless_url_when_configured(  # type: ignore[no-untyped-def]
    start_gateway, media: FakeMedia
) -> None:
    gw = start_gateway(media_config(media, "\n[plugins.videos]\nredirect = true\n"))
    client = client_for(gw)
    video = client.videos.create(model="seedance", prompt="a glacier")
    job_id = only_job(media)
    assert client.videos.retrieve(video.id).status == "completed"
    response = httpx.get(f"{gw.url}/v1/videos/{video.id}/content")
    assert response.status_code == 302
    assert response.headers["location"] == f"{media.url}/files/{job_id}.mp4"
    # Veo's file URL needs the key: streamed through even with redirect on
    veo = client.videos.create(model="veo", prompt="a glacier")
    assert client.videos.retrieve(veo.id).status == "completed"
    streamed = httpx.get(f"{gw.url}/v1/videos/{veo.id}/content")
    assert streamed.status_code == 200 and len(streamed.content) == media.video_bytes


def test_a_budget_holds_the_jobs_estimate_until_it_ends_then_its_real_cost(  # type: ignore[no-untyped-def]
    start_gateway, media: FakeMedia
) -> None:
    keys = f'\n[plugins.keys]\ndb = "{new_db()}"\ncache_seconds = 0.5\n'
    gw = start_gateway(media_config(media, keys), env={"PLUGWAY_MASTER_KEY": MASTER})
    key = create_key(gw, team="t", limits={"budget_usd": 1.5})["key"]
    client = client_for(gw, key)
    # No duration or size asked: the reservation assumes 12 s at the dearest rate (1080p,
    # $0.1215/s = $1.458), so an 8-second 720p job ($0.432) does not fit beside it ...
    first = client.videos.create(model="seedance", prompt="a comet")
    small = {"model": "seedance", "prompt": "a kite", "seconds": "8", "size": "1280x720"}
    with pytest.raises(openai.RateLimitError):
        client.videos.create(**small)  # type: ignore[arg-type]
    # ... until the first ends: Seedance made 5 s at 720p, $0.27, and that is what is charged.
    done = client.videos.retrieve(first.id)
    assert (done.status, done.seconds, done.size) == ("completed", "5", "1280x720")
    deadline = time.monotonic() + 5
    while True:  # the charge lands in post_response, a moment after the poll's answer
        try:
            client.videos.create(**small)  # type: ignore[arg-type]
            break
        except openai.RateLimitError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    records = [r for r in gw.request_logs(wait_for=3) if r["endpoint"] == "videos.completed"]
    assert [r["cost"] for r in records] == [pytest.approx(0.27, abs=1e-12)]


def test_deleting_a_job_already_gone_at_the_provider(
    media_gateway: GatewayProcess, media: FakeMedia
) -> None:
    client = client_for(media_gateway)
    video = client.videos.create(model="seedance", prompt="a meadow")
    media.jobs.clear()  # the provider expired the task
    assert client.videos.delete(video.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(video.id)
