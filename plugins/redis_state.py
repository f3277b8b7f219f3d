"""The ``redis`` state backend: counters, budgets and health shared by every worker and
machine that points at the same Redis (``[state] backend = "redis"``, ``url = "redis://..."``).

Atomicity: each increment is one Lua script (``INCRBYFLOAT`` and, when the key is new,
``PEXPIRE``) run by Redis as a single step, so concurrent gateways never lose an update and
each sees the value its own increment produced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from plugway.errors import ConfigError
from plugway.hooks import hookimpl
from plugway.state import StateBackend, StateConfig

#: Keeps no prompt or completion text: only counters and what plugins store.
PLUGWAY_RETAINS_CONTENT = False

# KEYS[1] key; ARGV[1] amount; ARGV[2] ttl in ms ("" for none). Returns the new value.
_INCR = """
local v = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
if ARGV[2] ~= '' and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v
"""


class RedisBackend(StateBackend):
    """A :class:`plugway.state.StateBackend` on redis-py's asyncio client."""

    def __init__(self, config: StateConfig) -> None:
        super().__init__(config)
        if not config.url or not config.url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(
                "state.url: the redis backend needs a URL such as "
                '"redis://127.0.0.1:6379/0" (rediss:// for TLS)'
            )
        self.prefix = config.prefix
        self.client: Any = None
        self._incr: Any = None

    async def startup(self) -> None:
        import redis.asyncio as redis

        self.client = redis.Redis.from_url(self.config.url or "", decode_responses=True)
        self._incr = self.client.register_script(_INCR)
        await self.client.ping()

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    def _k(self, key: str) -> str:
        return self.prefix + key

    async def incr(self, key: str, amount: float = 1, ttl: float | None = None) -> float:
        value = await self._incr(keys=[self._k(key)], args=[amount, _ms(ttl)])
        return float(value)

    async def incr_many(self, items: Sequence[tuple[str, float, float | None]]) -> list[float]:
        pipe = self.client.pipeline(transaction=False)
        for key, amount, ttl in items:
            await self._incr(keys=[self._k(key)], args=[amount, _ms(ttl)], client=pipe)
        return [float(v) for v in await pipe.execute()]

    async def get(self, key: str) -> str | None:
        value = await self.client.get(self._k(key))
        return None if value is None else str(value)

    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        await self.client.set(self._k(key), value, px=None if ttl is None else int(ttl * 1000))

    async def delete(self, key: str) -> None:
        await self.client.delete(self._k(key))

    async def ttl(self, key: str) -> float | None:
        ms = await self.client.pttl(self._k(key))
        return None if ms is None or ms < 0 else ms / 1000

    async def scan_keys(self, prefix: str) -> list[str]:
        """Every key starting with ``prefix`` (without the backend's own prefix), by SCAN: for
        administration (``plugway cache clear``), not for the request path."""
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in self._k(prefix)) + "*"
        return [
            key[len(self.prefix) :]
            async for key in self.client.scan_iter(match=pattern, count=1000)
        ]


def _ms(ttl: float | None) -> str:
    return "" if ttl is None else str(max(1, int(ttl * 1000)))


@hookimpl
def register_state_backends(register: Callable[..., None]) -> None:
    register("redis", RedisBackend)
