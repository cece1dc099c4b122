"""Anthropic Message Batches: the record, its state machine, and its results.

Like OpenAI batches, a message batch moves lazily, whenever it is observed: it is
``in_progress`` until ``batch_delay_seconds`` after creation, then ``ended``; a cancel makes it
``canceling`` and the next observation ends it. Results are computed when it ends, as JSONL
whose order differs from the input order.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from batchling.testing.anthropic_replies import build_message
from batchling.testing.context import ServerContext
from batchling.testing.faults import BatchOutcome, anthropic_error_type
from batchling.testing.openai_batches import shuffle_away_from_input_order
from batchling.testing.replies import InvalidRequest, NewId
from batchling.testing.timestamps import rfc3339

Json = dict[str, Any]

BATCH_LIFETIME_SECONDS = 24 * 3600
RESULT_TYPES = ("succeeded", "errored", "canceled", "expired")


@dataclass(eq=False)
class AnthropicBatchRecord:
    """One message batch as the server keeps it. Mutated only under ``lock``.

    ``lines`` are the ``requests`` items as received (``{"custom_id", "params"}``);
    ``status`` is the ``processing_status`` (``in_progress``, ``canceling``, ``ended``).
    """

    id: str
    api_key: str
    headers: dict[str, str]
    lines: list[Json]
    created_at: float
    ready_at_monotonic: float
    outcome: BatchOutcome
    marker_codes: dict[int, int]  # line index -> status requested by a [[fail:CODE]] marker
    results_base_url: str  # scheme://host the client reached us at, for ``results_url``
    sequence: int = 0
    model: str | None = None
    status: str = "in_progress"
    ended_at: float | None = None
    cancel_initiated_at: float | None = None
    archived_at: float | None = None
    results: bytes | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESULT_TYPES, 0))
    deleted: bool = False
    endpoint: str = "/v1/messages"
    provider: Literal["anthropic"] = "anthropic"
    metadata: dict[str, str] | None = None
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def is_terminal(self) -> bool:
        return self.status == "ended"

    @property
    def results_url(self) -> str | None:
        if self.status != "ended":
            return None
        return f"{self.results_base_url}/v1/messages/batches/{self.id}/results"

    def to_api(self) -> Json:
        ended = self.status == "ended"
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.status,
            "request_counts": {
                "processing": 0 if ended else len(self.lines),
                **(self.counts if ended else dict.fromkeys(RESULT_TYPES, 0)),
            },
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.created_at + BATCH_LIFETIME_SECONDS),
            "ended_at": rfc3339(self.ended_at),
            "cancel_initiated_at": rfc3339(self.cancel_initiated_at),
            "archived_at": rfc3339(self.archived_at),
            "results_url": self.results_url,
        }


class AnthropicBatchRunner:
    """Advances message batches through their states and computes their results."""

    def __init__(self, context: ServerContext) -> None:
        self._context = context

    def advance(self, record: AnthropicBatchRecord) -> None:
        """Bring ``record.status`` up to date with the wall clock."""
        with record.lock:
            if record.is_terminal:
                return
            if record.status == "canceling":
                self._end(record, "canceled")
                return
            if time.monotonic() < record.ready_at_monotonic:
                return
            outcome = record.outcome.outcome
            if outcome == "cancelled":
                record.cancel_initiated_at = time.time()
                self._end(record, "canceled")
            elif outcome == "expired":
                self._end(record, "expired")
            elif outcome == "failed":
                self._end(record, "failed")
            else:
                self._end(record, "completed")

    def cancel(self, record: AnthropicBatchRecord) -> None:
        """Start cancelling (no-op once ended or already cancelling)."""
        with record.lock:
            if record.status == "in_progress":
                record.status = "canceling"
                record.cancel_initiated_at = time.time()

    def _end(self, record: AnthropicBatchRecord, how: str) -> None:
        """End the batch; ``how`` is ``completed``, ``failed``, ``expired`` or ``canceled``."""
        total = len(record.lines)
        if how in ("completed", "failed"):
            processed = total
        else:
            processed = int(total * record.outcome.completed_fraction)
        new_id = self._context.ids.new
        lines: list[bytes] = []
        for index, line in enumerate(record.lines):
            if index >= processed:
                result: Json = {"type": how}
            elif how == "failed":
                result = _errored(500, "The batch failed (injected via set_batch_outcome).", new_id)
            else:
                result = self._execute(record, index, line)
            record.counts[result["type"]] += 1
            lines.append(_dumps({"custom_id": line.get("custom_id"), "result": result}))
        shuffle_away_from_input_order(lines, random.Random(record.id))
        record.results = b"".join(lines)
        record.ended_at = time.time()
        record.status = "ended"

    def _execute(self, record: AnthropicBatchRecord, index: int, line: Json) -> Json:
        new_id = self._context.ids.new
        code = record.marker_codes.get(index)
        if code is not None:
            return _errored(code, f"Injected failure {code} for this request.", new_id)
        try:
            message = build_message(line["params"], new_id=new_id, service_tier="batch")
        except InvalidRequest as exc:
            return _errored(exc.status, exc.message, new_id)
        return {"type": "succeeded", "message": message}


def error_body(status: int, message: str, request_id: str) -> Json:
    """Anthropic's error body: ``{"type": "error", "error": {...}, "request_id"}``."""
    return {
        "type": "error",
        "error": {"type": anthropic_error_type(status), "message": message},
        "request_id": request_id,
    }


def _errored(status: int, message: str, new_id: NewId) -> Json:
    return {"type": "errored", "error": error_body(status, message, new_id("req_"))}


def _dumps(value: Json) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
