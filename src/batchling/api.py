"""`batchify()`: the context manager that sends SDK calls made inside it through Batch APIs."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import os
import re
import time
import warnings
from collections.abc import Callable
from types import TracebackType
from typing import Any

from batchling import journal, patching
from batchling.errors import DeadlineReachedError, NotBatchableError, NotBatchedWarning
from batchling.journal import Journal
from batchling.plugins import get_providers
from batchling.provider import BatchRequest, NotBatchable, PatchTarget, Provider
from batchling.report import RunReport
from batchling.scheduler import Scheduler, SchedulerSettings

log = logging.getLogger("batchling")

DEFAULT_BATCH_SIZE = 50_000
DEFAULT_BATCH_WINDOW_SECONDS = 2.0
DEFAULT_POLL_INTERVAL_SECONDS = 10.0
DEFAULT_COMPLETION_WINDOW = "24h"

EXIT_GRACE_LOOP_TURNS = 5

_COMPLETION_WINDOW = re.compile(r"^[1-9][0-9]*[hd]$")


def batchify(
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    batch_window_seconds: float = DEFAULT_BATCH_WINDOW_SECONDS,
    poll_interval_seconds: float = DEFAULT_POLL_INTERVAL_SECONDS,
    completion_window: str = DEFAULT_COMPLETION_WINDOW,
    dry_run: bool = False,
    cache: bool | str | os.PathLike[str] = True,
    strict: bool = False,
    progress: bool | None = None,
    deadline: float | datetime.timedelta | datetime.datetime | None = None,
    cancel_on_exit: bool = False,
    resubmit_expired: int = 1,
) -> Batchify:
    """Send the provider SDK calls made inside the block through the providers' Batch APIs.

    Use it around code that already makes concurrent calls with an official SDK client::

        async with batchify():
            replies = await asyncio.gather(*(client.chat.completions.create(...) for ...))

    Every supported call made inside the block (including in tasks it starts, and coroutines
    created before it but first awaited inside it) is queued instead of sent. Queues are
    per provider, client identity (API key, base URL, organization, project, headers), endpoint
    and model. Each queue becomes one batch job; when the job ends, every caller gets exactly
    what the real-time call would have returned, or raises the SDK's own exception for its line.
    Leaving the block waits for every call made inside it. Calls that cannot be batched (e.g.
    `stream=True`) are sent in real time with one `NotBatchedWarning` per kind.

    Args:
        batch_size: Most requests one batch job may carry; a queue reaching it is flushed at
            once. Providers' own limits (e.g. 50,000 requests or 200 MB for OpenAI) also apply.
        batch_window_seconds: How long a queue waits after its first request before it is
            flushed, so that concurrent calls land in the same job.
        poll_interval_seconds: Delay before the first status poll of a job; later polls back
            off (x1.5 each) up to two minutes apart.
        completion_window: The job's completion window as the provider names it (OpenAI
            accepts only `"24h"`).
        dry_run: Not available yet; `True` raises `NotImplementedError`.
        cache: The journal that makes re-runs free and crashes safe. `True` keeps it in the
            user cache directory (or `$BATCHLING_CACHE_DIR`), a path keeps it in that
            directory, `False` turns it off. With it, a request a previous run already sent is
            never paid for again: its stored result is returned at once, or its still running
            job is followed.
        strict: Raise `batchling.NotBatchableError` for a call that cannot be batched instead of
            sending it in real time.
        progress: Not available yet; `None` and `False` show nothing but log lines (logger
            `"batchling"`), `True` raises `NotImplementedError`.
        deadline: When results are needed at the latest: seconds after entering the block, a
            `timedelta`, or an aware `datetime`. Requests not answered by then are sent to the
            real-time endpoint at full price (reported as passed through, kind
            `"deadline"`), and their jobs are cancelled. Lines a job finishes between the
            cancel and its end may still be billed.
        cancel_on_exit: When the block ends with an error or Ctrl-C, cancel the jobs still
            running instead of leaving them to finish (a re-run picks finished ones up).
        resubmit_expired: How many times requests left unfinished by an expired job are sent
            again in a new job (their finished neighbours are kept). `0` turns this off.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if batch_window_seconds < 0:
        raise ValueError(f"batch_window_seconds must be >= 0, got {batch_window_seconds!r}")
    if poll_interval_seconds <= 0:
        raise ValueError(f"poll_interval_seconds must be > 0, got {poll_interval_seconds!r}")
    if not isinstance(completion_window, str) or not _COMPLETION_WINDOW.match(completion_window):
        raise ValueError(
            f"completion_window must look like '24h' or '7d', got {completion_window!r}"
        )
    if isinstance(resubmit_expired, bool) or not isinstance(resubmit_expired, int):
        raise ValueError(f"resubmit_expired must be an integer >= 0, got {resubmit_expired!r}")
    if resubmit_expired < 0:
        raise ValueError(f"resubmit_expired must be an integer >= 0, got {resubmit_expired!r}")
    if deadline is not None and not isinstance(
        deadline, int | float | datetime.timedelta | datetime.datetime
    ):
        raise ValueError(f"deadline must be seconds, a timedelta or a datetime, got {deadline!r}")
    if isinstance(deadline, datetime.datetime) and deadline.tzinfo is None:
        raise ValueError("deadline must be a timezone-aware datetime (e.g. with tzinfo=UTC)")
    if dry_run:
        raise NotImplementedError("batchify(dry_run=True) is not available yet.")
    if progress:
        raise NotImplementedError(
            "batchify(progress=True) is not available yet; state changes are logged to the "
            "'batchling' logger."
        )
    settings = SchedulerSettings(
        batch_size=batch_size,
        batch_window_seconds=float(batch_window_seconds),
        poll_interval_seconds=float(poll_interval_seconds),
        completion_window=completion_window,
        resubmit_expired=resubmit_expired,
        cancel_on_exit=cancel_on_exit,
    )
    return Batchify(settings, strict=strict, cache=cache, deadline=deadline)


class Batchify:
    """The context manager `batchify()` returns; `report` counts what the block did."""

    def __init__(
        self,
        settings: SchedulerSettings,
        *,
        strict: bool,
        cache: bool | str | os.PathLike[str] = True,
        deadline: float | datetime.timedelta | datetime.datetime | None = None,
    ) -> None:
        self._settings = settings
        self._strict = strict
        self._cache = cache
        self._deadline = deadline
        self._journal: Journal | None = None
        self.report = RunReport()
        self._scheduler: Scheduler | None = None
        self._token: Any = None
        self._warned: set[str] = set()
        self._outstanding = 0
        self._idle = asyncio.Event()

    async def __aenter__(self) -> Batchify:
        if self._scheduler is not None:
            raise RuntimeError(
                "This batchify() context is already active; call batchify() again for another "
                "block."
            )
        providers = get_providers()
        patching.install(providers.values())
        self.report = RunReport()
        self._warned = set()
        self._outstanding = 0
        self._idle = asyncio.Event()
        self._idle.set()
        path = journal.resolve_path(self._cache)
        self._journal = journal.Journal(path) if path is not None else None
        settings = dataclasses.replace(self._settings, deadline=_deadline_time(self._deadline))
        self._scheduler = Scheduler(settings, self.report, self._journal)
        self._token = patching.activate(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        scheduler = self._scheduler
        assert scheduler is not None, "__aexit__ without __aenter__"
        patching.deactivate(self._token)
        try:
            if exc_type is None:
                # Every call made inside the block is waited for, including calls of tasks
                # nobody awaited and calls those tasks make after their first result.
                scheduler.close()
                while True:
                    # Tasks started in the block but not yet run get a few loop turns to reach
                    # the SDK before the block decides that nothing is outstanding.
                    for _ in range(EXIT_GRACE_LOOP_TURNS):
                        await asyncio.sleep(0)
                    if self._outstanding == 0:
                        break
                    await self._idle.wait()
                await scheduler.drain()
            else:
                left = await scheduler.abandon()
                if left:
                    ids = ", ".join(f"{batch.provider}:{batch.batch_id}" for batch in left)
                    if self._settings.cancel_on_exit:
                        log.warning(
                            "batchify() block ended with %s; asked the provider to cancel: %s",
                            exc_type.__name__, ids,
                        )  # fmt: skip
                    elif self._journal is not None:
                        log.warning(
                            "batchify() block ended with %s; batch jobs left running and "
                            "journaled (run again to collect their results, or `batchling "
                            "batches cancel`): %s",
                            exc_type.__name__, ids,
                        )  # fmt: skip
                    else:
                        log.warning(
                            "batchify() block ended with %s; batch jobs left running at the "
                            "provider (cache=False: a re-run will not find them): %s",
                            exc_type.__name__, ids,
                        )  # fmt: skip
        finally:
            self._scheduler = None
            if self._journal is not None:
                self._journal.close()
                self._journal = None

    def __enter__(self) -> Batchify:
        raise TypeError(
            "batchify() batches async SDK clients and must be used with `async with "
            "batchify():`. Sync clients (`with batchify():`) are not supported yet."
        )

    def __exit__(self, *exc_info: object) -> None:
        """Never reached: `__enter__` refuses."""

    def route(
        self,
        provider: Provider,
        target: PatchTarget,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Called by the wrappers for every intercepted call made inside this block."""
        if target.hook:
            return provider.hook(target, wrapped, instance, args, kwargs)
        scheduler = self._scheduler
        if scheduler is None:
            # A task started inside the block that outlived it: the block is over, so the call
            # is an ordinary real-time call, as outside any block.
            return wrapped(*args, **kwargs)
        return self._tracked_call(scheduler, provider, target, wrapped, instance, args, kwargs)

    async def _tracked_call(
        self,
        scheduler: Scheduler,
        provider: Provider,
        target: PatchTarget,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        self._outstanding += 1
        self._idle.clear()
        try:
            return await self._batched_call(
                scheduler, provider, target, wrapped, instance, args, kwargs
            )
        finally:
            self._outstanding -= 1
            if self._outstanding == 0:
                self._idle.set()

    async def _batched_call(
        self,
        scheduler: Scheduler,
        provider: Provider,
        target: PatchTarget,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        request = await provider.to_request(target, instance, args, kwargs)
        if request is None:
            return await wrapped(*args, **kwargs)
        if isinstance(request, NotBatchable):
            self._pass_through(provider, request)
            return await wrapped(*args, **kwargs)
        return await self._with_deadline_fallback(
            scheduler, provider, request, wrapped, args, kwargs
        )

    async def _await_result(
        self, scheduler: Scheduler, provider: Provider, request: BatchRequest
    ) -> Any:
        future = scheduler.enqueue(provider, request)
        try:
            result = await future
        except asyncio.CancelledError:
            future.cancel()
            raise
        return await provider.to_response(request, result)

    async def _with_deadline_fallback(
        self,
        scheduler: Scheduler,
        provider: Provider,
        request: BatchRequest,
        wrapped: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        try:
            return await self._await_result(scheduler, provider, request)
        except DeadlineReachedError:
            self._pass_through(
                provider,
                NotBatchable(
                    "deadline",
                    "The batchify(deadline=...) passed before this request's batch finished.",
                ),
                refuse_under_strict=False,
            )
            return await wrapped(*args, **kwargs)

    def _pass_through(
        self, provider: Provider, why: NotBatchable, *, refuse_under_strict: bool = True
    ) -> None:
        if self._strict and refuse_under_strict:
            raise NotBatchableError(why.kind, why.reason)
        self.report.passed_through[why.kind] += 1
        if why.kind not in self._warned:
            self._warned.add(why.kind)
            warnings.warn(
                NotBatchedWarning(
                    f"{why.reason} Sent in real time at full price ({provider.name}). Further "
                    f"calls of this kind in this batchify() block are counted, not reported "
                    f"again; pass strict=True to refuse them instead."
                ),
                stacklevel=4,
            )


def _deadline_time(
    deadline: float | datetime.timedelta | datetime.datetime | None,
) -> float | None:
    """The deadline as Unix time, counting relative deadlines from now."""
    if deadline is None:
        return None
    if isinstance(deadline, datetime.datetime):
        return deadline.timestamp()
    if isinstance(deadline, datetime.timedelta):
        return time.time() + deadline.total_seconds()
    return time.time() + float(deadline)
