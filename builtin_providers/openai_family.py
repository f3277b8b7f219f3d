"""The OpenAI-compatible hosts, as data: each is one :class:`Host` record, registered as its own
provider type and served by the one ``OpenAIProvider``. Adding a host is adding a record.

Each record gives the settings defaults a ``[providers.NAME]`` table of that type starts from
(any of them can be overridden in the table) and the host's quirks:

* ``auth_header`` / ``auth_scheme``: where the key goes (``api-key: KEY`` on Azure);
* ``key_required``: local servers (Ollama, vLLM) run without a key;
* ``stream_options``: whether the host accepts ``stream_options`` (Mistral answers 422 to it);
  when not, it is never sent and the usage is whatever the host reports on its own;
* ``rename``: request fields the host names differently (``max_completion_tokens`` ->
  ``max_tokens`` for hosts that only know the older name);
* ``drop``: request fields the host refuses;
* ``path_prefix`` / ``api_version``: Azure's deployment paths and ``api-version`` query;
* ``completions_api``: whether the host serves the legacy ``/completions`` endpoint (when not,
  ``/v1/completions`` requests reach it translated to chat).
* ``responses_api``: the host serves ``/v1/responses`` itself (OpenAI, Azure), so the inbound
  Responses endpoint passes requests through rather than translating them to chat.

Base URLs follow each host's own SDK convention (what its docs tell users to give the
``openai`` SDK as ``base_url``), so they can be copied from there.

It also holds how each host says "the prompt is too long for the context window" and "the
content filter refused this", so :func:`recognise` can raise
:class:`~plugway.errors.ContextWindowExceeded` / :class:`~plugway.errors.ContentFiltered`
and routing can fall back to a larger or a different model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs
from plugway.errors import (
    CONTENT_FILTER_CODES,
    CONTEXT_WINDOW_CODES,
    ContentFiltered,
    ContextWindowExceeded,
    UpstreamError,
    UpstreamRejected,
)


@attrs.frozen
class Host:
    """One OpenAI-compatible provider type."""

    name: str
    base_url: str | None
    docs: str
    auth_header: str = "authorization"
    auth_scheme: str = "Bearer"
    key_required: bool = True
    stream_options: bool = True
    rename: Mapping[str, str] = attrs.field(factory=dict)
    drop: tuple[str, ...] = ()
    path_prefix: str = ""
    api_version: str = ""
    #: Extra error codes / message patterns meaning "context window" and "content filter".
    context_codes: tuple[str, ...] = ()
    filter_codes: tuple[str, ...] = ()
    completions_api: bool = True
    #: The host serves ``/v1/responses`` itself (requests to it are passed through).
    responses_api: bool = False
    #: Where the host serves it, when not under ``path_prefix`` (Azure's v1 API path).
    responses_path: str = ""

    def defaults(self) -> dict[str, Any]:
        """The settings defaults for ``register(name, OpenAIProvider, **defaults)``."""
        return {
            "base_url": self.base_url,
            "auth_header": self.auth_header,
            "auth_scheme": self.auth_scheme,
            "stream_options": self.stream_options,
            "rename": dict(self.rename),
            "drop": list(self.drop),
            "path_prefix": self.path_prefix,
            "api_version": self.api_version,
            "context_codes": list(self.context_codes),
            "filter_codes": list(self.filter_codes),
            "completions_api": self.completions_api,
            "responses_api": self.responses_api,
            "responses_path": self.responses_path,
        }


_OLD_MAX_TOKENS = {"max_completion_tokens": "max_tokens"}

HOSTS: tuple[Host, ...] = (
    Host(
        "openai",
        "https://api.openai.com/v1",
        "https://platform.openai.com/docs/api-reference",
        responses_api=True,
    ),
    Host(
        "azure",
        # The resource endpoint (AzureOpenAI's azure_endpoint), e.g.
        # https://RESOURCE.openai.azure.com; the target's model is the deployment name.
        None,
        "https://learn.microsoft.com/azure/ai-foundry/openai/reference",
        auth_header="api-key",
        auth_scheme="",
        path_prefix="/openai/deployments/{model}",
        api_version="2024-10-21",
        responses_api=True,
        responses_path="/openai/v1/responses",
    ),
    Host(
        "groq",
        "https://api.groq.com/openai/v1",
        "https://console.groq.com/docs/openai",
        completions_api=False,
    ),
    Host(
        "mistral",
        "https://api.mistral.ai/v1",
        "https://docs.mistral.ai/api/",
        # Mistral refuses unknown fields with 422 (extra_forbidden), stream_options included;
        # it reports usage in the last chunk on its own.
        stream_options=False,
        rename={**_OLD_MAX_TOKENS, "seed": "random_seed"},
        drop=("store", "metadata", "service_tier"),
        completions_api=False,
    ),
    Host(
        "deepseek",
        "https://api.deepseek.com",
        "https://api-docs.deepseek.com/",
        rename=_OLD_MAX_TOKENS,
        # Its completions (fill-in-the-middle) live under another base URL, /beta.
        completions_api=False,
    ),
    Host(
        "together",
        "https://api.together.xyz/v1",
        "https://docs.together.ai/docs/openai-api-compatibility",
        rename=_OLD_MAX_TOKENS,
    ),
    Host(
        "fireworks",
        "https://api.fireworks.ai/inference/v1",
        "https://docs.fireworks.ai/tools-sdks/openai-compatibility",
        rename=_OLD_MAX_TOKENS,
    ),
    Host("xai", "https://api.x.ai/v1", "https://docs.x.ai/docs/api-reference"),
    Host("openrouter", "https://openrouter.ai/api/v1", "https://openrouter.ai/docs/api-reference"),
    Host(
        # BytePlus ModelArk: ByteDance's Seed (chat) and Seedance (video) models. Image and
        # video content parts pass through untouched, as every body does.
        "ark",
        "https://ark.ap-southeast.bytepluses.com/api/v3",
        "https://docs.byteplus.com/en/docs/ModelArk/1330626",
        completions_api=False,
        filter_codes=(
            "SensitiveContentDetected",
            "InputTextSensitiveContentDetected",
            "OutputTextSensitiveContentDetected",
            "InputImageSensitiveContentDetected",
            "OutputImageSensitiveContentDetected",
            "InputVideoSensitiveContentDetected",
            "OutputVideoSensitiveContentDetected",
        ),
    ),
    Host(
        "ollama",
        "http://127.0.0.1:11434/v1",
        "https://docs.ollama.com/api/openai-compatibility",
        key_required=False,
        rename=_OLD_MAX_TOKENS,
    ),
    Host(
        "vllm",
        "http://127.0.0.1:8000/v1",
        "https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html",
        key_required=False,
    ),
)


# -- recognising context-window and content-filter refusals ------------------------------------

#: How the OpenAI-compatible hosts word a prompt that does not fit the model's window.
CONTEXT_PATTERNS = re.compile(
    "|".join(
        (
            r"maximum context length",  # OpenAI, Azure, DeepSeek, vLLM, OpenRouter, Mistral
            r"context[ _-]?(?:length|window)[ _-]?(?:is )?exceeded",
            r"exceeds? (?:the )?(?:model'?s? )?(?:maximum )?context (?:length|window)",
            r"maximum prompt length",  # xAI
            r"prompt is too long",  # Fireworks
            r"longer than the maximum model length",  # vLLM
            r"reduce the length of the messages",  # Groq
            r"`?inputs`? tokens \+ `?max_new_tokens`? must be",  # Together (TGI)
            r"input length exceeds",
        )
    ),
    re.IGNORECASE,
)
#: How they word a request refused by a content filter.
FILTER_PATTERNS = re.compile(
    "|".join(
        (
            r"content management policy",  # Azure
            r"rejected as a result of (?:our|the) safety system",  # OpenAI
            r"content[ _]policy[ _]violation",
            r"sensitive content",  # ModelArk
        )
    ),
    re.IGNORECASE,
)


def recognise(
    error: UpstreamError,
    *,
    context_codes: tuple[str, ...] | list[str] = (),
    filter_codes: tuple[str, ...] | list[str] = (),
) -> UpstreamError:
    """A plain 4xx refusal turned into :class:`ContextWindowExceeded` or
    :class:`ContentFiltered` when its code or message says so; any other error unchanged."""
    if type(error) is not UpstreamRejected or error.status in (401, 403, 404):
        return error
    code = error.code or ""
    common: dict[str, Any] = {
        "provider": error.provider,
        "upstream_status": error.upstream_status,
        "status": 400,
        "param": error.param,
        "extra": error.extra,
    }
    if (
        code in CONTEXT_WINDOW_CODES
        or code in context_codes
        or CONTEXT_PATTERNS.search(error.message)
    ):
        return ContextWindowExceeded(error.message, **common)
    if (
        code in CONTENT_FILTER_CODES
        or code in filter_codes
        or FILTER_PATTERNS.search(error.message)
    ):
        return ContentFiltered(error.message, **common)
    return error
