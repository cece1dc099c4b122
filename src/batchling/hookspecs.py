"""The hooks a batchling plugin can implement.

A plugin is a module (or object) with functions decorated by `batchling.hookimpl`, made known
through the `batchling` entry-point group::

    [project.entry-points.batchling]
    my_provider = "my_package.batchling_plugin"
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from batchling.provider import BatchStatus, Provider, SubmittedBatch

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


# Observer hooks: called for every `batchify()` block in the process, as things happen. They
# must return quickly and must not raise (an exception is logged and ignored).


@hookspec
def batchling_batch_submitted(batch: SubmittedBatch, resumed: bool) -> None:
    """A batch job was created, or (`resumed`) picked up from the journal, and is followed."""


@hookspec
def batchling_batch_polled(batch: SubmittedBatch, status: BatchStatus) -> None:
    """A batch job's status was read."""


@hookspec
def batchling_batch_finished(batch: SubmittedBatch, status: BatchStatus) -> None:
    """A batch job ended and its results were delivered to the callers."""


@hookspec
def batchling_request_passed_through(provider: str, kind: str, reason: str) -> None:
    """A call inside `batchify()` was sent to the real-time endpoint at full price."""


@hookspec
def batchling_request_served_from_journal(provider: str) -> None:
    """A call was answered from the journal: a previous run already paid for it."""
