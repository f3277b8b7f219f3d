"""The gateway's own faults: an exception that is not a :class:`GatewayError`, raised on the
request path by the core, a translation or a plugin, becomes an :class:`InternalError` here.

:func:`internal_error` logs the traceback (never a request body: the log runs with
``diagnose=False``, so no local variable is printed), tells the subscribers (the metrics
plugin counts ``plugway_internal_errors_total{stage, plugin}``) and returns the error the
client gets: ``500 internal_error`` naming the request id. Such an error is never retried,
failed over, or counted against a target (see :func:`plugway.errors.counts_against_target`).
"""

from __future__ import annotations

from collections.abc import Callable

from loguru import logger
from plugway.errors import GatewayError, InternalError

Listener = Callable[[InternalError], None]

_listeners: dict[str, Listener] = {}


def subscribe(name: str, listener: Listener) -> None:
    """Call ``listener`` with every internal error of this process from now on; a second
    subscription under the same ``name`` replaces the first."""
    _listeners[name] = listener


def unsubscribe(name: str) -> None:
    _listeners.pop(name, None)


def message(request_id: str | None) -> str:
    """What the client is told: nothing of the exception, the request id to find it by."""
    where = f" (request id {request_id})" if request_id else ""
    return (
        f"the gateway failed while serving this request{where}; this is the gateway's fault, "
        "not the request's nor the upstream's, and its log has the details"
    )


def internal_error(
    exc: BaseException, *, stage: str, plugin: str, request_id: str | None
) -> GatewayError:
    """Classify ``exc``: a GatewayError stays what it is; anything else is logged with its
    traceback, reported, and returned as an :class:`InternalError`."""
    if isinstance(exc, GatewayError):
        return exc
    error = InternalError(message(request_id), stage=stage, plugin=plugin)
    logger.opt(exception=exc).error(
        "internal error in {} (plugin {!r}) serving request {}: {}",
        stage,
        plugin,
        request_id or "-",
        type(exc).__name__,
    )
    report(error)
    return error


def report(error: InternalError) -> None:
    """Tell the subscribers about an internal error (one that was already logged)."""
    for listener in tuple(_listeners.values()):
        try:
            listener(error)
        except Exception:
            logger.opt(exception=True).error("an internal-error listener failed")
