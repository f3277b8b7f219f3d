"""Shared state for plugins: rate-limit counters, budgets, target health.

A :class:`StateBackend` is a small async key-value store with the few atomic operations that
counters need. The gateway makes one per worker from ``[state]`` in the config (``backend =
"memory"`` by default); a plugin adds a backend through the ``register_state_backends`` hook
(the built-in ``redis`` plugin adds ``"redis"``, which shares state across workers and
machines). Plugins reach the worker's backend as ``gateway.state`` (``app.ctx.gateway.state``
in ``plugway_startup``).

Contract, for every backend:

* keys are strings; the backend prefixes them with ``[state] prefix`` itself;
* values written with :meth:`set` are strings; counters are numbers (``float``);
* :meth:`incr` is atomic: concurrent increments from any number of workers never lose an
  update, and the value it returns is the counter just after *this* increment, so "allow when
  the returned value is at most the limit" admits exactly the limit;
* ``ttl`` is in seconds; a key with a TTL disappears after it, :meth:`incr` sets the TTL only
  when it creates the key (a fixed window), never extends it;
* time comes from ``clock`` (injectable) for the in-process backend.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import attrs


@attrs.define(kw_only=True)
class StateConfig:
    """``[state]``: which backend holds shared state, and how to reach it."""

    #: ``memory`` (this worker only) or a backend a plugin registered (``redis``).
    backend: str = "memory"
    #: Where the backend lives, e.g. ``redis://127.0.0.1:6379/0``; the backend checks it.
    url: str | None = None
    #: Prepended to every key, so several gateways can share one store.
    prefix: str = "plugway:"


class StateBackend(ABC):
    """What every state backend implements. See the module docstring for the contract."""

    def __init__(self, config: StateConfig) -> None:
        self.config = config

    async def startup(self) -> None:  # noqa: B027 - optional to override
        """Open connections; called once per worker inside the running loop."""

    async def aclose(self) -> None:  # noqa: B027 - optional to override
        """Close what :meth:`startup` opened."""

    @abstractmethod
    async def incr(self, key: str, amount: float = 1, ttl: float | None = None) -> float:
        """Add ``amount`` (may be negative) to a counter, creating it at 0 with ``ttl`` when
        missing; return the value after this increment. Atomic."""

    async def incr_many(self, items: Sequence[tuple[str, float, float | None]]) -> list[float]:
        """:meth:`incr` for several keys; backends may do it in one round trip."""
        return [await self.incr(key, amount, ttl) for key, amount, ttl in items]

    @abstractmethod
    async def get(self, key: str) -> str | None:
        """The value of ``key`` as a string (counters too), or None."""

    @abstractmethod
    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        """Store ``value``, replacing what was there; ``ttl`` None keeps it forever."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove ``key`` (no error when it is missing)."""

    @abstractmethod
    async def ttl(self, key: str) -> float | None:
        """Seconds until ``key`` expires, or None when it is missing or has no TTL."""


class MemoryBackend(StateBackend):
    """The default: a dict in this worker, exact under concurrency because the event loop
    runs one coroutine at a time and nothing here awaits."""

    def __init__(self, config: StateConfig, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(config)
        self.clock = clock
        self._data: dict[str, tuple[Any, float | None]] = {}

    def _live(self, key: str) -> tuple[Any, float | None] | None:
        item = self._data.get(key)
        if item is not None and item[1] is not None and item[1] <= self.clock():
            del self._data[key]
            return None
        return item

    async def incr(self, key: str, amount: float = 1, ttl: float | None = None) -> float:
        item = self._live(key)
        if item is None:
            expires = None if ttl is None else self.clock() + ttl
            value = float(amount)
        else:
            value, expires = float(item[0]) + amount, item[1]
        self._data[key] = (value, expires)
        if len(self._data) > 100_000:
            self._sweep()
        return value

    async def get(self, key: str) -> str | None:
        item = self._live(key)
        if item is None:
            return None
        value = item[0]
        if isinstance(value, float):
            return repr(int(value)) if value.is_integer() else repr(value)
        return str(value)

    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        self._data[key] = (value, None if ttl is None else self.clock() + ttl)

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def ttl(self, key: str) -> float | None:
        item = self._live(key)
        if item is None or item[1] is None:
            return None
        return max(0.0, item[1] - self.clock())

    def _sweep(self) -> None:
        now = self.clock()
        for key in [k for k, (_, exp) in self._data.items() if exp is not None and exp <= now]:
            del self._data[key]


def window(now_wall: float, seconds: int) -> tuple[int, float]:
    """The fixed window ``now_wall`` falls in: its number and the seconds left in it.

    Workers and machines agree on windows because they are numbered from the Unix epoch."""
    number = math.floor(now_wall / seconds)
    return number, (number + 1) * seconds - now_wall


StateFactory = Callable[[StateConfig], StateBackend]
