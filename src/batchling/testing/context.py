"""Shared state every provider protocol of one fake server works with."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from batchling.testing.faults import FaultPlan
from batchling.testing.file_store import FileStore
from batchling.testing.ids import IdGenerator
from batchling.testing.stats import FakeServerStats


class BodyLog:
    """Thread-safe, append-only record of request bodies in arrival order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bodies: list[Any] = []

    def append(self, body: Any) -> None:
        with self._lock:
            self._bodies.append(body)

    def extend(self, bodies: list[Any]) -> None:
        with self._lock:
            self._bodies.extend(bodies)

    def snapshot(self) -> list[Any]:
        with self._lock:
            return list(self._bodies)

    def clear(self) -> None:
        with self._lock:
            self._bodies.clear()


@dataclass
class ServerContext:
    stats: FakeServerStats = field(default_factory=FakeServerStats)
    faults: FaultPlan = field(default_factory=FaultPlan)
    ids: IdGenerator = field(default_factory=IdGenerator)
    files: FileStore = field(default_factory=FileStore)
    bodies: BodyLog = field(default_factory=BodyLog)
    sequence: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def next_sequence(self) -> int:
        """A server-wide increasing number (orders batches of every provider by creation)."""
        return next(self.sequence)
