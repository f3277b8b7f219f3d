"""The ``least-latency`` strategy: lowest decaying-average latency first (time to first
token for streams, whole latency otherwise). A target with no figure yet goes first, so it
gets measured; with a small chance (``[plugins.routing] latency.exploration``) a random target
goes first, so a recovered target is noticed."""

from __future__ import annotations

from collections.abc import Callable

from plugway.context import RequestContext, Target
from plugway.hooks import hookimpl
from plugway.plugins.routing.common import BaseStrategy

#: Writes no prompt or completion text anywhere (see [privacy] zdr).
PLUGWAY_RETAINS_CONTENT = False


class LeastLatency(BaseStrategy):
    name = "least-latency"

    def order(self, ctx: RequestContext, targets: list[Target]) -> list[Target]:
        state = self.state
        scores: dict[str, float] = {}
        for target in targets:
            stats = state.stats.of(target.key)
            figure = stats.ttft if ctx.stream else stats.latency
            if figure is None:
                figure = stats.ttft if stats.latency is None else stats.latency
            scores[target.key] = -1.0 if figure is None else figure
        ctx.trace.scores = scores
        ordered = sorted(targets, key=lambda t: scores[t.key])
        rng = self.env.random
        if len(ordered) > 1 and rng.random() < state.settings.latency.exploration:
            pick = ordered.pop(rng.randrange(len(ordered)))
            ordered.insert(0, pick)
            ctx.trace.notes.append(f"explore {pick.key}")
        return ordered


@hookimpl
def register_strategies(register: Callable[..., None]) -> None:
    register("least-latency", LeastLatency)
