"""Calling hooks whose impls may be async, with pluggy's order and firstresult semantics.

pluggy calls impls synchronously, so an ``async def`` impl hands back an un-awaited coroutine
that pluggy would count as "a result". :class:`HookRunner` walks the impls itself, in pluggy's
call order, awaits what needs awaiting, and stops a firstresult hook at the first non-``None``
*awaited* value. It resolves the impl lists once, so a hook nobody implements costs one dict
lookup per request.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import attrs
import pluggy
from loguru import logger
from plugway import faults
from plugway.errors import GatewayError, InternalError, PluginFailed


@attrs.frozen
class BoundImpl:
    plugin: str
    function: Callable[..., Any]
    argnames: tuple[str, ...]

    def call(self, kwargs: dict[str, Any]) -> Any:
        # Positionally, in the impl's own parameter order (pluggy's argnames), the arguments it
        # asked for: cheaper than building a keyword dict for every call.
        return self.function(*[kwargs[name] for name in self.argnames])


def _call_order(pm: pluggy.PluginManager, hook_name: str) -> tuple[BoundImpl, ...]:
    caller = getattr(pm.hook, hook_name)
    # get_hookimpls() lists trylast..., plain impls in registration order..., tryfirst...;
    # pluggy calls them in reverse, and so do we.
    return tuple(
        BoundImpl(impl.plugin_name, impl.function, tuple(impl.argnames))
        for impl in reversed(caller.get_hookimpls())
    )


class HookRunner:
    """The hooks of one plugin manager, resolved for fast calls on the request path."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self._impls = {
            name: _call_order(pm, name) for name in dir(pm.hook) if not name.startswith("_")
        }

    def impls(self, hook_name: str) -> tuple[BoundImpl, ...]:
        return self._impls.get(hook_name, ())

    def has(self, hook_name: str) -> bool:
        """True when at least one plugin implements the hook."""
        return bool(self._impls.get(hook_name))

    async def call_all(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call every impl in order, awaiting each; errors propagate (fail closed), with
        non-gateway errors wrapped in :class:`PluginFailed` naming the plugin (a 500
        ``internal_error``, reported to :mod:`plugway.faults`)."""
        results = []
        for impl in self._impls.get(hook_name, ()):
            result = await _invoke(impl, hook_name, kwargs)
            if result is not None:
                results.append(result)
        return results

    async def call_first(self, hook_name: str, **kwargs: Any) -> Any:
        """Call impls in order until one returns (after awaiting) something not ``None``."""
        for impl in self._impls.get(hook_name, ()):
            result = await _invoke(impl, hook_name, kwargs)
            if result is not None:
                return result
        return None

    async def call_chain(self, hook_name: str, key: str, value: Any, **kwargs: Any) -> Any:
        """Pass ``value`` (as argument ``key``) through every impl in order; an impl that
        returns something else than ``None`` replaces it for the impls after it."""
        for impl in self._impls.get(hook_name, ()):
            kwargs[key] = value
            result = await _invoke(impl, hook_name, kwargs)
            if result is not None:
                value = result
        return value

    async def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call every impl; log, report (:mod:`plugway.faults`) and swallow what any of them
        raises (fail open)."""
        for impl in self._impls.get(hook_name, ()):
            try:
                result = impl.call(kwargs)
                if result is not None and inspect.isawaitable(result):
                    await result
            except Exception:
                logger.opt(exception=True).error(
                    "plugin {!r} failed in hook {}", impl.plugin, hook_name
                )
                faults.report(InternalError(hook_name, stage=hook_name, plugin=impl.plugin))

    def call_sync_results(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call every impl synchronously; the non-``None`` results, in order."""
        out = []
        for impl in self._impls.get(hook_name, ()):
            result = impl.call(kwargs)
            if result is not None and inspect.isawaitable(result):
                raise PluginFailed(
                    f"plugin '{impl.plugin}' implements {hook_name} as async; it must be sync"
                )
            if result is not None:
                out.append(result)
        return out

    def call_sync_each(self, hook_name: str, make_kwargs: Callable[[str], dict[str, Any]]) -> None:
        """Call every impl synchronously with kwargs made for its plugin (registration hooks,
        whose ``register`` callback records which plugin registered what)."""
        for impl in self._impls.get(hook_name, ()):
            result = impl.call(make_kwargs(impl.plugin))
            if result is not None and inspect.isawaitable(result):
                close = getattr(result, "close", None)
                if close is not None:
                    close()
                raise PluginFailed(
                    f"plugin '{impl.plugin}' implements {hook_name} as async; it must be sync"
                )


async def _invoke(impl: BoundImpl, hook_name: str, kwargs: dict[str, Any]) -> Any:
    try:
        result = impl.call(kwargs)
        if result is not None and inspect.isawaitable(result):
            result = await result
    except GatewayError:
        raise
    except Exception as exc:
        ctx = kwargs.get("ctx")
        request_id = getattr(ctx, "request_id", None)
        logger.opt(exception=True).error(
            "plugin {!r} failed in hook {} serving request {}", impl.plugin, hook_name, request_id
        )
        where = f" (request id {request_id})" if request_id else ""
        error = PluginFailed(
            f"plugin '{impl.plugin}' failed in {hook_name}: {type(exc).__name__}{where}; "
            "this is the gateway's fault, and its log has the details",
            stage=hook_name,
            plugin=impl.plugin,
        )
        faults.report(error)
        raise error from exc
    return result
