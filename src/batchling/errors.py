"""Every error and warning batchling raises; all errors derive from `BatchlingError`."""

from __future__ import annotations


class BatchlingError(Exception):
    """Base class of every error batchling raises itself."""


class NotBatchableError(BatchlingError):
    """A call inside `batchify(strict=True)` cannot go through a Batch API."""

    def __init__(self, kind: str, reason: str) -> None:
        self.kind = kind
        self.reason = reason
        super().__init__(
            f"{reason} This call cannot be sent through a Batch API, and batchify(strict=True) "
            "refuses to send it in real time at full price. Move it outside the `batchify()` "
            "block, or drop `strict=True` to let batchling pass it through (it is then reported)."
        )


class BatchJobError(BatchlingError):
    """A request could not be completed because of what happened to its batch job."""

    def __init__(self, message: str, *, provider: str, batch_id: str | None) -> None:
        self.provider = provider
        self.batch_id = batch_id
        super().__init__(message)


class BatchFailedError(BatchJobError):
    """The provider rejected or failed the whole batch job."""


class BatchExpiredError(BatchJobError):
    """The batch job hit its completion window before this request was processed."""


class BatchCancelledError(BatchJobError):
    """The batch job was cancelled before this request was processed."""


class MissingResultError(BatchJobError):
    """The batch job finished but returned no result for this request."""


class BatchSubmissionAbandonedError(BatchlingError):
    """The `batchify()` block ended (by an error) before this request was answered: it was not
    submitted (nothing was sent or billed), or its batch job was left running (journaled, so a
    re-run collects it) or asked to cancel; the message says which."""


class BatchCreationUncertainError(BatchlingError):
    """Creating a batch job failed after an earlier attempt that may have created it, and the
    provider could not say whether it did. The journal keeps the submission: running the program
    again looks the job up and follows it (or submits anew if there is none), never paying
    twice. The provider's own error is the `__cause__`."""


class ClientClosedError(BatchlingError):
    """Every client the callers of a running batch job made their calls with is closed, so
    batchling has none left to follow the job with. The job keeps running at the provider and
    stays journaled: running the program again picks up its results."""


class JournalError(BatchlingError):
    """batchling could not read or write its journal, so it submitted nothing for the request:
    it never spends money it could not record."""


class DeadlineReachedError(BatchlingError):
    """`batchify(deadline=...)` passed before this request's batch finished."""


class PluginError(BatchlingError):
    """A third-party batchling plugin could not be loaded or registered."""


class BatchlingWarning(UserWarning):
    """Base class of the warnings batchling emits."""


class NotBatchedWarning(BatchlingWarning):
    """A call inside `batchify()` was sent in real time, at full price."""
