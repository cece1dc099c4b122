"""How full one batch job being filled is, against the limits of a provider's jobs.

The scheduler fills its queues with it, and a dry run counts the jobs it would make with it, so
both split a stream of requests into the same jobs.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from batchling.provider import BatchRequest, Provider


class JobLimits(NamedTuple):
    """The most one job may hold (a tuple: one is made per request)."""

    requests: int
    size_bytes: int
    units: int | None
    """Of the requests' `units` summed (e.g. OpenAI's 50,000 embedding inputs); None: no limit."""

    @classmethod
    def of(cls, provider: Provider, request: BatchRequest, batch_size: int) -> JobLimits:
        """The limits `request` puts on the job it joins: the provider's own (or those it gives
        the request, e.g. by host), and the block's `batch_size`."""
        max_requests, max_bytes = request.limits or (
            provider.max_requests_per_batch,
            provider.max_bytes_per_batch,
        )
        return cls(min(batch_size, max_requests), max_bytes, request.max_units)


@dataclasses.dataclass(slots=True)
class JobFill:
    """What a job being filled holds so far."""

    requests: int = 0
    size_bytes: int = 0
    units: int = 0

    def has_room_for(self, request: BatchRequest, limits: JobLimits) -> bool:
        """Whether `request` may join (an empty job takes any request)."""
        if self.requests == 0:
            return True
        if self.size_bytes + request.size_bytes > limits.size_bytes:
            return False
        return limits.units is None or self.units + request.units <= limits.units

    def add(self, request: BatchRequest) -> None:
        self.requests += 1
        self.size_bytes += request.size_bytes
        self.units += request.units

    def is_full(self, limits: JobLimits) -> bool:
        """Whether no further request may join."""
        if self.requests >= limits.requests:
            return True
        return limits.units is not None and self.units >= limits.units
