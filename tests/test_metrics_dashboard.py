"""``/metrics`` and ``/-/dashboard`` with two Sanic workers, after known traffic.

The gateway runs as users run it (``plugway serve --workers 2``). Known traffic goes through
both workers; every scrape, whichever worker answers it, must report the same exact numbers;
the dashboard, rendered in a real headless Chromium, must show the numbers ``/metrics`` and the
request store hold. The test saves a screenshot under tests/artifacts/.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import two_target_config
from plugway.testing import FakeOpenAI, GatewayProcess, Status
from prometheus_client.parser import text_string_to_metric_families

N_OK = 24  # chat, non-streamed, served by primary (spread over both workers)
N_STREAM = 6  # chat, streamed, served by primary
N_ERR = 3  # solo: the upstream refuses with 400
N_FAIL = 4  # chat: primary answers 503, backup serves
TOTAL = N_OK + N_STREAM + N_ERR + N_FAIL
# The shipped price table's gpt-4o-mini (also for "gpt-4o-mini-backup", by prefix):
# FakeOpenAI's usage is 11 prompt (3 cached) + 7 completion non-streamed, 11 + 7 streamed.
COST_JSON = (8 * 0.15 + 3 * 0.075 + 7 * 0.60) / 1e6
COST_STREAM = (11 * 0.15 + 7 * 0.60) / 1e6
EXPECTED_COST = (N_OK + N_FAIL) * COST_JSON + N_STREAM * COST_STREAM
ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("two-workers") / "requests.db"


@pytest.fixture(scope="module")
def gw(primary: FakeOpenAI, backup: FakeOpenAI, store: Path) -> Iterator[GatewayProcess]:
    extra = f'\n[plugins.store]\npath = "{store}"\nflush_interval = 0.05\n'
    with GatewayProcess(two_target_config(primary, backup, extra), args=["--workers", "2"]) as g:
        deadline = time.monotonic() + 30
        while g.output().count("Worker ready") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert g.output().count("Worker ready") == 2
        yield g


def post(gw: GatewayProcess, model: str, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return httpx.post(gw.base_url + "/chat/completions", json=body, timeout=10)


@pytest.fixture(scope="module")
def traffic(gw: GatewayProcess, primary: FakeOpenAI) -> None:
    primary.reset()
    # Each request on its own connection, eight at a time: both workers take some.
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: post(gw, "chat").status_code, range(N_OK)))
    assert statuses == [200] * N_OK
    for i in range(N_STREAM):
        options = {"stream_options": {"include_usage": True}} if i % 2 else {}
        assert post(gw, "chat", stream=True, **options).status_code == 200
    for _ in range(N_ERR):
        primary.script(Status(400, message="no"))
        assert post(gw, "solo").status_code == 400
    for _ in range(N_FAIL):  # last, so the primary target's most recent attempt failed
        primary.script(Status(503))
        response = post(gw, "chat")
        assert response.status_code == 200 and response.headers["x-plugway-provider"] == "backup"
    gw.request_logs(wait_for=TOTAL)


def scrape(gw: GatewayProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(gw.url + "/metrics").text
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


def worker_pids(gw: GatewayProcess) -> list[int]:
    assert gw.process is not None
    pid = gw.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children]


def multiproc_dir(gw: GatewayProcess) -> Path:
    for pid in worker_pids(gw):
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        for entry in environ:
            if entry.startswith(b"PROMETHEUS_MULTIPROC_DIR="):
                return Path(entry.split(b"=", 1)[1].decode())
    raise AssertionError("no worker has PROMETHEUS_MULTIPROC_DIR")


def test_metrics_are_exact_across_two_workers(gw: GatewayProcess, traffic: None) -> None:
    folder = multiproc_dir(gw)
    counter_pids = {p.stem.split("_")[-1] for p in folder.glob("counter_*.db")}
    assert len(counter_pids) == 2, "both workers served requests and wrote their samples"
    scrapes = [scrape(gw) for _ in range(6)]
    assert all(s == scrapes[0] for s in scrapes[1:]), "every worker answers the same numbers"
    m = scrapes[0]
    assert (
        value(m, "plugway_requests_total", model="chat", provider="primary", status="200")
        == N_OK + N_STREAM
    )
    assert (
        value(m, "plugway_requests_total", model="chat", provider="backup", status="200") == N_FAIL
    )
    assert value(m, "plugway_requests_total", model="solo", status="400") == N_ERR
    assert value(m, "plugway_requests_total") == TOTAL
    assert (
        value(
            m,
            "plugway_failovers_total",
            model="chat",
            from_provider="primary",
            to_provider="backup",
        )
        == N_FAIL
    )
    assert (
        value(
            m,
            "plugway_upstream_attempts_total",
            provider="primary",
            upstream_model="gpt-4o-mini",
            outcome="ok",
        )
        == N_OK + N_STREAM
    )
    assert (
        value(
            m,
            "plugway_upstream_attempts_total",
            provider="primary",
            upstream_model="gpt-4o-mini",
            outcome="error",
        )
        == N_FAIL
    )
    assert (
        value(
            m, "plugway_upstream_errors_total", provider="primary", error_type="UpstreamUnavailable"
        )
        == N_FAIL
    )
    assert value(m, "plugway_upstream_errors_total", provider="primary") == N_FAIL + N_ERR
    primary_tokens = {"model": "chat", "provider": "primary"}
    assert value(m, "plugway_tokens_total", type="input", **primary_tokens) == (
        N_OK * 8 + N_STREAM * 11
    )
    assert value(m, "plugway_tokens_total", type="cached_input", **primary_tokens) == N_OK * 3
    assert value(m, "plugway_tokens_total", type="output", **primary_tokens) == (
        (N_OK + N_STREAM) * 7
    )
    assert value(m, "plugway_cost_usd_total") == pytest.approx(EXPECTED_COST, rel=1e-9)
    assert value(m, "plugway_request_duration_seconds_count", **primary_tokens) == (N_OK + N_STREAM)
    assert value(m, "plugway_time_to_first_token_seconds_count", **primary_tokens) == N_STREAM
    assert value(m, "plugway_time_per_output_token_seconds_count", **primary_tokens) == N_STREAM
    assert value(m, "plugway_requests_in_flight") == 0
    assert value(m, "plugway_target_up", provider="primary", upstream_model="gpt-4o-mini") == 0
    assert (
        value(m, "plugway_target_up", provider="backup", upstream_model="gpt-4o-mini-backup") == 1
    )
    # Routing's circuit breakers stayed closed: no worker saw 5 failures in a row.
    assert (
        value(m, "plugway_target_circuit_state", provider="primary", upstream_model="gpt-4o-mini")
        == 0
    )
    genai = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "openai",
        "gen_ai_request_model": "gpt-4o-mini",
    }
    assert value(m, "gen_ai_client_token_usage_sum", gen_ai_token_type="input", **genai) == (
        N_OK * 11 + N_STREAM * 11
    )
    assert (
        value(m, "gen_ai_client_operation_duration_seconds_count", error_type="", **genai)
        == N_OK + N_STREAM
    )
    assert (
        value(
            m,
            "gen_ai_client_operation_duration_seconds_count",
            error_type="UpstreamUnavailable",
            **genai,
        )
        == N_FAIL
    )
    # Only bounded labels: no request id, no key, no principal.
    labels = {k for (_, ls) in m for k, _ in ls}
    assert labels <= {
        "model",
        "provider",
        "status",
        "type",
        "upstream_model",
        "outcome",
        "error_type",
        "from_provider",
        "to_provider",
        "le",
        "gen_ai_operation_name",
        "gen_ai_provider_name",
        "gen_ai_request_model",
        "gen_ai_token_type",
    }


class Dom(HTMLParser):
    """Attributes and text of elements with an id, and the health rows."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, dict[str, Any]] = {}
        self.rows: dict[str, str] = {}
        self.rects: list[dict[str, str]] = []
        self._open: list[str] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if "id" in found:
            self.by_id[found["id"]] = {**found, "text": ""}
            self._open.append(found["id"])
        elif self._open:
            self._open.append("")
        if tag == "tr" and "data-target" in found:
            self.rows[found["data-target"]] = found.get("data-state", "")
        if tag == "rect" and "data-provider" in found:
            self.rects.append(found)

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        self.text += data
        for element in self._open:
            if element:
                self.by_id[element]["text"] += data


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "chromium is needed (apt-get install -y chromium; see .ci/run)"
    return subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=8000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_dashboard_shows_what_metrics_and_store_hold(
    gw: GatewayProcess, traffic: None, store: Path, tmp_path: Path
) -> None:
    m = scrape(gw)
    data = httpx.get(gw.url + "/-/dashboard/data").json()
    assert data["totals"]["requests"] == TOTAL
    page = httpx.get(gw.url + "/-/dashboard")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "http://" not in page.text.replace("http://www.w3.org/2000/svg", "")  # no CDN

    done = chromium("--dump-dom", gw.url + "/-/dashboard", profile=tmp_path / "profile")
    dom = Dom()
    dom.feed(done.stdout)
    assert dom.by_id.get("status-text", {}).get("text", "").startswith("live"), (
        done.stdout[-2000:] + done.stderr[-2000:]
    )
    tiles = dom.by_id
    assert float(tiles["tile-requests"]["data-value"]) == value(m, "plugway_requests_total")
    assert tiles["tile-requests"]["text"] == str(TOTAL)
    assert float(tiles["tile-errors"]["data-value"]) == N_ERR
    assert float(tiles["tile-failovers"]["data-value"]) == N_FAIL
    assert float(tiles["tile-inflight"]["data-value"]) == 0
    assert float(tiles["tile-cost"]["data-value"]) == pytest.approx(
        value(m, "plugway_cost_usd_total"), rel=1e-9
    )
    assert tiles["tile-cost"]["text"] == f"${EXPECTED_COST:.6f}"
    assert float(tiles["store-requests"]["data-value"]) == data["totals"]["requests"] == TOTAL
    assert float(tiles["store-cost"]["data-value"]) == pytest.approx(EXPECTED_COST, rel=1e-9)
    assert float(tiles["tile-latency"]["data-p50"]) == data["totals"]["latency_p50"]
    assert float(tiles["tile-latency"]["data-p99"]) == data["totals"]["latency_p99"]
    assert float(tiles["tile-ttft"]["data-value"]) == data["totals"]["ttft_p50"]
    assert dom.rows["primary/gpt-4o-mini"] == "down"
    assert dom.rows["backup/gpt-4o-mini-backup"] == "up"
    assert dom.rows["primary/text-embedding-3-small"] == "unknown"
    assert [(r["data-provider"], r["data-errors"]) for r in dom.rects] == [("primary", str(N_ERR))]
    assert f"{N_FAIL} in the window" in dom.text
    assert "chat $" in dom.text  # cost by model legend

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    done = chromium(
        f"--screenshot={shot}",
        "--window-size=1400,1250",
        "--hide-scrollbars",
        gw.url + "/-/dashboard",
        profile=tmp_path / "profile2",
    )
    assert shot.exists() and shot.stat().st_size > 20_000, done.stderr[-2000:]


def test_metrics_can_be_switched_off(start_gateway: Any, tmp_path: Path) -> None:
    gw = start_gateway("""
[providers.fake]
type = "fake"
[[models]]
name = "fake-chat"
targets = [{ provider = "fake", model = "fake-chat" }]
[plugins.metrics]
enabled = false
[plugins.dashboard]
enabled = false
[plugins.store]
enabled = false
""")
    assert httpx.get(gw.url + "/metrics").status_code == 404
    assert httpx.get(gw.url + "/-/dashboard").status_code == 404
    assert post(gw, "fake-chat").status_code == 200


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
