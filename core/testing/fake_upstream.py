"""Fake upstreams: real HTTP servers on loopback that speak a provider's wire format and fail
on demand.

A :class:`FakeUpstream` runs an aiohttp server in its own thread, so sync tests (and the
gateway under test, in its own process) talk to it over a real socket. Each request takes the
next scripted :class:`Behaviour` (``upstream.script(Status(503), Reply())``) or, when the
script is empty, the default one. The server records every request (path, headers, JSON
body) and counts clients that went away before their answer was complete.

Subclasses implement the wire format: :class:`FakeOpenAI` here; other providers' fakes follow
the same pattern (``answer`` for a success, ``stream_events`` for SSE, ``error_body``).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import itertools
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import attrs
import orjson
from aiohttp import web
from plugway.formats import openai_moderations


@attrs.frozen
class Reply:
    """Answer normally (streamed when the request asks). ``delay`` waits before the answer,
    ``chunk_delay`` between streamed events; ``text`` overrides the answer's text.

    ``split_every`` > 0 sends a stream's bytes in pieces of that many bytes (the first piece
    ``split_offset`` bytes long when that is > 0), pausing ``split_pause`` seconds between
    pieces so that each one reaches the client on its own: how tests check that a provider's
    stream parser copes with events split at any byte."""

    delay: float = 0.0
    chunk_delay: float = 0.0
    text: str | None = None
    usage: bool = True
    split_every: int = 0
    split_offset: int = 0
    split_pause: float = 0.001


@attrs.frozen
class Status:
    """Answer with an error status and the provider's error body (or ``body`` as given)."""

    status: int
    message: str = "scripted failure"
    code: str | None = None
    retry_after: float | None = None
    body: bytes | None = None
    content_type: str = "application/json"


@attrs.frozen
class Hang:
    """Never answer; the client has to give up (its disconnect is counted)."""


@attrs.frozen
class Reset:
    """Close the connection without answering."""


@attrs.frozen
class CutStream:
    """Stream ``after`` events, then drop the connection."""

    after: int = 2


@attrs.frozen
class ResponseFailed:
    """A Responses stream (``/v1/responses``) that sends ``after`` events, then
    ``response.failed`` with ``code`` and ``message``, and ends: how OpenAI reports a failure
    after it accepted a stream. ``delay`` waits before the failure event, so the events before
    it reach the client first. Other paths answer as :class:`Reply`."""

    after: int = 3
    code: str = "server_error"
    message: str = "The model failed to generate a response."
    delay: float = 0.0


Behaviour = Reply | Status | Hang | Reset | CutStream | ResponseFailed


@attrs.define
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


class FakeUpstream:
    """Base of the fakes: the thread, the script, the records. Use as a context manager."""

    default: Behaviour = Reply()

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.requests: list[Recorded] = []
        self.disconnects = 0
        self.completed = 0
        self._script: collections.deque[Behaviour] = collections.deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- control -------------------------------------------------------------------------------

    def script(self, *behaviours: Behaviour) -> None:
        """The next requests take these behaviours, in order."""
        with self._lock:
            self._script.extend(behaviours)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()
            self.disconnects = 0
            self.completed = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def open_connections(self) -> int:
        """Connections the server holds open now (keep-alive ones included)."""
        runner = self._runner
        return 0 if runner is None or runner.server is None else len(runner.server.connections)

    def wait_for(self, predicate: Any, timeout: float = 5.0) -> bool:
        """Poll ``predicate()`` until true or ``timeout``; for effects that land a moment
        after the client returns (a disconnect, a closed connection)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            time.sleep(0.01)
        return bool(predicate())

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeUpstream:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, self.host, 0)
            loop.run_until_complete(site.start())
            self._runner = runner
            self.port = runner.addresses[0][1]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name=type(self).__name__, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake upstream did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving -------------------------------------------------------------------------------

    def _next(self) -> Behaviour:
        with self._lock:
            return self._script.popleft() if self._script else self.default

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw
        self.requests.append(
            Recorded(
                request.method,
                request.path,
                dict(request.query),
                {k.lower(): v for k, v in request.headers.items()},
                body,
            )
        )
        behaviour = self._next()
        try:
            response = await self._respond(request, body, behaviour)
        except asyncio.CancelledError:
            self.disconnects += 1
            raise
        self.completed += 1
        return response

    async def _respond(
        self, request: web.Request, body: Any, behaviour: Behaviour
    ) -> web.StreamResponse:
        if isinstance(behaviour, Hang):
            await asyncio.sleep(3600)
        if isinstance(behaviour, Reset):
            assert request.transport is not None
            request.transport.abort()
            raise ConnectionResetError("scripted reset")
        if isinstance(behaviour, Status):
            headers = {}
            if behaviour.retry_after is not None:
                headers["retry-after"] = f"{behaviour.retry_after:g}"
            payload = (
                behaviour.body
                if behaviour.body is not None
                else orjson.dumps(
                    self.error_body(behaviour.status, behaviour.message, behaviour.code)
                )
            )
            return web.Response(
                body=payload,
                status=behaviour.status,
                headers=headers,
                content_type=behaviour.content_type,
            )
        assert isinstance(behaviour, Reply | CutStream)
        delay = behaviour.delay if isinstance(behaviour, Reply) else 0.0
        if delay:
            await asyncio.sleep(delay)
        if self.wants_stream(request, body):
            return await self._stream(request, body, behaviour)
        return web.Response(
            body=orjson.dumps(self.answer(request, body, behaviour)),
            content_type="application/json",
        )

    async def _stream(
        self, request: web.Request, body: Any, behaviour: Reply | CutStream
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        chunk_delay = behaviour.chunk_delay if isinstance(behaviour, Reply) else 0.0
        if isinstance(behaviour, Reply) and behaviour.split_every > 0:
            data = b"".join(self.stream_events(request, body, behaviour))
            for piece in split_bytes(data, behaviour.split_every, behaviour.split_offset):
                await response.write(piece)
                await asyncio.sleep(behaviour.split_pause)
            await response.write_eof()
            return response
        for sent, event in enumerate(self.stream_events(request, body, behaviour)):
            if isinstance(behaviour, CutStream) and sent >= behaviour.after:
                assert request.transport is not None
                request.transport.abort()
                return response
            if chunk_delay and sent:
                await asyncio.sleep(chunk_delay)
            await response.write(event)
        await response.write_eof()
        return response

    # -- the wire format (subclasses) ----------------------------------------------------------

    def wants_stream(self, request: web.Request, body: Any) -> bool:
        return isinstance(body, dict) and body.get("stream") is True

    def answer(self, request: web.Request, body: Any, behaviour: Reply | CutStream) -> Any:
        raise NotImplementedError

    def stream_events(
        self, request: web.Request, body: Any, behaviour: Reply | CutStream
    ) -> Iterator[bytes]:
        raise NotImplementedError

    def error_body(self, status: int, message: str, code: str | None) -> Any:
        raise NotImplementedError


def split_bytes(data: bytes, every: int, offset: int = 0) -> list[bytes]:
    """``data`` cut into pieces of ``every`` bytes, the first one ``offset`` long if > 0."""
    cuts = [0, *range(offset if offset > 0 else every, len(data), every), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(cuts) if b > a]


def max_tokens_of(body: Any) -> int | None:
    """The completion budget a chat request sets, if any."""
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key) if isinstance(body, dict) else None
        if isinstance(value, int) and value > 0:
            return value
    return None


def last_user_text(body: Any) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content)
    return ""


def is_legacy_completions(path: str) -> bool:
    return path.endswith("/completions") and not path.endswith("/chat/completions")


def is_responses(request: web.Request, body: Any) -> bool:
    """A Responses API request: to ``/responses``, and not a chat body (a subclass may answer
    that path by asking the chat format, with a chat body)."""
    return request.path.endswith("/responses") and not (
        isinstance(body, dict) and "messages" in body
    )


def responses_input_text(body: Any) -> str:
    """The text of the last user message in a Responses request's ``input``."""
    value = body.get("input") if isinstance(body, dict) else None
    if isinstance(value, str):
        return value
    for item in reversed(value if isinstance(value, list) else []):
        if not isinstance(item, dict) or item.get("role") != "user":
            continue
        content = item.get("content")
        if isinstance(content, list):
            return " ".join(
                str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
            )
        return str(content)
    return ""


class FakeOpenAI(FakeUpstream):
    """OpenAI's wire format: ``/v1/chat/completions`` (JSON and SSE, tool calls when the
    request requires one, usage when asked), ``/v1/embeddings`` (floats or base64),
    ``/v1/moderations``, the legacy ``/v1/completions`` (see :meth:`_completion`) and
    ``/v1/responses`` (the Responses API, JSON and its SSE event sequence; a function call when
    ``tool_choice`` requires one; ``previous_response_id`` must name a response this fake gave
    with ``store`` on, else 400 ``previous_response_not_found`` as OpenAI answers)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        #: Ids of the responses this fake stored (``store`` not false).
        self.stored_responses: set[str] = set()

    _OPENAI_TYPES = {
        400: "invalid_request_error",
        401: "invalid_request_error",
        403: "invalid_request_error",
        404: "invalid_request_error",
        429: "rate_limit_error",
    }

    def error_body(self, status: int, message: str, code: str | None) -> Any:
        return {
            "error": {
                "message": message,
                "type": self._OPENAI_TYPES.get(status, "server_error"),
                "param": None,
                "code": code,
            }
        }

    def _text(self, body: Any, behaviour: Reply | CutStream) -> tuple[str, str]:
        """The answer's text and finish reason: ``length`` when ``max_tokens`` (counted in
        words) cuts it."""
        if isinstance(behaviour, Reply) and behaviour.text is not None:
            text = behaviour.text
        else:
            text = f"echo: {last_user_text(body)}"
        limit = max_tokens_of(body)
        if limit is not None and len(text.split(" ")) > limit:
            return " ".join(text.split(" ")[:limit]), "length"
        return text, "stop"

    def _tool(self, body: Any) -> dict[str, Any] | None:
        tools = body.get("tools") or []
        if tools and body.get("tool_choice") not in (None, "auto", "none"):
            function: dict[str, Any] = tools[0]["function"]
            return function
        return None

    async def _respond(
        self, request: web.Request, body: Any, behaviour: Behaviour
    ) -> web.StreamResponse:
        if isinstance(behaviour, ResponseFailed):
            if not is_responses(request, body):
                behaviour = Reply()
            else:
                return await self._failed_stream(request, body, behaviour)
        if is_responses(request, body) and isinstance(behaviour, Reply | CutStream):
            previous = body.get("previous_response_id") if isinstance(body, dict) else None
            if previous is not None and previous not in self.stored_responses:
                return web.json_response(
                    {
                        "error": {
                            "message": f"Previous response with id '{previous}' not found.",
                            "type": "invalid_request_error",
                            "param": "previous_response_id",
                            "code": "previous_response_not_found",
                        }
                    },
                    status=400,
                )
        return await super()._respond(request, body, behaviour)

    def answer(self, request: web.Request, body: Any, behaviour: Reply | CutStream) -> Any:
        if request.path.endswith("/embeddings"):
            return self._embeddings(body)
        if request.path.endswith("/moderations"):
            return self._moderations(body)
        if is_legacy_completions(request.path):
            return self._completion(body, behaviour)
        if is_responses(request, body):
            return self._response(body, behaviour, "completed")
        tool = self._tool(body)
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        if tool:
            message["tool_calls"] = [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": tool["name"], "arguments": '{"city": "Paris"}'},
                }
            ]
            finish = "tool_calls"
        else:
            message["content"], finish = self._text(body, behaviour)
        return {
            "id": "chatcmpl-" + uuid.uuid4().hex,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "system_fingerprint": "fp_fake",
            "choices": [
                {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
            ],
            "usage": {
                "prompt_tokens": 11,
                "completion_tokens": 7,
                "total_tokens": 18,
                "prompt_tokens_details": {"cached_tokens": 3},
            },
        }

    def stream_events(
        self, request: web.Request, body: Any, behaviour: Reply | CutStream
    ) -> Iterator[bytes]:
        if is_legacy_completions(request.path):
            yield from self._completion_events(body, behaviour)
            return
        if is_responses(request, body):
            yield from self._response_events(body, behaviour)
            return
        base = {
            "id": "chatcmpl-" + uuid.uuid4().hex,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model"),
            "system_fingerprint": "fp_fake",
        }
        with_usage = (body.get("stream_options") or {}).get("include_usage") is True

        def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
            chunk = {
                **base,
                "choices": [
                    {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
                ],
            }
            if with_usage:
                chunk["usage"] = None
            return b"data: " + orjson.dumps(chunk) + b"\n\n"

        yield event({"role": "assistant", "content": "", "refusal": None})
        tool = self._tool(body)
        if tool:
            yield event(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": tool["name"], "arguments": ""},
                        }
                    ]
                }
            )
            for part in ('{"ci', 'ty": "Pa', 'ris"}'):
                yield event({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
            finish = "tool_calls"
        else:
            text, finish = self._text(body, behaviour)
            for word in text.split(" "):
                yield event({"content": word + " "})
        yield event({}, finish)
        if with_usage:
            usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
            yield b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n"
        yield b"data: [DONE]\n\n"

    def _moderations(self, body: Any) -> Any:
        """Flags ``harassment`` for inputs containing "idiot", nothing else."""
        results = [
            openai_moderations.result(["harassment"] if "idiot" in text.lower() else [], kind)
            for kind, text in openai_moderations.inputs(body)
        ]
        return openai_moderations.moderation_body("modr-fake", str(body.get("model")), results)

    def _embeddings(self, body: Any) -> Any:
        inputs = body.get("input")
        items = [inputs] if isinstance(inputs, str) else list(inputs)
        data = []
        for i, item in enumerate(items):
            vector = [float(len(str(item))), float(i), 0.5]
            encoded: Any = vector
            if body.get("encoding_format") == "base64":
                encoded = base64.b64encode(struct.pack("<3f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        return {
            "object": "list",
            "data": data,
            "model": body.get("model"),
            "usage": {"prompt_tokens": len(items), "total_tokens": len(items)},
        }

    # -- legacy text completions -----------------------------------------------------------

    def _completion_choices(
        self, body: Any, behaviour: Reply | CutStream
    ) -> list[tuple[str, str, list[str]]]:
        """``(text, finish_reason, tokens)`` per choice: ``n`` choices per prompt, each
        ``echo: PROMPT`` (or the scripted text), cut to ``max_tokens`` words (``length``)
        or before a ``stop`` sequence, the prompt put in front when ``echo`` is set. A
        token is a word and the space after it."""
        prompt = body.get("prompt")
        single = isinstance(prompt, str) or (prompt and isinstance(prompt[0], int))
        prompts = [prompt] if single else list(prompt or [""])
        n = body.get("n") if isinstance(body.get("n"), int) else 1
        stops = body.get("stop") or []
        stops = [stops] if isinstance(stops, str) else stops
        limit = body.get("max_tokens")
        out = []
        for item in prompts:
            said = item if isinstance(item, str) else f"{len(item)} tokens"
            text = f"echo: {said}"
            if isinstance(behaviour, Reply) and behaviour.text is not None:
                text = behaviour.text
            finish = "stop"
            words = text.split(" ")
            if isinstance(limit, int) and limit > 0 and len(words) > limit:
                text, finish = " ".join(words[:limit]), "length"
            for stop in stops:
                if stop in text:
                    text, finish = text[: text.index(stop)], "stop"
            if body.get("echo") is True and isinstance(item, str):
                text = item + text
            tokens = [w + " " for w in text.split(" ")]
            tokens[-1] = tokens[-1][:-1]
            out.extend([(text, finish, [t for t in tokens if t])] * n)
        return out

    def _completion_logprobs(self, body: Any, tokens: list[str], offset: int) -> Any:
        count = body.get("logprobs")
        if not isinstance(count, int):
            return None
        offsets = []
        for token in tokens:
            offsets.append(offset)
            offset += len(token)
        return {
            "tokens": tokens,
            "token_logprobs": [-0.25] * len(tokens),
            "top_logprobs": [{t: -0.25} for t in tokens] if count else [{}] * len(tokens),
            "text_offset": offsets,
        }

    def _completion(self, body: Any, behaviour: Reply | CutStream) -> Any:
        choices = [
            {
                "text": text,
                "index": i,
                "logprobs": self._completion_logprobs(body, tokens, 0),
                "finish_reason": finish,
            }
            for i, (text, finish, tokens) in enumerate(self._completion_choices(body, behaviour))
        ]
        return {
            "id": "cmpl-" + uuid.uuid4().hex,
            "object": "text_completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "system_fingerprint": "fp_fake",
            "choices": choices,
            "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
        }

    def _completion_events(self, body: Any, behaviour: Reply | CutStream) -> Iterator[bytes]:
        base = {
            "id": "cmpl-" + uuid.uuid4().hex,
            "object": "text_completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "system_fingerprint": "fp_fake",
        }
        with_usage = (body.get("stream_options") or {}).get("include_usage") is True

        def event(choice: dict[str, Any]) -> bytes:
            chunk = {**base, "choices": [choice]}
            if with_usage:
                chunk["usage"] = None
            return b"data: " + orjson.dumps(chunk) + b"\n\n"

        for i, (_, finish, tokens) in enumerate(self._completion_choices(body, behaviour)):
            offset = 0
            for token in tokens:
                logprobs = self._completion_logprobs(body, [token], offset)
                offset += len(token)
                yield event(
                    {"text": token, "index": i, "logprobs": logprobs, "finish_reason": None}
                )
            yield event({"text": "", "index": i, "logprobs": None, "finish_reason": finish})
        if with_usage:
            usage = {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
            yield b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n"
        yield b"data: [DONE]\n\n"

    # -- the Responses API ---------------------------------------------------------------------

    def _response_tool(self, body: Any) -> dict[str, Any] | None:
        tools: list[dict[str, Any]] = [
            t for t in body.get("tools") or [] if t.get("type") == "function"
        ]
        if tools and body.get("tool_choice") not in (None, "auto", "none"):
            return tools[0]
        return None

    def _response_output(
        self, body: Any, behaviour: Reply | CutStream, rid: str
    ) -> tuple[list[dict[str, Any]], str]:
        """The output items of an answer to ``body`` and the response's status."""
        tool = self._response_tool(body)
        if tool is not None:
            item = {
                "id": f"fc_{rid}",
                "type": "function_call",
                "status": "completed",
                "call_id": f"call_{rid}",
                "name": tool["name"],
                "arguments": '{"city": "Paris"}',
            }
            return [item], "completed"
        if isinstance(behaviour, Reply) and behaviour.text is not None:
            text = behaviour.text
        else:
            text = f"echo: {responses_input_text(body)}"
        status = "completed"
        limit = body.get("max_output_tokens")
        if isinstance(limit, int) and limit > 0 and len(text.split(" ")) > limit:
            text, status = " ".join(text.split(" ")[:limit]), "incomplete"
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        message = {
            "id": f"msg_{rid}",
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": [part],
        }
        return [message], status

    def _response(
        self,
        body: Any,
        behaviour: Reply | CutStream,
        status: str,
        rid: str | None = None,
        output: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        rid = rid or uuid.uuid4().hex
        if output is None:
            output, status = self._response_output(body, behaviour, rid)
        if status != "in_progress" and body.get("store") is not False:
            self.stored_responses.add("resp_" + rid)
        done = status in ("completed", "incomplete")
        return {
            "id": "resp_" + rid,
            "object": "response",
            "created_at": int(time.time()),
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"}
            if status == "incomplete"
            else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": body.get("model"),
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None},
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": {
                "input_tokens": 11,
                "input_tokens_details": {"cached_tokens": 3},
                "output_tokens": 7,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 18,
            }
            if done
            else None,
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }

    async def _failed_stream(
        self, request: web.Request, body: Any, behaviour: ResponseFailed
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        sent = 0
        for sent, event in enumerate(self._response_events(body, Reply())):
            if sent >= behaviour.after:
                break
            await response.write(event)
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        failed = self._response(body, Reply(), "failed", output=[])
        failed["error"] = {"code": behaviour.code, "message": behaviour.message}
        data = {"type": "response.failed", "sequence_number": sent, "response": failed}
        await response.write(b"event: response.failed\ndata: " + orjson.dumps(data) + b"\n\n")
        await response.write_eof()
        return response

    def _response_events(self, body: Any, behaviour: Reply | CutStream) -> Iterator[bytes]:
        """The event sequence OpenAI streams for one answer (``event:`` and ``data:``)."""
        rid = uuid.uuid4().hex
        counter = itertools.count()

        def event(kind: str, **fields: Any) -> bytes:
            data = {"type": kind, "sequence_number": next(counter), **fields}
            return f"event: {kind}\n".encode() + b"data: " + orjson.dumps(data) + b"\n\n"

        output, status = self._response_output(body, behaviour, rid)
        started = self._response(body, behaviour, "in_progress", rid, [])
        yield event("response.created", response=started)
        yield event("response.in_progress", response=started)
        for index, item in enumerate(output):
            if item["type"] == "function_call":
                yield event(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "arguments": "", "status": "in_progress"},
                )
                for piece in ('{"ci', 'ty": "Pa', 'ris"}'):
                    yield event(
                        "response.function_call_arguments.delta",
                        item_id=item["id"],
                        output_index=index,
                        delta=piece,
                    )
                yield event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    name=item["name"],
                    arguments=item["arguments"],
                )
            else:
                part = item["content"][0]
                ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
                yield event(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "content": []},
                )
                yield event("response.content_part.added", **ids, part={**part, "text": ""})
                words = part["text"].split(" ")
                for i, word in enumerate(words):
                    delta = word if i == len(words) - 1 else word + " "
                    yield event("response.output_text.delta", **ids, delta=delta, logprobs=[])
                yield event("response.output_text.done", **ids, text=part["text"], logprobs=[])
                yield event("response.content_part.done", **ids, part=part)
            yield event("response.output_item.done", output_index=index, item=item)
        final = self._response(body, behaviour, status, rid, output)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        yield event(kind, response=final)
