"""The plugin manager: built-in providers, then third-party plugins from entry points."""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import threading
from types import ModuleType

import pluggy

from batchling import hookspecs
from batchling.errors import PluginError
from batchling.provider import Provider

log = logging.getLogger(__name__)

# Built-in provider modules and the SDK each one needs. A built-in whose SDK is not installed
# is skipped quietly: a user with only `openai` installed must not see anthropic errors.
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("batchling.providers.openai", "openai"),
    ("batchling.providers.anthropic", "anthropic"),
    ("batchling.providers.google_genai", "google.genai"),
    ("batchling.providers.mistral", "mistralai"),
)

ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME

_lock = threading.Lock()
_manager: pluggy.PluginManager | None = None
_providers: dict[str, Provider] | None = None


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
    for module_name, sdk in BUILTIN_PLUGINS:
        module = _load_builtin(module_name, sdk)
        if module is not None:
            manager.register(module, name=module_name)
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if manager.get_plugin(entry_point.name) is not None or manager.is_blocked(entry_point.name):
            continue
        try:
            plugin = entry_point.load()
        except Exception as exc:
            dist = entry_point.dist.name if entry_point.dist is not None else "unknown package"
            raise PluginError(
                f"batchling plugin {entry_point.name!r} ({entry_point.value}, from {dist}) "
                f"failed to load: {exc!r}. Fix or uninstall that package."
            ) from exc
        manager.register(plugin, name=entry_point.name)
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

    def register(provider: Provider) -> None:
        if not isinstance(provider, Provider):
            raise PluginError(
                f"Plugin {current_plugin!r} registered {provider!r}, which does not implement "
                "batchling.provider.Provider."
            )
        providers[provider.name] = provider

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


def reset_plugins() -> None:
    """Forget loaded plugins so the next use loads them again (for tests)."""
    global _manager, _providers
    with _lock:
        _manager = None
        _providers = None
