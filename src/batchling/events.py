"""What happens during a `batchify()` block, told to observers as it happens.

The scheduler and the context report to one `RunObserver`; `Observers` fans each event out to
the block's own observers (the run report, the progress display) and to plugins implementing
the observer hooks in `batchling.hookspecs`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from batchling.provider import BatchStatus, SubmittedBatch

log = logging.getLogger("batchling")


class RunObserver(Protocol):
    """Receives the events of one `batchify()` block. Every method must return quickly."""

    def batch_submitted(self, batch: SubmittedBatch, *, resumed: bool) -> None:
        """A job was created (or, with `resumed`, picked up from the journal) and is followed."""

    def batch_polled(self, batch: SubmittedBatch, status: BatchStatus) -> None:
        """A job's status was read."""

    def batch_finished(self, batch: SubmittedBatch, status: BatchStatus) -> None:
        """A job reached a terminal state and its results were routed."""

    def request_passed_through(self, provider: str, kind: str, reason: str) -> None:
        """A call was sent in real time, at full price."""

    def request_served_from_journal(self, provider: str) -> None:
        """A call was answered with a result a previous run stored."""


class Observers:
    """Fans events out to several observers and to the plugin observer hooks.

    An observer that raises is logged and skipped: watching a run must never break it.
    """

    def __init__(self, observers: Sequence[RunObserver]) -> None:
        self._observers = list(observers)

    def _each(self, event: str, *args: object, **kwargs: object) -> None:
        for observer in self._observers:
            try:
                getattr(observer, event)(*args, **kwargs)
            except Exception:
                log.exception("batchling observer %r failed on %s", observer, event)
        # Each plugin's observer is called on its own: pluggy stops a hook call at the first
        # exception, and one faulty plugin must not silence the others.
        from batchling.plugins import get_plugin_manager

        hook = getattr(get_plugin_manager().hook, f"batchling_{event}", None)
        if hook is None:
            return
        for impl in hook.get_hookimpls():
            try:
                impl.function(*[kwargs[name] for name in impl.argnames])
            except Exception:
                log.exception("batchling plugin %r failed in its %s hook", impl.plugin_name, event)

    def batch_submitted(self, batch: SubmittedBatch, *, resumed: bool) -> None:
        self._each("batch_submitted", batch=batch, resumed=resumed)

    def batch_polled(self, batch: SubmittedBatch, status: BatchStatus) -> None:
        self._each("batch_polled", batch=batch, status=status)

    def batch_finished(self, batch: SubmittedBatch, status: BatchStatus) -> None:
        self._each("batch_finished", batch=batch, status=status)

    def request_passed_through(self, provider: str, kind: str, reason: str) -> None:
        self._each("request_passed_through", provider=provider, kind=kind, reason=reason)

    def request_served_from_journal(self, provider: str) -> None:
        self._each("request_served_from_journal", provider=provider)
