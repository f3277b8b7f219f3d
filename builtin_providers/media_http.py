"""HTTP helpers the providers share for media jobs: JSON calls on the provider's pooled client
and streamed downloads, the key sent only to the provider's own origin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
from plugway.errors import UpstreamError
from plugway.upstream import ErrorMapper, checked_response, json_object


async def call_json(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    provider: str,
    error_of: ErrorMapper,
    payload: Any = None,
) -> dict[str, Any]:
    """``method`` ``url`` (JSON ``payload`` when given); the answer's JSON object, or the
    upstream's error raised."""
    sending = (
        client.request(method, url, json=payload)
        if payload is not None
        else client.request(method, url)
    )
    response = await checked_response(sending, provider=provider, error_of=error_of)
    return json_object(response, provider) if response.content else {}


class HTTPVideoBytes:
    """An open streamed download (:class:`plugway.formats.video_jobs.VideoBytes`)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response

    @property
    def content_type(self) -> str:
        return str(self.response.headers.get("content-type", "video/mp4"))

    @property
    def content_length(self) -> int | None:
        length = self.response.headers.get("content-length")
        return int(length) if length and length.isdigit() else None

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        async for chunk in self.response.aiter_bytes():
            yield chunk

    async def aclose(self) -> None:
        await self.response.aclose()


def same_origin(url: str, base_url: str | None) -> bool:
    """Whether ``url`` is on the provider's own host (so its key may go with it)."""
    if not base_url:
        return False
    a, b = urlsplit(url), urlsplit(base_url)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


async def open_download(
    client: httpx.AsyncClient,
    url: str,
    *,
    provider: str,
    error_of: ErrorMapper,
    plain: httpx.AsyncClient | None = None,
) -> HTTPVideoBytes:
    """Open ``url`` for streaming. ``client`` (carrying the key) is used for a URL on the
    provider's origin or a relative path; ``plain`` (no key) for any other host."""
    use = client
    if url.startswith(("http://", "https://")) and not same_origin(url, str(client.base_url)):
        if plain is None:
            raise UpstreamError(f"provider '{provider}' gave a download URL on another host")
        use = plain
    request = use.build_request("GET", url, headers={"accept": "*/*"})
    sending = use.send(request, stream=True, follow_redirects=True)
    response = await checked_response(sending, provider=provider, error_of=error_of)
    return HTTPVideoBytes(response)
