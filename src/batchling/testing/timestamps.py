"""Wall-clock helpers shared by the provider protocols."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now() -> int:
    """Seconds since the epoch, as providers report them."""
    return int(time.time())


def rfc3339(seconds: float | None) -> str | None:
    """``2025-01-02T03:04:05.678901Z`` for a Unix time (None stays None)."""
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
