"""plugway's pytest plugin, loaded by pytest through the ``pytest11`` entry point ``plugway``
whenever plugway is installed: fixtures for testing plugway plugins against the real gateway.

Fixtures (all prefixed so they never clash with a project's own):

``plugway_gateway``
    A factory: ``plugway_gateway(toml_text_or_path_or_None, plugins=[path, ...], env={...})``
    starts ``plugway serve`` in a child process on a free loopback port and returns the
    :class:`~plugway.testing.GatewayProcess`; every gateway it started stops when the test
    ends. ``plugins`` are plugin modules (``my_plugin.py`` or a package folder) made
    discoverable through a temporary dist-info, as if ``pip install``-ed.
``plugway_shared_gateway``
    The same factory, session-scoped: identical arguments give the same running gateway for
    the whole session (start-up is the slow part of a test).
``fake_upstream``
    A factory: ``fake_upstream(FakeOpenAI, name="primary")`` returns a fake upstream of that
    class, started once per session per (class, name) and reset (empty script, no records)
    for each test. Script failures with ``upstream.script(Status(503), Reset(), Reply())``.
``fake_openai``, ``fake_anthropic``, ``fake_gemini``
    ``fake_upstream(FakeOpenAI)`` and the like: one fake per built-in wire format.
``plugway_config`` / ``plugway_plugins``
    Module-scoped; override them in a test module or ``conftest.py`` to configure
    ``plugway_server`` (default: the built-in config, which serves the ``fake`` provider,
    and no extra plugin).
``plugway_server``
    A gateway from ``plugway_config`` and ``plugway_plugins``, one per module.
``openai_client``
    An ``openai.OpenAI`` client bound to ``plugway_server`` (no SDK retries).

It also parametrises ``conformance_error_case`` from a conformance class's ``error_cases``
(see :mod:`plugway.testing.conformance`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from plugway.testing.fake_anthropic import FakeAnthropic
from plugway.testing.fake_gemini import FakeGemini
from plugway.testing.fake_upstream import FakeOpenAI, FakeUpstream
from plugway.testing.gateway_process import GatewayProcess

# A plugin author's failure in the conformance suite then shows the values, as in their own
# tests (the suite is imported later, by the author's test module).
pytest.register_assert_rewrite("plugway.testing.conformance")

F = TypeVar("F", bound=FakeUpstream)


class UpstreamPool:
    """Fake upstreams started once and shared by a test session, keyed by (class, name)."""

    def __init__(self) -> None:
        self._started: dict[tuple[type[FakeUpstream], str], FakeUpstream] = {}

    def get(self, cls: type[F], name: str = "default") -> F:
        key = (cls, name)
        if key not in self._started:
            self._started[key] = cls().start()
        upstream = self._started[key]
        assert isinstance(upstream, cls)
        return upstream

    def close(self) -> None:
        for upstream in self._started.values():
            upstream.stop()
        self._started.clear()


class GatewayPool:
    """Gateways started on demand; ``shared`` ones are reused for identical arguments."""

    def __init__(self, shared: bool) -> None:
        self.shared = shared
        self._started: dict[Any, GatewayProcess] = {}
        self._count = 0

    def start(
        self,
        config: str | Path | None = None,
        *,
        plugins: Sequence[str | Path] = (),
        **kwargs: Any,
    ) -> GatewayProcess:
        key: Any
        if self.shared:
            key = (config, tuple(map(str, plugins)), repr(sorted(kwargs.items())))
            if key in self._started:
                return self._started[key]
        else:
            self._count += 1
            key = self._count
        gateway = GatewayProcess(config, plugins=plugins, **kwargs)
        self._started[key] = gateway
        return gateway.start()

    def close(self) -> None:
        for gateway in self._started.values():
            gateway.stop()
        self._started.clear()


@pytest.fixture(scope="session")
def plugway_upstreams() -> Iterator[UpstreamPool]:
    """The session's pool of fake upstreams (use ``fake_upstream`` in tests)."""
    pool = UpstreamPool()
    yield pool
    pool.close()


@pytest.fixture
def fake_upstream(plugway_upstreams: UpstreamPool) -> Callable[..., FakeUpstream]:
    """``fake_upstream(cls, name="default")``: a session-shared fake, reset for this test."""

    def get(cls: type[F], name: str = "default") -> F:
        upstream = plugway_upstreams.get(cls, name)
        upstream.reset()
        return upstream

    return get


@pytest.fixture
def fake_openai(fake_upstream: Callable[..., FakeUpstream]) -> FakeUpstream:
    """A fake OpenAI upstream (``url + "/v1"`` is its base URL), reset for this test."""
    return fake_upstream(FakeOpenAI)


@pytest.fixture
def fake_anthropic(fake_upstream: Callable[..., FakeUpstream]) -> FakeUpstream:
    """A fake Anthropic Messages API (base URL: ``fake_anthropic.url``), reset for this test."""
    return fake_upstream(FakeAnthropic)


@pytest.fixture
def fake_gemini(fake_upstream: Callable[..., FakeUpstream]) -> FakeUpstream:
    """A fake Gemini API (base URL: ``fake_gemini.url``), reset for this test."""
    return fake_upstream(FakeGemini)


@pytest.fixture
def plugway_gateway() -> Iterator[Callable[..., GatewayProcess]]:
    """``plugway_gateway(config=None, *, plugins=(), env=None, ...)``: start a gateway for
    this test; all stop when it ends."""
    pool = GatewayPool(shared=False)
    yield pool.start
    pool.close()


@pytest.fixture(scope="session")
def plugway_shared_gateway() -> Iterator[Callable[..., GatewayProcess]]:
    """Like ``plugway_gateway``, but one gateway per distinct arguments for the session."""
    pool = GatewayPool(shared=True)
    yield pool.start
    pool.close()


@pytest.fixture(scope="module")
def plugway_config() -> str | Path | None:
    """TOML text (or a path) for ``plugway_server``; ``None`` is the built-in config."""
    return None


@pytest.fixture(scope="module")
def plugway_plugins() -> Sequence[str | Path]:
    """Plugin module paths ``plugway_server`` loads besides the installed plugins."""
    return ()


@pytest.fixture(scope="module")
def plugway_server(
    plugway_config: str | Path | None, plugway_plugins: Sequence[str | Path]
) -> Iterator[GatewayProcess]:
    """A running gateway with ``plugway_config`` and ``plugway_plugins``, one per module."""
    with GatewayProcess(plugway_config, plugins=plugway_plugins) as gateway:
        yield gateway


@pytest.fixture
def openai_client(plugway_server: GatewayProcess) -> Any:
    """An ``openai.OpenAI`` client bound to ``plugway_server``."""
    return plugway_server.openai()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "conformance_error_case" in metafunc.fixturenames and metafunc.cls is not None:
        cases = getattr(metafunc.cls, "error_cases", [])
        metafunc.parametrize("conformance_error_case", cases, ids=[case.id for case in cases])
