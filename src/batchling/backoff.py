"""Capped exponential backoff with jitter, for polling and for retrying provider calls."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from batchling.errors import BatchCreationUncertainError

_T = TypeVar("_T")


def delays(
    first: float, *, cap: float, factor: float = 1.5, jitter: float = 0.1
) -> Iterator[float]:
    """Yield `first`, then each delay `factor` times the last, never above `cap`.

    Each delay is spread by up to `jitter` (a fraction) so that many clients do not retry in step.
    """
    delay = first
    cap = max(cap, first)
    while True:
        spread = delay * jitter
        yield max(0.0, delay + random.uniform(-spread, spread))
        delay = min(delay * factor, cap)


async def retrying(
    call: Callable[[], Awaitable[_T]],
    *,
    is_transient: Callable[[BaseException], bool],
    attempts: int = 6,
    first: float = 1.0,
    cap: float = 30.0,
) -> _T:
    """`await call()`, retried with backoff while it fails transiently; the last error is
    raised once `attempts` are used up."""
    waits = delays(first, cap=cap)
    for attempt in range(attempts):
        try:
            return await call()
        except Exception as exc:
            if attempt == attempts - 1 or not is_transient(exc):
                raise
        await asyncio.sleep(next(waits))
    raise AssertionError("unreachable")


async def create_once(
    create: Callable[[], Awaitable[_T]],
    find_created: Callable[[], Awaitable[_T | None]],
    *,
    is_transient: Callable[[BaseException], bool],
    attempts: int = 6,
) -> _T:
    """Create a paid job, retrying transient failures without ever creating it twice.

    An SDK's own retry of a create that timed out (and may have succeeded) would create a
    second paid job, so `create` must run with the SDK's retries off. After a failed attempt,
    `find_created` asks the provider for the job that attempt may have created (e.g. by a tag
    carrying the submission id) and that job is adopted; if the provider cannot tell (lookups
    keep failing), `BatchCreationUncertainError` is raised rather than risking a second job, and
    so is any later failure: the caller must then keep the submission for a later look-up.
    """
    waits = delays(1.0, cap=30.0)
    for attempt in range(attempts):
        try:
            return await create()
        except Exception as exc:
            if attempt == attempts - 1 or not is_transient(exc):
                if attempt > 0:
                    # The first attempt failed transiently: its job may exist all the same.
                    raise _uncertain(exc) from exc
                raise
        await asyncio.sleep(next(waits))
        try:
            existing = await retrying(find_created, is_transient=is_transient)
        except Exception as exc:
            raise _uncertain(exc) from exc
        if existing is not None:
            return existing
    raise AssertionError("unreachable")


def _uncertain(exc: BaseException) -> BatchCreationUncertainError:
    return BatchCreationUncertainError(
        f"Creating the batch job failed ({type(exc).__name__}: {exc}) after an earlier attempt "
        "that may have created it, and the provider could not say whether it did. With the "
        "journal on (the default), running the program again looks the job up and follows it, "
        "or submits anew if there is none: nothing is paid twice."
    )
