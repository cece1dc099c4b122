"""`batchify()`: the context manager that sends SDK calls made inside it through Batch APIs."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import os
import re
import sys
import threading
import time
import types
import warnings
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any

from batchling import collector, display, journal, patching
from batchling.dryrun import DryRunFinished, DryRunPlan
from batchling.errors import (
    DeadlineReachedError,
    JournalError,
    NotBatchableError,
    NotBatchedWarning,
)
from batchling.events import Observers, RunObserver
from batchling.journal import Journal
from batchling.plugins import get_providers
from batchling.provider import BatchRequest, NotBatchable, PatchTarget, Provider
from batchling.report import RunReport
from batchling.scheduler import Answered, Scheduler, SchedulerSettings

log = logging.getLogger("batchling")

DEFAULT_BATCH_SIZE = 50_000
DEFAULT_BATCH_WINDOW_SECONDS = 2.0
DEFAULT_POLL_INTERVAL_SECONDS = 10.0
DEFAULT_COMPLETION_WINDOW = "24h"

EXIT_GRACE_LOOP_TURNS = 5
DRY_RUN_SETTLE_SECONDS = 0.25
"""A dry run ends when no new call arrived for this long: the program waits for results."""

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
        dry_run: Send nothing. Every call is recorded instead, until the program waits for a
            result it cannot get; then a summary (requests, batch jobs, estimated tokens and
            cost per provider, endpoint and model) is printed to stderr and the program
            stops with exit code 0 (`SystemExit(0)`). Requests the journal already knows
            show as already submitted or cached.
        cache: The journal that makes re-runs free and crashes safe. `True` keeps it in the
            user cache directory (or `$BATCHLING_CACHE_DIR`), a path keeps it in that
            directory, `False` turns it off. With it, a request a previous run already sent is
            never paid for again: its stored result is returned at once, or its still running
            job is followed.
        strict: Raise `batchling.NotBatchableError` for a call that cannot be batched instead of
            sending it in real time.
        progress: `None` (default): a live display of the batch jobs on stderr when it is a
            terminal (and `$CI` is not set), concise lines at state changes otherwise, and a
            summary at exit. `True`: the live display even off a terminal. `False`: state
            change lines only, no summary. Nothing is ever written to stdout.
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
    settings = SchedulerSettings(
        batch_size=batch_size,
        batch_window_seconds=float(batch_window_seconds),
        poll_interval_seconds=float(poll_interval_seconds),
        completion_window=completion_window,
        resubmit_expired=resubmit_expired,
        cancel_on_exit=cancel_on_exit,
    )
    return Batchify(
        settings,
        strict=strict,
        cache=cache,
        deadline=deadline,
        dry_run=dry_run,
        progress=progress,
    )


_RUN_ORIGINAL = object()
"""Returned by the routing steps when the SDK's own method must take the call (a request it
makes on the way may still be batched, at a deeper interception point)."""
_SEND_REAL_TIME = object()
"""Returned by the routing steps when the call goes to the real-time endpoint as it is."""
_DEADLINE = NotBatchable(
    "deadline", "The batchify(deadline=...) passed before this request's batch finished."
)
_NOT_PROGRAM = frozenset({"batchling", "wrapt"})
"""Packages whose frames a warning never points at, besides the wrapped SDKs'."""
_LOOP_PLUMBING = frozenset({"asyncio", "concurrent", "threading", "contextvars", "uvloop"})
"""Where a call's stack ends when it was started as a task (`gather`, `create_task`): the
program's line is not on it then."""


def _package_of(module: str) -> str:
    """The package a module belongs to: its first importable component (`google.genai` for
    `google.genai.models`: `google` is a namespace shared by many distributions)."""
    parts = module.split(".")
    for end in range(1, len(parts)):
        name = ".".join(parts[:end])
        if getattr(sys.modules.get(name), "__file__", None):
            return name
    return module


def _within(module: str, packages: frozenset[str]) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


def _warn_at_program(warning: Warning, start: types.FrameType | None = None) -> None:
    """Warn at the program's own line that made the call: the first frame, from `start` (else
    the caller's) outwards, outside batchling, wrapt and the SDKs the providers wrap. A call
    started as a task has no such frame: the SDK method the program called is named instead."""
    packages = _NOT_PROGRAM | {
        _package_of(target.module)
        for provider in get_providers().values()
        for target in provider.targets
    }
    frame: types.FrameType | None = start if start is not None else sys._getframe(1)
    sdk_method: types.FrameType | None = None
    while frame is not None:
        module = frame.f_globals.get("__name__")
        module = module if isinstance(module, str) else ""
        if not _within(module, packages):
            if module.partition(".")[0] in _LOOP_PLUMBING:
                frame = None
            break
        if not _within(module, _NOT_PROGRAM):
            sdk_method = frame
        frame = frame.f_back
    at = frame or sdk_method
    if at is None:
        warnings.warn(warning, stacklevel=2)
        return
    warnings.warn_explicit(
        warning,
        type(warning),
        at.f_code.co_filename,
        at.f_lineno,
        module=at.f_globals.get("__name__"),
        registry=at.f_globals.setdefault("__warningregistry__", {}),
        module_globals=at.f_globals,
    )


class _LoopThread:
    """The event loop thread a block runs sync clients' batches on."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="batchling-scheduler", daemon=True
        )
        self._thread.start()

    def run_exit(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run the block's exit work `coroutine` on the loop and wait for its result; its task
        is named so that `close` can stop it first."""
        return asyncio.run_coroutine_threadsafe(_named_exit(coroutine), self.loop).result()

    def close(self) -> None:
        """Stop the loop and its thread. Tasks still running (those of a block interrupted by
        Ctrl-C, say) are cancelled first and given `LOOP_THREAD_UNWIND_SECONDS` to unwind, so
        their cleanup (journal writes included) is done before the block closes the journal."""
        try:
            if self._thread.is_alive() and threading.current_thread() is not self._thread:
                asyncio.run_coroutine_threadsafe(_cancel_all_tasks(), self.loop).result(
                    timeout=LOOP_THREAD_UNWIND_SECONDS + 5
                )
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()
            self.loop.close()


LOOP_THREAD_UNWIND_SECONDS = 10.0


async def _cancel_all_tasks() -> None:
    # The block's own exit work first (an interrupted `abandon` answers its callers with a
    # batchling error as it unwinds), then whatever is left.
    tasks = asyncio.all_tasks() - {asyncio.current_task()}
    exiting = {task for task in tasks if task.get_name() == _EXIT_TASK_NAME}
    for group in (exiting, tasks - exiting):
        for task in group:
            task.cancel()
        if group:
            await asyncio.wait(group, timeout=LOOP_THREAD_UNWIND_SECONDS)


_EXIT_TASK_NAME = "batchling-block-exit"


async def _named_exit(coroutine: Coroutine[Any, Any, Any]) -> Any:
    task = asyncio.current_task()
    if task is not None:
        task.set_name(_EXIT_TASK_NAME)
    return await coroutine


class _LoopState:
    """What a block keeps per event loop: a `with batchify()` block around a script may see
    several loops (each `asyncio.run` makes one), an `async with` block exactly one."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.outstanding = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.dry_waiters: list[asyncio.Future[None]] = []
        self.dry_timer: asyncio.TimerHandle | None = None


_forked_children_warned: dict[int, Batchify] = {}
"""Per forked child process, the block it last warned about (once per block and process)."""


class Batchify:
    """The context manager `batchify()` returns; `report` counts what the block did.

    `async with batchify():` batches the calls made in that block on its event loop. A plain
    `with batchify():` activates batching for everything run inside it, including code that
    starts its own event loops with `asyncio.run(...)` (this is how `batchling run` batches a
    whole script); each loop gets its own queues, which live as long as that loop runs.
    """

    def __init__(
        self,
        settings: SchedulerSettings,
        *,
        strict: bool,
        cache: bool | str | os.PathLike[str] = True,
        deadline: float | datetime.timedelta | datetime.datetime | None = None,
        dry_run: bool = False,
        progress: bool | None = None,
    ) -> None:
        self._settings = settings
        self._strict = strict
        self._cache = cache
        self._deadline = deadline
        self._dry_run = dry_run
        self._progress = progress
        self.report = RunReport()
        self.plan: DryRunPlan | None = None
        """What a dry run saw (`dry_run=True` only)."""
        self._active = False
        self._journal: Journal | None = None
        self._states: dict[asyncio.AbstractEventLoop, _LoopState] = {}
        self._scheduler_settings = settings
        self._token: Any = None
        self._warned: set[str] = set()
        self._events = Observers([])
        self._display: Any = None
        self._lock = threading.Lock()
        self._loop_thread: _LoopThread | None = None
        self._process_wide = False
        self._pid = os.getpid()
        """The process the block runs in (a forked child inherits the block, not its threads)."""
        self._within: Batchify | None = None
        """The enclosing dry run this block is part of (its calls are that dry run's)."""
        self._block_strict = strict
        """`strict` for this block: also on inside a strict block."""
        self._release_collector: Callable[[], None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def _begin(self) -> bool:
        """Start the block; False when it is part of an enclosing dry run instead."""
        if self._active or self._within is not None:
            raise RuntimeError(
                "This batchify() context is already active; call batchify() again for another "
                "block."
            )
        enclosing = patching.current_router()
        enclosing = enclosing if isinstance(enclosing, Batchify) and enclosing._active else None
        if enclosing is not None and enclosing._dry_run:
            # A block inside a dry run (a script's own block under `batchling --dry-run`) sends
            # nothing either: its calls are recorded by the dry run, which ends the program.
            self._within = enclosing
            self.report, self.plan = enclosing.report, enclosing.plan
            return False
        self._pid = os.getpid()
        # Inside a strict block (`batchling --strict`), a block refuses what it would refuse.
        self._block_strict = self._strict or (enclosing is not None and enclosing._block_strict)
        path = journal.resolve_path(self._cache)
        opened = _open_journal(path) if path is not None else None
        providers = get_providers()
        patching.install(providers.values())
        self._active = True
        self.report = RunReport()
        self.plan = DryRunPlan(batch_size=self._settings.batch_size) if self._dry_run else None
        self._warned = set()
        self._states = {}
        self._journal = opened
        self._scheduler_settings = dataclasses.replace(
            self._settings, deadline=_deadline_time(self._deadline)
        )
        observers: list[RunObserver] = []
        if not self._dry_run:
            self._display = display.make_progress(self._progress)
            if self._display is not None:
                self._display.start()
                observers.append(self._display)
        self._events = Observers(observers)
        self._token = patching.activate(self)
        if not self._dry_run:
            self._release_collector = collector.hold(self._waiting_calls)
        return True

    def _waiting_calls(self) -> int:
        """This block's calls waiting for batch results, and the callbacks about to run on its
        loops (a `gather` of many calls schedules all its tasks before the first one reaches
        batchling)."""
        waiting = 0
        for loop, state in list(self._states.items()):
            waiting += state.scheduler.waiting_calls() + len(getattr(loop, "_ready", ()))
        return waiting

    def _close_loop_thread(self, exc: BaseException | None) -> None:
        """Finish (or stop) the batches of sync clients' calls, then the loop thread."""
        if self._process_wide:
            patching.deactivate_for_process(self)
            self._process_wide = False
        loop_thread = self._loop_thread
        if loop_thread is not None:
            try:
                state = self._states.get(loop_thread.loop)
                if state is not None:
                    if exc is None and not self._dry_run:
                        try:
                            loop_thread.run_exit(self._finish(state))
                        except BaseException as interrupted:
                            # Ctrl-C while waiting for the batches of sync clients' calls
                            loop_thread.run_exit(self._stop(state, type(interrupted)))
                            raise
                    else:
                        loop_thread.run_exit(self._stop(state, type(exc) if exc else None))
            finally:
                # Also when Ctrl-C interrupts the wait: the loop's work is stopped before
                # the block closes the journal it writes to.
                loop_thread.close()
                self._loop_thread = None

    def _end(self, exc: BaseException | None) -> None:
        """Close what `_begin` opened; in a dry run, print the plan and stop the program."""
        if self._release_collector is not None:
            self._release_collector()
            self._release_collector = None
        patching.unwatch_unrouted(self)
        try:
            patching.deactivate(self._token)
        except ValueError:
            # Reset from another context (e.g. a generator finalised elsewhere): the router
            # is only cleared for this context then.
            patching.activate(None)
        self._active = False
        self._states = {}
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._display is not None:
            self._display.stop()
            if self._progress is not False:
                display.print_run_summary(self.report)
            self._display = None
        if self.plan is not None:
            display.print_dry_run_summary(self.plan)
            if exc is None or isinstance(exc, DryRunFinished):
                raise SystemExit(0) from None

    def _state(self) -> _LoopState:
        """This block's state for the running event loop, created on first use."""
        loop = asyncio.get_running_loop()
        with self._lock:
            state = self._states.get(loop)
            if state is None:
                scheduler = Scheduler(
                    self._scheduler_settings, self.report, self._journal, self._events
                )
                state = self._states[loop] = _LoopState(scheduler)
            return state

    async def __aenter__(self) -> Batchify:
        if self._begin():
            self._state()
            patching.watch_unrouted(self)
        return self

    def unrouted_call(self, provider: Provider) -> None:
        """A call made in a thread this block's context did not reach (`run_in_executor`, a
        `threading.Thread`) while the block is active: it goes out in real time, reported."""
        kind = "thread outside the block"
        with self._lock:
            self.report.passed_through[kind] += 1
            first = kind not in self._warned
            self._warned.add(kind)
        if first:
            _warn_at_program(
                NotBatchedWarning(
                    f"A {provider.name} call was made in a thread that does not carry the "
                    "batchify() block's context (loop.run_in_executor, threading.Thread), so "
                    "it was sent in real time at full price. Use asyncio.to_thread, which "
                    "carries it, or a plain `with batchify():` block, which covers every thread "
                    "of the process. Further such calls are counted, not reported again."
                ),
            )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._within is not None:
            self._within = None  # the enclosing dry run ends the program
            return
        assert self._active, "__aexit__ without __aenter__"
        state = self._states.get(asyncio.get_running_loop())
        try:
            if state is not None:
                if exc_type is None and not self._dry_run:
                    try:
                        await self._finish(state)
                    except BaseException as interrupted:
                        # Ctrl-C (or a cancel) while waiting for the block's batches
                        await self._stop(state, type(interrupted))
                        raise
                else:
                    await self._stop(state, exc_type)
        finally:
            if self._loop_thread is not None:
                # Sync clients called from this block (e.g. through asyncio.to_thread) were
                # batched on the block's own loop thread: wind it down without blocking here.
                await asyncio.to_thread(self._close_loop_thread, exc)
            self._end(exc)

    def __enter__(self) -> Batchify:
        if not self._begin():
            return self
        # Sync code hands calls to thread pools, whose threads do not inherit the context: a
        # plain `with` block batches calls from every thread of the process.
        patching.activate_for_process(self)
        self._process_wide = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._within is not None:
            self._within = None  # the enclosing dry run ends the program
            return
        try:
            self._close_loop_thread(exc)
        finally:
            self._end(exc)

    async def _finish(self, state: _LoopState) -> None:
        """Wait for every call made inside the block, including calls of tasks nobody awaited
        and calls those tasks make after their first result."""
        scheduler = state.scheduler
        scheduler.close()
        while True:
            # Tasks started in the block but not yet run get a few loop turns to reach the SDK
            # before the block decides that nothing is outstanding.
            for _ in range(EXIT_GRACE_LOOP_TURNS):
                await asyncio.sleep(0)
            if state.outstanding == 0:
                break
            await state.idle.wait()
        await scheduler.drain()

    async def _stop(self, state: _LoopState, exc_type: type[BaseException] | None) -> None:
        """Leave without waiting: the block ended with an error, Ctrl-C, or a dry run."""
        self._release_dry_waiters(state)
        if exc_type is None:
            reason = "a dry run"
        elif issubclass(exc_type, asyncio.CancelledError):
            # How Ctrl-C reaches an `async with` block under asyncio.run().
            reason = "CancelledError (Ctrl-C, or its task was cancelled)"
        elif issubclass(exc_type, KeyboardInterrupt):
            reason = "KeyboardInterrupt (Ctrl-C)"
        else:
            reason = exc_type.__name__
        await state.scheduler.abandon(f"batchify() block ended with {reason}")
        # Tasks started in the block but not yet run reach the SDK while the block is still
        # active: refused as unsent (`BatchSubmissionAbandonedError`), not sent in real time.
        for _ in range(EXIT_GRACE_LOOP_TURNS):
            await asyncio.sleep(0)

    # -- routing -----------------------------------------------------------------------------

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
        if self._pid != os.getpid():
            self._pass_through_in_forked_child(provider)
            return wrapped(*args, **kwargs)
        if not self._active:
            # A task started inside the block that outlived it: the block is over, so the call
            # is an ordinary real-time call, as outside any block.
            return wrapped(*args, **kwargs)
        if target.sync:
            return self._blocking_call(provider, target, wrapped, instance, args, kwargs)
        return self._tracked_call(provider, target, wrapped, instance, args, kwargs)

    def _blocking_call(
        self,
        provider: Provider,
        target: PatchTarget,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """A sync client's call: batched on the block's own event loop thread while the
        calling thread waits."""
        loop = self._background_loop()
        # The calling thread's frame: a warning about the call points at the program's line.
        origin = sys._getframe(1)
        outcome = asyncio.run_coroutine_threadsafe(
            self._tracked_call(provider, target, wrapped, instance, args, kwargs, origin), loop
        ).result()
        if outcome is _RUN_ORIGINAL:
            return wrapped(*args, **kwargs)
        if outcome is _SEND_REAL_TIME:
            with patching.suspended():
                return wrapped(*args, **kwargs)
        return outcome

    def _background_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop_thread is None:
                self._loop_thread = _LoopThread()
            return self._loop_thread.loop

    async def _tracked_call(
        self,
        provider: Provider,
        target: PatchTarget,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        origin: types.FrameType | None = None,
    ) -> Any:
        # One coroutine per call from the SDK method to its answer: this runs for every call.
        if not self._active:
            outcome: Any = _RUN_ORIGINAL
        else:
            state = self._state()
            state.outstanding += 1
            state.idle.clear()
            try:
                request = await state.scheduler.take_in(
                    provider.to_request(target, instance, args, kwargs)
                )
                if not isinstance(request, BatchRequest) or self.plan is not None:
                    outcome = await self._not_batched(state, provider, request, origin)
                else:
                    future = state.scheduler.enqueue(provider, request)
                    try:
                        result = await future
                    except asyncio.CancelledError:
                        future.cancel()
                        raise
                    except DeadlineReachedError:
                        self._pass_through(
                            provider, _DEADLINE, refuse_under_strict=False, origin=origin
                        )
                        outcome = _SEND_REAL_TIME
                    else:
                        outcome = (
                            result.response  # built while the job's results were routed
                            if isinstance(result, Answered)
                            else await provider.to_response(request, result)
                        )
            finally:
                state.outstanding -= 1
                if state.outstanding == 0:
                    state.idle.set()
        if target.sync:
            # A sync target's original runs in its own (calling) thread: see `_blocking_call`.
            return outcome
        if outcome is _RUN_ORIGINAL:
            return await wrapped(*args, **kwargs)
        if outcome is _SEND_REAL_TIME:
            with patching.suspended():
                return await wrapped(*args, **kwargs)
        return outcome

    async def _not_batched(
        self,
        state: _LoopState,
        provider: Provider,
        request: BatchRequest | NotBatchable | None,
        origin: types.FrameType | None,
    ) -> Any:
        """What becomes of a call that is not sent in a batch: passed on, or held by a dry run."""
        if request is None:
            return _RUN_ORIGINAL
        if isinstance(request, NotBatchable):
            if self.plan is not None:
                self.plan.add_pass_through(provider.name, request.kind)
                return await self._wait_for_dry_run_end(state)
            self._pass_through(provider, request, origin=origin)
            return _SEND_REAL_TIME
        assert self.plan is not None, "batched requests are only held in a dry run"
        self.plan.add(provider, request, state.scheduler.journal_state(request))
        return await self._wait_for_dry_run_end(state)

    def _pass_through_in_forked_child(self, provider: Provider) -> None:
        """A call in a process forked inside the block (a `ProcessPoolExecutor` worker...): the
        block's threads, loop and journal stay in the parent, so the call goes out in real
        time, reported in the child (or refused under `strict=True`)."""
        why = NotBatchable(
            "forked process",
            "This call was made in a process forked inside a batchify() block (a process pool "
            "worker, say); the block batches its own process's calls only. Open a batchify() "
            "block in the worker to batch its calls.",
        )
        if self._block_strict:
            raise NotBatchableError(why.kind, why.reason)
        if _forked_children_warned.get(os.getpid()) is not self:
            _forked_children_warned[os.getpid()] = self
            _warn_at_program(
                NotBatchedWarning(
                    f"{why.reason} Sent in real time at full price ({provider.name})."
                ),
            )

    def _pass_through(
        self,
        provider: Provider,
        why: NotBatchable,
        *,
        refuse_under_strict: bool = True,
        origin: types.FrameType | None = None,
    ) -> None:
        """Count and report a call sent in real time (refused under strict). The warning points
        at the program's line that made it: found from `origin` (a sync call's frame in its
        own thread) or else from here."""
        if self._block_strict and refuse_under_strict:
            raise NotBatchableError(why.kind, why.reason)
        self.report.passed_through[why.kind] += 1
        self._events.request_passed_through(provider.name, why.kind, why.reason)
        if why.kind not in self._warned:
            self._warned.add(why.kind)
            _warn_at_program(
                NotBatchedWarning(
                    f"{why.reason} Sent in real time at full price ({provider.name}). Further "
                    f"calls of this kind in this batchify() block are counted, not reported "
                    f"again; pass strict=True to refuse them instead."
                ),
                origin,
            )

    # -- dry run -----------------------------------------------------------------------------

    async def _wait_for_dry_run_end(self, state: _LoopState) -> Any:
        """Hold a dry-run call until the program has issued every call it can without a
        result, then end it with `DryRunFinished`."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        state.dry_waiters.append(waiter)
        if state.dry_timer is not None:
            state.dry_timer.cancel()
        state.dry_timer = loop.call_later(DRY_RUN_SETTLE_SECONDS, self._release_dry_waiters, state)
        await waiter
        raise AssertionError("unreachable: dry-run waiters only end with DryRunFinished")

    def _release_dry_waiters(self, state: _LoopState) -> None:
        if state.dry_timer is not None:
            state.dry_timer.cancel()
            state.dry_timer = None
        waiters, state.dry_waiters = state.dry_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(DryRunFinished())


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


def _open_journal(path: Any) -> Journal:
    """The journal at `path`, or a `JournalError` that says what to do."""
    try:
        return Journal(path)
    except journal.FAULTS as exc:
        raise JournalError(
            f"batchling cannot open its journal at {path} ({type(exc).__name__}: {exc}). Pass "
            "batchify(cache=DIR) with a writable directory, or cache=False to go without a "
            "journal (and without resume)."
        ) from exc
