"""The plugin manager: built-in providers, then third-party plugins from entry points.

`BATCHLING_DISABLE_PLUGINS` (names separated by commas) keeps plugins from loading: a built-in
by its name (`openai`, `anthropic`, `gemini`, `mistral`) or module, a third-party plugin by its
entry point name or by its distribution's name (all of that distribution's plugins).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import logging
import os
import re
import threading
from types import ModuleType

import pluggy

from batchling import hookspecs
from batchling.errors import PluginError
from batchling.provider import Provider

log = logging.getLogger(__name__)

# Built-in provider plugins: the name they are blocked by, their module, and the SDK each one
# needs. A built-in whose SDK is not installed is skipped quietly: a user with only `openai`
# installed must not see anthropic errors.
BUILTIN_PLUGINS: tuple[tuple[str, str, str], ...] = (
    ("openai", "batchling.providers.openai", "openai"),
    ("anthropic", "batchling.providers.anthropic", "anthropic"),
    ("gemini", "batchling.providers.google_genai", "google.genai"),
    ("mistral", "batchling.providers.mistral", "mistralai"),
)

ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME
DISABLE_ENV = "BATCHLING_DISABLE_PLUGINS"
BUILT_IN = "built-in"


@dataclasses.dataclass(frozen=True, slots=True)
class PluginInfo:
    """One plugin as `batchling plugins` shows it."""

    name: str
    """The name it is registered (and blocked) under: an entry point name, or a built-in's."""
    source: str
    """`"built-in"`, or the distribution that brings it and its version."""
    module: str
    providers: tuple[str, ...]
    """The providers it registered that are in use (a later plugin may replace one)."""
    observer_hooks: tuple[str, ...]


_lock = threading.Lock()
_manager: pluggy.PluginManager | None = None
_providers: dict[str, Provider] | None = None
_sources: dict[str, str] = {}
"""Plugin name -> where it comes from (`built-in`, or distribution and version)."""
_registered_by: dict[str, str] = {}
"""Provider name -> the plugin whose registration is in use."""
_blocked: list[str] = []
"""The plugins `BATCHLING_DISABLE_PLUGINS` kept from loading."""


def _disabled_names() -> set[str]:
    value = os.environ.get(DISABLE_ENV, "")
    return {_normalize(name) for name in re.split(r"[,\s]+", value) if name}


def _normalize(name: str) -> str:
    # Distribution names compare normalized (PEP 503): `batchling_echo` is `batchling-echo`.
    return re.sub(r"[-_.]+", "-", name).lower() if "." not in name else name.lower()


def _load_builtin(module_name: str, sdk: str) -> ModuleType | None:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        # The SDK itself, one of its modules, or its namespace parent (`google` for
        # `google.genai`) is missing.
        if missing and (
            missing == sdk or missing.startswith(sdk + ".") or sdk.startswith(missing + ".")
        ):
            log.debug("skipping built-in provider %s: %s is not installed", module_name, sdk)
            return None
        raise


def _new_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    disabled = _disabled_names()
    matched: set[str] = set()
    _sources.clear()
    _blocked.clear()
    for name, module_name, sdk in BUILTIN_PLUGINS:
        hit = disabled & {_normalize(name), _normalize(module_name)}
        if hit:
            matched |= hit
            manager.set_blocked(name)
            _blocked.append(name)
            continue
        module = _load_builtin(module_name, sdk)
        if module is not None:
            manager.register(module, name=name)
            _sources[name] = BUILT_IN
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if manager.get_plugin(entry_point.name) is not None or manager.is_blocked(entry_point.name):
            continue
        dist = entry_point.dist
        hit = disabled & {
            _normalize(entry_point.name),
            *({_normalize(dist.name)} if dist is not None else set()),
        }
        if hit:
            matched |= hit
            manager.set_blocked(entry_point.name)
            _blocked.append(entry_point.name)
            continue
        try:
            plugin = entry_point.load()
        except Exception as exc:
            dist_name = dist.name if dist is not None else "unknown package"
            raise PluginError(
                f"batchling plugin {entry_point.name!r} ({entry_point.value}, from {dist_name}) "
                f"failed to load: {exc!r}. Fix or uninstall that package, or set "
                f"{DISABLE_ENV}={entry_point.name} to run without it."
            ) from exc
        manager.register(plugin, name=entry_point.name)
        _sources[entry_point.name] = f"{dist.name} {dist.version}" if dist is not None else "?"
    unknown = disabled - matched
    if unknown:
        log.warning(
            "%s names %s, which is no installed batchling plugin (see `batchling plugins`)",
            DISABLE_ENV, ", ".join(sorted(unknown)),
        )  # fmt: skip
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(
            f"Plugin {exc.plugin!r} implements a hook batchling does not define: {exc}. "
            "Check the hook's spelling against batchling.hookspecs."
        ) from exc
    return manager


def _collect_providers(manager: pluggy.PluginManager) -> dict[str, Provider]:
    providers: dict[str, Provider] = {}
    current_plugin = "?"
    _registered_by.clear()

    def register(provider: Provider) -> None:
        if not isinstance(provider, Provider):
            raise PluginError(
                f"Plugin {current_plugin!r} registered {provider!r}, which does not implement "
                "batchling.provider.Provider."
            )
        providers[provider.name] = provider
        _registered_by[provider.name] = current_plugin

    # Call plugins one at a time in registration order (built-ins first), so that an error
    # names its plugin and a third-party provider replaces a built-in one of the same name.
    for plugin_name, plugin in manager.list_name_plugin():
        hook = getattr(plugin, "batchling_register_providers", None)
        if hook is None:
            continue
        current_plugin = plugin_name
        try:
            hook(register=register)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(
                f"Plugin {plugin_name!r} failed in batchling_register_providers: {exc!r}"
            ) from exc
    return providers


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, loading plugins on first use."""
    global _manager
    with _lock:
        if _manager is None:
            _manager = _new_manager()
        return _manager


def get_providers() -> dict[str, Provider]:
    """Every registered provider by name, loading plugins on first use."""
    global _providers
    manager = get_plugin_manager()
    with _lock:
        if _providers is None:
            _providers = _collect_providers(manager)
        return dict(_providers)


def plugin_report() -> tuple[list[PluginInfo], list[str]]:
    """The loaded plugins (with the providers they brought) and the blocked ones' names."""
    manager = get_plugin_manager()
    providers = get_providers()
    with _lock:
        registered_by = dict(_registered_by)
        sources = dict(_sources)
        blocked = list(_blocked)
    infos = []
    for plugin_name, plugin in manager.list_name_plugin():
        hooks = tuple(
            hook
            for hook in dir(plugin)
            if hook.startswith("batchling_") and hook != "batchling_register_providers"
        )
        infos.append(
            PluginInfo(
                name=plugin_name,
                source=sources.get(plugin_name, "?"),
                module=getattr(plugin, "__name__", type(plugin).__module__),
                providers=tuple(
                    sorted(name for name in providers if registered_by.get(name) == plugin_name)
                ),
                observer_hooks=hooks,
            )
        )
    return infos, blocked


def reset_plugins() -> None:
    """Forget loaded plugins so the next use loads them again (for tests)."""
    global _manager, _providers
    with _lock:
        _manager = None
        _providers = None
