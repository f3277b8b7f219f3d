"""Assembling a gateway: config file -> plugins -> registry -> validated config -> providers,
strategies and router. One :class:`Gateway` per worker; nothing is global."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from loguru import logger
from plugway.config import (
    Config,
    build_config,
    default_config_data,
    disabled_plugins,
    read_config_file,
)
from plugway.hookcall import HookRunner
from plugway.plugin_loader import LoadedPlugins, load_plugins
from plugway.provider import Provider
from plugway.registry import Registry
from plugway.routing import Router, Strategy, StrategyDispatch, StrategyEnv

CONFIG_ENV = "PLUGWAY_CONFIG"


class Gateway:
    """Everything one worker needs to serve: config, plugins, hooks, providers, router."""

    def __init__(
        self,
        config: Config,
        plugins: LoadedPlugins,
        registry: Registry,
        env: StrategyEnv | None = None,
    ) -> None:
        self.config = config
        self.plugins = plugins
        self.registry = registry
        self.env = env or StrategyEnv()
        self.env.settings = config.plugin_settings
        self.providers: dict[str, Provider] = {
            name: registry.providers[settings.type].provider_class(name, settings)
            for name, settings in config.providers.items()
        }
        self.strategies: dict[str, Strategy] = {
            name: st.strategy_class(self.env) for name, st in registry.strategies.items()
        }
        plugins.pm.register(StrategyDispatch(self.strategies), name="plugway.core.routing")
        self.hooks = HookRunner(plugins.pm)
        self.router = Router(config.routes(), list(config.providers), config.routing.deadline)
        self.ready = False
        self.started_wall = time.time()
        self.background: set[asyncio.Task[Any]] = set()

    async def startup(self, app: Any) -> None:
        for provider in self.providers.values():
            await provider.startup()
        await self.hooks.call_all("plugway_startup", app=app, config=self.config)
        self.ready = True

    async def shutdown(self, app: Any) -> None:
        self.ready = False
        if self.background:
            await asyncio.gather(*self.background, return_exceptions=True)
        await self.hooks.notify("plugway_shutdown", app=app)
        for provider in self.providers.values():
            try:
                await provider.aclose()
            except Exception:
                logger.opt(exception=True).error("provider {!r} failed to close", provider.name)

    def describe_plugins(self) -> dict[str, Any]:
        """Every plugin with its distribution, version, hooks and contributions (no secrets)."""
        contributed: dict[str, dict[str, list[str]]] = {}
        for name, ptype in self.registry.providers.items():
            contributed.setdefault(ptype.plugin, {}).setdefault("provider_types", []).append(name)
        for name, strategy in self.registry.strategies.items():
            contributed.setdefault(strategy.plugin, {}).setdefault("strategies", []).append(name)
        return {
            "plugins": [
                info.to_dict() | contributed.get(info.name, {}) for info in self.plugins.infos
            ],
            "disabled": list(self.plugins.disabled),
        }

    def spawn(self, coro: Any) -> None:
        """Run ``coro`` in the background, keeping a reference until it ends."""
        task = asyncio.get_running_loop().create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)


def load_gateway(
    config_path: str | Path | None = None,
    *,
    extra_plugins: Sequence[tuple[str, object]] = (),
    environ: Mapping[str, str] | None = None,
    env: StrategyEnv | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Gateway:
    """Build a gateway from a TOML file (or the embedded default when ``config_path`` is None
    and ``PLUGWAY_CONFIG`` is unset). ``overrides`` replace ``[server]`` fields (the CLI's
    ``--host``/``--port``). Raises ConfigError or PluginLoadError with a readable message."""
    environ = os.environ if environ is None else environ
    if config_path is None and environ.get(CONFIG_ENV):
        config_path = environ[CONFIG_ENV]
    raw = read_config_file(config_path) if config_path is not None else None
    plugins = load_plugins(disabled_plugins(raw or {}), extra_plugins)
    registry = Registry.collect(HookRunner(plugins.pm))
    notes: list[str] = []
    if raw is None:
        raw, notes = default_config_data(list(registry.providers), environ)
    if overrides:
        server = dict(raw.get("server", {}))
        server.update(overrides)
        raw = {**raw, "server": server}
    config = build_config(
        raw,
        registry,
        environ=environ,
        source=str(config_path) if config_path is not None else "<built-in default>",
    )
    config.notes.extend(notes)
    return Gateway(config, plugins, registry, env)
