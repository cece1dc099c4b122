"""An observer-only batchling plugin (entry point `echo_observer`): it registers no provider.

It records what every `batchify()` block in the process does, as a metrics or tracing plugin
would. The hooks run on the block's event loop thread; they only append to a bounded deque.
"""

from __future__ import annotations

import collections
from typing import Any

import batchling
from batchling.provider import BatchStatus, SubmittedBatch

EVENTS: collections.deque[tuple[Any, ...]] = collections.deque(maxlen=10_000)
"""`(event, provider, ...)` tuples, oldest first."""


@batchling.hookimpl
def batchling_batch_submitted(batch: SubmittedBatch, resumed: bool) -> None:
    EVENTS.append(("submitted", batch.provider, batch.batch_id, batch.size, resumed))


@batchling.hookimpl
def batchling_batch_polled(batch: SubmittedBatch, status: BatchStatus) -> None:
    EVENTS.append(("polled", batch.provider, batch.batch_id, status.provider_status))


@batchling.hookimpl
def batchling_batch_finished(batch: SubmittedBatch, status: BatchStatus) -> None:
    EVENTS.append(("finished", batch.provider, batch.batch_id, status.state, status.failed))


@batchling.hookimpl
def batchling_request_passed_through(provider: str, kind: str, reason: str) -> None:
    EVENTS.append(("passed_through", provider, kind))


@batchling.hookimpl
def batchling_request_served_from_journal(provider: str) -> None:
    EVENTS.append(("from_journal", provider))


def events(provider: str) -> list[tuple[Any, ...]]:
    """The recorded events of one provider."""
    return [event for event in EVENTS if event[1] == provider]
