"""OpenAI's legacy text completions (``POST /v1/completions``) and the canonical chat form.

Pure translation, no I/O. The inbound ``/v1/completions`` endpoint uses it to serve any target:

- :func:`parse_request` checks a client's body field by field (a malformed body raises
  :class:`~plugway.errors.InvalidRequest` naming the field path, never anything else) and
  builds its canonical chat body: one ``user`` message per prompt, so ``pre_route`` plugins
  (limits, pii, secrets, prompt_guard) see, and may redact, every prompt.
- :func:`prompt_bodies` cuts that canonical body (as plugins left it) into one chat body per
  prompt. A list of several prompts is served by one chat call per prompt (the endpoint makes
  them, on the same target); each prompt gets its own ``n`` choices, numbered
  ``index = prompt_index * n + choice`` as OpenAI numbers them.
- :func:`merge_chat_answers` joins those chat answers into one chat-shaped answer (what
  ``post_response`` plugins see), :func:`chat_to_completion` renders it as a
  ``text_completion`` object, and :class:`ChatToCompletionStream` turns chat chunks into
  completion chunks.
- :func:`completion_to_chat` reads a natively served completion (OpenAI-format hosts that have
  ``/completions``) as a chat-shaped answer for the plugins.

What chat cannot express faithfully, and so only a native target serves (others get a 400
naming the field): token-id prompts (``prompt`` as a list of integers or of lists of integers),
a non-empty ``suffix``, ``best_of`` other than 1 or ``n``, and lists of more than
:data:`MAX_TRANSLATED_PROMPTS` prompts. ``echo`` prepends each prompt to
its choices' text (prompt tokens get no logprobs through chat). ``logprobs: N`` asks chat for
``logprobs: true, top_logprobs: N`` and converts the answer's token logprobs to the legacy
``{tokens, token_logprobs, top_logprobs, text_offset}`` shape where the target gives them.
Chat targets apply their own default for a missing ``max_tokens`` (the legacy endpoint's
default was 16). Fields this module does not know pass through to the chat body unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard, runtime_checkable

import attrs
from plugway.errors import InvalidRequest

if TYPE_CHECKING:
    from plugway.context import RequestContext, Target
    from plugway.provider import ChunkStream, ProviderResponse

#: Legacy ``logprobs`` accepts at most this many alternatives per token.
MAX_LOGPROBS = 5
#: ``stop`` holds at most this many sequences.
MAX_STOP = 4
#: At most this many prompts in one request are served through chat (one chat call each);
#: longer lists only reach hosts with a native completions endpoint.
MAX_TRANSLATED_PROMPTS = 16
#: Finish reasons a ``text_completion`` choice may carry; others read as ``stop``.
FINISH_REASONS = frozenset({"stop", "length", "content_filter"})
#: Fields this module reads; every other field is copied to the chat body as it is.
_KNOWN = frozenset(
    {"model", "prompt", "suffix", "echo", "logprobs", "best_of", "n", "stream", "stream_options"}
)


# -- requests ----------------------------------------------------------------------------------


@attrs.define
class CompletionRequest:
    """A checked completions request and its canonical chat body."""

    #: The client's body as sent (what a native target gets, ``model`` replaced).
    body: dict[str, Any]
    #: The canonical chat body: one ``user`` message per prompt.
    chat: dict[str, Any]
    #: How many prompts (the chat body has that many user messages).
    prompts: int
    n: int
    echo: bool
    logprobs: int | None
    include_usage: bool
    #: Why the request cannot be served through chat, if it cannot (token prompts, suffix,
    #: best_of): only a native target may serve it.
    untranslatable: InvalidRequest | None = None


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_int(body: Mapping[str, Any], name: str, minimum: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not _is_int(value):
        raise InvalidRequest(f"{name} must be an integer", param=name)
    if minimum is not None and value < minimum:
        raise InvalidRequest(f"{name} must be at least {minimum}", param=name)
    result: int = value
    return result


def _check_number(body: Mapping[str, Any], name: str) -> None:
    value = body.get(name)
    if value is not None and not _is_number(value):
        raise InvalidRequest(f"{name} must be a number", param=name)


def _prompts(prompt: Any) -> tuple[list[str], bool]:
    """The prompt texts, and whether the prompt is made of token ids (then the texts are
    empty placeholders, one per prompt)."""
    if isinstance(prompt, str):
        return [prompt], False
    if not isinstance(prompt, list) or not prompt:
        raise InvalidRequest(
            "prompt must be a string, a non-empty array of strings, or token ids", param="prompt"
        )
    if all(_is_int(x) for x in prompt):
        return [""], True
    if all(isinstance(x, list) for x in prompt):
        for i, tokens in enumerate(prompt):
            if not tokens or not all(_is_int(x) for x in tokens):
                raise InvalidRequest(
                    f"prompt[{i}] must be a non-empty array of token ids (integers)",
                    param=f"prompt[{i}]",
                )
        return [""] * len(prompt), True
    texts = []
    for i, text in enumerate(prompt):
        if not isinstance(text, str):
            raise InvalidRequest(f"prompt[{i}] must be a string", param=f"prompt[{i}]")
        texts.append(text)
    return texts, False


def _check_stop(stop: Any) -> None:
    if stop is None or isinstance(stop, str):
        return
    if not isinstance(stop, list):
        raise InvalidRequest("stop must be a string or an array of strings", param="stop")
    if len(stop) > MAX_STOP:
        raise InvalidRequest(f"stop may hold at most {MAX_STOP} sequences", param="stop")
    for i, item in enumerate(stop):
        if not isinstance(item, str):
            raise InvalidRequest(f"stop[{i}] must be a string", param=f"stop[{i}]")


def _check_logit_bias(bias: Any) -> None:
    if bias is None:
        return
    if not isinstance(bias, dict):
        raise InvalidRequest(
            "logit_bias must be an object of token ids to numbers", param="logit_bias"
        )
    for token, value in bias.items():
        if not _is_number(value):
            raise InvalidRequest(
                f"logit_bias.{token} must be a number", param=f"logit_bias.{token}"
            )


def _include_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise InvalidRequest("stream_options must be an object", param="stream_options")
    include = options.get("include_usage")
    if include is not None and not isinstance(include, bool):
        raise InvalidRequest(
            "stream_options.include_usage must be true or false",
            param="stream_options.include_usage",
        )
    return include is True


def completions_param(param: str | None) -> str | None:
    """The completions field a chat field path (an error's ``param`` raised while the chat
    body made from the prompt was translated for a target) was made from: ``messages...`` ->
    ``prompt``, ``max_completion_tokens`` -> ``max_tokens``; the rest share their names."""
    if param is not None and param.startswith("messages"):
        return "prompt"
    if param == "max_completion_tokens":
        return "max_tokens"
    return param


def parse_request(body: Mapping[str, Any]) -> CompletionRequest:
    """Check a completions body and build its canonical chat body.

    Raises :class:`InvalidRequest` naming the field for a malformed body. A well-formed body
    that chat cannot express is returned with ``untranslatable`` set (and a placeholder chat
    body), so a native target may still serve it.
    """
    texts, token_ids = _prompts(body.get("prompt"))
    suffix = body.get("suffix")
    if suffix is not None and not isinstance(suffix, str):
        raise InvalidRequest("suffix must be a string", param="suffix")
    echo = body.get("echo")
    if echo is not None and not isinstance(echo, bool):
        raise InvalidRequest("echo must be true or false", param="echo")
    logprobs = _check_int(body, "logprobs", minimum=0)
    if logprobs is not None and logprobs > MAX_LOGPROBS:
        raise InvalidRequest(f"logprobs must be at most {MAX_LOGPROBS}", param="logprobs")
    _check_int(body, "max_tokens", minimum=0)
    n = _check_int(body, "n", minimum=1) or 1
    # OpenAI's published schema allows 0 (the default, 1, applies).
    best_of = _check_int(body, "best_of", minimum=0) or None
    if best_of is not None and best_of < n:
        raise InvalidRequest("best_of must be at least n", param="best_of")
    _check_int(body, "seed")
    for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        _check_number(body, name)
    _check_stop(body.get("stop"))
    _check_logit_bias(body.get("logit_bias"))
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise InvalidRequest("user must be a string", param="user")
    include_usage = _include_usage(body)

    untranslatable = None
    if token_ids:
        untranslatable = InvalidRequest(
            "prompt as token ids can only be served by a target with a native completions "
            "endpoint; send the prompt as text",
            param="prompt",
        )
    elif len(texts) > MAX_TRANSLATED_PROMPTS:
        untranslatable = InvalidRequest(
            f"at most {MAX_TRANSLATED_PROMPTS} prompts in one request can be served through "
            "chat (one call each); send fewer, or route to a target with a native completions "
            "endpoint",
            param="prompt",
        )
    elif suffix:
        untranslatable = InvalidRequest(
            "suffix can only be served by a target with a native completions endpoint",
            param="suffix",
        )
    elif best_of is not None and best_of not in (1, n):
        untranslatable = InvalidRequest(
            "best_of other than 1 or n can only be served by a target with a native "
            "completions endpoint",
            param="best_of",
        )

    chat: dict[str, Any] = {k: v for k, v in body.items() if k not in _KNOWN}
    chat["model"] = body.get("model")
    chat["messages"] = [{"role": "user", "content": text} for text in texts]
    if n != 1:
        chat["n"] = n
    if logprobs is not None:
        chat["logprobs"] = True
        chat["top_logprobs"] = logprobs
    if body.get("stream") is True:
        chat["stream"] = True
        if body.get("stream_options") is not None:
            chat["stream_options"] = body["stream_options"]
    return CompletionRequest(
        body=dict(body),
        chat=chat,
        prompts=len(texts),
        n=n,
        echo=echo is True,
        logprobs=logprobs,
        include_usage=include_usage,
        untranslatable=untranslatable,
    )


def prompt_bodies(chat: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One chat body per prompt out of the canonical body (as ``pre_route`` plugins left it):
    each ``user`` message is a prompt; any other message (a system prompt a plugin added)
    is kept in every body, in its place."""
    messages = chat.get("messages")
    if not isinstance(messages, list):
        raise InvalidRequest("a plugin left the request without messages", param="prompt")
    users = [i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        raise InvalidRequest("a plugin left the request without a prompt", param="prompt")
    return [
        {
            **chat,
            "messages": [m for i, m in enumerate(messages) if i == u or i not in users],
        }
        for u in users
    ]


def prompt_text(chat: Mapping[str, Any]) -> str:
    """The prompt of a per-prompt chat body (its ``user`` message's text), for ``echo``."""
    for message in chat.get("messages") or ():
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(
                    p["text"]
                    for p in content
                    if isinstance(p, dict) and isinstance(p.get("text"), str)
                )
    return ""


# -- answers -----------------------------------------------------------------------------------


def add_usage(
    total: dict[str, Any] | None, usage: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """``total`` plus ``usage``, field by field (integers summed, nested details too)."""
    if not isinstance(usage, Mapping):
        return total
    out = dict(total or {})
    for key, value in usage.items():
        if _is_int(value):
            previous = out.get(key)
            out[key] = (previous if _is_int(previous) else 0) + value
        elif isinstance(value, Mapping):
            previous = out.get(key)
            out[key] = add_usage(previous if isinstance(previous, dict) else None, value)
        elif key not in out:
            out[key] = value
    return out


def merge_chat_answers(answers: Sequence[Mapping[str, Any]], n: int) -> dict[str, Any]:
    """One chat-shaped answer from the per-prompt answers: prompt ``p``'s choice ``c`` becomes
    choice ``p * n + c``; usage is summed."""
    if len(answers) == 1:
        return dict(answers[0])
    choices: list[dict[str, Any]] = []
    usage: dict[str, Any] | None = None
    for p, answer in enumerate(answers):
        for position, choice in enumerate(answer.get("choices") or ()):
            if not isinstance(choice, dict):
                continue
            own = choice.get("index")
            index = own if _is_int(own) and 0 <= own < n else position
            choices.append({**choice, "index": p * n + index})
        usage = add_usage(usage, answer.get("usage"))
    merged = {**answers[0], "choices": sorted(choices, key=lambda c: c["index"])}
    if usage is not None:
        merged["usage"] = usage
    return merged


def _text_of(message: Any) -> str:
    if not isinstance(message, Mapping):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def _finish(reason: Any) -> str:
    return reason if reason in FINISH_REASONS else "stop"


def legacy_logprobs(logprobs: Any, offset: int = 0) -> dict[str, Any] | None:
    """Chat logprobs (``{"content": [{token, logprob, top_logprobs}]}``) in the legacy shape,
    ``text_offset`` counted from ``offset``. A value already in the legacy shape is kept."""
    if not isinstance(logprobs, Mapping):
        return None
    if "tokens" in logprobs:
        return dict(logprobs)
    content = logprobs.get("content")
    if not isinstance(content, list):
        return None
    out: dict[str, list[Any]] = {
        "tokens": [],
        "token_logprobs": [],
        "top_logprobs": [],
        "text_offset": [],
    }
    for item in content:
        if not isinstance(item, Mapping) or not isinstance(item.get("token"), str):
            continue
        token: str = item["token"]
        out["tokens"].append(token)
        out["token_logprobs"].append(item.get("logprob"))
        top = item.get("top_logprobs")
        out["top_logprobs"].append(
            {
                t["token"]: t.get("logprob")
                for t in top
                if isinstance(t, Mapping) and isinstance(t.get("token"), str)
            }
            if isinstance(top, list)
            else {}
        )
        out["text_offset"].append(offset)
        offset += len(token)
    return out


def choice_texts(chat: Mapping[str, Any]) -> list[str]:
    """Each choice's text in a chat-shaped answer, in order."""
    return [
        _text_of(c.get("message")) if isinstance(c, Mapping) else ""
        for c in chat.get("choices") or ()
    ]


def drop_stale_logprobs(chat: dict[str, Any], before: Sequence[str]) -> None:
    """Remove the logprobs of every choice whose text a plugin changed since ``before`` (see
    :func:`choice_texts`): its tokens would still spell what was redacted."""
    after = choice_texts(chat)
    for position, choice in enumerate(chat.get("choices") or ()):
        if isinstance(choice, dict) and (
            position >= len(before) or before[position] != after[position]
        ):
            choice["logprobs"] = None


def completion_id(request_id: str) -> str:
    return "cmpl-" + request_id.removeprefix("req_")


def chat_to_completion(
    chat: Mapping[str, Any],
    *,
    model: str,
    id: str,
    echo_prompts: Sequence[str] | None = None,
    n: int = 1,
    created: int | None = None,
) -> dict[str, Any]:
    """A chat-shaped answer as a ``text_completion`` object. With ``echo_prompts``, choice
    ``i``'s text starts with prompt ``i // n``."""
    choices = []
    for position, choice in enumerate(chat.get("choices") or ()):
        if not isinstance(choice, Mapping):
            continue
        index = choice.get("index")
        index = index if _is_int(index) else position
        prefix = ""
        if echo_prompts is not None and 0 <= index // n < len(echo_prompts):
            prefix = echo_prompts[index // n]
        choices.append(
            {
                "text": prefix + _text_of(choice.get("message")),
                "index": index,
                "logprobs": legacy_logprobs(choice.get("logprobs"), len(prefix)),
                "finish_reason": _finish(choice.get("finish_reason")),
            }
        )
    out: dict[str, Any] = {
        "id": id,
        "object": "text_completion",
        "created": created if created is not None else _created(chat),
        "model": model,
        "choices": choices,
    }
    if isinstance(chat.get("system_fingerprint"), str):
        out["system_fingerprint"] = chat["system_fingerprint"]
    if isinstance(chat.get("usage"), Mapping):
        out["usage"] = dict(chat["usage"])
    return out


def _created(body: Mapping[str, Any]) -> int:
    created = body.get("created")
    return created if _is_int(created) else int(time.time())


def completion_to_chat(body: Mapping[str, Any]) -> dict[str, Any]:
    """A native ``text_completion`` answer read as a chat-shaped answer (the text as the
    assistant message, logprobs kept in their legacy shape), for ``post_response`` plugins."""
    choices = []
    for position, choice in enumerate(body.get("choices") or ()):
        if not isinstance(choice, Mapping):
            continue
        text = choice.get("text")
        choices.append(
            {
                "index": choice.get("index", position),
                "message": {"role": "assistant", "content": text if isinstance(text, str) else ""},
                "logprobs": choice.get("logprobs"),
                "finish_reason": choice.get("finish_reason"),
            }
        )
    out = {k: v for k, v in body.items() if k != "choices"}
    out["object"] = "chat.completion"
    out["choices"] = choices
    return out


# -- streams -----------------------------------------------------------------------------------


class ChatToCompletionStream:
    """Chat completion chunks in, ``text_completion`` chunks out, for one or several prompts'
    streams (told apart by ``prompt``). Each choice's running text length is kept for
    ``text_offset``; nothing else grows with the stream. Usage chunks are not forwarded:
    the endpoint sums usage and sends one usage chunk at the end (see :meth:`usage_chunk`).
    ``model`` is used until a chat chunk names the upstream's model."""

    def __init__(
        self,
        *,
        model: str,
        id: str,
        n: int = 1,
        echo_prompts: Sequence[str] | None = None,
        created: int | None = None,
    ) -> None:
        self.model = model
        self.id = id
        self.n = n
        self.echo_prompts = echo_prompts
        self.created = created if created is not None else int(time.time())
        self.offsets: dict[int, int] = {}
        self.finish_reason: str | None = None
        self.system_fingerprint: str | None = None

    def _chunk(self, choice: dict[str, Any]) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        }
        if self.system_fingerprint is not None:
            chunk["system_fingerprint"] = self.system_fingerprint
        return chunk

    def feed(self, chunk: Mapping[str, Any], prompt: int = 0) -> list[dict[str, Any]]:
        """The completion chunks for one chat chunk of prompt number ``prompt``."""
        if isinstance(chunk.get("system_fingerprint"), str):
            self.system_fingerprint = chunk["system_fingerprint"]
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            self.model = chunk["model"]  # the upstream's name, as non-streamed answers give
        out = []
        for position, choice in enumerate(chunk.get("choices") or ()):
            if not isinstance(choice, Mapping):
                continue
            own = choice.get("index")
            index = prompt * self.n + (own if _is_int(own) and 0 <= own < self.n else position)
            delta = choice.get("delta")
            text = _text_of(delta)
            if index not in self.offsets:
                prefix = ""
                if self.echo_prompts is not None and prompt < len(self.echo_prompts):
                    prefix = self.echo_prompts[prompt]
                text = prefix + text
                self.offsets[index] = len(prefix)
            text_offset = self.offsets[index]
            logprobs = legacy_logprobs(choice.get("logprobs"), text_offset)
            if logprobs is not None and not logprobs["tokens"]:
                logprobs = None
            reason = choice.get("finish_reason")
            finish = _finish(reason) if reason is not None else None
            if finish is not None:
                self.finish_reason = finish
            self.offsets[index] = text_offset + len(_text_of(delta))
            if not text and finish is None and logprobs is None:
                continue
            out.append(
                self._chunk(
                    {"text": text, "index": index, "logprobs": logprobs, "finish_reason": finish}
                )
            )
        return out

    def usage_chunk(self, usage: Mapping[str, Any]) -> dict[str, Any]:
        """The closing chunk carrying the summed usage (sent when the client asked for it)."""
        return {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": dict(usage),
        }


# -- native pass-through: what a provider offers to serve completions as they are -------------


@runtime_checkable
class NativeCompletions(Protocol):
    """What a provider offers to serve ``/v1/completions`` natively (OpenAI-format hosts
    that have the endpoint). ``serves_completions`` says whether this instance's host does;
    when it is false the endpoint translates through ``chat`` instead.

    ``completions`` answers the host's ``text_completion`` JSON (``raw`` holds its bytes);
    ``completions_stream`` yields the host's completion SSE events, whole and untouched (no
    ``[DONE]``: the endpoint adds it), with ``usage`` read from them for cost."""

    @property
    def serves_completions(self) -> bool: ...

    async def completions(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse: ...

    async def completions_stream(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ChunkStream: ...
