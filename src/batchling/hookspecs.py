"""The hooks a batchling plugin can implement.

A plugin is a module (or object) with functions decorated by `batchling.hookimpl`, made known
through the `batchling` entry-point group::

    [project.entry-points.batchling]
    my_provider = "my_package.batchling_plugin"
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from batchling.provider import Provider

PROJECT_NAME = "batchling"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def batchling_register_providers(register: Callable[[Provider], None]) -> None:
    """Register providers by calling `register(provider)` once for each.

    `provider` implements `batchling.provider.Provider`. Registering a name that is already
    registered replaces the earlier provider: third-party plugins load after the built-ins, so
    a plugin can override a built-in provider.
    """
