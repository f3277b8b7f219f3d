"""The ``fallback`` strategy: try the targets in the order the config lists them."""

from __future__ import annotations

from collections.abc import Callable

from plugway.context import RequestContext, Target
from plugway.hooks import hookimpl
from plugway.plugins.routing.common import BaseStrategy

#: Writes no prompt or completion text anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False


class Fallback(BaseStrategy):
    """Config order, every time (targets in cool-down skipped)."""

    name = "fallback"

    def order(self, ctx: RequestContext, targets: list[Target]) -> list[Target]:
        return targets


@hookimpl
def register_strategies(register: Callable[..., None]) -> None:
    register("fallback", Fallback)
