"""Mistral batch jobs: input validation, the status state machine, and result files.

A job moves lazily, whenever it is observed: ``QUEUED`` on create, ``RUNNING`` until
``batch_delay_seconds`` after creation, then its terminal state (``SUCCESS``, ``FAILED``,
``TIMEOUT_EXCEEDED``, ``CANCELLED``). A cancel request makes it ``CANCELLATION_REQUESTED``
until it is next observed. Answered lines go to the job's ``output_file`` (status 2xx) or
``error_file`` (any other), as ``{"id", "custom_id", "response": {"status_code", "body"},
"error"}`` lines in an order that differs from the input, so clients must match by
``custom_id``; lines a timed-out or cancelled job never processed appear in neither.
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
from batchling.testing.mistral_replies import build_reply
from batchling.testing.openai_batches import shuffle_away_from_input_order
from batchling.testing.replies import InvalidRequest

Json = dict[str, Any]
ErrorBody = Callable[[int, str, "str | None"], Json]
AddFile = Callable[[bytes, str], str]
"""Stores a generated JSONL file under a name and returns its id."""

TERMINAL_STATUSES = frozenset({"SUCCESS", "FAILED", "TIMEOUT_EXCEEDED", "CANCELLED"})


@dataclass(eq=False)
class MistralBatchRecord:
    """One Mistral batch job as the server keeps it. Mutated only under ``lock``.

    ``lines`` are the requests as received (``{"custom_id", "body"}``), from the input file or
    the inline ``requests``; ``status`` is Mistral's own (``QUEUED``, ``RUNNING``, ...).
    """

    id: str
    endpoint: str
    model: str | None
    source: Literal["inline", "file"]
    lines: list[Json]
    input_files: list[str]
    metadata: dict[str, str] | None
    timeout_hours: int
    api_key: str
    headers: dict[str, str]
    created_at: int
    ready_at_monotonic: float
    outcome: BatchOutcome
    marker_codes: dict[int, int]  # line index -> status requested by a [[fail:CODE]] marker
    validation_error: str | None = None
    sequence: int = 0
    status: str = "QUEUED"
    started_at: int | None = None
    completed_at: int | None = None
    output_file: str | None = None
    error_file: str | None = None
    outputs: list[Json] = field(default_factory=list)
    errors: list[Json] = field(default_factory=list)
    succeeded_count: int = 0
    failed_count: int = 0
    deleted: bool = False
    provider: Literal["mistral"] = "mistral"
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def to_api(self, *, inline: bool = False) -> Json:
        """The ``BatchJob`` object (``inline``: with the answered lines in ``outputs``)."""
        job: Json = {
            "id": self.id,
            "object": "batch",
            "input_files": list(self.input_files),
            "metadata": self.metadata,
            "endpoint": self.endpoint,
            "model": self.model,
            "agent_id": None,
            "output_file": self.output_file,
            "error_file": self.error_file,
            "errors": list(self.errors),
            "status": self.status,
            "created_at": self.created_at,
            "total_requests": len(self.lines),
            "completed_requests": self.succeeded_count + self.failed_count,
            "succeeded_requests": self.succeeded_count,
            "failed_requests": self.failed_count,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
        }
        if inline:
            job["outputs"] = list(self.outputs) if self.is_terminal else None
        return job


class MistralBatchRunner:
    """Advances Mistral batch jobs through their states and writes their result files."""

    def __init__(self, context: ServerContext, error_body: ErrorBody, add_file: AddFile) -> None:
        self._context = context
        self._error_body = error_body
        self._add_file = add_file

    def advance(self, record: MistralBatchRecord) -> None:
        """Bring ``record.status`` up to date with the wall clock."""
        with record.lock:
            if record.is_terminal:
                return
            if record.status == "CANCELLATION_REQUESTED":
                self._end(record, "CANCELLED", self._fraction(record))
                return
            if time.monotonic() < record.ready_at_monotonic:
                if record.status == "QUEUED":
                    record.status = "RUNNING"
                    record.started_at = _now()
                return
            outcome = record.outcome.outcome
            if record.validation_error is not None:
                self._fail(record, record.validation_error)
            elif outcome == "failed":
                self._fail(record, "The batch failed (injected via set_batch_outcome).")
            elif outcome == "expired":
                self._end(record, "TIMEOUT_EXCEEDED", self._fraction(record))
            elif outcome == "cancelled":
                self._end(record, "CANCELLED", self._fraction(record))
            else:
                self._end(record, "SUCCESS", len(record.lines))

    def cancel(self, record: MistralBatchRecord) -> str | None:
        """Request cancellation; returns an error message if the job already ended."""
        with record.lock:
            self.advance(record)
            if record.status in ("CANCELLATION_REQUESTED", "CANCELLED"):
                return None
            if record.is_terminal:
                return f"Batch job {record.id} has already ended with status {record.status}."
            record.status = "CANCELLATION_REQUESTED"
            return None

    @staticmethod
    def _fraction(record: MistralBatchRecord) -> int:
        return int(len(record.lines) * record.outcome.completed_fraction)

    def _fail(self, record: MistralBatchRecord, message: str) -> None:
        record.errors = [{"message": message, "count": 1}]
        record.status = "FAILED"
        record.completed_at = _now()

    def _end(self, record: MistralBatchRecord, status: str, processed: int) -> None:
        successes: list[Json] = []
        failures: list[Json] = []
        for index in range(processed):
            line = self._execute(record, index)
            (successes if line["response"]["status_code"] == 200 else failures).append(line)
        record.succeeded_count = len(successes)
        record.failed_count = len(failures)
        record.outputs = successes + failures
        record.output_file = self._write(record, successes, "output")
        record.error_file = self._write(record, failures, "error")
        record.started_at = record.started_at or _now()
        record.completed_at = _now()
        record.status = status

    def _execute(self, record: MistralBatchRecord, index: int) -> Json:
        line = record.lines[index]
        body: Json = line["body"]
        if record.model and "model" not in body:
            body = {**body, "model": record.model}
        status, reply = 200, None
        code = record.marker_codes.get(index)
        try:
            if code is not None:
                raise InvalidRequest(f"Injected failure {code} for this request.")
            reply = build_reply(
                record.endpoint, body, lambda _prefix: self._context.ids.new(""), _now()
            )
        except InvalidRequest as exc:
            status = code if code is not None else exc.status
            reply = self._error_body(status, exc.message, "injected_failure" if code else None)
        return {
            "id": str(uuid.uuid4()),
            "custom_id": line.get("custom_id"),
            "response": {"status_code": status, "body": reply},
            "error": None if status == 200 else reply.get("message"),
        }

    def _write(self, record: MistralBatchRecord, lines: list[Json], kind: str) -> str | None:
        if not lines:
            return None
        encoded = [_dumps(line) for line in lines]
        shuffle_away_from_input_order(encoded, random.Random(record.id + kind))
        return self._add_file(b"".join(encoded), f"{record.id}_{kind}.jsonl")


def parse_lines(items: list[Any], where: str) -> tuple[list[Json], str | None]:
    """The ``{"custom_id", "body"}`` requests of a job, and the first problem found."""
    lines: list[Json] = []
    seen: set[str] = set()
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict) or not isinstance(item.get("body"), dict):
            return lines, f"{where} {number} has no 'body' object."
        custom_id = item.get("custom_id")
        if custom_id is not None:
            if not isinstance(custom_id, str):
                return lines, f"{where} {number}: 'custom_id' must be a string."
            if custom_id in seen:
                return lines, f"{where} {number}: duplicate custom_id {custom_id!r}."
            seen.add(custom_id)
        if item["body"].get("stream") is True:
            return lines, f"{where} {number}: streaming is not supported in batch jobs."
        lines.append({"custom_id": custom_id, "body": item["body"]})
    if not lines:
        return lines, "The batch job has no requests."
    return lines, None


def parse_input_file(data: bytes) -> tuple[list[Json], str | None]:
    """The requests of a JSONL input file, and the first problem found."""
    items: list[Any] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            items.append(json.loads(raw))
        except ValueError:
            return [], f"Line {number} of the input file is not valid JSON."
    return parse_lines(items, "Line")


def marker_codes(lines: list[Json]) -> dict[int, int]:
    """Line index -> status of the ``[[fail:CODE]]`` marker in that line's body."""
    codes: dict[int, int] = {}
    for index, line in enumerate(lines):
        code = find_failure_marker(_dumps(line["body"]))
        if code is not None:
            codes[index] = code
    return codes


def _dumps(value: Json) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _now() -> int:
    return int(time.time())
