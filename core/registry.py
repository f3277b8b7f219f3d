"""What plugins contribute through the registration hooks: provider types, routing strategies
and plugin settings classes, each remembered with the plugin that registered it."""

from __future__ import annotations

from typing import Any

import attrs
from plugway.errors import PluginError
from plugway.hookcall import HookRunner
from plugway.provider import Provider, ProviderType
from plugway.state import MemoryBackend


@attrs.frozen
class StrategyType:
    name: str
    strategy_class: type[Any]
    plugin: str


@attrs.define
class Registry:
    providers: dict[str, ProviderType] = attrs.field(factory=dict)
    strategies: dict[str, StrategyType] = attrs.field(factory=dict)
    settings: dict[str, type[Any]] = attrs.field(factory=dict)
    #: settings names a plugin owns as a top-level ``[NAME]`` section, not ``[plugins.NAME]``
    sections: set[str] = attrs.field(factory=set)
    #: state backend name -> (factory, plugin); "memory" is the core's own
    state_backends: dict[str, tuple[Any, str]] = attrs.field(factory=dict)

    @classmethod
    def collect(cls, hooks: HookRunner) -> Registry:
        """Call every registration hook once and gather what was registered."""
        registry = cls()
        hooks.call_sync_each("register_providers", registry._provider_register)
        hooks.call_sync_each("register_strategies", registry._strategy_register)
        hooks.call_sync_each("register_settings", registry._settings_register)
        registry.state_backends["memory"] = (MemoryBackend, "plugway.core")
        hooks.call_sync_each("register_state_backends", registry._state_register)
        return registry

    def _provider_register(self, plugin: str) -> dict[str, Any]:
        def register(type_name: str, provider_class: type[Provider], **defaults: Any) -> None:
            if not (isinstance(provider_class, type) and issubclass(provider_class, Provider)):
                raise PluginError(
                    f"plugin '{plugin}' registered provider type '{type_name}' with "
                    f"{provider_class!r}, which is not a plugway.provider.Provider subclass"
                )
            if type_name in self.providers:
                raise PluginError(
                    f"provider type '{type_name}' is registered by both plugin "
                    f"'{self.providers[type_name].plugin}' and plugin '{plugin}'"
                )
            self.providers[type_name] = ProviderType(type_name, provider_class, defaults, plugin)

        return {"register": register}

    def _strategy_register(self, plugin: str) -> dict[str, Any]:
        def register(name: str, strategy_class: type[Any]) -> None:
            if name in self.strategies:
                raise PluginError(
                    f"routing strategy '{name}' is registered by both plugin "
                    f"'{self.strategies[name].plugin}' and plugin '{plugin}'"
                )
            self.strategies[name] = StrategyType(name, strategy_class, plugin)

        return {"register": register}

    def _settings_register(self, plugin: str) -> dict[str, Any]:
        def register(name: str, settings_class: type[Any], *, section: bool = False) -> None:
            if not attrs.has(settings_class):
                raise PluginError(
                    f"plugin '{plugin}' registered settings '{name}' with "
                    f"{settings_class!r}, which is not an attrs class"
                )
            if name in self.settings:
                raise PluginError(f"settings '{name}' are registered twice (plugin '{plugin}')")
            self.settings[name] = settings_class
            if section:
                self.sections.add(name)

        return {"register": register}

    def _state_register(self, plugin: str) -> dict[str, Any]:
        def register(name: str, factory: Any) -> None:
            if name in self.state_backends:
                raise PluginError(
                    f"state backend '{name}' is registered by both plugin "
                    f"'{self.state_backends[name][1]}' and plugin '{plugin}'"
                )
            self.state_backends[name] = (factory, plugin)

        return {"register": register}
