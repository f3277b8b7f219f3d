"""Finding, loading and describing plugins.

Every plugin, built-ins included, is an entry point in the ``plugway`` group. Installing a
package that declares one is how a team adds a plugin; ``[plugins] disabled = [...]`` in the
config and ``PLUGWAY_DISABLE_PLUGINS=a,b`` turn plugins off by entry-point name.
Built-ins (distribution ``plugway``) register first, so installed plugins run before them.
``[plugins] allow = [...]``, when given, is an allowlist: only the plugins it names load
(built-ins included), so installing a package does not enable it in a hardened deployment.

A plugin declares that it writes no prompt or completion text anywhere (logs, files, stores,
other services) with a module (or object) attribute ``PLUGWAY_RETAINS_CONTENT = False``;
``[privacy] zdr = true`` refuses to start while an enabled plugin lacks that declaration. A
plugin whose answer depends on its settings declares a function
``PLUGWAY_RETAINS_CONTENT(config) -> bool`` instead.

A plugin whose work depends on its settings may define ``plugway_enabled(config) -> bool``
(a module attribute, not a hook): when it returns False for the loaded config, the plugin is
unregistered before the gateway is built, so an idle filter costs nothing on the request
path (a ``stream_chunk`` impl alone makes the core parse every streamed chunk).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import attrs
import pluggy
from plugway.errors import ConfigError, PluginLoadError
from plugway.hooks import PROJECT, hookspecs

ENTRY_POINT_GROUP = "plugway"
DISABLE_ENV = "PLUGWAY_DISABLE_PLUGINS"
BUILTIN_DISTRIBUTION = "plugway"


@attrs.frozen
class PluginInfo:
    """What ``plugway plugins`` and ``GET /-/plugins`` show for one plugin."""

    name: str
    distribution: str
    version: str
    builtin: bool
    module: str
    hooks: tuple[str, ...]
    #: The plugin's ``PLUGWAY_RETAINS_CONTENT`` declaration; None when it made none.
    retains_content: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self, recurse=False) | {"hooks": list(self.hooks)}


@attrs.frozen
class LoadedPlugins:
    pm: pluggy.PluginManager
    infos: tuple[PluginInfo, ...]
    disabled: tuple[str, ...]
    #: Loaded, but unregistered for this config because ``plugway_enabled(config)`` said so.
    idle: tuple[str, ...] = ()


def disabled_from_env() -> set[str]:
    raw = os.environ.get(DISABLE_ENV, "")
    return {name.strip() for name in raw.split(",") if name.strip()}


def _distribution_of(ep: EntryPoint) -> tuple[str, str]:
    dist = ep.dist
    if dist is None:
        return "unknown", "unknown"
    return dist.metadata["Name"] or "unknown", dist.version


def _ordered_entry_points() -> list[EntryPoint]:
    eps = list(entry_points(group=ENTRY_POINT_GROUP))

    def builtin_first(ep: EntryPoint) -> tuple[int, str]:
        return (0 if _distribution_of(ep)[0] == BUILTIN_DISTRIBUTION else 1, ep.name)

    return sorted(eps, key=builtin_first)


def _refuse_wrappers(pm: pluggy.PluginManager, plugin: object, name: str, dist: str) -> None:
    for caller in pm.get_hookcallers(plugin) or ():
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and (impl.hookwrapper or impl.wrapper):
                raise PluginLoadError(
                    name,
                    dist,
                    f"{caller.name} is a hook wrapper; plugway hooks may be async, so "
                    "wrappers are not supported: implement the hook directly",
                )


def load_plugins(
    disabled: Iterable[str] = (),
    extra: Sequence[tuple[str, object]] = (),
    allow: Iterable[str] | None = None,
) -> LoadedPlugins:
    """Make a fresh plugin manager with every installed plugin not disabled, then ``extra``
    (name, plugin object) pairs, which tests and embedding code use.

    Raises :class:`PluginLoadError` naming the plugin and its distribution when one cannot be
    imported or registered, and :class:`ConfigError` when a disabled name matches nothing.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    from_config = set(disabled)
    skip = from_config | disabled_from_env()
    allowed = None if allow is None else set(allow)
    infos: list[PluginInfo] = []
    seen: dict[str, str] = {}
    for ep in _ordered_entry_points():
        dist, version = _distribution_of(ep)
        if ep.name in skip or (allowed is not None and ep.name not in allowed):
            seen[ep.name] = dist
            continue
        if ep.name in seen:
            raise PluginLoadError(
                ep.name, dist, f"the name is already taken by distribution {seen[ep.name]}"
            )
        seen[ep.name] = dist
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginLoadError(ep.name, dist, exc) from exc
        infos.append(_register(pm, ep.name, plugin, dist, version, ep.value))
    for name, plugin in extra:
        if name in seen:
            raise PluginLoadError(name, "(passed in)", "an installed plugin has that name")
        seen[name] = "(passed in)"
        module = getattr(plugin, "__name__", type(plugin).__name__)
        infos.append(_register(pm, name, plugin, "(passed in)", "", module))
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or "?"
        info = next((i for i in infos if i.name == name), None)
        raise PluginLoadError(
            name,
            info.distribution if info else "?",
            f"{exc}; plugway has no such hook (see plugway.hooks.hookspecs), or mark it "
            "@hookimpl(optionalhook=True) if another plugin defines it",
        ) from exc
    if allowed is not None and sorted(allowed - set(seen)):
        raise ConfigError(
            f"plugins.allow: no installed plugin is named "
            f"{', '.join(map(repr, sorted(allowed - set(seen))))}; "
            f"installed plugins are: {', '.join(sorted(seen))}"
        )
    unknown = sorted(from_config - set(seen))
    if unknown:
        raise ConfigError(
            f"plugins.disabled: no installed plugin is named {', '.join(map(repr, unknown))}; "
            f"installed plugins are: {', '.join(sorted(seen))}"
        )
    not_allowed = set() if allowed is None else set(seen) - allowed - {n for n, _ in extra}
    return LoadedPlugins(pm, tuple(infos), tuple(sorted((skip | not_allowed) & set(seen))))


def _register(
    pm: pluggy.PluginManager, name: str, plugin: object, dist: str, version: str, module: str
) -> PluginInfo:
    try:
        pm.register(plugin, name=name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        raise PluginLoadError(name, dist, exc) from exc
    _refuse_wrappers(pm, plugin, name, dist)
    hooks = tuple(sorted({caller.name for caller in pm.get_hookcallers(plugin) or ()}))
    return PluginInfo(
        name=name,
        distribution=dist,
        version=version,
        builtin=dist == BUILTIN_DISTRIBUTION,
        module=module,
        hooks=hooks,
        retains_content=_retains_content(plugin),
    )


def _retains_content(plugin: object) -> bool | None:
    declared = getattr(plugin, "PLUGWAY_RETAINS_CONTENT", None)
    return declared if isinstance(declared, bool) else None


def deactivate_idle(plugins: LoadedPlugins, config: Any) -> LoadedPlugins:
    """Unregister the plugins whose ``plugway_enabled(config)`` is False, and settle the
    declarations that depend on the config (``PLUGWAY_RETAINS_CONTENT(config)``)."""
    idle = []
    infos = []
    for info in plugins.infos:
        plugin = plugins.pm.get_plugin(info.name)
        declared = getattr(plugin, "PLUGWAY_RETAINS_CONTENT", None)
        settled = bool(declared(config)) if callable(declared) else info.retains_content
        infos.append(attrs.evolve(info, retains_content=settled))
        enabled = getattr(plugin, "plugway_enabled", None)
        if plugin is not None and callable(enabled) and not enabled(config):
            plugins.pm.unregister(plugin)
            idle.append(info.name)
    return attrs.evolve(plugins, idle=tuple(idle), infos=tuple(infos))
