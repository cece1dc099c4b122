"""Thread-safe counters describing what the fake provider server has seen."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Literal, get_args

ProviderName = Literal[
    "openai", "anthropic", "gemini", "groq", "xai", "azure", "mistral", "together"
]
"""Every emulated provider; ``groq``, ``xai`` and ``azure`` speak the OpenAI protocol, and
``together`` its own upload flow and Batch API."""
PROVIDERS: tuple[ProviderName, ...] = get_args(ProviderName)


@dataclass
class _Counters:
    realtime_paths: list[str] = field(default_factory=list)
    batches_created: int = 0
    files_uploaded: int = 0
    lines_per_batch: list[int] = field(default_factory=list)

    def clear(self) -> None:
        self.realtime_paths.clear()
        self.batches_created = 0
        self.files_uploaded = 0
        self.lines_per_batch.clear()


class FakeServerStats:
    """Live counters; every read returns a snapshot, so callers may keep it.

    The top-level counters are totals across providers; ``provider(name)`` gives the same
    counters for one provider alone.

    Counting rules:
    - ``realtime_calls`` / ``realtime_paths``: every POST to a real-time endpoint, including
      ones answered with an injected error, a dropped connection, or a 401.
    - ``batches_created`` / ``files_uploaded`` / ``lines_per_batch``: only successful creations
      (a Together file counts once its upload is complete, at ``preprocess``).
    - ``requests``: every request as ``"METHOD /path"`` (no query string), in arrival order.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = _Counters()
        self._by_provider = {name: _Counters() for name in PROVIDERS}
        self._requests: list[str] = []

    @property
    def realtime_calls(self) -> int:
        with self._lock:
            return len(self._total.realtime_paths)

    @property
    def realtime_paths(self) -> list[str]:
        with self._lock:
            return list(self._total.realtime_paths)

    @property
    def batches_created(self) -> int:
        with self._lock:
            return self._total.batches_created

    @property
    def files_uploaded(self) -> int:
        with self._lock:
            return self._total.files_uploaded

    @property
    def lines_per_batch(self) -> list[int]:
        with self._lock:
            return list(self._total.lines_per_batch)

    @property
    def requests(self) -> list[str]:
        with self._lock:
            return list(self._requests)

    def request_count(self, route: str) -> int:
        """How many requests matched ``route`` exactly, e.g. ``"GET /v1/batches/batch_1"``."""
        with self._lock:
            return self._requests.count(route)

    def provider(self, name: ProviderName) -> ProviderStats:
        """Live counters of one provider (any ``ProviderName``, e.g. ``"openai"`` or ``"groq"``)."""
        if name not in self._by_provider:
            raise ValueError(f"unknown provider {name!r}; expected one of {PROVIDERS}")
        return ProviderStats(self, name)

    def reset(self) -> None:
        with self._lock:
            self._total.clear()
            for counters in self._by_provider.values():
                counters.clear()
            self._requests.clear()

    # Recording side, used by the server and protocols.

    def record_request(self, method: str, path: str) -> None:
        with self._lock:
            self._requests.append(f"{method} {path}")

    def record_realtime_call(self, path: str, provider: ProviderName = "openai") -> None:
        with self._lock:
            for counters in self._counters(provider):
                counters.realtime_paths.append(path)

    def record_file_uploaded(self, provider: ProviderName = "openai") -> None:
        with self._lock:
            for counters in self._counters(provider):
                counters.files_uploaded += 1

    def record_batch_created(self, line_count: int, provider: ProviderName = "openai") -> None:
        with self._lock:
            for counters in self._counters(provider):
                counters.batches_created += 1
                counters.lines_per_batch.append(line_count)

    def _counters(self, provider: ProviderName) -> tuple[_Counters, _Counters]:
        return self._total, self._by_provider[provider]

    # Reading side of ProviderStats.

    def _read_provider(self, name: ProviderName) -> _Counters:
        with self._lock:
            counters = self._by_provider[name]
            return _Counters(
                list(counters.realtime_paths),
                counters.batches_created,
                counters.files_uploaded,
                list(counters.lines_per_batch),
            )

    def __repr__(self) -> str:
        return (
            f"FakeServerStats(realtime_calls={self.realtime_calls}, "
            f"batches_created={self.batches_created}, files_uploaded={self.files_uploaded}, "
            f"lines_per_batch={self.lines_per_batch})"
        )


class ProviderStats:
    """The counters of ``FakeServerStats`` restricted to one provider (live, like its parent)."""

    def __init__(self, parent: FakeServerStats, name: ProviderName) -> None:
        self._parent = parent
        self.name: ProviderName = name

    @property
    def realtime_calls(self) -> int:
        return len(self._parent._read_provider(self.name).realtime_paths)

    @property
    def realtime_paths(self) -> list[str]:
        return self._parent._read_provider(self.name).realtime_paths

    @property
    def batches_created(self) -> int:
        return self._parent._read_provider(self.name).batches_created

    @property
    def files_uploaded(self) -> int:
        return self._parent._read_provider(self.name).files_uploaded

    @property
    def lines_per_batch(self) -> list[int]:
        return self._parent._read_provider(self.name).lines_per_batch

    def __repr__(self) -> str:
        return (
            f"ProviderStats({self.name!r}, realtime_calls={self.realtime_calls}, "
            f"batches_created={self.batches_created}, files_uploaded={self.files_uploaded}, "
            f"lines_per_batch={self.lines_per_batch})"
        )
