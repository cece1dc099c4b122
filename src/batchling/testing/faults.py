"""Fault injection: failure markers in request text, batch outcomes, and one-shot route faults."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Literal, get_args

from batchling.testing.routing import RouteTemplate

BatchOutcomeName = Literal["completed", "failed", "expired", "cancelled"]

FAILURE_MARKER = re.compile(rb"\[\[fail:(\d{3})\]\]")
"""``[[fail:CODE]]`` anywhere in a serialized request body makes that request fail with CODE."""


def find_failure_marker(serialized_body: bytes) -> int | None:
    """The status code requested by a ``[[fail:CODE]]`` marker, or None."""
    if b"[[fail:" not in serialized_body:  # fast path for the common case
        return None
    found = FAILURE_MARKER.search(serialized_body)
    return int(found.group(1)) if found else None


def openai_error_type(status: int) -> str:
    """The ``error.type`` OpenAI uses for an HTTP status."""
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


_ANTHROPIC_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_error_type(status: int) -> str:
    """The ``error.type`` Anthropic uses for an HTTP status."""
    known = _ANTHROPIC_ERROR_TYPES.get(status)
    if known is not None:
        return known
    return "api_error" if status >= 500 else "invalid_request_error"


GRPC_CODES: dict[str, int] = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}
"""google.rpc.Code: canonical status name -> gRPC code number."""

_GOOGLE_STATUSES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def google_status(status: int) -> str:
    """The canonical status name (``error.status``) Google APIs answer with an HTTP status."""
    known = _GOOGLE_STATUSES.get(status)
    if known is not None:
        return known
    return "INTERNAL" if status >= 500 else "INVALID_ARGUMENT"


def grpc_code(status: int) -> int:
    """The gRPC code (``google.rpc.Status.code``) for an HTTP status, e.g. 429 -> 8."""
    return GRPC_CODES[google_status(status)]


@dataclass(frozen=True)
class BatchOutcome:
    """How batches created from now on end (see ``FakeProviderServer.set_batch_outcome``)."""

    outcome: BatchOutcomeName = "completed"
    completed_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.outcome not in get_args(BatchOutcomeName):
            raise ValueError(f"unknown batch outcome {self.outcome!r}")
        if not 0.0 <= self.completed_fraction <= 1.0:
            raise ValueError("completed_fraction must be between 0.0 and 1.0")


@dataclass(frozen=True)
class InjectedFault:
    """A one-shot fault that matched a request: answer ``status``, or drop when ``drop``."""

    route: str
    drop: bool
    status: int
    retry_after_ms: int | None


@dataclass
class _RouteFaultRule:
    template: RouteTemplate
    remaining: int
    drop: bool
    status: int
    retry_after_ms: int | None


class FaultPlan:
    """All configured faults. Thread-safe; route faults are consumed first-added-first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._outcome = BatchOutcome()
        self._rules: list[_RouteFaultRule] = []

    @property
    def batch_outcome(self) -> BatchOutcome:
        with self._lock:
            return self._outcome

    def set_batch_outcome(self, outcome: BatchOutcomeName, completed_fraction: float = 0.0) -> None:
        value = BatchOutcome(outcome, float(completed_fraction))
        with self._lock:
            self._outcome = value

    def fail_next(
        self, route: str, status: int, times: int = 1, *, retry_after_ms: int | None = 10
    ) -> None:
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        self._add(
            _RouteFaultRule(RouteTemplate(route), _positive(times), False, status, retry_after_ms)
        )

    def drop_next(self, route: str, times: int = 1) -> None:
        self._add(_RouteFaultRule(RouteTemplate(route), _positive(times), True, 0, None))

    def take(self, method: str, path: str) -> InjectedFault | None:
        """Consume and return the first route fault matching this request, if any."""
        with self._lock:
            for rule in self._rules:
                if rule.template.match(method, path) is None:
                    continue
                rule.remaining -= 1
                if rule.remaining == 0:
                    self._rules.remove(rule)
                return InjectedFault(
                    rule.template.route, rule.drop, rule.status, rule.retry_after_ms
                )
        return None

    def pending_route_faults(self) -> int:
        """How many one-shot route faults have not fired yet."""
        with self._lock:
            return sum(rule.remaining for rule in self._rules)

    def clear(self) -> None:
        """Forget route faults and go back to the ``completed`` outcome."""
        with self._lock:
            self._rules.clear()
            self._outcome = BatchOutcome()

    def _add(self, rule: _RouteFaultRule) -> None:
        with self._lock:
            self._rules.append(rule)


def _positive(times: int) -> int:
    if times < 1:
        raise ValueError("times must be >= 1")
    return times
