"""Traces over OTLP/HTTP to a collector on loopback: the gateway's spans arrive as the
protobuf ``ExportTraceServiceRequest`` a real collector receives."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from plugway.testing import FakeUpstream


class FakeCollector(FakeUpstream):
    """Accepts ``POST /v1/traces`` (protobuf) and answers 200 with an empty response."""

    async def _respond(self, request: web.Request, body: Any, behaviour: Any) -> web.Response:
        return web.Response(body=b"", content_type="application/x-protobuf")

    def spans(self) -> list[Any]:
        found = []
        for recorded in list(self.requests):
            raw = recorded.body if isinstance(recorded.body, bytes) else b""
            if recorded.headers.get("content-encoding") == "gzip":
                raw = gzip.decompress(raw)
            message = ExportTraceServiceRequest()
            message.ParseFromString(raw)
            for resource in message.resource_spans:
                for scope in resource.scope_spans:
                    found.extend(scope.spans)
        return found


@pytest.fixture(scope="module")
def collector() -> Iterator[FakeCollector]:
    with FakeCollector() as fake:
        yield fake


def test_spans_reach_an_otlp_collector(collector: FakeCollector, start_gateway: Any) -> None:
    gw = start_gateway(f"""
[providers.fake]
type = "fake"
[[models]]
name = "fake-chat"
targets = [{{ provider = "fake", model = "fake-chat" }}]
[plugins.otel]
enabled = true
exporter = "otlp"
endpoint = "{collector.url}/v1/traces"
export_delay = 0.05
""")
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    response = httpx.post(
        gw.base_url + "/chat/completions",
        headers={"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"},
        json={"model": "fake-chat", "messages": [{"role": "user", "content": "one two"}]},
    )
    assert response.status_code == 200
    assert collector.wait_for(lambda: len(collector.spans()) >= 2)
    assert collector.requests[0].path == "/v1/traces"
    assert collector.requests[0].headers["content-type"] == "application/x-protobuf"
    spans = collector.spans()
    assert len(spans) == 2
    assert {s.name for s in spans} == {"chat fake-chat"}  # model asked == upstream model here
    assert {s.trace_id.hex() for s in spans} == {trace_id}
    by_kind = {s.kind: s for s in spans}
    request_span, attempt_span = by_kind[2], by_kind[3]  # SPAN_KIND_SERVER, SPAN_KIND_CLIENT
    assert request_span.parent_span_id.hex() == "b7ad6b7169203331"
    assert attempt_span.parent_span_id == request_span.span_id
    attributes = {a.key: a.value for a in request_span.attributes}
    assert attributes["gen_ai.operation.name"].string_value == "chat"
    assert attributes["gen_ai.usage.input_tokens"].int_value == 2
    assert attributes["gen_ai.response.model"].string_value == "fake-chat"
