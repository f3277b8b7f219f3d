"""What a provider plugin implements: the :class:`Provider` ABC and the responses it returns.

A provider *type* (``openai``, ``anthropic``, ``groq`` ...) is registered through the
``register_providers`` hook; each ``[providers.NAME]`` table makes one *instance* of it, with
its own settings, key and pooled HTTP client. The canonical format inside the gateway is
OpenAI Chat Completions: a provider takes OpenAI-shaped request bodies and returns
OpenAI-shaped responses and SSE chunks, translating for its upstream when it must.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, ClassVar

import attrs
from plugway.context import RequestContext, Target
from plugway.errors import GatewayError, InvalidRequest


@attrs.define(kw_only=True)
class ProviderSettings:
    """The fields every ``[providers.NAME]`` table may have. A provider type that needs more
    subclasses this (attrs) and names it as its ``settings_class``; the config loader then
    checks the table against it and rejects unknown fields."""

    type: str
    base_url: str | None = None
    api_key: str | None = None
    timeout: float = 60.0
    connect_timeout: float = 10.0
    headers: dict[str, str] = attrs.field(factory=dict)
    models: list[str] = attrs.field(factory=list)
    max_connections: int = 1000
    #: This account keeps no prompt or completion data (a zero-data-retention agreement).
    zdr: bool = False


@attrs.define(slots=True)
class ProviderResponse:
    """A complete (non-streamed) OpenAI-shaped answer.

    ``raw`` is the exact JSON bytes to send when the provider passed the upstream body through
    untouched; plugins that change ``body`` (in place or not) call :meth:`replace_body`, so
    ``raw`` is dropped and ``replaced`` tells an endpoint holding other bytes of the same
    answer (a native pass-through) that they are stale.
    """

    body: dict[str, Any]
    raw: bytes | None = None
    status: int = 200
    replaced: bool = False

    @property
    def usage(self) -> dict[str, Any] | None:
        usage = self.body.get("usage")
        return usage if isinstance(usage, dict) else None

    def replace_body(self, body: dict[str, Any]) -> None:
        self.body = body
        self.raw = None
        self.replaced = True


class ChunkStream(ABC):
    """An open upstream stream, already accepted by the upstream (its status was 2xx).

    Iterating yields bytes holding whole SSE events in OpenAI's chunk format
    (``data: {...}\\n\\n``), never a partial event and never ``data: [DONE]``: the core adds
    that. Iteration raises a :class:`~plugway.errors.GatewayError` when the upstream fails.
    ``usage`` and ``finish_reason`` are filled by the time iteration ends. :meth:`aclose` must
    release the upstream connection at once; the core always calls it, also on cancellation.
    """

    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    #: An error the upstream reported in band that was forwarded to the client as it was
    #: (a pass-through stream's own error event); the endpoint records it, adds no other.
    error: GatewayError | None = None

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[bytes]: ...

    @abstractmethod
    async def aclose(self) -> None: ...


@attrs.define(slots=True)
class CacheLookup:
    """What a response cache answers for one request (the ``cached_response`` hook).

    ``hit`` is a provider that answers this request from the cache: the door calls it exactly
    as it would call a target of the plan (``chat``, ``chat_stream``, ``embeddings`` ...), so
    every door gets the answer in its own shape. ``record``, on a miss, wraps each provider the
    walk calls, so the cache sees what it answers (a stream's bytes) without the door's help.
    """

    hit: Provider | None = None
    record: Callable[[Provider], Provider] | None = None


class Provider(ABC):
    """One configured upstream account.

    Instances are made once per worker from validated settings. :meth:`startup` opens pooled
    clients inside the running event loop; :meth:`aclose` closes them. ``chat`` and
    ``chat_stream`` raise :class:`~plugway.errors.UpstreamError` subclasses on failure so the
    failure policy can tell retryable errors from final ones; any other exception is a bug and
    is reported as a 502 by the core.
    """

    settings_class: ClassVar[type[ProviderSettings]] = ProviderSettings
    #: A provider that needs no key (local servers, the fake) sets this False.
    requires_api_key: ClassVar[bool] = True

    def __init__(self, name: str, settings: ProviderSettings) -> None:
        self.name = name
        self.settings = settings

    async def startup(self) -> None:  # noqa: B027 - optional to override
        """Open clients; called once per worker inside the running loop."""

    async def aclose(self) -> None:  # noqa: B027 - optional to override
        """Release clients and connections."""

    @abstractmethod
    async def chat(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        """Answer a non-streamed chat completion for ``target.model``."""

    @abstractmethod
    async def chat_stream(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ChunkStream:
        """Open a streamed chat completion; return once the upstream has accepted it."""

    async def embeddings(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        """Answer an embeddings request. Providers without embeddings keep this default."""
        raise InvalidRequest(
            f"provider '{self.name}' ({self.settings.type}) does not serve embeddings",
            param="model",
            code="unsupported_endpoint",
        )

    async def moderations(
        self, ctx: RequestContext, target: Target, body: Mapping[str, Any]
    ) -> ProviderResponse:
        """Classify inputs (``POST /v1/moderations``). Providers without it keep this default."""
        raise InvalidRequest(
            f"provider '{self.name}' ({self.settings.type}) does not serve moderations; route "
            f"'{ctx.model}' to a target that does (an OpenAI-format host with a moderation model)",
            param="model",
            code="unsupported_endpoint",
        )

    def public_settings(self) -> dict[str, Any]:
        """The settings with the key masked, for ``plugway check`` and ``/-/plugins``."""
        data = attrs.asdict(self.settings)
        if data.get("api_key"):
            data["api_key"] = mask_secret(data["api_key"])
        if data.get("headers"):
            data["headers"] = {k: "***" for k in data["headers"]}
        return data


def mask_secret(secret: str) -> str:
    """Show a secret's shape, never its content: ``sk-...(51 chars)``."""
    prefix = secret[:3] if len(secret) >= 12 else ""
    return f"{prefix}...({len(secret)} chars)"


@attrs.frozen
class ProviderType:
    """A registered provider type: the class and the settings defaults it starts from
    (an OpenAI-compatible host is ``OpenAIProvider`` plus a default ``base_url``)."""

    name: str
    provider_class: type[Provider]
    defaults: Mapping[str, Any] = attrs.field(factory=dict)
    plugin: str = ""
