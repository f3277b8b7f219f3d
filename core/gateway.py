"""Assembling a gateway: config file -> plugins -> registry -> validated config -> providers,
strategies and router. One :class:`Gateway` per worker; nothing is global."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from loguru import logger
from plugway.config import (
    Config,
    allowed_plugins,
    build_config,
    default_config_data,
    disabled_plugins,
    read_config_file,
)
from plugway.errors import ConfigError
from plugway.hookcall import HookRunner
from plugway.plugin_loader import LoadedPlugins, deactivate_idle, load_plugins
from plugway.provider import Provider
from plugway.redact import register_secret
from plugway.registry import Registry
from plugway.routing import Router, Strategy, StrategyDispatch, StrategyEnv
from plugway.state import StateBackend

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
        factory = registry.state_backends[config.state.backend][0]
        #: Shared state for plugins (counters, budgets, health): see plugway.state.
        self.state: StateBackend = factory(config.state)
        self.ready = False
        self.started_wall = time.time()
        self.background: set[asyncio.Task[Any]] = set()
        #: Name -> a function answering a plugin's health detail (a dict), shown by ``/ready``
        #: and ``/-/plugins`` (the MCP gateway's upstream servers, say). Never secrets.
        self.status: dict[str, Callable[[], Any]] = {}

    async def startup(self, app: Any) -> None:
        for provider in self.providers.values():
            await provider.startup()
        await self.state.startup()
        await self.hooks.call_all("plugway_startup", app=app, config=self.config)

    async def shutdown(self, app: Any) -> None:
        self.ready = False
        if self.background:
            await asyncio.gather(*self.background, return_exceptions=True)
        await self.hooks.notify("plugway_shutdown", app=app)
        try:
            await self.state.aclose()
        except Exception:
            logger.opt(exception=True).error("the state backend failed to close")
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
        plugins = []
        for info in self.plugins.infos:
            plugins.append(info.to_dict() | contributed.get(info.name, {}))
        return {
            "plugins": plugins,
            "disabled": list(self.plugins.disabled),
            "idle": list(self.plugins.idle),
        } | ({"status": self.status_detail()} if self.status else {})

    def status_detail(self) -> dict[str, Any]:
        """What the :attr:`status` functions answer now."""
        return {name: detail() for name, detail in self.status.items()}

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
    plugins = load_plugins(
        disabled_plugins(raw or {}), extra_plugins, allow=allowed_plugins(raw or {})
    )
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
    hooks = HookRunner(plugins.pm)
    problems = check_privacy(config, plugins) + check_exposure(config, environ)
    for result in hooks.call_sync_results("check_config", config=config):
        problems.extend(result)
    if problems:
        raise ConfigError(problems)
    plugins = deactivate_idle(plugins, config)
    register_secret(environ.get(MASTER_KEY_ENV))
    for settings in config.providers.values():
        register_secret(settings.api_key)
        for value in settings.headers.values():
            register_secret(value)
    return Gateway(config, plugins, registry, env)


MASTER_KEY_ENV = "PLUGWAY_MASTER_KEY"


def check_exposure(config: Config, environ: Mapping[str, str]) -> list[str]:
    """Without a master key there is no authentication: serve on loopback only, and say so."""
    master = environ.get(MASTER_KEY_ENV, "")
    if master:
        if len(master) < 16:
            return [
                f"{MASTER_KEY_ENV}: too short ({len(master)} characters); use at least 16 "
                "random characters, for example from `openssl rand -hex 32`"
            ]
        return []
    host = config.server.host
    if not is_loopback(host):
        return [
            f"server.host: {host!r} is reachable from other machines but no key is "
            f"configured, so anyone could use the gateway; set {MASTER_KEY_ENV} (and issue "
            "virtual keys with `plugway keys create`), or bind 127.0.0.1"
        ]
    config.notes.append(
        f"no {MASTER_KEY_ENV} is set: authentication is off, so the gateway listens on "
        "loopback only"
    )
    return []


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _retains_content(
    plugins: LoadedPlugins, name: str, declared: bool | None, config: Config
) -> bool | None:
    """A plugin's declaration; one that depends on the config (a cache keeping answers only
    in this process, say) is a function ``PLUGWAY_RETAINS_CONTENT(config) -> bool``."""
    attribute = getattr(plugins.pm.get_plugin(name), "PLUGWAY_RETAINS_CONTENT", None)
    if callable(attribute):
        return bool(attribute(config))
    return declared


def check_privacy(config: Config, plugins: LoadedPlugins) -> list[str]:
    """``[privacy] zdr = true`` as a checked promise: every enabled plugin declared itself
    content-free and every configured target is marked ``zdr``."""
    if not config.privacy.zdr:
        return []
    problems = [
        f"privacy.zdr: plugin '{info.name}' (from {info.distribution}) has not declared "
        "that it retains no prompt or completion text; disable it ([plugins] disabled) or "
        "have it set PLUGWAY_RETAINS_CONTENT = False"
        for info in plugins.infos
        if _retains_content(plugins, info.name, info.retains_content, config) is not False
    ]
    for i, model in enumerate(config.models):
        route = config.routes()[model.name]
        for j, target in enumerate(route.targets):
            if not target.zdr:
                problems.append(
                    f"models[{i}].targets[{j}]: target {target.key} is not marked zdr = true "
                    f"(on the target or on providers.{target.provider}); with privacy.zdr "
                    "every target must keep no data"
                )
    if problems:
        config.notes.append("zero data retention is on")
    return problems
