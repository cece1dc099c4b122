"""What one `batchify()` block did: the counts behind warnings, logs and summaries."""

from __future__ import annotations

import collections
import dataclasses


@dataclasses.dataclass
class RunReport:
    """Counts for one `batchify()` block, readable as `ctx.report` during and after it."""

    batched: int = 0
    """Requests sent through a batch job."""
    passed_through: collections.Counter[str] = dataclasses.field(
        default_factory=collections.Counter
    )
    """Requests sent in real time at full price, by kind (e.g. `"streaming"`)."""
    failed: int = 0
    """Requests that ended in an error: their line or job failed, or the block ended (with an
    error) before they were answered."""
    batch_ids: list[str] = dataclasses.field(default_factory=list)
    """Every batch job submitted, in submission order."""
    from_journal: int = 0
    """Requests answered from results a previous run stored: no provider call, no cost."""
    resumed_batch_ids: list[str] = dataclasses.field(default_factory=list)
    """Jobs an earlier run submitted that this block followed to their end."""
    left_running_batch_ids: list[str] = dataclasses.field(default_factory=list)
    """Jobs the block did not wait for (it ended with an error or Ctrl-C, or its event loop
    shut down first): still running at the provider, and journaled for a re-run."""
    cancelled_batch_ids: list[str] = dataclasses.field(default_factory=list)
    """Jobs the block asked the provider to cancel: as it ended (`cancel_on_exit=True`), or as
    its `deadline` passed."""

    batched_input_tokens: collections.Counter[tuple[str, str]] = dataclasses.field(
        default_factory=collections.Counter
    )
    """Estimated input tokens of the batched requests, by (provider, model): what the
    exit summary prices to tell the saving."""
    batched_by_model: collections.Counter[tuple[str, str]] = dataclasses.field(
        default_factory=collections.Counter
    )
    """Batched requests by (provider, model)."""

    @property
    def passed_through_total(self) -> int:
        """Requests sent in real time, all kinds together."""
        return sum(self.passed_through.values())
