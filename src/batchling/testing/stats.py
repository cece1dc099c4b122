"""Thread-safe counters describing what the fake provider server has seen."""

from __future__ import annotations

import threading


class FakeServerStats:
    """Live counters; every read returns a snapshot, so callers may keep it.

    Counting rules:
    - ``realtime_calls`` / ``realtime_paths``: every POST to a real-time endpoint, including
      ones answered with an injected error, a dropped connection, or a 401.
    - ``batches_created`` / ``files_uploaded`` / ``lines_per_batch``: only successful creations.
    - ``requests``: every request as ``"METHOD /path"`` (no query string), in arrival order.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._realtime_paths: list[str] = []
        self._batches_created = 0
        self._files_uploaded = 0
        self._lines_per_batch: list[int] = []
        self._requests: list[str] = []

    @property
    def realtime_calls(self) -> int:
        with self._lock:
            return len(self._realtime_paths)

    @property
    def realtime_paths(self) -> list[str]:
        with self._lock:
            return list(self._realtime_paths)

    @property
    def batches_created(self) -> int:
        with self._lock:
            return self._batches_created

    @property
    def files_uploaded(self) -> int:
        with self._lock:
            return self._files_uploaded

    @property
    def lines_per_batch(self) -> list[int]:
        with self._lock:
            return list(self._lines_per_batch)

    @property
    def requests(self) -> list[str]:
        with self._lock:
            return list(self._requests)

    def request_count(self, route: str) -> int:
        """How many requests matched ``route`` exactly, e.g. ``"GET /v1/batches/batch_1"``."""
        with self._lock:
            return self._requests.count(route)

    def reset(self) -> None:
        with self._lock:
            self._realtime_paths.clear()
            self._batches_created = 0
            self._files_uploaded = 0
            self._lines_per_batch.clear()
            self._requests.clear()

    # Recording side, used by the server and protocols.

    def record_request(self, method: str, path: str) -> None:
        with self._lock:
            self._requests.append(f"{method} {path}")

    def record_realtime_call(self, path: str) -> None:
        with self._lock:
            self._realtime_paths.append(path)

    def record_file_uploaded(self) -> None:
        with self._lock:
            self._files_uploaded += 1

    def record_batch_created(self, line_count: int) -> None:
        with self._lock:
            self._batches_created += 1
            self._lines_per_batch.append(line_count)

    def __repr__(self) -> str:
        return (
            f"FakeServerStats(realtime_calls={self.realtime_calls}, "
            f"batches_created={self.batches_created}, files_uploaded={self.files_uploaded}, "
            f"lines_per_batch={self.lines_per_batch})"
        )
