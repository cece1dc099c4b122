"""Queues intercepted requests, flushes them into batch jobs, and routes results to callers.

One queue per (provider, client identity, endpoint, model). A queue is flushed when it holds
`batch_size` requests (or the provider's request/byte limit), or `batch_window_seconds` after its
first request. Each flush becomes one batch job, run by its own task: submit, poll with backoff,
read every result, and resolve each caller's future by `custom_id`.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import secrets
from collections.abc import Sequence

from batchling import backoff
from batchling.errors import (
    BatchCancelledError,
    BatchExpiredError,
    BatchFailedError,
    BatchJobError,
    BatchSubmissionAbandonedError,
    MissingResultError,
)
from batchling.patching import suspended
from batchling.provider import (
    BatchLine,
    BatchRequest,
    BatchState,
    BatchStatus,
    LineResult,
    Outcome,
    Provider,
    SubmittedBatch,
)
from batchling.report import RunReport

log = logging.getLogger("batchling")

MAX_POLL_INTERVAL_SECONDS = 120.0
"""Polling backs off to at most this, so a 24 h job is polled hundreds of times, not thousands."""
TRANSIENT_RETRIES = 8
"""How many times a transient failure reading results is retried before callers get the error."""

QueueKey = tuple[str, str, str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class SchedulerSettings:
    """The `batchify()` arguments the scheduler uses."""

    batch_size: int
    batch_window_seconds: float
    poll_interval_seconds: float
    completion_window: str


@dataclasses.dataclass(slots=True)
class _Entry:
    request: BatchRequest
    future: asyncio.Future[LineResult]


@dataclasses.dataclass(slots=True)
class _Queue:
    provider: Provider
    entries: list[_Entry] = dataclasses.field(default_factory=list)
    size_bytes: int = 0
    timer: asyncio.TimerHandle | None = None


class Scheduler:
    """Owns the queues and batch-job tasks of one `batchify()` block."""

    def __init__(self, settings: SchedulerSettings, report: RunReport) -> None:
        self._settings = settings
        self._report = report
        self._loop = asyncio.get_running_loop()
        self._queues: dict[QueueKey, _Queue] = {}
        self._jobs: set[asyncio.Task[None]] = set()
        self._running: dict[str, SubmittedBatch] = {}
        self._closing = False

    @property
    def running_batches(self) -> list[SubmittedBatch]:
        """Batch jobs submitted and not yet finished."""
        return list(self._running.values())

    def enqueue(self, provider: Provider, request: BatchRequest) -> asyncio.Future[LineResult]:
        """Queue `request`; the future resolves with its line result or the batch's error."""
        key = request.queue_key
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue(provider)
        max_bytes = provider.max_bytes_per_batch
        if queue.entries and queue.size_bytes + request.size_bytes > max_bytes:
            self._flush(key)
            queue = self._queues[key] = _Queue(provider)
        future: asyncio.Future[LineResult] = self._loop.create_future()
        queue.entries.append(_Entry(request, future))
        queue.size_bytes += request.size_bytes
        max_requests = min(self._settings.batch_size, provider.max_requests_per_batch)
        if len(queue.entries) >= max_requests:
            self._flush(key)
        elif queue.timer is None:
            # While the block is closing, requests still arriving (from tasks it waits for) are
            # flushed on the next loop turn, so that concurrent ones still share a job.
            window = 0.0 if self._closing else self._settings.batch_window_seconds
            queue.timer = self._loop.call_later(window, self._flush, key)
        return future

    def _flush(self, key: QueueKey) -> None:
        queue = self._queues.pop(key, None)
        if queue is None:
            return
        if queue.timer is not None:
            queue.timer.cancel()
        job = self._loop.create_task(self._run_job(queue.provider, queue.entries))
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    def flush_all(self) -> None:
        """Flush every queue now instead of waiting for its window."""
        for key in list(self._queues):
            self._flush(key)

    def close(self) -> None:
        """Stop waiting for batch windows: flush every queue now and new requests at once."""
        self._closing = True
        self.flush_all()

    async def drain(self) -> None:
        """Flush everything and wait until every batch job has routed its results."""
        self.close()
        while self._jobs or self._queues:
            # Let tasks that were started but have not run yet reach the queues first.
            await asyncio.sleep(0)
            self.flush_all()
            if self._jobs:
                await asyncio.gather(*self._jobs, return_exceptions=True)

    async def abandon(self) -> list[SubmittedBatch]:
        """Stop without waiting: unsubmitted requests fail, running jobs are left at the provider.

        Returns the jobs left running.
        """
        for queue in self._queues.values():
            if queue.timer is not None:
                queue.timer.cancel()
            for entry in queue.entries:
                if not entry.future.done():
                    entry.future.set_exception(
                        BatchSubmissionAbandonedError(
                            "The batchify() block ended with an error before this request was "
                            "submitted; it was not sent and costs nothing."
                        )
                    )
        self._queues.clear()
        left = self.running_batches
        for job in list(self._jobs):
            job.cancel()
        if self._jobs:
            await asyncio.gather(*self._jobs, return_exceptions=True)
        return left

    async def _run_job(self, provider: Provider, entries: list[_Entry]) -> None:
        # batchling's own Batch API calls must not be intercepted by its own wrappers.
        with suspended():
            live = [entry for entry in entries if not entry.future.done()]
            if live:
                await self._submit_and_route(provider, live)

    async def _submit_and_route(self, provider: Provider, entries: list[_Entry]) -> None:
        lines, futures = _assign_custom_ids(entries)
        first = lines[0].request
        try:
            batch = await provider.submit(
                lines,
                completion_window=self._settings.completion_window,
                submission_id=f"batchling_{secrets.token_hex(12)}",
            )
        except Exception as exc:
            log.warning(
                "%s: submitting a batch of %d %s requests for %s failed: %s",
                provider.name,
                len(lines),
                first.endpoint,
                first.model or "-",
                exc,
            )
            self._report.failed += _fail_all(futures, exc)
            return
        self._running[batch.batch_id] = batch
        self._report.batch_ids.append(batch.batch_id)
        self._report.batched += len(lines)
        log.info(
            "%s: submitted batch %s (%d %s requests, model %s)",
            provider.name,
            batch.batch_id,
            len(lines),
            batch.endpoint,
            batch.model or "-",
        )
        try:
            status = await self._wait_until_done(provider, batch)
            await self._route_results(provider, batch, status, futures)
        except Exception as exc:
            self._report.failed += _fail_all(futures, exc)
            return
        finally:
            self._running.pop(batch.batch_id, None)
        self._report.failed += _fail_all(futures, _error_for_unanswered(provider, batch, status))

    async def _wait_until_done(self, provider: Provider, batch: SubmittedBatch) -> BatchStatus:
        last_state = ""
        for delay in backoff.delays(
            self._settings.poll_interval_seconds, cap=MAX_POLL_INTERVAL_SECONDS
        ):
            await asyncio.sleep(delay)
            try:
                status = await provider.poll(batch)
            except Exception as exc:
                if not provider.is_transient(exc):
                    raise
                # A failed poll never fails a batch: the job keeps running at the provider.
                log.warning(
                    "%s: polling batch %s failed, will retry: %s",
                    provider.name,
                    batch.batch_id,
                    exc,
                )
                continue
            if status.provider_status != last_state:
                last_state = status.provider_status
                log.info(
                    "%s: batch %s is %s (%d/%d done)",
                    provider.name,
                    batch.batch_id,
                    status.provider_status,
                    status.completed + status.failed,
                    status.total,
                )
            if status.state.is_terminal:
                return status
        raise AssertionError("unreachable: backoff.delays never ends")

    async def _route_results(
        self,
        provider: Provider,
        batch: SubmittedBatch,
        status: BatchStatus,
        futures: dict[str, asyncio.Future[LineResult]],
    ) -> None:
        attempts = backoff.delays(self._settings.poll_interval_seconds, cap=30.0)
        for attempt in range(TRANSIENT_RETRIES + 1):
            try:
                async for result in provider.results(batch, status):
                    future = futures.pop(result.custom_id, None)
                    if future is not None and not future.done():
                        _resolve(future, provider, batch, result, self._report)
                return
            except Exception as exc:
                if attempt == TRANSIENT_RETRIES or not provider.is_transient(exc):
                    raise
                log.warning(
                    "%s: reading results of batch %s failed, will retry: %s",
                    provider.name,
                    batch.batch_id,
                    exc,
                )
                await asyncio.sleep(next(attempts))


def _assign_custom_ids(
    entries: Sequence[_Entry],
) -> tuple[list[BatchLine], dict[str, asyncio.Future[LineResult]]]:
    # custom_id = request hash + occurrence number: stable across runs (so a re-run can recognise
    # its requests), unique inside the batch even for identical requests, and within
    # ^[A-Za-z0-9_-]{1,64}$, which every provider accepts.
    seen: collections.Counter[str] = collections.Counter()
    lines: list[BatchLine] = []
    futures: dict[str, asyncio.Future[LineResult]] = {}
    for entry in entries:
        digest = entry.request.request_hash[:40]
        custom_id = f"{digest}_{seen[digest]}"
        seen[digest] += 1
        lines.append(BatchLine(custom_id, entry.request))
        futures[custom_id] = entry.future
    return lines, futures


def _resolve(
    future: asyncio.Future[LineResult],
    provider: Provider,
    batch: SubmittedBatch,
    result: LineResult,
    report: RunReport,
) -> None:
    if result.outcome is Outcome.EXPIRED:
        report.failed += 1
        future.set_exception(
            BatchExpiredError(
                f"{provider.name} batch {batch.batch_id} expired before this request was processed "
                "(the provider's completion window ran out). It was not billed; run it again, "
                "or split the work into smaller batches.",
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
        future.set_result(result)


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


def _fail_all(futures: dict[str, asyncio.Future[LineResult]], error: BaseException) -> int:
    """Fail every caller still waiting; return how many there were."""
    failed = 0
    for future in futures.values():
        if not future.done():
            future.set_exception(error)
            failed += 1
    return failed
