"""The ``semantic_cache`` plugin: answers a request from the cached answer of a *similar* one.

It works with the ``cache`` plugin (which must be on): on an exact miss, the request's text (its
last user message, or the whole prompt with ``text = "prompt"``) is embedded through an
embeddings route of this gateway (``embedding_model``), and the nearest cached prompt of the
same tenant, route and parameters (everything in the body but the messages) is looked up by
cosine similarity; above ``threshold`` (0.95 by default) its entry answers. The index holds
vectors and entry keys only; answers stay in the cache's store (in-process or Redis).

The index is in-process (numpy, at most ``max_entries`` vectors per worker, oldest dropped
first). When the cache is on a shared backend (Redis), each new vector is also published there
and every worker and machine on it reads the others' every ``sync_interval`` seconds, so all
learn every prompt; searches stay in-process. Requests with tools are left alone unless
``with_tools = true``. The embedding calls are internal: they are not logged or priced as
requests of their own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import orjson
from loguru import logger
from plugway import pipeline
from plugway.config import Config
from plugway.context import RequestContext, Target
from plugway.gateway import Gateway
from plugway.hooks import hookimpl
from plugway.plugins.cache import keying
from plugway.plugins.cache import plugin as exact
from plugway.plugins.cache import settings as cache_settings
from plugway.provider import Provider, ProviderResponse
from plugway.state import StateBackend

NAME = "semantic_cache"
TEXTS = ("last_user", "prompt")


#: Vectors and entry keys, in this process only: no text leaves it (the answers are the cache
#: plugin's, which declares its own retention).
PLUGWAY_RETAINS_CONTENT = False


@attrs.define(kw_only=True)
class SemanticSettings:
    """``[plugins.semantic_cache]``."""

    enabled: bool = False
    #: A route of this gateway that serves embeddings.
    embedding_model: str = ""
    #: Cosine similarity at or above which a cached prompt answers.
    threshold: float = 0.95
    #: What is embedded: ``last_user`` (the last user message) or ``prompt`` (every message).
    text: str = "last_user"
    #: Routes to look up semantically (empty: every route the cache caches).
    models: list[str] = attrs.field(factory=list)
    #: Also for requests that carry tools.
    with_tools: bool = False
    #: Vectors kept per worker, oldest dropped first.
    max_entries: int = 10_000
    #: Seconds the embedding call may take before the request goes on as a miss.
    timeout: float = 2.0
    #: With the cache on a shared backend (Redis): seconds between a worker's reads of the
    #: vectors other workers and machines published.
    sync_interval: float = 1.0


def plugway_enabled(config: Config) -> bool:
    return bool(config.plugin_settings[NAME].enabled)


@hookimpl
def register_settings(register: Callable[..., None]) -> None:
    register(NAME, SemanticSettings)


@hookimpl
def check_config(config: Config) -> list[str] | None:
    settings: SemanticSettings = config.plugin_settings[NAME]
    if not settings.enabled:
        return None
    path = f"plugins.{NAME}"
    problems = []
    routes = [model.name for model in config.models]
    if settings.embedding_model not in routes:
        problems.append(
            f"{path}.embedding_model: {settings.embedding_model!r} is not a route of this "
            f"config; name the [[models]] entry that serves embeddings ({', '.join(routes)})"
        )
    if not 0 < settings.threshold <= 1:
        problems.append(f"{path}.threshold: {settings.threshold} must be in (0, 1]")
    if settings.text not in TEXTS:
        problems.append(f"{path}.text: {settings.text!r}; use {' or '.join(TEXTS)}")
    if settings.max_entries < 1:
        problems.append(f"{path}.max_entries: must be at least 1")
    if settings.sync_interval <= 0:
        problems.append(f"{path}.sync_interval: must be > 0 seconds")
    if not cache_settings.enabled(config.plugin_settings["cache"]):
        problems.append(
            f"{path}: the semantic cache keeps its answers in the cache plugin's store; "
            "turn [plugins.cache] on too (enabled = true or models = [...])"
        )
    try:
        import numpy  # noqa: F401
    except ImportError:
        problems.append(f"{path}: needs numpy (pip install 'plugway[semantic]')")
    return problems or None


_running: dict[str, Matcher] = {}


@hookimpl
def plugway_startup(app: Any, config: Config) -> None:
    gw: Gateway = app.ctx.gateway
    shared = cache_settings.uses_state(config.plugin_settings["cache"], config.state.backend)
    matcher = Matcher(gw, config.plugin_settings[NAME], shared=gw.state if shared else None)
    matcher.start()
    _running[NAME] = matcher
    exact.set_matcher(matcher)


@hookimpl
async def plugway_shutdown() -> None:
    exact.set_matcher(None)
    matcher = _running.pop(NAME, None)
    if matcher is not None:
        await matcher.stop()


# -- the index ---------------------------------------------------------------------------------


class Bucket:
    """The vectors of one tenant, route and parameter set: a matrix grown by doubling."""

    def __init__(self, dim: int) -> None:
        import numpy as np

        self.np = np
        self.dim = dim
        self.matrix = np.zeros((16, dim), dtype=np.float32)
        self.keys: list[str] = []
        self.expires: list[float] = []

    def add(self, vector: Any, key: str, expires: float) -> None:
        if key in self.keys:
            self.remove(key)
        n = len(self.keys)
        if n == len(self.matrix):
            grown = self.np.zeros((2 * n, self.dim), dtype=self.np.float32)
            grown[:n] = self.matrix
            self.matrix = grown
        self.matrix[n] = vector
        self.keys.append(key)
        self.expires.append(expires)

    def remove(self, key: str) -> None:
        i = self.keys.index(key)
        last = len(self.keys) - 1
        self.matrix[i] = self.matrix[last]  # swap with the last row
        self.keys[i], self.expires[i] = self.keys[last], self.expires[last]
        self.keys.pop()
        self.expires.pop()

    def nearest(self, vector: Any, threshold: float, now: float) -> str | None:
        while self.keys:
            scores = self.matrix[: len(self.keys)] @ vector
            i = int(scores.argmax())
            if float(scores[i]) < threshold:
                return None
            if self.expires[i] > now:
                return self.keys[i]
            self.remove(self.keys[i])
        return None


@attrs.define
class Probe:
    """A request's vector and the bucket it belongs to."""

    bucket: str
    vector: Any


class Matcher:
    """What the ``cache`` plugin asks on an exact miss (see ``plugin.set_matcher``)."""

    def __init__(
        self,
        gw: Gateway,
        settings: SemanticSettings,
        clock: Callable[[], float] = time.monotonic,
        shared: StateBackend | None = None,
    ) -> None:
        self.gw = gw
        self.settings = settings
        self.clock = clock
        self.buckets: dict[str, Bucket] = {}
        self.order: OrderedDict[tuple[str, str], None] = OrderedDict()  # oldest first
        self._warned = 0.0
        #: Where vectors are published for other workers and machines (see :class:`Sharing`).
        self.sharing = Sharing(self, shared) if shared is not None else None

    def start(self) -> None:
        if self.sharing is not None:
            self.sharing.start()

    async def stop(self) -> None:
        if self.sharing is not None:
            await self.sharing.stop()

    def applies(self, ctx: RequestContext, route: str) -> bool:
        s = self.settings
        return (
            ctx.endpoint in ("chat.completions", "messages")
            and (not s.models or route in s.models)
            and (s.with_tools or not ctx.body.get("tools"))
        )

    async def probe(self, ctx: RequestContext, route: str, scope: str) -> Probe | None:
        """Embed the request's text; None when it does not apply or the embedding failed."""
        if not self.applies(ctx, route):
            return None
        text = text_of(ctx.body, self.settings.text)
        if not text:
            return None
        vector = await self._embed(text)
        if vector is None:
            return None
        # Everything but the embedded text must match exactly: the parameters and, when only
        # the last user message is embedded, the conversation before it (system prompt
        # included).
        params = keying.semantic_body(ctx.state.get("inbound_body", ctx.body))
        messages = params.pop("messages", None)
        if self.settings.text == "last_user" and isinstance(messages, list):
            last = max(
                (
                    i
                    for i, m in enumerate(messages)
                    if isinstance(m, dict) and m.get("role") == "user"
                ),
                default=None,
            )
            params["context"] = [m for i, m in enumerate(messages) if i != last]
        digest = hashlib.blake2b(
            orjson.dumps([ctx.endpoint, params], option=orjson.OPT_SORT_KEYS), digest_size=12
        ).hexdigest()
        return Probe(f"{keying.scope_of(ctx, scope)}|{route}|{digest}", vector)

    def nearest(self, probe: Probe) -> str | None:
        bucket = self.buckets.get(probe.bucket)
        if bucket is None or bucket.dim != len(probe.vector):
            return None
        return bucket.nearest(probe.vector, self.settings.threshold, self.clock())

    def forget(self, probe: Probe, key: str) -> None:
        """The entry ``key`` is gone from the store: drop its vector."""
        bucket = self.buckets.get(probe.bucket)
        if bucket is not None and key in bucket.keys:
            bucket.remove(key)
            self.order.pop((probe.bucket, key), None)

    def add(self, probe: Probe, key: str, ttl: float) -> None:
        self.learn(probe, key, ttl)
        if self.sharing is not None:
            self.gw.spawn(self.sharing.publish(probe, key, ttl))

    def learn(self, probe: Probe, key: str, ttl: float) -> None:
        """Index ``probe``'s vector as pointing at entry ``key`` for ``ttl`` seconds."""
        bucket = self.buckets.get(probe.bucket)
        if bucket is None or bucket.dim != len(probe.vector):
            bucket = self.buckets[probe.bucket] = Bucket(len(probe.vector))
        bucket.add(probe.vector, key, self.clock() + ttl)
        self.order.pop((probe.bucket, key), None)
        self.order[(probe.bucket, key)] = None
        while len(self.order) > self.settings.max_entries:
            (name, old), _ = self.order.popitem(last=False)
            held = self.buckets.get(name)
            if held is not None and old in held.keys:
                held.remove(old)
                if not held.keys:
                    del self.buckets[name]

    def size(self) -> int:
        return len(self.order)

    def warn(self, what: str, exc: Exception) -> None:
        """Log a failure once in a while, without any text of a request."""
        now = time.monotonic()
        if now - self._warned > 10:
            self._warned = now
            logger.warning(
                "semantic_cache: {} failed ({}); answering as a miss", what, type(exc).__name__
            )

    async def _embed(self, text: str) -> Any:
        import numpy as np

        model = self.settings.embedding_model
        ctx = RequestContext(
            endpoint="embeddings", body={"model": model, "input": text}, headers={}, model=model
        )
        try:
            async with asyncio.timeout(self.settings.timeout):
                ctx.route = self.gw.router.resolve(model)
                ctx.env = self.gw.env
                ctx.plan = list(ctx.route.targets)

                async def call(provider: Provider, target: Target) -> ProviderResponse:
                    return await provider.embeddings(ctx, target, ctx.body)

                response = await pipeline.attempt_plan(self.gw, ctx, call)
            data = response.body["data"][0]["embedding"]
            if not isinstance(data, list) or not data:
                raise ValueError("no float vector")
            vector = np.asarray(data, dtype=np.float32)
            norm = float(np.linalg.norm(vector))
            return vector / norm if norm > 0 else None
        except Exception as exc:
            self.warn(f"the embedding route {model!r}", exc)
            return None


SEQUENCE = "semcache:seq"
#: Vectors a worker reads at most per sync (and when it starts: the most recent ones).
SYNC_BATCH = 1000


class Sharing:
    """Vectors shared through the state backend, so every worker and machine on it learns the
    prompts the others cached: each new vector is published under a sequence number (an
    atomic counter) with the entry's TTL; each worker reads the numbers it has not seen every
    ``sync_interval`` seconds. Searches stay in-process."""

    def __init__(self, matcher: Matcher, state: StateBackend) -> None:
        self.matcher = matcher
        self.state = state
        self.origin = f"{random.getrandbits(64):016x}"
        self.seen: int | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def publish(self, probe: Probe, key: str, ttl: float) -> None:
        import numpy as np

        vector = np.asarray(probe.vector, dtype=np.float32).tobytes()
        item = {
            "o": self.origin,
            "b": probe.bucket,
            "k": key,
            "t": ttl,
            "v": base64.b64encode(vector).decode(),
        }
        try:
            number = int(await self.state.incr(SEQUENCE, 1))
            await self.state.set(f"semcache:v:{number}", orjson.dumps(item).decode(), ttl)
        except Exception as exc:
            self.matcher.warn("publishing a vector", exc)

    async def _run(self) -> None:
        while True:
            try:
                await self.sync()
            except Exception as exc:
                self.matcher.warn("reading shared vectors", exc)
            await asyncio.sleep(self.matcher.settings.sync_interval)

    async def sync(self) -> None:
        """Learn the vectors published since the last sync."""
        import numpy as np

        last = int(float(await self.state.get(SEQUENCE) or 0))
        first = (self.seen if self.seen is not None else last - SYNC_BATCH) + 1
        first = max(first, last - SYNC_BATCH + 1, 1)
        for number in range(first, last + 1):
            text = await self.state.get(f"semcache:v:{number}")
            if text is None:
                continue  # expired
            item = orjson.loads(text)
            if item["o"] == self.origin:
                continue
            ttl = await self.state.ttl(f"semcache:v:{number}") or float(item["t"])
            vector = np.frombuffer(base64.b64decode(item["v"]), dtype=np.float32)
            self.matcher.learn(Probe(item["b"], vector), item["k"], ttl)
        self.seen = last


def text_of(body: Mapping[str, Any], which: str) -> str:
    """The last user message's text, or every message's (``prompt``), for embedding."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return ""
    if which == "last_user":
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        messages = users[-1:]
    parts = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        if isinstance(content, str) and content:
            parts.append(content if which == "last_user" else f"{message.get('role')}: {content}")
    return "\n".join(parts)
