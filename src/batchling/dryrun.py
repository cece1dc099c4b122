"""Dry runs: see every call a program would batch, and what it would cost, sending nothing."""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from batchling.job_fill import JobFill, JobLimits
from batchling.provider import BatchRequest, Provider

CHARS_PER_TOKEN = 4
"""Input tokens are estimated from the request's text: about four characters a token."""
_NON_TEXT_KEYS = frozenset({"model", "custom_id", "metadata", "response_format", "tools", "schema"})


class DryRunFinished(BaseException):
    """Raised in the calls of a dry run once the program waits for results it will not get.

    A `BaseException` (like `SystemExit`), so that the program's own `except Exception` does not
    swallow it; `batchify()` turns it into a summary and a clean exit with code 0.
    """


class JournalState(enum.StrEnum):
    """What the journal already knows of a planned request."""

    NEW = "new"
    SUBMITTED = "submitted"
    """In a job a previous run submitted: it would be followed, not paid again."""
    CACHED = "cached"
    """Answered by a previous run: served from the journal at no cost."""


@dataclasses.dataclass(slots=True)
class PlanGroup:
    """The planned requests of one (provider, endpoint, model)."""

    provider: str
    endpoint: str
    model: str
    requests: int = 0
    """New requests: these would be submitted and paid for."""
    input_tokens: int = 0
    """Estimated input tokens of the new requests."""
    already_submitted: int = 0
    cached: int = 0
    batches: int = 0
    """Batch jobs the new requests would make, after splitting by limits."""
    _jobs: dict[str, JobFill] = dataclasses.field(default_factory=dict, repr=False)
    """The job each client's requests are filling."""


@dataclasses.dataclass
class DryRunPlan:
    """Everything a dry run saw."""

    batch_size: int
    groups: dict[tuple[str, str, str], PlanGroup] = dataclasses.field(default_factory=dict)
    passed_through: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    """Calls that would go to real-time endpoints at full price, by (provider, kind)."""

    def add(self, provider: Provider, request: BatchRequest, state: JournalState) -> None:
        """Count one intercepted batchable call."""
        key = (request.provider, request.endpoint, request.model)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = PlanGroup(*key)
        if state is JournalState.CACHED:
            group.cached += 1
            return
        if state is JournalState.SUBMITTED:
            group.already_submitted += 1
            return
        group.requests += 1
        group.input_tokens += estimate_input_tokens(request.body)
        # Split exactly as the scheduler would: per client identity, by the job limits.
        limits = JobLimits.of(provider, request, self.batch_size)
        job = group._jobs.get(request.client_key)
        if job is None or job.is_full(limits) or not job.has_room_for(request, limits):
            group.batches += 1
            job = group._jobs[request.client_key] = JobFill()
        job.add(request)

    def add_pass_through(self, provider: str, kind: str) -> None:
        """Count one call that would be sent in real time."""
        key = (provider, kind)
        self.passed_through[key] = self.passed_through.get(key, 0) + 1

    def __iter__(self) -> Iterator[PlanGroup]:
        return iter(sorted(self.groups.values(), key=lambda g: (g.provider, g.endpoint, g.model)))

    @property
    def total_requests(self) -> int:
        """Every batchable call seen, new or not."""
        return sum(g.requests + g.already_submitted + g.cached for g in self.groups.values())


def estimate_input_tokens(body: Mapping[str, Any]) -> int:
    """A rough input token count: the request's text length over `CHARS_PER_TOKEN`."""
    return max(1, math.ceil(_text_length(body) / CHARS_PER_TOKEN))


SAMPLED_LINES = 1_000
"""Lines of a job whose text `estimate_job_input_tokens` reads; the rest are estimated alike."""


def estimate_job_input_tokens(bodies: Sequence[Mapping[str, Any]]) -> int:
    """A rough input token count of a job's requests, from at most `SAMPLED_LINES` of them
    spread evenly across it (the summary's savings estimate needs no more)."""
    count = len(bodies)
    if count <= SAMPLED_LINES:
        return sum(estimate_input_tokens(body) for body in bodies)
    step = count / SAMPLED_LINES
    sampled = sum(estimate_input_tokens(bodies[int(i * step)]) for i in range(SAMPLED_LINES))
    return round(sampled * count / SAMPLED_LINES)


_SEQUENCES = (list, tuple)  # a constant: `list | tuple` would build a new object per call


def _text_length(value: object) -> int:
    """The characters of text in a request body, leaving out keys that hold no prompt text."""
    total = 0
    pending: list[Any] = [value]
    while pending:
        current = pending.pop()
        kind = type(current)
        # Exact types first: this runs for every batched request.
        if kind is str:
            total += len(current)
        elif kind is dict or (kind is not list and isinstance(current, Mapping)):
            pending.extend(item for name, item in current.items() if name not in _NON_TEXT_KEYS)
        elif kind is list or isinstance(current, _SEQUENCES):
            pending.extend(current)
        elif isinstance(current, str):
            total += len(current)
    return total
