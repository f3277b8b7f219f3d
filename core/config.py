"""The config contract: TOML in, validated attrs objects out, every mistake named by its path.

Shape (the names are a contract)::

    [server]            host, port, workers, max_body_bytes, client_timeout, backlog
    [routing]           deadline: the overall seconds for one request, retries included
    [providers.NAME]    type = a registered provider type, then that type's settings
    [[models]]          name (an exact model name or a glob such as "claude-*") or match (a
                        regular expression), strategy, deadline, targets = [{provider,
                        model, ...}] (a target's model "{name}" is the name asked for), and
                        the routing policy (plugway.policy): retry, hedge, rules, fallbacks,
                        require_region, prefer_region
    [state]             backend ("memory" | a registered one, e.g. "redis"), url, prefix
    [privacy]           zdr: refuse to start unless every plugin is content-free, and route
                        only to targets (or providers) marked zdr = true
    [plugins]           disabled = [...], allow = [...], and [plugins.NAME] tables checked
                        by each plugin
    [NAME]              a top-level section a plugin owns and checks (registered with
                        register_settings(name, cls, section=True)): [mcp], say

``${VAR}`` and ``${VAR:-default}`` in any string read the environment. A config error lists
every problem found, one per line, as ``path: what is wrong; what would be right``.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
import typing
from collections.abc import Callable, Collection, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError
from plugway.context import Price, Route, Target
from plugway.errors import ConfigError
from plugway.policy import Fallbacks, HedgePolicy, RetryPolicy, RoutePolicy, Rule
from plugway.provider import ProviderSettings
from plugway.registry import Registry
from plugway.state import StateConfig


@attrs.define(kw_only=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 4000
    workers: int = 1
    #: Largest request body accepted; larger bodies get 413 before they are buffered.
    max_body_bytes: int = 32 * 1024 * 1024
    #: Seconds a client may take to send its request (slow-client protection).
    client_timeout: float = 30.0
    keep_alive_timeout: float = 75.0
    #: Largest request head (request line and headers); larger ones get 413.
    max_header_bytes: int = 8192
    #: Serve HTTPS with this PEM certificate chain and private key (both or neither).
    tls_cert: str | None = None
    tls_key: str | None = None
    #: Lowest TLS version accepted: "1.2" or "1.3".
    tls_min_version: str = "1.2"
    #: How many reverse proxies in front of the gateway append to X-Forwarded-For. 0 (the
    #: default) ignores the header: the client address is the socket's peer.
    forwarded_proxies: int = 0
    #: Origins allowed by CORS; empty (the default) sends no CORS headers at all.
    cors_origins: list[str] = attrs.field(factory=list)
    #: Connections the kernel queues before a worker accepts them (capped by the system's
    #: ``net.core.somaxconn``). Sanic's default of 100 overflows when many clients connect at
    #: once (1,000 streams opened within half a second in the bench): the dropped ones only
    #: retry their SYN after 1 s, then 3 s.
    backlog: int = 1024


@attrs.define(kw_only=True)
class PrivacyConfig:
    #: Zero data retention as a checked promise (see the module docstring).
    zdr: bool = False


@attrs.define(kw_only=True)
class RoutingConfig:
    #: Overall seconds for one request: every attempt, retry and wait included.
    deadline: float = 300.0


@attrs.define(kw_only=True)
class TargetConfig:
    provider: str
    model: str
    weight: float = 1.0
    price: Price | None = None
    region: str | None = None
    tags: list[str] = attrs.field(factory=list)
    #: The model's context size in tokens (for context-window fallbacks).
    context_window: int | None = None
    #: This target keeps no data (overrides the provider's ``zdr``).
    zdr: bool | None = None


@attrs.define(kw_only=True)
class ModelConfig:
    #: An exact model name, or a glob (``*``, ``?``, ``[...]``) matching model names.
    name: str = ""
    targets: list[TargetConfig] = attrs.field(factory=list)
    strategy: str = "fallback"
    deadline: float | None = None
    options: dict[str, Any] = attrs.field(factory=dict)
    # The routing policy (see plugway.policy): all optional.
    retry: RetryPolicy | None = None
    hedge: HedgePolicy | None = None
    rules: list[Rule] = attrs.field(factory=list)
    fallbacks: Fallbacks = attrs.field(factory=Fallbacks)
    require_region: str | None = None
    prefer_region: str | None = None
    #: A regular expression (full match) instead of ``name``; the route is then named by it.
    match: str | None = None


@attrs.define(kw_only=True)
class Config:
    """A validated config. ``providers`` maps instance names to their type's settings object;
    ``plugin_settings`` maps plugin names to the object their settings class made."""

    server: ServerConfig = attrs.field(factory=ServerConfig)
    routing: RoutingConfig = attrs.field(factory=RoutingConfig)
    providers: dict[str, ProviderSettings] = attrs.field(factory=dict)
    models: list[ModelConfig] = attrs.field(factory=list)
    state: StateConfig = attrs.field(factory=StateConfig)
    privacy: PrivacyConfig = attrs.field(factory=PrivacyConfig)
    disabled_plugins: list[str] = attrs.field(factory=list)
    allowed_plugins: list[str] | None = None
    plugin_settings: dict[str, Any] = attrs.field(factory=dict)
    source: str = "<built-in default>"
    notes: list[str] = attrs.field(factory=list)

    def routes(self) -> dict[str, Route]:
        """Model name -> route, in config order."""
        return {
            model.name: _route_of(model, self.routing.deadline, self.providers)
            for model in self.models
        }

    def longest_deadline(self) -> float:
        deadlines = [self.routing.deadline] + [m.deadline for m in self.models if m.deadline]
        timeouts = [p.timeout for p in self.providers.values()]
        return max(deadlines + timeouts)


def _route_of(
    model: ModelConfig, default_deadline: float, providers: Mapping[str, ProviderSettings]
) -> Route:
    targets = tuple(
        Target(
            provider=t.provider,
            model=t.model,
            weight=t.weight,
            price=t.price,
            region=t.region,
            tags=tuple(t.tags),
            context_window=t.context_window,
            zdr=t.zdr if t.zdr is not None else _provider_zdr(providers.get(t.provider)),
        )
        for t in model.targets
    )
    policy = RoutePolicy(
        retry=model.retry,
        hedge=model.hedge,
        rules=tuple(model.rules),
        fallbacks=model.fallbacks,
        require_region=model.require_region,
        prefer_region=model.prefer_region,
    )
    return Route(
        name=model.name,
        targets=targets,
        strategy=model.strategy,
        deadline=model.deadline if model.deadline is not None else default_deadline,
        options=dict(model.options),
        policy=policy,
        match=model.match,
    )


def _provider_zdr(settings: ProviderSettings | None) -> bool:
    return bool(getattr(settings, "zdr", False))


# -- reading -----------------------------------------------------------------------------------

DEFAULT_ENV_PROVIDERS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    # env var, instance and type name, key reference, models added as routes
    (
        "OPENAI_API_KEY",
        "openai",
        "${OPENAI_API_KEY}",
        (
            "gpt-4.1",
            "gpt-4.1-mini",
            "gpt-4o",
            "gpt-4o-mini",
            "o4-mini",
            "text-embedding-3-small",
            "text-embedding-3-large",
            "omni-moderation-latest",
        ),
    ),
    (
        "ANTHROPIC_API_KEY",
        "anthropic",
        "${ANTHROPIC_API_KEY}",
        ("claude-opus-4-1", "claude-sonnet-4-5", "claude-haiku-4-5"),
    ),
    (
        "GEMINI_API_KEY",
        "gemini",
        "${GEMINI_API_KEY}",
        ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "text-embedding-004"),
    ),
)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; a missing file or bad TOML is a ConfigError, never a traceback."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def default_config_data(
    available_types: Collection[str], environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The embedded default: the ``fake`` provider's models, plus each well-known provider
    whose key is in the environment and whose type is installed, with its common models.
    Returns the data and notes to show at startup."""
    environ = os.environ if environ is None else environ
    text = resources.files("plugway").joinpath("default_config.toml").read_text("utf-8")
    data = tomllib.loads(text)
    notes = []
    for env_var, name, key_ref, models in DEFAULT_ENV_PROVIDERS:
        if environ.get(env_var):
            if name not in available_types:
                notes.append(f"{env_var} is set but no plugin provides the '{name}' provider type")
                continue
            notes.append(f"{env_var} is set: serving {', '.join(models)} through '{name}'")
            data.setdefault("providers", {})[name] = {"type": name, "api_key": key_ref}
            data.setdefault("models", []).extend(
                {"name": model, "targets": [{"provider": name, "model": model}]} for model in models
            )
    return data, notes


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


def interpolate_env(
    data: Any, environ: Mapping[str, str], path: str = "", problems: list[str] | None = None
) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string; unset variables without a
    default are reported as problems at their path."""
    problems = [] if problems is None else problems
    if isinstance(data, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            problems.append(
                f"{path}: environment variable {name} is not set; set it, or write "
                f"${{{name}:-default}} to give a default"
            )
            return ""

        return _ENV_REF.sub(substitute, data)
    if isinstance(data, dict):
        return {
            key: interpolate_env(value, environ, _join(path, key), problems)
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [
            interpolate_env(value, environ, f"{path}[{i}]", problems)
            for i, value in enumerate(data)
        ]
    return data


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# -- structuring -------------------------------------------------------------------------------


def _describe(value: Any) -> str:
    kinds = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    kind = kinds.get(type(value), type(value).__name__)
    shown = repr(value) if not isinstance(value, dict | list) else ""
    return f"{kind} {shown}".strip()


def _strict(expected: str, check: Callable[[Any], bool], cast: Callable[[Any], Any]) -> Any:
    def hook(value: Any, _type: Any) -> Any:
        if not check(value):
            raise TypeError(f"expected {expected}, got {_describe(value)}")
        return cast(value)

    return hook


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    conv.register_structure_hook(
        int, _strict("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool), int)
    )
    conv.register_structure_hook(
        float,
        _strict(
            "a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool), float
        ),
    )
    conv.register_structure_hook(str, _strict("a string", lambda v: isinstance(v, str), str))
    conv.register_structure_hook(
        bool, _strict("true or false", lambda v: isinstance(v, bool), bool)
    )
    return conv


_converter = _make_converter()


def _field_names(cls: type[Any]) -> list[str]:
    return [f.alias or f.name for f in attrs.fields(cls)]


def _format_exception(exc: BaseException, _type: Any) -> str:
    if isinstance(exc, ForbiddenExtraKeysError):
        allowed = _field_names(exc.cl)
        parts = []
        for extra in sorted(exc.extra_fields):
            parts.append(f"unknown field '{extra}'" + _closest(extra, allowed))
        return "; ".join(parts) + f"; allowed fields are: {', '.join(allowed)}"
    if isinstance(exc, KeyError):
        return "missing required field"
    if typing.get_origin(_type) is typing.Literal:  # a setting with a fixed set of values
        choices = ", ".join(repr(choice) for choice in typing.get_args(_type))
        got = str(exc).partition(" not in literal")[0]
        return f"expected one of {choices}, got {got!r}"
    if isinstance(exc, TypeError | ValueError):
        message = str(exc)
        if message.startswith("expected"):
            return message
        if "not iterable" in message or "must be" in message:
            return "expected an array" if "iterable" in message else message
        return f"invalid value: {message}"
    return f"{type(exc).__name__}: {exc}"


_PATH_KEY = re.compile(r"\[['\"]([^'\"]+)['\"]\]")


def _toml_path(cattrs_path: str, prefix: str) -> str:
    path = _PATH_KEY.sub(lambda m: "." + m.group(1), cattrs_path)
    path = path.removeprefix("$").removeprefix(".")
    return _join(prefix, path) if path else prefix


def structure(data: Any, cls: type[Any], path: str, problems: list[str]) -> Any:
    """Structure ``data`` as ``cls``; add one ``path: message`` problem per mistake found."""
    if attrs.has(cls) and not isinstance(data, dict):
        problems.append(f"{path}: expected a table, got {_describe(data)}")
        return None
    try:
        return _converter.structure(data, cls)
    except (ClassValidationError, cattrs.BaseValidationError) as exc:
        for line in cattrs.transform_error(exc, path="$", format_exception=_format_exception):
            message, _, where = line.rpartition(" @ ")
            problems.append(f"{_toml_path(where, path)}: {message}")
    except Exception as exc:  # a converter hook's own error: still say where
        problems.append(f"{path}: {_format_exception(exc, cls)}")
    return None


def _closest(word: str, choices: list[str]) -> str:
    hint = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean '{hint[0]}'?)" if hint else ""


def _one_of(kind: str, choices: list[str]) -> str:
    return f"{kind} are: {', '.join(sorted(choices))}" if choices else f"no {kind} are installed"


TOP_LEVEL = ("server", "routing", "providers", "models", "plugins", "state", "privacy")
RESERVED_PLUGIN_KEYS = ("disabled", "allow")


def disabled_plugins(data: Mapping[str, Any]) -> list[str]:
    """``[plugins] disabled``: read before plugins load, so it is checked on its own."""
    plugins = data.get("plugins", {})
    if not isinstance(plugins, dict):
        raise ConfigError(f"plugins: expected a table, got {_describe(plugins)}")
    disabled = plugins.get("disabled", [])
    if not isinstance(disabled, list) or not all(isinstance(x, str) for x in disabled):
        raise ConfigError(
            f"plugins.disabled: expected an array of plugin names, got {_describe(disabled)}"
        )
    return list(disabled)


def allowed_plugins(data: Mapping[str, Any]) -> list[str] | None:
    """``[plugins] allow``: when given, only these plugins (built-ins included) load, so that
    merely installing a package does not enable it. Read before plugins load."""
    plugins = data.get("plugins", {})
    if not isinstance(plugins, dict) or "allow" not in plugins:
        return None
    allow = plugins["allow"]
    if not isinstance(allow, list) or not all(isinstance(x, str) for x in allow):
        raise ConfigError(
            f"plugins.allow: expected an array of plugin names, got {_describe(allow)}"
        )
    return list(allow)


def build_config(
    data: Mapping[str, Any],
    registry: Registry,
    *,
    environ: Mapping[str, str] | None = None,
    source: str = "<built-in default>",
) -> Config:
    """Validate raw config data against what the installed plugins registered.

    Raises :class:`ConfigError` listing every problem; returns a :class:`Config` otherwise.
    """
    problems: list[str] = []
    data = interpolate_env(
        dict(data), os.environ if environ is None else environ, problems=problems
    )
    sections = [*TOP_LEVEL, *sorted(registry.sections - set(TOP_LEVEL))]
    for key in data:
        if key not in sections:
            problems.append(
                f"{key}: unknown section{_closest(key, sections)}; "
                f"allowed sections are: {', '.join(sections)}"
            )
    server = structure(data.get("server", {}), ServerConfig, "server", problems)
    routing = structure(data.get("routing", {}), RoutingConfig, "routing", problems)
    state = structure(data.get("state", {}), StateConfig, "state", problems)
    privacy = structure(data.get("privacy", {}), PrivacyConfig, "privacy", problems)
    if state is not None and state.backend not in registry.state_backends:
        known_backends = list(registry.state_backends)
        problems.append(
            f"state.backend: unknown state backend {state.backend!r}"
            f"{_closest(state.backend, known_backends)}; "
            f"{_one_of('installed state backends', known_backends)}"
        )
    if server is not None:
        _check_server(server, problems)
    providers = _structure_providers(data.get("providers", {}), registry, problems)
    models = _structure_models(data.get("models", []), problems)
    plugin_settings = _structure_plugin_settings(data.get("plugins", {}), registry, problems)
    plugin_settings.update(_structure_sections(data, registry, problems))
    raw_providers = data.get("providers", {})
    if models is not None and isinstance(raw_providers, dict):
        _check_routes(models, list(raw_providers), registry, problems)
    if server is not None and not 0 <= server.port <= 65535:
        problems.append(f"server.port: {server.port} is out of range; use 0 to 65535")
    if server is not None and server.workers < 1:
        problems.append(f"server.workers: {server.workers} is too small; use 1 or more")
    if server is not None and server.backlog < 1:
        problems.append(f"server.backlog: {server.backlog} is too small; use 1 or more")
    if problems:
        raise ConfigError(problems)
    assert server is not None and routing is not None  # no problems means all were made
    assert state is not None and privacy is not None
    return Config(
        server=server,
        routing=routing,
        state=state,
        privacy=privacy,
        allowed_plugins=allowed_plugins(data),
        providers=providers or {},
        models=models or [],
        disabled_plugins=disabled_plugins(data),
        plugin_settings=plugin_settings,
        source=source,
    )


def _check_server(server: ServerConfig, problems: list[str]) -> None:
    if (server.tls_cert is None) != (server.tls_key is None):
        problems.append(
            "server.tls_cert: give both tls_cert and tls_key (PEM files) to serve HTTPS, or neither"
        )
    if server.tls_min_version not in ("1.2", "1.3"):
        problems.append(
            f"server.tls_min_version: {server.tls_min_version!r} is not supported; "
            'use "1.2" or "1.3"'
        )
    if server.forwarded_proxies < 0:
        problems.append("server.forwarded_proxies: must be 0 or more")
    if server.max_header_bytes < 1024:
        problems.append("server.max_header_bytes: too small; use 1024 or more")


def _structure_providers(
    raw: Any, registry: Registry, problems: list[str]
) -> dict[str, ProviderSettings] | None:
    if not isinstance(raw, dict):
        problems.append(f"providers: expected a table of provider tables, got {_describe(raw)}")
        return None
    known = list(registry.providers)
    out: dict[str, ProviderSettings] = {}
    for name, table in raw.items():
        path = f"providers.{name}"
        if "/" in name:
            problems.append(f"{path}: a provider name cannot contain '/'; rename the table")
            continue
        if not isinstance(table, dict):
            problems.append(f"{path}: expected a table, got {_describe(table)}")
            continue
        type_name = table.get("type")
        if type_name is None:
            kinds = _one_of("installed provider types", known)
            problems.append(f"{path}.type: missing required field; {kinds}")
            continue
        if not isinstance(type_name, str) or type_name not in registry.providers:
            hint = _closest(str(type_name), known)
            problems.append(
                f"{path}.type: unknown provider type {type_name!r}{hint}; "
                f"{_one_of('installed provider types', known)}"
            )
            continue
        ptype = registry.providers[type_name]
        merged = {**ptype.defaults, **table}
        settings = structure(merged, ptype.provider_class.settings_class, path, problems)
        if settings is None:
            continue
        if ptype.provider_class.requires_api_key and not settings.api_key:
            problems.append(
                f"{path}.api_key: missing; provider type '{type_name}' needs an API key, "
                f'for example api_key = "${{{name.upper()}_API_KEY}}"'
            )
            continue
        if settings.base_url is None and ptype.provider_class.requires_api_key:
            problems.append(
                f"{path}.base_url: missing; provider type '{type_name}' has no default base "
                f'URL, so give one (for example "https://api.example.com/v1")'
            )
            continue
        if settings.base_url is not None and not re.match(r"^https?://[^/\s]+", settings.base_url):
            problems.append(
                f"{path}.base_url: {settings.base_url!r} is not an http(s) URL; write it as "
                '"https://host[:port]/path"'
            )
            continue
        if settings.timeout <= 0:
            problems.append(f"{path}.timeout: {settings.timeout} must be more than 0 seconds")
            continue
        out[name] = settings
    return out


def _structure_models(raw: Any, problems: list[str]) -> list[ModelConfig] | None:
    if not isinstance(raw, list):
        problems.append(f"models: expected an array of tables ([[models]]), got {_describe(raw)}")
        return None
    models: list[ModelConfig] = []
    seen: dict[str, int] = {}
    for i, table in enumerate(raw):
        model = structure(table, ModelConfig, f"models[{i}]", problems)
        if model is None or not _name_or_match(model, f"models[{i}]", problems):
            continue
        if model.name in seen:
            problems.append(
                f"models[{i}].name: {model.name!r} is already the name of models[{seen[model.name]}];"
                " model names must be unique"
            )
            continue
        if not model.targets:
            problems.append(f"models[{i}].targets: empty; give at least one target")
            continue
        seen[model.name] = i
        models.append(model)
    return models


def _name_or_match(model: ModelConfig, path: str, problems: list[str]) -> bool:
    """A route has a ``name`` (exact or glob) or a ``match`` regex, not both; a ``match``
    route is named by its regex from here on."""
    if model.match is None:
        if not model.name:
            problems.append(f"{path}.name: missing required field")
            return False
        return True
    if model.name:
        problems.append(
            f"{path}.match: give name (an exact name or a glob) or match (a regular "
            "expression), not both"
        )
        return False
    try:
        re.compile(model.match)
    except re.error as exc:
        problems.append(f"{path}.match: {model.match!r} is not a valid regular expression ({exc})")
        return False
    model.name = model.match
    return True


def _check_routes(
    models: list[ModelConfig], names: list[str], registry: Registry, problems: list[str]
) -> None:
    strategies = list(registry.strategies)
    for i, model in enumerate(models):
        if model.strategy not in registry.strategies:
            hint = _closest(model.strategy, strategies)
            problems.append(
                f"models[{i}].strategy: unknown strategy {model.strategy!r}{hint}; "
                f"{_one_of('installed strategies', strategies)}"
            )
        for j, target in enumerate(model.targets):
            if target.provider not in names:
                configured = (
                    f"configured providers are: {', '.join(sorted(names))}"
                    if names
                    else "no provider is configured: add a [providers.NAME] table"
                )
                problems.append(
                    f"models[{i}].targets[{j}].provider: no provider named {target.provider!r}"
                    f"{_closest(target.provider, names)}; {configured}"
                )
            if target.weight < 0:
                problems.append(
                    f"models[{i}].targets[{j}].weight: {target.weight} is negative; use 0 or more"
                )
            if target.context_window is not None and target.context_window <= 0:
                problems.append(
                    f"models[{i}].targets[{j}].context_window: {target.context_window} must be "
                    "a positive number of tokens"
                )
        _check_policy(model, f"models[{i}]", problems)


def _check_policy(model: ModelConfig, path: str, problems: list[str]) -> None:
    """The checks on a model's routing policy that its types alone do not make."""
    targets = [
        Target(provider=t.provider, model=t.model, tags=tuple(t.tags)) for t in model.targets
    ]
    names = sorted({n for t in targets for n in (t.key, t.provider, *t.tags)})

    def check_names(where: str, used: tuple[str, ...], empty_ok: bool) -> None:
        if not used and not empty_ok:
            problems.append(f"{where}: empty; name at least one target of this model")
        for k, name in enumerate(used):
            if not any(t.named_by(name) for t in targets):
                problems.append(
                    f"{where}[{k}]: {name!r} names no target of model '{model.name}'"
                    f"{_closest(name, names)}; name a target by provider/model, provider or "
                    f"tag: {', '.join(names)}"
                )

    if model.rules and model.strategy != "rules":
        problems.append(
            f"{path}.rules: rules are only applied by the 'rules' strategy, and this model's "
            f'strategy is {model.strategy!r}; set strategy = "rules" or remove the rules'
        )
    if model.strategy == "rules" and not model.rules:
        problems.append(
            f"{path}.rules: strategy 'rules' needs at least one rule; add "
            '[[models.rules]] tables, e.g. { tools = true, use = ["claude"] }'
        )
    for k, rule in enumerate(model.rules):
        where = f"{path}.rules[{k}]"
        check_names(f"{where}.use", rule.use, empty_ok=False)
        for field in ("min_prompt_tokens", "max_prompt_tokens"):
            value = getattr(rule, field)
            if value is not None and value < 0:
                problems.append(f"{where}.{field}: {value} is negative; use 0 or more tokens")
        low, high = rule.min_prompt_tokens, rule.max_prompt_tokens
        if low is not None and high is not None and low > high:
            problems.append(
                f"{where}: min_prompt_tokens ({low}) is above max_prompt_tokens ({high}); "
                "no request could match"
            )
    check_names(f"{path}.fallbacks.context_window", model.fallbacks.context_window, True)
    check_names(f"{path}.fallbacks.content_filter", model.fallbacks.content_filter, True)
    if model.retry is not None:
        retry = model.retry
        if retry.attempts < 0:
            problems.append(f"{path}.retry.attempts: {retry.attempts} is negative; use 0 or more")
        if retry.base <= 0:
            problems.append(f"{path}.retry.base: {retry.base} must be more than 0 seconds")
        if retry.cap < retry.base:
            problems.append(
                f"{path}.retry.cap: {retry.cap} is below retry.base ({retry.base}); the cap "
                "must be at least the base delay"
            )
    if model.hedge is not None:
        hedge = model.hedge
        if (hedge.after is None) == (hedge.percentile is None):
            problems.append(
                f"{path}.hedge: give exactly one of 'after' (seconds) or 'percentile' (of the "
                "target's recent time to first token), e.g. hedge = { after = 0.5 }"
            )
        if hedge.after is not None and hedge.after <= 0:
            problems.append(f"{path}.hedge.after: {hedge.after} must be more than 0 seconds")
        if hedge.percentile is not None and not 0 < hedge.percentile < 100:
            problems.append(
                f"{path}.hedge.percentile: {hedge.percentile} is out of range; use a number "
                "between 0 and 100, e.g. 95"
            )
        if not 0 < hedge.min <= hedge.max:
            problems.append(
                f"{path}.hedge: min ({hedge.min}) and max ({hedge.max}) must satisfy 0 < min <= max"
            )
        if len(model.targets) < 2:
            problems.append(f"{path}.hedge: hedging needs a second target to race; add one")
    regions = sorted({t.region for t in model.targets if t.region})
    for field in ("require_region", "prefer_region"):
        value = getattr(model, field)
        if value is not None and value not in regions:
            problems.append(
                f"{path}.{field}: no target of model '{model.name}' is in region {value!r}; "
                + (
                    f"its regions are: {', '.join(regions)}"
                    if regions
                    else 'set region = "..." on its targets'
                )
            )


def _structure_plugin_settings(raw: Any, registry: Registry, problems: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not isinstance(raw, dict):
        return out  # reported by disabled_plugins() before plugins load
    known = [name for name in registry.settings if name not in registry.sections]
    for name, table in raw.items():
        if name in RESERVED_PLUGIN_KEYS:
            continue
        path = f"plugins.{name}"
        if name in registry.sections:
            problems.append(
                f"{path}: these settings are a top-level section; write them as [{name}] "
                f"instead of [plugins.{name}]"
            )
            continue
        if name not in registry.settings:
            problems.append(
                f"{path}: no installed plugin takes settings named {name!r}"
                f"{_closest(name, known)}; {_one_of('plugins with settings', known)}"
            )
            continue
        settings = structure(table, registry.settings[name], path, problems)
        if settings is not None:
            out[name] = settings
    for name, cls in registry.settings.items():
        if name not in out and name not in raw and name not in registry.sections:
            made = structure({}, cls, f"plugins.{name}", problems)
            if made is not None:
                out[name] = made
    return out


def _structure_sections(
    data: Mapping[str, Any], registry: Registry, problems: list[str]
) -> dict[str, Any]:
    """The top-level sections plugins own (``register(name, cls, section=True)``), each
    checked by its plugin's settings class at its own path; an absent one gets the defaults."""
    out: dict[str, Any] = {}
    for name in sorted(registry.sections):
        if name in TOP_LEVEL:
            problems.append(
                f"{name}: a plugin claims the core section [{name}]; rename its settings"
            )
            continue
        made = structure(data.get(name, {}), registry.settings[name], name, problems)
        if made is not None:
            out[name] = made
    return out
