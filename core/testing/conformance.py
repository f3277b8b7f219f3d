"""The provider conformance suite: what every provider plugin must do, checked against the
plugin's own upstream fake.

A provider plugin's test file subclasses one of two classes and names its provider type::

    from plugway.testing.conformance import UpstreamConformance
    from plugway_cohere.testing import FakeCohere

    class TestCohereConformance(UpstreamConformance):
        provider_type = "cohere"
        fake_class = FakeCohere
        base_path = ""  # appended to the fake's URL to make base_url ("/v1" for OpenAI's)
        tool_arguments = {"city": "Paris"}  # what the fake's tool call carries

(cookbook/plugway-cohere in the plugway repository is that plugin, whole.)

:class:`ProviderConformance` checks what a client sees, with the provider run in-process
exactly as the gateway runs it (its settings checked by the real config loader, ``startup``
and ``aclose`` called around each test) and once end to end through a real gateway with the
``openai`` SDK:

* text, non-streamed and streamed, the same words both ways, the user's words echoed back
  (every fake in ``plugway.testing`` echoes the last user message);
* a forced tool call, non-streamed and streamed, the streamed deltas following OpenAI's rules
  (the first delta of a call carries ``index``, ``id``, ``type`` and ``function.name``; the
  ``arguments`` fragments concatenate to the non-streamed arguments);
* usage (``prompt_tokens + completion_tokens == total_tokens``), the usage chunk only when the
  client asked ``stream_options.include_usage``, ``ChunkStream.usage`` and
  ``ChunkStream.finish_reason`` filled when the stream ends;
* finish reasons: ``stop``, ``length`` (``max_tokens``; fakes count tokens in words) and
  ``tool_calls``, or the cases a subclass lists in :attr:`ProviderConformance.finish_reason_cases`;
* SSE framing: every item a ``ChunkStream`` yields is whole ``data: {...}\\n\\n`` events of
  ``chat.completion.chunk`` objects (SSE comments such as ``: ping`` allowed) with one id, never ``[DONE]``.

:class:`UpstreamConformance` adds what needs an upstream: streams whose bytes arrive split at
every byte boundary (text and tool calls), and error mapping and retryability for every case
in :attr:`UpstreamConformance.error_cases` (status codes rendered in the provider's own error
body by its fake, resets, hangs, cut streams, bodies that are not JSON; the provider's key is
never in an error message). Add a provider's own cases (Anthropic's 529, a context-window
error code) by extending the list.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, ClassVar, TypeVar

import attrs
import httpx
import orjson
import pytest
from plugway.config import build_config
from plugway.context import RequestContext, Target
from plugway.errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamStreamBroken,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from plugway.hookcall import HookRunner
from plugway.plugin_loader import load_plugins
from plugway.provider import ChunkStream, Provider, ProviderResponse
from plugway.registry import Registry
from plugway.testing.fake_upstream import (
    Behaviour,
    CutStream,
    FakeUpstream,
    Hang,
    Reply,
    Reset,
    Status,
)
from plugway.testing.gateway_process import GatewayProcess

T = TypeVar("T")

#: The key every conformance provider is configured with; no error may quote it.
CONFORMANCE_KEY = "sk-conformance-secret-0123456789abcdef"

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@attrs.frozen
class ErrorCase:
    """One scripted upstream failure and the gateway error the provider must raise for it.

    ``error`` is the class (or classes) expected; ``status`` the HTTP status the client would
    get; ``retryable`` whether the failure policy may try again; ``retry_after`` the seconds
    the provider must read from the upstream; ``message_contains`` text of the upstream's
    error message the provider must pass on. ``settings`` override the provider's table (a
    short ``timeout`` for a hang). ``stream`` makes the request a streamed one.
    """

    id: str
    behaviour: Behaviour
    error: type[UpstreamError] | tuple[type[UpstreamError], ...]
    retryable: bool
    status: int | None = None
    stream: bool = False
    retry_after: float | None = None
    message_contains: str | None = None
    settings: dict[str, Any] = attrs.field(factory=dict)


COMMON_ERROR_CASES: list[ErrorCase] = [
    ErrorCase(
        "rate-limited",
        Status(429, "slow down please", retry_after=3),
        UpstreamRateLimited,
        retryable=True,
        status=429,
        retry_after=3.0,
    ),
    ErrorCase("server-error", Status(500, "internal trouble"), UpstreamUnavailable, True, 502),
    ErrorCase("unavailable", Status(503, "overloaded now"), UpstreamUnavailable, True, 502),
    ErrorCase(
        "bad-request",
        Status(400, "field frobnicate is wrong"),
        UpstreamRejected,
        retryable=False,
        status=400,
        message_contains="frobnicate",
    ),
    ErrorCase(
        "bad-key",
        Status(401, f"invalid key {CONFORMANCE_KEY}"),
        UpstreamRejected,
        retryable=False,
        status=401,
    ),
    ErrorCase("forbidden", Status(403, "no access"), UpstreamRejected, False, 403),
    ErrorCase(
        "not-json",
        Status(200, body=b"<html>proxy error</html>", content_type="text/html"),
        UpstreamUnavailable,
        retryable=True,
        status=502,
    ),
    ErrorCase("reset", Reset(), (UpstreamConnectError, UpstreamUnavailable), True, 502),
    ErrorCase(
        "hang",
        Hang(),
        UpstreamTimeout,
        retryable=True,
        status=504,
        settings={"timeout": 0.3},
    ),
    ErrorCase(
        "stream-refused",
        Status(503, "overloaded now"),
        UpstreamUnavailable,
        retryable=True,
        status=502,
        stream=True,
    ),
    ErrorCase(
        "stream-rate-limited",
        Status(429, "slow down please", retry_after=2),
        UpstreamRateLimited,
        retryable=True,
        status=429,
        stream=True,
        retry_after=2.0,
    ),
    ErrorCase(
        "stream-cut",
        CutStream(after=2),
        (UpstreamStreamBroken, UpstreamUnavailable),
        retryable=True,
        status=502,
        stream=True,
    ),
]


@functools.cache
def _registry() -> Registry:
    """The provider types the installed plugins register (loaded once per test session)."""
    return Registry.collect(HookRunner(load_plugins().pm))


def make_provider(provider_type: str, table: dict[str, Any], name: str = "conformance") -> Provider:
    """A provider instance made as the gateway makes it: ``table`` is a ``[providers.NAME]``
    table, checked by the real config loader."""
    registry = _registry()
    config = build_config(
        {"providers": {name: {"type": provider_type, **table}}},
        registry,
        environ={},
        source="<conformance>",
    )
    settings = config.providers[name]
    return registry.providers[provider_type].provider_class(name, settings)


@attrs.define
class Streamed:
    """What a :class:`ChunkStream` yielded, parsed."""

    chunks: list[dict[str, Any]]
    usage: dict[str, Any] | None
    finish_reason: str | None

    @property
    def text(self) -> str:
        return "".join(
            c["choices"][0]["delta"].get("content") or "" for c in self.chunks if c["choices"]
        )

    def tool_calls(self) -> dict[int, dict[str, Any]]:
        """Reassemble tool calls as the openai SDK does, checking OpenAI's delta rules."""
        calls: dict[int, dict[str, Any]] = {}
        for chunk in self.chunks:
            for choice in chunk["choices"]:
                for delta in choice["delta"].get("tool_calls") or []:
                    index = delta["index"]
                    fn = delta.get("function") or {}
                    if index not in calls:
                        assert delta.get("id"), f"first delta of tool call {index} has no id"
                        assert delta.get("type") == "function", delta
                        assert fn.get("name"), f"first delta of tool call {index} has no name"
                        calls[index] = {"id": delta["id"], "name": fn["name"], "arguments": ""}
                    calls[index]["arguments"] += fn.get("arguments") or ""
        return calls

    def finish_reasons(self) -> list[str]:
        return [
            c["choices"][0]["finish_reason"]
            for c in self.chunks
            if c["choices"] and c["choices"][0].get("finish_reason")
        ]


def parse_events(data: bytes) -> list[dict[str, Any]]:
    """Whole ``data: {...}\\n\\n`` events -> chunk dicts, skipping SSE comments
    (``: ping`` keep-alives); fails on anything else."""
    assert data.endswith(b"\n\n"), f"a yielded item does not end with a whole event: {data!r}"
    chunks = []
    for event in data.split(b"\n\n")[:-1]:
        if all(line.startswith(b":") for line in event.split(b"\n")):
            continue  # an SSE comment (a keep-alive): clients ignore it
        assert event.startswith(b"data: "), f"not an SSE data event: {event!r}"
        payload = event[len(b"data: ") :]
        assert payload != b"[DONE]", "a ChunkStream must not yield [DONE]; the core adds it"
        chunks.append(orjson.loads(payload))
    return chunks


class ProviderConformance:
    """Checks every provider plugin must pass; subclass it as ``Test...`` and set
    :attr:`provider_type`. For a provider with no upstream (like ``fake``) this is all;
    providers with an upstream subclass :class:`UpstreamConformance`."""

    #: The provider type the plugin registers (``register("cohere", ...)``).
    provider_type: ClassVar[str] = ""
    #: The upstream model name the conformance routes use.
    model: ClassVar[str] = "conformance-model"
    #: Whether the answer repeats the last user message (every plugway.testing fake does).
    echoes_prompt: ClassVar[bool] = True
    prompt: ClassVar[str] = "tell me about conformance"
    #: The arguments the fake's streamed tool call carries, when the suite should check
    #: they arrive exactly (every plugway.testing fake but Gemini's sends ``{"city": "Paris"}``).
    tool_arguments: ClassVar[dict[str, Any] | None] = None
    #: (extra request fields, the finish reason expected), checked streamed and not.
    finish_reason_cases: ClassVar[list[tuple[dict[str, Any], str]]] = [
        ({}, "stop"),
        ({"max_tokens": 2}, "length"),
        ({"tools": [WEATHER_TOOL], "tool_choice": "required"}, "tool_calls"),
    ]

    # -- how the provider is made; subclasses with an upstream override -----------------------

    def provider_table(self) -> dict[str, Any]:
        """The ``[providers.NAME]`` table (without ``type``)."""
        return {}

    def run(
        self, call: Callable[[Provider], Awaitable[T]], settings: dict[str, Any] | None = None
    ) -> T:
        """Make the provider, start it, run ``call(provider)`` in a fresh loop, close it."""

        async def main() -> T:
            provider = make_provider(
                self.provider_type, {**self.provider_table(), **(settings or {})}
            )
            await provider.startup()
            try:
                return await call(provider)
            finally:
                await provider.aclose()

        return asyncio.run(main())

    def request(self, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": "conformance",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": self.prompt},
            ],
        }
        body.update(extra)
        return body

    def _ctx(self, body: dict[str, Any]) -> tuple[RequestContext, Target]:
        ctx = RequestContext(
            endpoint="chat.completions", body=body, headers={}, stream=bool(body.get("stream"))
        )
        return ctx, Target(provider="conformance", model=self.model)

    def complete(self, body: dict[str, Any], **settings: Any) -> ProviderResponse:
        async def call(provider: Provider) -> ProviderResponse:
            ctx, target = self._ctx(body)
            return await provider.chat(ctx, target, body)

        return self.run(call, settings)

    def stream(self, body: dict[str, Any], **settings: Any) -> Streamed:
        body = {**body, "stream": True}

        async def call(provider: Provider) -> Streamed:
            ctx, target = self._ctx(body)
            stream: ChunkStream = await provider.chat_stream(ctx, target, body)
            chunks: list[dict[str, Any]] = []
            try:
                async for data in stream:
                    chunks.extend(parse_events(data))
            finally:
                await stream.aclose()
            return Streamed(chunks, stream.usage, stream.finish_reason)

        return self.run(call, settings)

    # -- checks ------------------------------------------------------------------------------

    @staticmethod
    def check_usage(usage: Any) -> None:
        assert isinstance(usage, dict), f"no usage: {usage!r}"
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            assert isinstance(usage.get(key), int), f"usage.{key} is not an int: {usage!r}"
        assert usage["prompt_tokens"] + usage["completion_tokens"] == usage["total_tokens"]

    @staticmethod
    def check_chunks(streamed: Streamed) -> None:
        assert streamed.chunks, "the stream yielded no chunk"
        assert {c["object"] for c in streamed.chunks} == {"chat.completion.chunk"}
        assert len({c["id"] for c in streamed.chunks}) == 1, "chunks of one stream share an id"
        first = streamed.chunks[0]["choices"][0]["delta"]
        assert first.get("role") == "assistant", "the first delta names the assistant role"

    def check_message(self, response: ProviderResponse) -> dict[str, Any]:
        body = response.body
        assert body["object"] == "chat.completion"
        assert isinstance(body["id"], str) and body["id"]
        assert isinstance(body["created"], int)
        assert len(body["choices"]) == 1 and body["choices"][0]["index"] == 0
        message: dict[str, Any] = body["choices"][0]["message"]
        assert message["role"] == "assistant"
        self.check_usage(response.usage)
        return message

    # -- the suite -----------------------------------------------------------------------------

    def test_text(self) -> None:
        response = self.complete(self.request())
        message = self.check_message(response)
        assert isinstance(message["content"], str) and message["content"].strip()
        if self.echoes_prompt:
            assert self.prompt in message["content"]
        assert response.body["choices"][0]["finish_reason"] == "stop"
        assert not message.get("tool_calls")

    def test_text_stream(self) -> None:
        done = self.complete(self.request())
        streamed = self.stream(self.request())
        self.check_chunks(streamed)
        text = done.body["choices"][0]["message"]["content"]
        assert streamed.text.split() == text.split(), "streamed and whole answers differ"
        assert streamed.finish_reasons() == ["stop"]
        assert streamed.finish_reason == "stop", "ChunkStream.finish_reason not set"
        self.check_usage(streamed.usage)
        assert not any(c.get("usage") for c in streamed.chunks), (
            "a usage chunk was sent though the client did not ask for one"
        )

    def test_stream_usage_chunk_when_asked(self) -> None:
        streamed = self.stream(self.request(stream_options={"include_usage": True}))
        last = streamed.chunks[-1]
        assert last["choices"] == [], "the usage chunk comes last, with no choices"
        self.check_usage(last["usage"])
        assert last["usage"] == streamed.usage
        assert all(c.get("usage") is None for c in streamed.chunks[:-1])

    def test_tool_call(self) -> None:
        body = self.request(tools=[WEATHER_TOOL], tool_choice="required")
        response = self.complete(body)
        message = self.check_message(response)
        assert response.body["choices"][0]["finish_reason"] == "tool_calls"
        calls = message["tool_calls"]
        assert calls and calls[0]["type"] == "function" and calls[0]["id"]
        assert calls[0]["function"]["name"] == "get_weather"
        assert isinstance(orjson.loads(calls[0]["function"]["arguments"]), dict)

    def test_tool_call_stream(self) -> None:
        body = self.request(tools=[WEATHER_TOOL], tool_choice="required")
        whole = self.complete(body).body["choices"][0]["message"]["tool_calls"]
        streamed = self.stream(body)
        self.check_chunks(streamed)
        calls = streamed.tool_calls()
        assert [c["name"] for c in calls.values()] == [c["function"]["name"] for c in whole]
        for call in calls.values():
            arguments = orjson.loads(call["arguments"])
            assert isinstance(arguments, dict), "streamed arguments are a JSON object"
            if self.tool_arguments is not None:
                assert arguments == self.tool_arguments
        assert streamed.finish_reasons() == ["tool_calls"]
        assert streamed.finish_reason == "tool_calls"
        self.check_usage(streamed.usage)

    def test_finish_reasons(self) -> None:
        for extra, expected in self.finish_reason_cases:
            done = self.complete(self.request(**extra)).body["choices"][0]["finish_reason"]
            assert done == expected, f"{extra}: finish_reason {done!r}, expected {expected!r}"
            streamed = self.stream(self.request(**extra))
            assert streamed.finish_reasons() == [expected], f"{extra}: streamed"
            assert streamed.finish_reason == expected, f"{extra}: ChunkStream.finish_reason"

    # -- end to end ----------------------------------------------------------------------------

    def gateway_config(self) -> str:
        """The TOML for the end-to-end check: one provider, model ``conformance``."""
        table = {"type": self.provider_type, **self.provider_table()}
        lines = [f"{key} = {_toml_value(value)}" for key, value in table.items()]
        return (
            "[providers.conformance]\n"
            + "\n".join(lines)
            + f'\n\n[[models]]\nname = "conformance"\ntargets = [{{ provider = "conformance", model = "{self.model}" }}]\n'
        )

    def test_served_through_gateway(
        self, plugway_shared_gateway: Callable[..., GatewayProcess]
    ) -> None:
        gateway = plugway_shared_gateway(self.gateway_config())
        client = gateway.openai()
        done = client.chat.completions.create(
            model="conformance", messages=[{"role": "user", "content": self.prompt}]
        )
        assert done.choices[0].finish_reason == "stop"
        if self.echoes_prompt:
            assert self.prompt in (done.choices[0].message.content or "")
        stream = client.chat.completions.create(
            model="conformance",
            messages=[{"role": "user", "content": self.prompt}],
            tools=[WEATHER_TOOL],
            tool_choice="required",
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        names = [
            d.function.name
            for c in chunks
            if c.choices
            for d in c.choices[0].delta.tool_calls or []
            if d.function and d.function.name
        ]
        assert names == ["get_weather"]
        assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


class UpstreamConformance(ProviderConformance):
    """The conformance suite for a provider that talks to an upstream over HTTP: set
    :attr:`fake_class` (a :class:`~plugway.testing.FakeUpstream` speaking the provider's wire
    format) and :attr:`base_path`."""

    fake_class: ClassVar[type[FakeUpstream]]
    #: Appended to the fake's URL to make ``base_url``.
    base_path: ClassVar[str] = ""
    #: The failures checked; extend with the provider's own (``COMMON_ERROR_CASES + [...]``).
    error_cases: ClassVar[list[ErrorCase]] = COMMON_ERROR_CASES
    #: Streams are checked with their bytes cut every ``split_every`` bytes, once per offset,
    #: so every byte boundary is a read boundary once.
    split_every: ClassVar[int] = 7

    upstream: FakeUpstream

    @pytest.fixture(autouse=True)
    def _conformance_upstream(self, fake_upstream: Callable[..., FakeUpstream]) -> None:
        self.upstream = fake_upstream(self.fake_class, f"conformance-{self.provider_type}")

    def provider_table(self) -> dict[str, Any]:
        return {
            "base_url": self.upstream.url + self.base_path,
            "api_key": CONFORMANCE_KEY,
            "timeout": 5,
        }

    def test_stream_split_at_every_boundary(self) -> None:
        """The upstream's bytes reach the provider's parser one byte at a time, then in
        pieces of ``split_every`` bytes at every offset (so pieces also hold the end of one
        event and the start of the next), then split on the wire by the fake itself."""
        splits = [(1, 0), *((self.split_every, k) for k in range(1, self.split_every + 1))]
        for extra in ({}, {"tools": [WEATHER_TOOL], "tool_choice": "required"}):
            body = self.request(stream_options={"include_usage": True}, **extra)
            expected = self.stream(body)
            runs: list[tuple[str, Streamed]] = []
            for every, offset in splits:
                with rechunked(every, offset):
                    runs.append((f"pieces of {every} from +{offset}", self.stream(body)))
            self.upstream.script(Reply(split_every=self.split_every))
            runs.append(("split on the wire", self.stream(body)))
            for label, got in runs:
                assert got.text.split() == expected.text.split(), label
                assert _calls(got) == _calls(expected), label
                assert got.finish_reasons() == expected.finish_reasons(), label
                assert got.usage == expected.usage, label

    def test_error_mapping(self, conformance_error_case: ErrorCase) -> None:
        case = conformance_error_case
        self.upstream.script(case.behaviour)
        body = self.request()
        with pytest.raises(UpstreamError) as caught:
            if case.stream:
                self.stream(body, **case.settings)
            else:
                self.complete(body, **case.settings)
        error = caught.value
        assert isinstance(error, case.error), f"{type(error).__name__}: {error}"
        assert error.retryable is case.retryable
        if case.status is not None:
            assert error.status == case.status
        assert error.provider == "conformance", "the error names the provider instance"
        if case.retry_after is not None:
            assert error.retry_after == case.retry_after
        if case.message_contains is not None:
            assert case.message_contains in error.message
        for text in (error.message, str(error.to_body()), str(error.headers)):
            assert CONFORMANCE_KEY not in text, "the provider key leaked into an error"


@contextlib.contextmanager
def rechunked(every: int, offset: int = 0) -> Iterator[None]:
    """While open, every ``httpx`` response body reaches its reader in pieces of ``every``
    bytes (the first ``offset`` long when > 0), whatever the network delivered: a
    deterministic way to put a read boundary at any byte of a provider's upstream stream."""
    original = httpx.Response.aiter_raw

    async def aiter_raw(
        self: httpx.Response, chunk_size: int | None = None
    ) -> AsyncIterator[bytes]:
        pending, size = b"", offset or every
        async for data in original(self, chunk_size):
            pending += data
            while len(pending) >= size:
                yield pending[:size]
                pending, size = pending[size:], every
        if pending:
            yield pending

    httpx.Response.aiter_raw = aiter_raw  # type: ignore[method-assign]
    try:
        yield
    finally:
        httpx.Response.aiter_raw = original  # type: ignore[method-assign]


def _calls(streamed: Streamed) -> list[tuple[str, str]]:
    return [(c["name"], c["arguments"]) for c in streamed.tool_calls().values()]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return orjson.dumps(str(value)).decode()


__all__ = [
    "COMMON_ERROR_CASES",
    "CONFORMANCE_KEY",
    "WEATHER_TOOL",
    "ErrorCase",
    "ProviderConformance",
    "Streamed",
    "UpstreamConformance",
    "make_provider",
    "parse_events",
    "rechunked",
]
