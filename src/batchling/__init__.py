"""batchling: send the GenAI calls your code already makes through the providers' Batch APIs."""

from __future__ import annotations

from batchling.api import Batchify, batchify
from batchling.errors import (
    BatchCancelledError,
    BatchCreationUncertainError,
    BatchExpiredError,
    BatchFailedError,
    BatchJobError,
    BatchlingError,
    BatchlingWarning,
    BatchSubmissionAbandonedError,
    ClientClosedError,
    JournalError,
    MissingResultError,
    NotBatchableError,
    NotBatchedWarning,
    PluginError,
)
from batchling.hookspecs import hookimpl
from batchling.report import RunReport

__version__ = "0.1.0"

__all__ = [
    "BatchCancelledError",
    "BatchCreationUncertainError",
    "BatchExpiredError",
    "BatchFailedError",
    "BatchJobError",
    "BatchSubmissionAbandonedError",
    "Batchify",
    "BatchlingError",
    "BatchlingWarning",
    "ClientClosedError",
    "JournalError",
    "MissingResultError",
    "NotBatchableError",
    "NotBatchedWarning",
    "PluginError",
    "RunReport",
    "__version__",
    "batchify",
    "hookimpl",
]
