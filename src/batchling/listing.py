"""Finding a job in a provider's listing of batch jobs, newest first.

A run that stopped before it learned a job's id looks the job up by the tag it gave it. The
listing is paged; pages are read back to the time the submission was recorded, less a margin
for the provider's clock being behind this machine's.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

CLOCK_SKEW_SECONDS = 60.0
"""How much earlier than `since` (this machine's clock) the provider may date the job."""
MAX_PAGES = 100
"""Pages read at the most, unless a provider says otherwise."""

_T = TypeVar("_T")


async def find_job(
    fetch_page: Callable[[Any], Awaitable[tuple[Sequence[_T], Any]]],
    is_it: Callable[[_T], bool],
    created_at: Callable[[_T], float],
    *,
    since: float | None,
    margin_seconds: float = CLOCK_SKEW_SECONDS,
    max_pages: int | None = MAX_PAGES,
) -> _T | None:
    """The first job of the listing `is_it` picks, or `None`.

    `fetch_page(cursor)` returns one page and the cursor of the next (`None` after the last;
    the first call gets `None`). Pages are read until one holds a job created before `since`
    less `margin_seconds`, at most `max_pages` of them (`None`: no limit); without `since`
    (a look-up right after a create attempt) only the first.
    """
    cursor: Any = None
    for _ in range(max_pages) if max_pages is not None else itertools.count():
        jobs, cursor = await fetch_page(cursor)
        for job in jobs:
            if is_it(job):
                return job
        if since is None or cursor is None or not jobs:
            return None
        if min(created_at(job) for job in jobs) < since - margin_seconds:
            return None
    return None
