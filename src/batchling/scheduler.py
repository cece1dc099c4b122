"""Queues intercepted requests, flushes them into batch jobs, and routes results to callers.

One queue per (provider, client identity, endpoint, model). A queue is flushed when it holds
`batch_size` requests (or the provider's request/byte limit), or `batch_window_seconds` after its
first request. Each flush becomes one batch job, run by its own task: journal the intent, submit,
journal the job id, poll with backoff, download every result, journal the results, and resolve
each caller's future by `custom_id`.

With a journal, a request the journal already knows is not submitted again: a stored result is
served at once, a request in a job that is still running is attached to that job, and a request
whose submission was interrupted before its job id was recorded is reconciled with the provider
(the job found and followed) before anything is submitted anew.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from batchling import backoff, collector
from batchling.dryrun import JournalState, estimate_job_input_tokens
from batchling.errors import (
    BatchCancelledError,
    BatchCreationUncertainError,
    BatchExpiredError,
    BatchFailedError,
    BatchJobError,
    BatchSubmissionAbandonedError,
    ClientClosedError,
    DeadlineReachedError,
    JournalError,
    MissingResultError,
)
from batchling.events import Observers
from batchling.job_fill import JobFill, JobLimits
from batchling.journal import CANCEL_REQUESTED_KEY, Entry, Journal, Submission, SubmissionState
from batchling.journal import FAULTS as JOURNAL_FAULTS
from batchling.patching import suspended
from batchling.provider import (
    BatchLine,
    BatchRequest,
    BatchState,
    BatchStatus,
    LineResult,
    Outcome,
    Provider,
    RespondsAtOnce,
    SubmittedBatch,
)
from batchling.report import RunReport

log = logging.getLogger("batchling")

MAX_POLL_INTERVAL_SECONDS = 120.0
"""Polling backs off to at most this, so a 24 h job is polled hundreds of times, not thousands."""
TRANSIENT_RETRIES = 8
"""How many times a transient failure reading results is retried before callers get the error."""
CREATION_GRACE_SECONDS = 30.0
"""With `cancel_on_exit`, how long a block that ends waits for a job still being created (its
upload and create call) to get an id it can cancel, before looking the job up instead."""
CREATION_UNWIND_SECONDS = 10.0
"""How long a block that ends waits for creations it stopped to unwind; one still running after
that is left as it is (journaled as "submitting": a re-run looks it up)."""

QueueKey = tuple[str, str, str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class SchedulerSettings:
    """The `batchify()` arguments the scheduler uses."""

    batch_size: int
    batch_window_seconds: float
    poll_interval_seconds: float
    completion_window: str
    resubmit_expired: int = 1
    """How many times lines left unfinished by an expired job are sent again in a new job."""
    deadline: float | None = None
    """Unix time after which unfinished requests go to the real-time endpoint."""
    cancel_on_exit: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Answered:
    """A caller's answer, built while its job's results were routed (`RespondsAtOnce`)."""

    response: Any


Delivery = LineResult | Answered
"""What a queued request's future resolves with: its line, for `Provider.to_response`, or the
answer already built from it."""


@dataclasses.dataclass(slots=True)
class _Entry:
    request: BatchRequest
    future: asyncio.Future[Delivery]
    custom_id: str
    resubmissions: int = 0


@dataclasses.dataclass(slots=True)
class _Queue:
    provider: Provider
    entries: list[_Entry] = dataclasses.field(default_factory=list)
    fill: JobFill = dataclasses.field(default_factory=JobFill)
    timer: asyncio.TimerHandle | None = None
    read_target: int | None = None
    """Set once its window ended while calls waited to be read: how many had come by then."""
    settling: bool = False
    """All of those were let in; they are read on the next turn."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Creation:
    """A job being created at the provider (`Provider.submit` in flight)."""

    provider: Provider
    submission_id: str
    lines: list[BatchLine]
    started_at: float
    task: asyncio.Task[SubmittedBatch]
    callers: dict[str, _Entry]


@dataclasses.dataclass(slots=True)
class _Attachment:
    """Requests of this run waiting on a job an earlier run (or process) submitted."""

    provider: Provider
    submission: Submission
    entries: dict[str, _Entry] = dataclasses.field(default_factory=dict)
    closed: bool = False


class _DeadlinePassedError(Exception):
    """Internal: the deadline passed while a job was still running."""


_T = TypeVar("_T")

INTAKE_PER_TURN = 100
"""Calls taken in per event loop turn while more are waiting (see `Scheduler.intake`)."""


class Scheduler:
    """Owns the queues and batch-job tasks of one `batchify()` block."""

    def __init__(
        self,
        settings: SchedulerSettings,
        report: RunReport,
        journal: Journal | None,
        events: Observers | None = None,
    ) -> None:
        self._settings = settings
        self._report = report
        self._journal = journal
        self._events = events if events is not None else Observers([])
        self._loop = asyncio.get_running_loop()
        self._queues: dict[QueueKey, _Queue] = {}
        self._jobs: set[asyncio.Task[None]] = set()
        self._running: dict[str, SubmittedBatch] = {}
        self._creations: dict[str, _Creation] = {}
        self._job_callers: dict[asyncio.Task[None], dict[str, _Entry]] = {}
        self._abandoning: asyncio.Future[list[SubmittedBatch]] | None = None
        """Set once `abandon` starts; requests arriving from then on fail at once."""
        self._settled: set[str] = set()
        """Submissions whose creation `abandon` settled (`_created_by`)."""
        self._providers_of_running: dict[str, Provider] = {}
        self._attachments: dict[str, _Attachment] = {}
        self._occurrences: collections.Counter[str] = collections.Counter()
        self._unchecked: list[tuple[Provider, _Entry]] = []
        """Requests that arrived in this loop turn, waiting for one journal lookup."""
        self._taken_in = 0
        """Calls let in since the last `_next_intake_turn` (see `intake`)."""
        self._waiting_intake: collections.deque[asyncio.Future[None]] = collections.deque()
        """Calls waiting for their turn to be taken in, oldest first."""
        self._intake_turn_scheduled = False
        self._arrived = 0
        """Calls that came to `take_in`, ever."""
        self._let_in = 0
        """Of them, those let in to be read (or cancelled while waiting)."""
        self._closing = False
        self._deadline_passed = False
        self._deadline_timer: asyncio.TimerHandle | None = None
        if settings.deadline is not None:
            delay = max(0.0, settings.deadline - time.time())
            self._deadline_timer = self._loop.call_later(delay, self._on_deadline)

    def waiting_calls(self) -> int:
        """Callers waiting for a batch result (`batchling.collector` reads it during a full
        collection, in whatever thread runs it: each container is copied in one step)."""
        queued = sum(len(queue.entries) for queue in list(self._queues.values()))
        following = sum(len(callers) for callers in list(self._job_callers.values()))
        return len(self._waiting_intake) + len(self._unchecked) + queued + following

    # -- intake ----------------------------------------------------------------------------

    async def take_in(self, reading: Coroutine[Any, Any, _T]) -> _T:
        """Await `reading` (a call being turned into a request, `Provider.to_request`) in the
        call's turn.

        A `gather` of many calls starts them all in one loop turn. Read all at once, the first
        job could only be submitted once the last call was read; read `INTAKE_PER_TURN` a turn,
        a full job is submitted (and the provider works on it) while the calls after it are
        still read. Calls are read in the order they came.
        """
        self._arrived += 1
        if not self._intake_turn_scheduled:
            self._intake_turn_scheduled = True
            self._loop.call_soon(self._next_intake_turn)
        if self._waiting_intake or self._taken_in >= INTAKE_PER_TURN:
            turn = self._loop.create_future()
            self._waiting_intake.append(turn)
            try:
                await turn
            except BaseException:
                reading.close()  # never started
                raise
        else:
            self._taken_in += 1
            self._let_in += 1
        return await reading

    def _next_intake_turn(self) -> None:
        self._intake_turn_scheduled = False
        self._taken_in = 0
        waiting = self._waiting_intake
        while waiting and self._taken_in < INTAKE_PER_TURN:
            turn = waiting.popleft()
            self._let_in += 1
            if not turn.done():  # its caller was cancelled meanwhile
                turn.set_result(None)
                self._taken_in += 1
        if waiting:
            self._intake_turn_scheduled = True
            self._loop.call_soon(self._next_intake_turn)

    @property
    def running_batches(self) -> list[SubmittedBatch]:
        """Batch jobs submitted or followed and not yet finished."""
        return list(self._running.values())

    # -- intake ----------------------------------------------------------------------------

    def _next_custom_id(self, request: BatchRequest) -> str:
        # custom_id = request digest + occurrence number in this run: stable across runs (so a
        # re-run recognises its requests), unique even for identical requests, and within
        # ^[A-Za-z0-9_-]{1,64}$, which every provider accepts.
        digest = request.request_hash[:40]
        custom_id = f"{digest}_{self._occurrences[digest]}"
        self._occurrences[digest] += 1
        return custom_id

    def journal_state(self, request: BatchRequest) -> JournalState:
        """For a dry run: what the journal knows of `request` (counted as one more call)."""
        custom_id = self._next_custom_id(request)
        known = self._journal.lookup(custom_id) if self._journal is not None else None
        if known is None:
            return JournalState.NEW
        if known.result is not None and _is_final(known.result):
            return JournalState.CACHED
        if known.result is None and known.submission.state in (
            SubmissionState.RUNNING,
            SubmissionState.SUBMITTING,
        ):
            return JournalState.SUBMITTED
        return JournalState.NEW

    def enqueue(self, provider: Provider, request: BatchRequest) -> asyncio.Future[Delivery]:
        """Queue `request`; the future resolves with its line result or the batch's error."""
        custom_id = self._next_custom_id(request)
        entry = _Entry(request, self._loop.create_future(), custom_id)
        if self._abandoning is not None:
            entry.future.set_exception(_abandoned_unsent())
            self._report.failed += 1
            return entry.future
        if self._journal is None:
            self._admit(provider, entry, None)
            return entry.future
        # The journal is asked once per loop turn for every request that arrived in it: the
        # calls of one `gather` arrive together, and one query serves them all.
        if not self._unchecked:
            self._loop.call_soon(self._check_journal)
        self._unchecked.append((provider, entry))
        return entry.future

    def _check_journal(self) -> None:
        """Serve or attach what the journal knows of the requests that arrived; queue the rest."""
        unchecked, self._unchecked = self._unchecked, []
        if not unchecked:
            return
        assert self._journal is not None
        try:
            known = self._journal.lookup_many([entry.custom_id for _, entry in unchecked])
        except JOURNAL_FAULTS as exc:
            waiting = {entry.custom_id: entry for _, entry in unchecked}
            self._report.failed += _fail_all(waiting, self._journal_error("read", exc))
            return
        for provider, entry in unchecked:
            if not entry.future.done():
                self._admit(provider, entry, known.get(entry.custom_id))

    def _admit(self, provider: Provider, entry: _Entry, known: Entry | None) -> None:
        if known is not None and self._reuse(provider, entry, known):
            return
        if self._deadline_passed:
            entry.future.set_exception(_deadline_error())
            return
        self._queue(provider, entry)

    def _reuse(self, provider: Provider, entry: _Entry, known: Entry) -> bool:
        """Serve `entry` from what the journal knows, if that saves submitting it again."""
        if known.result is not None and _is_final(known.result):
            self._report.from_journal += 1
            self._events.request_served_from_journal(provider.name)
            entry.future.set_result(known.result)
            return True
        submission = known.submission
        if known.result is None and submission.state in (
            SubmissionState.RUNNING,
            SubmissionState.SUBMITTING,
        ):
            self._attach(provider, submission, entry)
            return True
        return False

    def _queue(self, provider: Provider, entry: _Entry) -> None:
        request = entry.request
        key = request.queue_key
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue(provider)
        limits = JobLimits.of(provider, request, self._settings.batch_size)
        if not queue.fill.has_room_for(request, limits):
            self._flush(key)
            queue = self._queues[key] = _Queue(provider)
        queue.entries.append(entry)
        queue.fill.add(request)
        if queue.fill.is_full(limits):
            self._flush(key)
        elif queue.timer is None:
            # While the block is closing, requests still arriving (from tasks it waits for) are
            # flushed on the next loop turn, so that concurrent ones still share a job.
            window = 0.0 if self._closing else self._settings.batch_window_seconds
            queue.timer = self._loop.call_later(window, self._window_ended, key)

    def _window_ended(self, key: QueueKey) -> None:
        """A queue's batch window ended: it is flushed. Calls that came before that and are
        still waiting to be read (`take_in`) would join it: it waits for them (and for them
        only: calls coming later, or a call that takes long to read, do not hold it)."""
        queue = self._queues.get(key)
        if queue is None:
            return
        if self._waiting_intake or self._taken_in or queue.read_target is not None:
            if queue.read_target is None:
                queue.read_target = self._arrived
            if self._let_in < queue.read_target or not queue.settling:
                # Waiting to be let in; or let in, and read on the next turn.
                queue.settling = self._let_in >= queue.read_target
                queue.timer = self._loop.call_later(0, self._window_ended, key)
                return
            self._check_journal()  # the last of them, read this turn
            if self._queues.get(key) is not queue:
                return  # filled up and flushed meanwhile
        self._flush(key)

    def _flush(self, key: QueueKey) -> None:
        queue = self._queues.pop(key, None)
        if queue is None:
            return
        if queue.timer is not None:
            queue.timer.cancel()
        # The job's callers, taken off as they are answered or handed to another job.
        by_id = {entry.custom_id: entry for entry in queue.entries if not entry.future.done()}
        if by_id:
            self._start(self._submit_and_follow(queue.provider, by_id), by_id)

    def _start(self, coroutine: Coroutine[Any, Any, None], callers: dict[str, _Entry]) -> None:
        job = self._loop.create_task(self._abandoning_if_cancelled(coroutine))
        self._jobs.add(job)
        self._job_callers[job] = callers
        job.add_done_callback(self._job_done)
        # A job cancelled before its first step never starts `coroutine`: closed, it does not
        # warn that it was never awaited (closing a finished coroutine does nothing).
        job.add_done_callback(lambda _: coroutine.close())

    async def _abandoning_if_cancelled(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run a job's work. Only `abandon` cancels a job; a job cancelled from outside means
        its event loop is shutting down (`asyncio.run` cancels every task left when its
        coroutine ends, Ctrl-C included) without the block's exit, as in a script run with
        `batchling run`: the scheduler is abandoned then, from the first job to see it, so its
        jobs are reported (or cancelled, with `cancel_on_exit`) instead of dropped silently."""
        try:
            await coroutine
        except asyncio.CancelledError:
            if self._abandoning is None:
                await self.abandon(
                    "the event loop following these batch jobs shut down (Ctrl-C, or its "
                    "asyncio.run() ended) before the batchify() block ended"
                )
            raise

    def _job_done(self, job: asyncio.Task[None]) -> None:
        self._jobs.discard(job)
        self._job_callers.pop(job, None)

    def flush_all(self) -> None:
        """Flush every queue now instead of waiting for its window."""
        self._check_journal()
        for key in list(self._queues):
            self._flush(key)

    def close(self) -> None:
        """Stop waiting for batch windows: flush every queue now and new requests at once."""
        self._closing = True
        self.flush_all()

    async def drain(self) -> None:
        """Flush everything and wait until every batch job has routed its results."""
        self.close()
        while self._jobs or self._queues or self._unchecked:
            # Let tasks that were started but have not run yet reach the queues first.
            await asyncio.sleep(0)
            self.flush_all()
            if self._jobs:
                # `wait`, not `gather`: a block interrupted here must not cancel its jobs on
                # the way out (its exit abandons them, and says so).
                await asyncio.wait(self._jobs)
        self._stop_deadline_timer()

    async def abandon(self, why: str) -> list[SubmittedBatch]:
        """Stop without waiting: unsubmitted requests fail, running jobs are left at the provider
        (and in the journal, so a re-run picks them up), or cancelled with `cancel_on_exit`.

        Returns the jobs left running (or asked to cancel), after a warning that names them and
        starts with `why` (e.g. "batchify() block ended with KeyboardInterrupt"). Only the first
        call does the work; a later one (the block's exit after its loop began to shut down,
        say) waits for it.
        """
        if self._abandoning is not None:
            return await asyncio.shield(self._abandoning)
        self._abandoning = self._loop.create_future()
        left: list[SubmittedBatch] = []
        try:
            left = await self._abandon(why)
        finally:
            self._abandoning.set_result(left)
        return left

    async def _abandon(self, why: str) -> list[SubmittedBatch]:
        self._stop_deadline_timer()
        waiting = [entry for queue in self._queues.values() for entry in queue.entries]
        waiting += [entry for _, entry in self._unchecked]
        self._unchecked = []
        for queue in self._queues.values():
            if queue.timer is not None:
                queue.timer.cancel()
        self._report.failed += _fail_all(
            {entry.custom_id: entry for entry in waiting}, _abandoned_unsent
        )
        self._queues.clear()
        left = self.running_batches
        creations = list(self._creations.values())
        callers = list(self._job_callers.values())
        # Not the job running this (when its loop shuts down: `_abandoning_if_cancelled`).
        jobs = self._jobs - {asyncio.current_task()}
        cancelled: list[SubmittedBatch] = []
        for job in jobs:
            job.cancel()
        try:
            if jobs:
                await asyncio.gather(*jobs, return_exceptions=True)
            with suspended():
                try:
                    left += await self._settle_creations(creations)
                finally:
                    for creation in creations:
                        creation.task.cancel()
                if self._settings.cancel_on_exit:
                    for batch in left:
                        provider = self._providers_of_running.get(batch.batch_id)
                        if provider is not None and await self._cancel_on_purpose(provider, batch):
                            cancelled.append(batch)
        finally:
            # Also when interrupted again (a second Ctrl-C): nothing is left unnamed.
            left += self._record_unsettled(creations)
            self._fail_left_callers(why, callers)
            self._name_what_is_left(why, left, cancelled, creations)
        return left

    async def _cancel_on_purpose(self, provider: Provider, batch: SubmittedBatch) -> bool:
        """Cancel `batch` (`cancel_on_exit`, a deadline) and, if the provider took the request,
        journal it: a re-run then sends again what the job left unanswered."""
        if not await self._cancel_quietly(provider, batch):
            return False
        if (journal := self._journal) is not None:
            self._record(
                f"the cancel of batch {batch.batch_id}",
                lambda: journal.mark_cancel_requested(batch.batch_id),
            )
        return True

    def _record_unsettled(self, creations: list[_Creation]) -> list[SubmittedBatch]:
        """Journal and count the jobs of creations that finished but were not settled (the
        abandon was interrupted before `_created_by` got to them)."""
        made = []
        for creation in creations:
            task = creation.task
            if creation.submission_id in self._settled or not task.done() or task.cancelled():
                continue
            if (batch := self._settle_finished(creation)) is not None:
                made.append(batch)
        return made

    def _name_what_is_left(
        self,
        why: str,
        left: list[SubmittedBatch],
        cancelled: list[SubmittedBatch],
        creations: list[_Creation],
    ) -> None:
        """Log and report the jobs an abandoned block leaves: asked to cancel, left running,
        or still being created (journaled as "submitting": a re-run looks them up)."""
        if cancelled:
            log.warning("%s; asked the provider to cancel: %s", why, _named(cancelled))
            self._report.cancelled_batch_ids += [batch.batch_id for batch in cancelled]
        if running := [batch for batch in left if batch not in cancelled]:
            self._report_left_running(why, running)
        # Stopped before their ids were known (with `cancel_on_exit`, a look-up that found
        # nothing says so itself).
        unknown = [
            creation.submission_id
            for creation in creations
            if not creation.task.done()
            or (creation.task.cancelled() and not self._settings.cancel_on_exit)
        ]
        if unknown:
            log.warning(
                "%s; batch jobs being created were left as they are (the journal keeps them: "
                "a re-run looks them up and follows them): %s",
                why, ", ".join(unknown),
            )  # fmt: skip

    def _report_left_running(self, why: str, left: list[SubmittedBatch]) -> None:
        """Name jobs left running in a warning and in `report.left_running_batch_ids`."""
        self._report.left_running_batch_ids += [batch.batch_id for batch in left]
        ids = _named(left)
        if self._journal is not None:
            log.warning(
                "%s; batch jobs left running and journaled (run again to collect their results, "
                "or `batchling batches cancel`): %s",
                why, ids,
            )  # fmt: skip
        else:
            log.warning(
                "%s; batch jobs left running at the provider (cache=False: a re-run will not "
                "find them): %s",
                why, ids,
            )  # fmt: skip

    def _fail_left_callers(self, why: str, callers: list[dict[str, _Entry]]) -> None:
        """Callers of jobs the block left (running, or asked to cancel) get an error now,
        rather than waiting for an answer that no longer comes."""
        if self._settings.cancel_on_exit:
            what = "batchling asked the provider to cancel it (the log says if that failed)"
        elif self._journal is not None:
            what = "it was left running and journaled: run the program again to collect its result"
        else:
            what = "it was left running (cache=False: a re-run submits the request again)"
        for entries in callers:
            self._report.failed += _fail_all(
                entries,
                lambda: BatchSubmissionAbandonedError(
                    f"This request's batch job was still running ({why}); {what}."
                ),
            )

    async def _settle_creations(self, creations: list[_Creation]) -> list[SubmittedBatch]:
        """The jobs that creations in flight as the block ended made, journaled.

        With `cancel_on_exit` the creations get `CREATION_GRACE_SECONDS` (together) to finish,
        and those that do not are looked up after; without it they are stopped at once, and a
        re-run looks them up instead.
        """
        unfinished = [creation.task for creation in creations if not creation.task.done()]
        # Not those cancelled already (by an event loop shutting down): they stop on their own.
        going_on = [task for task in unfinished if not task.cancelling()]
        if going_on and self._settings.cancel_on_exit:
            log.warning(
                "waiting up to %g s for %d batch job(s) being created as the block ended, so "
                "they can be cancelled",
                CREATION_GRACE_SECONDS, len(going_on),
            )  # fmt: skip
            await asyncio.wait(going_on, timeout=CREATION_GRACE_SECONDS)
        for task in unfinished:
            task.cancel()
        if unfinished:
            # A plugin's submit that ignores its cancellation must not hold the exit: what is
            # still running after this is left to the journal (see `abandon`).
            await asyncio.wait(unfinished, timeout=CREATION_UNWIND_SECONDS)
        settled = [creation for creation in creations if creation.task.done()]
        found = await asyncio.gather(*(self._created_by(creation) for creation in settled))
        return [batch for batch in found if batch is not None]

    async def _created_by(self, creation: _Creation) -> SubmittedBatch | None:
        """The job one settled creation made, if it made one (journaled and counted)."""
        provider, submission_id, task = creation.provider, creation.submission_id, creation.task
        if not task.cancelled():
            return self._settle_finished(creation)
        self._settled.add(submission_id)
        if not self._settings.cancel_on_exit:
            return None  # stays "submitting" in the journal: a re-run looks it up
        try:
            batch = await self._look_up(creation)
        except Exception as exc:
            log.warning(
                "%s: could not look up batch %s, being created as the block ended, to "
                "cancel it (a re-run looks it up and follows it): %s",
                provider.name, submission_id, exc,
            )  # fmt: skip
            return None
        if batch is None:
            log.warning(
                "%s: batch %s, being created as the block ended, was not found at the "
                "provider; if it was created after all, a re-run finds it and follows it",
                provider.name, submission_id,
            )  # fmt: skip
            return None
        self._created(creation, batch)
        return batch

    def _settle_finished(self, creation: _Creation) -> SubmittedBatch | None:
        """A creation that finished as the block ended: its failure handled as `_submit` would,
        or its job journaled and counted."""
        self._settled.add(creation.submission_id)
        if (error := creation.task.exception()) is not None:
            self._creation_failed(creation, error)
            return None
        batch = creation.task.result()
        self._created(creation, batch)
        return batch

    async def _look_up(self, creation: _Creation) -> SubmittedBatch | None:
        """The job an unfinished creation made, if the provider lists one."""
        template = creation.lines[0].request
        batch_id = await creation.provider.find_submission(
            creation.submission_id,
            client=template.client,
            template=template,
            size=len(creation.lines),
            since=creation.started_at,
        )
        if batch_id is None:
            return None
        return creation.provider.reattach(
            batch_id,
            {},
            client=template.client,
            template=template,
            custom_ids=[line.custom_id for line in creation.lines],
        )

    # -- jobs ------------------------------------------------------------------------------

    async def _submit_and_follow(self, provider: Provider, by_id: dict[str, _Entry]) -> None:
        # Callers cancelled since the flush are not sent.
        for custom_id in [key for key, entry in by_id.items() if entry.future.done()]:
            del by_id[custom_id]
        if not by_id:
            return
        # batchling's own Batch API calls must not be intercepted by its own wrappers.
        with suspended():
            await self._failing_callers_on_fault(provider, by_id, self._submit(provider, by_id))

    async def _failing_callers_on_fault(
        self,
        provider: Provider,
        by_id: dict[str, _Entry],
        work: Coroutine[Any, Any, None],
        attachment: _Attachment | None = None,
    ) -> None:
        """Run a job's `work`; should it fail unexpectedly, its callers get the error instead of
        waiting forever (and later requests of the job attach to it afresh)."""
        try:
            await work
        except Exception as exc:
            if attachment is not None:
                attachment.closed = True
            log.error("%s: batchling failed while running a batch job: %r", provider.name, exc,
                      exc_info=True)  # fmt: skip
            self._report.failed += _fail_all(by_id, exc)

    async def _submit(self, provider: Provider, by_id: dict[str, _Entry]) -> None:
        first = next(iter(by_id.values())).request
        submission_id = f"batchling_{secrets.token_hex(12)}"
        journal = self._journal
        if journal is not None:
            # Written before any money is spent: a crash from here on is reconciled on re-run.
            try:
                held = journal.begin_submission(
                    Submission(
                        submission_id=submission_id,
                        provider=provider.name,
                        endpoint=first.endpoint,
                        model=first.model,
                        base_url=first.base_url,
                        client_key=first.client_key,
                        size=len(by_id),
                        state=SubmissionState.SUBMITTING,
                        batch_id=None,
                        provider_status=None,
                        info={},
                        created_at=time.time(),
                        updated_at=time.time(),
                    ),
                    list(by_id),
                )
            except JOURNAL_FAULTS as exc:
                self._report.failed += _fail_all(by_id, self._journal_error("write", exc))
                return
            if held:
                # Claimed meanwhile by another process's submission: follow it instead.
                claimed = {custom_id: by_id.pop(custom_id) for custom_id in held}
                try:
                    known_by_id = journal.lookup_many(list(claimed))
                except JOURNAL_FAULTS as exc:
                    self._report.failed += _fail_all(claimed, self._journal_error("read", exc))
                    known_by_id = {}
                for custom_id, entry in claimed.items():
                    if entry.future.done():
                        continue
                    known = known_by_id.get(custom_id)
                    if known is None or not self._reuse(provider, entry, known):
                        self._queue(provider, entry)
            if not by_id:
                return
        lines = [BatchLine(entry.custom_id, entry.request) for entry in by_id.values()]
        # Its own task, shielded: a block that ends while it runs can still learn the job's id
        # (and cancel the job, with `cancel_on_exit`); see `abandon`.
        creation = _Creation(
            provider,
            submission_id,
            lines,
            time.time(),
            asyncio.ensure_future(
                provider.submit(
                    lines,
                    completion_window=self._settings.completion_window,
                    submission_id=submission_id,
                )
            ),
            by_id,
        )
        self._creations[submission_id] = creation
        try:
            batch = await asyncio.shield(creation.task)
        except asyncio.CancelledError:
            raise  # the block is being abandoned: `abandon` settles the creation
        except Exception as exc:
            self._creations.pop(submission_id, None)
            self._creation_failed(creation, exc)
            return
        self._creations.pop(submission_id, None)
        self._created(creation, batch)
        del lines, creation  # the job may run for a day: keep only what routing its results needs
        await self._follow(provider, batch, submission_id, by_id, None)

    def _creation_failed(self, creation: _Creation, error: BaseException) -> None:
        """A job's creation failed: its callers get the error, and the journal forgets the
        submission only if the provider refused it (after anything else the job may exist, and
        a re-run looks it up instead of paying again)."""
        provider, lines = creation.provider, creation.lines
        first = lines[0].request
        log.warning(
            "%s: submitting a batch of %d %s requests for %s failed: %s",
            provider.name, len(lines), first.endpoint, first.model or "-", error,
        )  # fmt: skip
        if (journal := self._journal) is not None and _created_nothing(provider, error):
            self._record(
                f"submission {creation.submission_id}'s end",
                functools.partial(journal.abandon, creation.submission_id),
            )
        self._report.failed += _fail_all(creation.callers, error)

    def _created(self, creation: _Creation, batch: SubmittedBatch) -> None:
        """Journal and report the job a creation made."""
        provider, submission_id = creation.provider, creation.submission_id
        self._providers_of_running[batch.batch_id] = provider
        if (journal := self._journal) is not None:
            self._record(
                f"batch {batch.batch_id}'s id",
                lambda: journal.mark_submitted(
                    submission_id, batch.batch_id, provider.describe(batch)
                ),
            )
        self._note_submitted(provider, batch, creation.lines)

    def _note_submitted(
        self, provider: Provider, batch: SubmittedBatch, lines: list[BatchLine]
    ) -> None:
        self._report.batch_ids.append(batch.batch_id)
        self._report.batched += len(lines)
        key = (provider.name, lines[0].request.model)  # one queue, one model
        self._report.batched_by_model[key] += len(lines)
        self._report.batched_input_tokens[key] += estimate_job_input_tokens(
            [line.request.body for line in lines]
        )
        self._events.batch_submitted(batch, resumed=False)
        log.info(
            "%s: submitted batch %s (%d %s requests, model %s)",
            provider.name, batch.batch_id, len(lines), batch.endpoint, batch.model or "-",
        )  # fmt: skip

    def _attach(self, provider: Provider, submission: Submission, entry: _Entry) -> None:
        attachment = self._attachments.get(submission.submission_id)
        if attachment is None or attachment.closed:
            attachment = _Attachment(provider, submission)
            self._attachments[submission.submission_id] = attachment
            self._start(self._resume(attachment, entry.request), attachment.entries)
        attachment.entries[entry.custom_id] = entry

    async def _resume(self, attachment: _Attachment, template: BatchRequest) -> None:
        with suspended():
            provider, submission = attachment.provider, attachment.submission
            journal = self._journal
            assert journal is not None, "attachments come from the journal"
            batch_id = submission.batch_id
            try:
                if batch_id is None:
                    batch_id = await provider.find_submission(
                        submission.submission_id,
                        client=template.client,
                        template=template,
                        size=submission.size,
                        since=submission.created_at,
                    )
                    if batch_id is None:
                        # The interrupted submission never created a job: send its requests anew.
                        log.info(
                            "%s: interrupted submission %s created no job; submitting again",
                            provider.name, submission.submission_id,
                        )  # fmt: skip
                        journal.abandon(submission.submission_id)
                        attachment.closed = True
                        for entry in attachment.entries.values():
                            if not entry.future.done():
                                self._queue(provider, entry)
                        return
                batch = dataclasses.replace(
                    provider.reattach(
                        batch_id,
                        submission.info,
                        client=template.client,
                        template=template,
                        custom_ids=journal.custom_ids(submission.submission_id),
                    ),
                    endpoint=submission.endpoint,
                    model=submission.model,
                )
                if submission.batch_id is None:
                    # Found again: its id, and what `describe` keeps (an API version...), which
                    # `batchling batches cancel` needs as much as a re-run does.
                    info = {**submission.info, **provider.describe(batch)}
                    self._record(
                        f"batch {batch.batch_id}'s id",
                        lambda: journal.mark_submitted(
                            submission.submission_id, batch.batch_id, info
                        ),
                    )
            except Exception as exc:
                attachment.closed = True
                self._report.failed += _fail_all(attachment.entries, exc)
                return
            self._report.resumed_batch_ids.append(batch_id)
            self._events.batch_submitted(batch, resumed=True)
            log.info(
                "%s: resuming batch %s from the journal (%d requests of this run in it)",
                provider.name, batch_id, len(attachment.entries),
            )  # fmt: skip
            try:
                await self._failing_callers_on_fault(
                    provider,
                    attachment.entries,
                    self._follow(
                        provider, batch, submission.submission_id, attachment.entries, attachment
                    ),
                    attachment,
                )
            finally:
                # However following ended (a deadline, a failed job...), later requests of the
                # same submission attach afresh instead of waiting on this task.
                attachment.closed = True

    async def _follow(
        self,
        provider: Provider,
        batch: SubmittedBatch,
        submission_id: str,
        entries: dict[str, _Entry],
        attachment: _Attachment | None,
    ) -> None:
        """Wait for a job, store and route its results, resubmit what its expiry left."""
        self._running[batch.batch_id] = batch
        self._providers_of_running[batch.batch_id] = provider
        try:
            status = await self._wait_until_done(provider, batch, submission_id)
            results = await self._download(provider, batch, status)
            # The lines are read: let go of what the provider kept to read them (Gemini keeps
            # its whole inline output there), so that each line is freed once routed.
            status = dataclasses.replace(status, handle=None)
        except asyncio.CancelledError:
            raise  # still running at the provider: `abandon` reports it (`running_batches`)
        except _DeadlinePassedError:
            if await self._cancel_on_purpose(provider, batch):
                self._report.cancelled_batch_ids.append(batch.batch_id)
            self._running.pop(batch.batch_id, None)  # after: a block abandoned meanwhile names it
            # The router sends these to the real-time endpoint: reported there, not failed.
            _fail_all(entries, _deadline_error)
            return
        except ClientClosedError as exc:
            self._running.pop(batch.batch_id, None)
            self._report_left_running(
                f"{provider.name}: every client of batch {batch.batch_id}'s callers was closed "
                f"before batchling could read its results (if it still runs, `batchling batches "
                f"cancel {batch.batch_id}` cancels it)",
                [batch],
            )
            self._report.failed += _fail_all(entries, exc)
            return
        except Exception as exc:
            self._running.pop(batch.batch_id, None)
            self._report.failed += _fail_all(entries, exc)
            return
        self._running.pop(batch.batch_id, None)
        # Kept before anyone sees them: a crash from here on costs nothing on re-run. The journal
        # stores them in a thread of its own while the pass below builds the answers, and is
        # waited for before the loop (and so any caller) runs again.
        storing = (
            journal.begin_storing_results(submission_id, results, status.provider_status)
            if (journal := self._journal) is not None
            else None
        )
        try:
            if attachment is not None:
                attachment.closed = True
            self._events.batch_finished(batch, status)
            respond_now = provider.response_now if isinstance(provider, RespondsAtOnce) else None
            unfinished: list[_Entry] = []
            # batchling cancelled this job as an earlier run ended (`cancel_on_exit`): what it left
            # unanswered never ran, and this run wants it, so it is sent again.
            resend_cancelled = (
                status.state is BatchState.CANCELLED
                and attachment is not None
                and bool(attachment.submission.info.get(CANCEL_REQUESTED_KEY))
                and not self._deadline_passed
            )
            # Answers are built here, a job's worth in one pass: see `batchling.collector`. Lines
            # are taken off the list as they are routed, so each body is freed once answered.
            results.reverse()
            with collector.paused():
                while results:
                    result = results.pop()
                    entry = entries.pop(result.custom_id, None)
                    if entry is None or entry.future.done():
                        continue
                    if (result.outcome is Outcome.EXPIRED and self._may_resubmit(entry)) or (
                        result.outcome is Outcome.CANCELLED and resend_cancelled
                    ):
                        unfinished.append(entry)
                    else:
                        _resolve(entry, provider, batch, result, self._report, respond_now)
        finally:
            if storing is not None:
                self._record(f"the results of batch {batch.batch_id}", storing)
        if status.state is BatchState.EXPIRED or resend_cancelled:
            # Lines the job returned nothing for are sent again too (and so are no longer this
            # job's to fail).
            for custom_id, entry in list(entries.items()):
                if not entry.future.done() and (resend_cancelled or self._may_resubmit(entry)):
                    unfinished.append(entries.pop(custom_id))
        if unfinished:
            why = "was cancelled as an earlier run ended" if resend_cancelled else "expired"
            self._resubmit(provider, batch, unfinished, why)
        self._report.failed += _fail_all(
            entries, lambda: _error_for_unanswered(provider, batch, status)
        )

    def _journal_error(self, doing: str, exc: BaseException) -> Callable[[], JournalError]:
        """A caller's error for a journal that could not be read or written before submitting."""
        path = self._journal.path if self._journal is not None else "?"
        message = (
            f"batchling could not {doing} its journal at {path} ({type(exc).__name__}: {exc}), "
            "so it submitted nothing for this request: it never spends money it could not "
            "record. Free disk space or fix the file's permissions and run again, or pass "
            "batchify(cache=False) to go without a journal (and without resume)."
        )
        return lambda: JournalError(message)

    def _record(self, what: str, write: Callable[[], object]) -> None:
        """Journal what happened to a job already paid for; should the journal fail, the callers
        still get their answers (a re-run then asks the provider instead)."""
        try:
            write()
        except JOURNAL_FAULTS as exc:
            log.warning(
                "could not record %s in the journal (%s: %s); the callers still get their "
                "answers, but a re-run after a crash asks the provider for the job instead",
                what, type(exc).__name__, exc,
            )  # fmt: skip

    def _may_resubmit(self, entry: _Entry) -> bool:
        return entry.resubmissions < self._settings.resubmit_expired and not self._deadline_passed

    def _resubmit(
        self, provider: Provider, batch: SubmittedBatch, entries: list[_Entry], why: str
    ) -> None:
        log.warning(
            "%s: batch %s %s with %d requests unfinished; submitting them again in a new "
            "batch (successes are kept)",
            provider.name, batch.batch_id, why, len(entries),
        )  # fmt: skip
        if (journal := self._journal) is not None:
            self._record(
                f"the release of batch {batch.batch_id}'s unfinished requests",
                lambda: journal.release(entry.custom_id for entry in entries),
            )
        for entry in entries:
            entry.resubmissions += 1
            self._queue(provider, entry)
        key = entries[0].request.queue_key
        # The expiry already cost a day: do not wait a window as well.
        self._flush(key)

    async def _wait_until_done(
        self, provider: Provider, batch: SubmittedBatch, submission_id: str
    ) -> BatchStatus:
        last_state = ""
        for delay in backoff.delays(
            self._settings.poll_interval_seconds, cap=MAX_POLL_INTERVAL_SECONDS
        ):
            await self._sleep_unless_deadline(delay)
            try:
                status = await provider.poll(batch)
            except Exception as exc:
                if not provider.is_transient(exc):
                    raise
                # A failed poll never fails a batch: the job keeps running at the provider.
                log.warning(
                    "%s: polling batch %s failed, will retry: %s",
                    provider.name, batch.batch_id, exc,
                )  # fmt: skip
                continue
            self._events.batch_polled(batch, status)
            if status.provider_status != last_state:
                last_state = status.provider_status
                if (journal := self._journal) is not None and not status.state.is_terminal:
                    self._record(
                        f"batch {batch.batch_id}'s status",
                        functools.partial(
                            journal.mark_status, submission_id, status.provider_status
                        ),
                    )
                log.info(
                    "%s: batch %s is %s (%d/%d done)",
                    provider.name, batch.batch_id, status.provider_status,
                    status.completed + status.failed, status.total,
                )  # fmt: skip
            if status.state.is_terminal:
                return status
        raise AssertionError("unreachable: backoff.delays never ends")

    async def _sleep_unless_deadline(self, delay: float) -> None:
        if self._settings.deadline is None:
            await asyncio.sleep(delay)
            return
        remaining = self._settings.deadline - time.time()
        if remaining <= 0:
            raise _DeadlinePassedError
        await asyncio.sleep(min(delay, remaining))
        if time.time() >= self._settings.deadline:
            raise _DeadlinePassedError

    async def _download(
        self, provider: Provider, batch: SubmittedBatch, status: BatchStatus
    ) -> list[LineResult]:
        attempts = backoff.delays(self._settings.poll_interval_seconds, cap=30.0)
        for attempt in range(TRANSIENT_RETRIES + 1):
            try:
                return [result async for result in provider.results(batch, status)]
            except Exception as exc:
                if attempt == TRANSIENT_RETRIES or not provider.is_transient(exc):
                    raise
                log.warning(
                    "%s: reading results of batch %s failed, will retry: %s",
                    provider.name, batch.batch_id, exc,
                )  # fmt: skip
                await asyncio.sleep(next(attempts))
        raise AssertionError("unreachable")

    async def _cancel_quietly(self, provider: Provider, batch: SubmittedBatch) -> bool:
        """Ask the provider to cancel a job; whether it took the request (a failure is logged
        with the command that cancels the job later)."""
        try:
            await provider.cancel(batch)
        except Exception as exc:
            log.warning(
                "%s: cancelling batch %s failed (cancel it with `batchling batches cancel %s`): %s",
                provider.name, batch.batch_id, batch.batch_id, exc,
            )  # fmt: skip
            return False
        log.warning("%s: asked the provider to cancel batch %s", provider.name, batch.batch_id)
        return True

    # -- deadline --------------------------------------------------------------------------

    def _on_deadline(self) -> None:
        self._deadline_passed = True
        for queue in self._queues.values():
            if queue.timer is not None:
                queue.timer.cancel()
            for entry in queue.entries:
                if not entry.future.done():
                    entry.future.set_exception(_deadline_error())
        self._queues.clear()

    def _stop_deadline_timer(self) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None


def _named(batches: list[SubmittedBatch]) -> str:
    return ", ".join(f"{batch.provider}:{batch.batch_id}" for batch in batches)


def _abandoned_unsent() -> BatchSubmissionAbandonedError:
    return BatchSubmissionAbandonedError(
        "The batchify() block ended with an error before this request was submitted; it was "
        "not sent and costs nothing."
    )


def _created_nothing(provider: Provider, error: BaseException) -> bool:
    """Whether a failed `Provider.submit` surely created no job: the provider answered with a
    refusal (a 4xx status other than 408, 409 and 429), or no open client was left to ask it.
    Anything else (an answer without a job id, a malformed 2xx body, a fault of batchling's own
    after the create call) may come after the provider accepted the job, so the journal keeps
    the submission for a re-run to look up.
    """
    if provider.is_transient(error) or isinstance(error, BatchCreationUncertainError):
        return False
    if isinstance(error, ClientClosedError):
        return True  # raised before the request it was to send: no client was left to send it
    status = getattr(error, "status_code", None)
    if not isinstance(status, int) or isinstance(status, bool):
        status = getattr(error, "code", None)  # google-genai's APIError
    if not isinstance(status, int) or isinstance(status, bool):
        return False
    return 400 <= status < 500 and status not in (408, 409, 429)


def _is_final(result: LineResult) -> bool:
    """Whether a stored result answers the request for good (a re-run serves it as is)."""
    if result.outcome is Outcome.SUCCEEDED:
        return True
    if result.outcome is Outcome.ERRORED:
        status = result.status_code or 500
        return status < 500 and status not in (408, 409, 429)
    return False


def _deadline_error() -> DeadlineReachedError:
    return DeadlineReachedError(
        "The batchify(deadline=...) passed before this request's batch finished."
    )


def _resolve(
    entry: _Entry,
    provider: Provider,
    batch: SubmittedBatch,
    result: LineResult,
    report: RunReport,
    respond_now: Callable[[BatchRequest, LineResult], Any] | None,
) -> None:
    future = entry.future
    if result.outcome is Outcome.EXPIRED:
        report.failed += 1
        future.set_exception(
            BatchExpiredError(
                f"{provider.name} batch {batch.batch_id} expired before this request was "
                "processed (the provider's completion window ran out). It was not billed; run "
                "it again, or split the work into smaller batches.",
                provider=provider.name,
                batch_id=batch.batch_id,
            )
        )
    elif result.outcome is Outcome.CANCELLED:
        report.failed += 1
        future.set_exception(
            BatchCancelledError(
                f"{provider.name} batch {batch.batch_id} was cancelled before this request was "
                "processed. Run it again to resubmit it.",
                provider=provider.name,
                batch_id=batch.batch_id,
            )
        )
    else:
        if result.outcome is Outcome.ERRORED:
            report.failed += 1
        elif respond_now is not None:
            response = _response_now(respond_now, provider, entry.request, result)
            if response is not None:
                future.set_result(Answered(response))
                return
        future.set_result(result)


def _response_now(
    respond_now: Callable[[BatchRequest, LineResult], Any],
    provider: Provider,
    request: BatchRequest,
    result: LineResult,
) -> Any:
    try:
        return respond_now(request, result)
    except Exception:
        # A fault here must not stop the routing of the whole job: the caller's own
        # `to_response` builds the answer (or raises) instead.
        log.debug("%s: response_now failed; the caller builds its answer", provider.name,
                  exc_info=True)  # fmt: skip
        return None


def _error_for_unanswered(
    provider: Provider, batch: SubmittedBatch, status: BatchStatus
) -> BatchJobError:
    where = f"{provider.name} batch {batch.batch_id}"
    if status.state is BatchState.FAILED:
        return BatchFailedError(
            f"{where} failed: {status.message or 'the provider gave no reason'}. Nothing in it "
            "was processed or billed; fix the cause and run again.",
            provider=provider.name,
            batch_id=batch.batch_id,
        )
    if status.state is BatchState.EXPIRED:
        return BatchExpiredError(
            f"{where} expired before this request was processed (the completion window ran "
            "out). It was not billed; run it again.",
            provider=provider.name,
            batch_id=batch.batch_id,
        )
    if status.state is BatchState.CANCELLED:
        return BatchCancelledError(
            f"{where} was cancelled before this request was processed. Run it again to "
            "resubmit it.",
            provider=provider.name,
            batch_id=batch.batch_id,
        )
    return MissingResultError(
        f"{where} ended {status.provider_status!r} without a result for this request. "
        "This is a provider-side problem; run it again.",
        provider=provider.name,
        batch_id=batch.batch_id,
    )


def _fail_all(
    entries: dict[str, _Entry], error: BaseException | Callable[[], BaseException]
) -> int:
    """Fail every caller still waiting; return how many there were.

    Pass a factory to give each caller its own exception instance (a shared instance would
    collect every caller's traceback).
    """
    failed = 0
    for entry in entries.values():
        if not entry.future.done():
            entry.future.set_exception(error() if callable(error) else error)
            failed += 1
    return failed
