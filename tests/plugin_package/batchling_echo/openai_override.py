"""A replacement for batchling's built-in OpenAI provider (registered only on request).

`batchling_echo.plugin` registers it when `BATCHLING_ECHO_OVERRIDE_OPENAI=1` is set at load
time. Registering the name `"openai"` replaces the built-in provider, because third-party
plugins load after the built-ins. This one counts the jobs it submits and otherwise behaves
exactly like the built-in.
"""

from __future__ import annotations

from collections.abc import Sequence

from batchling.provider import BatchLine, SubmittedBatch
from batchling.providers.openai import OpenAIProvider


class CountingOpenAIProvider(OpenAIProvider):
    """The built-in OpenAI provider, counting submitted jobs and their requests."""

    submitted_jobs = 0
    submitted_requests = 0

    async def submit(
        self, lines: Sequence[BatchLine], *, completion_window: str, submission_id: str
    ) -> SubmittedBatch:
        batch = await super().submit(
            lines, completion_window=completion_window, submission_id=submission_id
        )
        type(self).submitted_jobs += 1
        type(self).submitted_requests += len(lines)
        return batch
