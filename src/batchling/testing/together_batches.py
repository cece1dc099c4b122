"""Together batch jobs: input validation, the status state machine, and result files.

A job moves lazily, whenever it is observed: ``VALIDATING`` on create, ``IN_PROGRESS`` until
``batch_delay_seconds`` after creation, then its terminal state (``COMPLETED``, ``FAILED``,
``EXPIRED``, ``CANCELLED``). A cancel request ends it as ``CANCELLED`` at once.

Result files follow Together's documented shapes: answered lines go to the output file as
``{"id", "custom_id", "response": {"status_code", "body"}}`` (a ``[[fail:CODE]]`` line too, with
its status, but to the error file); a line the fake cannot answer at all (its body is unusable)
goes to the error file as ``{"custom_id", "error": {"message", "code"}}``, with no HTTP status.
Lines an expired or cancelled job never ran appear in no file. Lines are written in an order that
differs from the input, so clients must match by ``custom_id``.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from batchling.testing.context import ServerContext
from batchling.testing.faults import BatchOutcome, find_failure_marker
from batchling.testing.openai_batches import shuffle_away_from_input_order
from batchling.testing.replies import InvalidRequest, build_reply
from batchling.testing.timestamps import rfc3339

Json = dict[str, Any]
ErrorBody = Callable[[int, str, "str | None"], Json]
AddFile = Callable[[bytes, str], str]
"""Stores a generated JSONL file under a name and returns its id."""

TERMINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "EXPIRED", "CANCELLED"})
MAX_CUSTOM_ID_LENGTH = 64
WINDOW_SECONDS = 24 * 3600


@dataclass(eq=False)
class TogetherBatchRecord:
    """One Together batch job as the server keeps it. Mutated only under ``lock``.

    ``lines`` are the requests as received (``{"custom_id", "body"}``); ``status`` is Together's
    own (``VALIDATING``, ``IN_PROGRESS``, ...).
    """

    id: str
    endpoint: str
    input_file_id: str
    file_size_bytes: int
    lines: list[Json]
    completion_window: str | None
    api_key: str
    headers: dict[str, str]
    created_at: float
    ready_at_monotonic: float
    outcome: BatchOutcome
    marker_codes: dict[int, int]  # line index -> status requested by a [[fail:CODE]] marker
    model: str | None = None
    validation_error: str | None = None
    sequence: int = 0
    status: str = "VALIDATING"
    progress: float = 0.0
    completed_at: float | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    error: str | None = None
    succeeded_count: int = 0
    failed_count: int = 0
    provider: Literal["together"] = "together"
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def to_api(self) -> Json:
        """The job object, as ``GET /v1/batches/{id}`` answers it."""
        return {
            "id": self.id,
            "user_id": "user_fake",
            "input_file_id": self.input_file_id,
            "file_size_bytes": self.file_size_bytes,
            "status": self.status,
            "job_deadline": rfc3339(self.created_at + WINDOW_SECONDS),
            "created_at": rfc3339(self.created_at),
            "endpoint": self.endpoint,
            "progress": self.progress,
            "model_id": self.model,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "error": self.error,
            "completed_at": rfc3339(self.completed_at),
        }


class TogetherBatchRunner:
    """Advances Together batch jobs through their states and writes their result files."""

    def __init__(self, context: ServerContext, error_body: ErrorBody, add_file: AddFile) -> None:
        self._context = context
        self._error_body = error_body
        self._add_file = add_file

    def advance(self, record: TogetherBatchRecord) -> None:
        """Bring ``record.status`` up to date with the wall clock."""
        with record.lock:
            if record.is_terminal:
                return
            if time.monotonic() < record.ready_at_monotonic:
                if record.status == "VALIDATING" and record.validation_error is None:
                    record.status = "IN_PROGRESS"
                return
            outcome = record.outcome.outcome
            if record.validation_error is not None:
                self._fail(record, record.validation_error)
            elif outcome == "failed":
                self._fail(record, "The batch failed (injected via set_batch_outcome).")
            elif outcome == "expired":
                self._end(record, "EXPIRED", self._fraction(record))
            elif outcome == "cancelled":
                self._end(record, "CANCELLED", self._fraction(record))
            else:
                self._end(record, "COMPLETED", len(record.lines))

    def cancel(self, record: TogetherBatchRecord) -> str | None:
        """Cancel the job; returns an error message if it already ended."""
        with record.lock:
            self.advance(record)
            if record.status == "CANCELLED":
                return None
            if record.is_terminal:
                return f"Batch job {record.id} has already ended with status {record.status}."
            self._end(record, "CANCELLED", self._fraction(record))
            return None

    @staticmethod
    def _fraction(record: TogetherBatchRecord) -> int:
        return int(len(record.lines) * record.outcome.completed_fraction)

    def _fail(self, record: TogetherBatchRecord, message: str) -> None:
        record.error = message
        record.status = "FAILED"
        record.completed_at = time.time()

    def _end(self, record: TogetherBatchRecord, status: str, processed: int) -> None:
        successes: list[Json] = []
        failures: list[Json] = []
        for index in range(processed):
            line = self._execute(record, index)
            response = line.get("response")
            ok = isinstance(response, dict) and response.get("status_code") == 200
            (successes if ok else failures).append(line)
        record.succeeded_count = len(successes)
        record.failed_count = len(failures)
        record.output_file_id = self._write(record, successes, "output")
        record.error_file_id = self._write(record, failures, "error")
        record.progress = 100.0 if processed == len(record.lines) else _percent(record, processed)
        record.completed_at = time.time()
        record.status = status

    def _execute(self, record: TogetherBatchRecord, index: int) -> Json:
        line = record.lines[index]
        custom_id = line.get("custom_id")
        code = record.marker_codes.get(index)
        if code is not None:
            body = self._error_body(
                code, f"Injected failure {code} for this request.", "injected_failure"
            )
            return {
                "id": str(uuid.uuid4()),
                "custom_id": custom_id,
                "response": {"status_code": code, "body": body},
            }
        try:
            reply = build_reply(
                record.endpoint,
                line["body"],
                new_id=self._context.ids.new,
                created=int(time.time()),
            )
        except InvalidRequest as exc:
            # Together's documented error-file line: a message and a code, no HTTP status.
            return {
                "custom_id": custom_id,
                "error": {"message": exc.message, "code": exc.code or "invalid_request"},
            }
        return {
            "id": str(uuid.uuid4()),
            "custom_id": custom_id,
            "response": {"status_code": 200, "body": reply},
        }

    def _write(self, record: TogetherBatchRecord, lines: list[Json], kind: str) -> str | None:
        if not lines:
            return None
        encoded = [_dumps(line) for line in lines]
        shuffle_away_from_input_order(encoded, random.Random(record.id + kind))
        return self._add_file(b"".join(encoded), f"{record.id}_{kind}.jsonl")


def parse_input_file(data: bytes) -> tuple[list[Json], str | None]:
    """The ``{"custom_id", "body"}`` requests of a JSONL input file, and the first problem."""
    lines: list[Json] = []
    seen: set[str] = set()
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError:
            return lines, f"Line {number} of the input file is not valid JSON."
        if not isinstance(item, dict) or not isinstance(item.get("body"), dict):
            return lines, f"Line {number} has no 'body' object."
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            return lines, f"Line {number} has no 'custom_id' string."
        if len(custom_id) > MAX_CUSTOM_ID_LENGTH:
            return lines, f"Line {number}: custom_id is longer than 64 characters."
        if custom_id in seen:
            return lines, f"Line {number}: duplicate custom_id {custom_id!r}."
        seen.add(custom_id)
        if item["body"].get("stream") is True:
            return lines, f"Line {number}: streaming is not supported in batch jobs."
        lines.append({"custom_id": custom_id, "body": item["body"]})
    if not lines:
        return lines, "The input file holds no requests."
    return lines, None


def marker_codes(lines: list[Json]) -> dict[int, int]:
    """Line index -> status of the ``[[fail:CODE]]`` marker in that line's body."""
    codes: dict[int, int] = {}
    for index, line in enumerate(lines):
        code = find_failure_marker(_dumps(line["body"]))
        if code is not None:
            codes[index] = code
    return codes


def _percent(record: TogetherBatchRecord, processed: int) -> float:
    return round(100.0 * processed / len(record.lines), 1) if record.lines else 100.0


def _dumps(value: Json) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
