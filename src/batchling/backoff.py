"""Capped exponential backoff with jitter, for polling and for retrying provider calls."""

from __future__ import annotations

import random
from collections.abc import Iterator


def delays(
    first: float, *, cap: float, factor: float = 1.5, jitter: float = 0.1
) -> Iterator[float]:
    """Yield `first`, then each delay `factor` times the last, never above `cap`.

    Each delay is spread by up to `jitter` (a fraction) so that many clients do not retry in step.
    """
    delay = first
    cap = max(cap, first)
    while True:
        spread = delay * jitter
        yield max(0.0, delay + random.uniform(-spread, spread))
        delay = min(delay * factor, cap)
