"""The gateway's one exception tree.

Plugins raise these types; the core renders them. Every :class:`GatewayError` knows the HTTP
status, OpenAI error ``type`` and ``code`` it is answered with, and whether trying again (the
same target or the next one) could help::

    PlugwayError                      anything plugway raises on purpose
    ├── ConfigError                   a config file or setting is wrong (never reaches a client)
    ├── PluginError                   a plugin could not be loaded or broke its contract
    │   └── PluginLoadError
    └── GatewayError                  answered to a client in OpenAI's error shape
        ├── InternalError             500  the gateway's own fault (an exception in the core, a
        │   │                              translation or a plugin): never a target's failure
        │   └── PluginFailed              500  a plugin raised something that is not a GatewayError
        ├── InvalidRequest            400  the client's request is malformed
        ├── AuthenticationFailed      401
        ├── PermissionDenied          403  a policy refuses the request
        ├── ModelNotFound             404  no route or target for the model asked
        ├── PayloadTooLarge           413
        ├── RateLimited               429  the gateway itself throttles (retry_after)
        ├── ServiceUnavailable        503
        ├── RoutingExhausted          502/503/504  every target of the plan failed
        └── UpstreamError             an upstream attempt failed (provider, upstream_status)
            ├── UpstreamConnectError      502  retryable: nothing reached the provider
            ├── UpstreamTimeout           504  retryable
            ├── UpstreamRateLimited       429  retryable, honours retry_after
            ├── UpstreamUnavailable       502  retryable: 5xx, 408, 409, or a body that is not JSON
            ├── UpstreamRejected          4xx  not retryable: the provider refused this request
            │   ├── ContextWindowExceeded 400  routing may fall back to a larger context
            │   └── ContentFiltered       400  routing may fall back to another model
            └── UpstreamStreamBroken      502  retryable: the stream broke (in-band once bytes went out)

Messages must be safe to show a client: no keys, no upstream URLs with credentials. Put what is
only for logs in ``extra``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class PlugwayError(Exception):
    """Base of every error plugway raises on purpose."""


class ConfigError(PlugwayError):
    """A config problem, reported as ``path: what is wrong; what would be right``.

    ``problems`` holds one line per problem so that one run reports every mistake at once.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class PluginError(PlugwayError):
    """A plugin broke its contract (bad hook impl, bad registration)."""


class PluginLoadError(PluginError):
    """A plugin could not be imported or registered; names the plugin and its distribution."""

    def __init__(self, name: str, distribution: str, error: BaseException | str) -> None:
        self.name = name
        self.distribution = distribution
        detail = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        super().__init__(
            f"plugin '{name}' (from distribution {distribution}) failed to load: {detail}"
        )


class GatewayError(PlugwayError):
    """An error answered to the client as ``{"error": {message, type, param, code}}``.

    Subclasses set the class-level defaults; instances may override ``status`` and ``code``.
    ``retryable`` tells the failure policy whether another attempt could succeed.
    ``retry_after`` (seconds) is sent as ``retry-after`` and honoured by the failure policy.
    ``headers`` are added to the error response.
    """

    status: ClassVar[int] = 500
    error_type: ClassVar[str] = "api_error"
    default_code: ClassVar[str | None] = None
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        error_type: str | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        if status is not None:
            self.status = status  # type: ignore[misc]
        if error_type is not None:
            self.error_type = error_type  # type: ignore[misc]
        self.retry_after = retry_after
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def to_body(self) -> dict[str, Any]:
        """The OpenAI error envelope for this error."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class InternalError(GatewayError):
    """The gateway's own fault: an exception that is not a GatewayError, raised by the core,
    a translation (building the upstream request, reading its answer) or a plugin's hook.

    Answered ``500`` with ``code: "internal_error"``; never retried, never failed over, and
    never counted against a target's health: the upstream did nothing wrong. ``stage`` (the
    hook name, ``attempt``, ``stream`` or ``request``) and ``plugin`` (the plugin, or the
    provider type) say where it happened, for logs and ``plugway_internal_errors_total``.
    Sent with ``x-should-retry: false``.
    """

    status = 500
    error_type = "server_error"
    default_code = "internal_error"

    def __init__(
        self, message: str, *, stage: str = "request", plugin: str = "core", **kwargs: Any
    ) -> None:
        # The same request would meet the same fault: SDKs that honour it do not retry.
        kwargs["headers"] = {"x-should-retry": "false", **(kwargs.get("headers") or {})}
        super().__init__(message, **kwargs)
        self.stage = stage
        self.plugin = plugin


class PluginFailed(InternalError):
    """A plugin raised an unexpected exception on the request path. The client sees which
    plugin and hook; the traceback goes to the log only."""


class InvalidRequest(GatewayError):
    status = 400
    error_type = "invalid_request_error"


class AuthenticationFailed(GatewayError):
    status = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    error_type = "permission_error"


class ModelNotFound(GatewayError):
    status = 404
    error_type = "invalid_request_error"
    default_code = "model_not_found"


class NotFound(GatewayError):
    status = 404
    error_type = "invalid_request_error"
    default_code = "not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    error_type = "invalid_request_error"
    default_code = "method_not_allowed"


class PayloadTooLarge(GatewayError):
    status = 413
    error_type = "invalid_request_error"
    default_code = "request_too_large"


class RateLimited(GatewayError):
    status = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class ServiceUnavailable(GatewayError):
    status = 503
    error_type = "service_unavailable_error"


class RoutingExhausted(GatewayError):
    """Every target in the plan failed. Sent with ``x-should-retry: false``: the gateway has
    already spent the retries a client would make."""

    status = 502
    error_type = "api_error"
    default_code = "upstream_failed"


class UpstreamError(GatewayError):
    """An attempt against one target failed. ``provider`` is the instance name."""

    status = 502
    error_type = "api_error"

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        upstream_status: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.provider = provider
        self.upstream_status = upstream_status


class UpstreamConnectError(UpstreamError):
    retryable = True
    default_code = "upstream_connect_error"


class UpstreamTimeout(UpstreamError):
    status = 504
    error_type = "timeout_error"
    retryable = True
    default_code = "upstream_timeout"


class UpstreamRateLimited(UpstreamError):
    status = 429
    error_type = "rate_limit_error"
    retryable = True
    default_code = "rate_limit_exceeded"


class UpstreamUnavailable(UpstreamError):
    retryable = True
    default_code = "upstream_unavailable"


class UpstreamRejected(UpstreamError):
    """The provider refused the request itself (4xx): another attempt would fail the same way."""

    status = 400
    error_type = "invalid_request_error"


class ContextWindowExceeded(UpstreamRejected):
    default_code = "context_length_exceeded"


class ContentFiltered(UpstreamRejected):
    default_code = "content_filter"


class UpstreamStreamBroken(UpstreamError):
    """Retryable while nothing has reached the client; after that the core ends the stream
    with this error in-band instead."""

    retryable = True
    default_code = "upstream_stream_broken"


def counts_against_target(error: GatewayError | None) -> bool:
    """True when ``error`` is the target's own failure (connect, timeout, reset, 429, 5xx, a
    malformed answer, a broken stream): what health, circuit breakers and
    ``plugway_target_up`` count. A refusal the request caused (4xx), a client's mistake and
    the gateway's own faults are not."""
    return isinstance(error, UpstreamError) and error.retryable


CONTEXT_WINDOW_CODES = frozenset({"context_length_exceeded", "context_window_exceeded"})
CONTENT_FILTER_CODES = frozenset({"content_filter", "content_policy_violation"})

_REJECTED_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    422: "invalid_request_error",
}


def upstream_error_for_status(
    status: int,
    message: str,
    *,
    provider: str,
    code: str | None = None,
    param: str | None = None,
    retry_after: float | None = None,
) -> UpstreamError:
    """Map an upstream HTTP status to the error class the failure policy understands."""
    common: dict[str, Any] = {"provider": provider, "upstream_status": status, "param": param}
    if status == 429:
        return UpstreamRateLimited(message, code=code, retry_after=retry_after, **common)
    if status in (408, 409) or status >= 500:
        return UpstreamUnavailable(message, code=code, retry_after=retry_after, **common)
    if status in (401, 403):
        # The provider refused the gateway's own credentials: say so without echoing its
        # message, which may quote part of the key.
        return UpstreamRejected(
            f"provider '{provider}' refused the gateway's credentials for it "
            f"(upstream status {status}); check providers.{provider}.api_key",
            code=code or ("invalid_api_key" if status == 401 else None),
            status=status,
            error_type=_REJECTED_TYPES[status],
            **common,
        )
    if code in CONTEXT_WINDOW_CODES:
        return ContextWindowExceeded(message, code=code, status=status, **common)
    if code in CONTENT_FILTER_CODES:
        return ContentFiltered(message, code=code, status=status, **common)
    return UpstreamRejected(
        message,
        code=code,
        status=status,
        error_type=_REJECTED_TYPES.get(status, "invalid_request_error"),
        **common,
    )
