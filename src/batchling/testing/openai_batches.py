"""OpenAI batch jobs: input-file validation, the status state machine, and result files.

A batch moves lazily: its status is re-evaluated whenever it is observed (retrieve, list,
cancel, ``FakeProviderServer.batches``). It answers ``validating`` on create, then
``in_progress`` until ``batch_delay_seconds`` after creation, then its terminal state.
Replies are computed when the terminal state is reached.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from batchling.testing.context import ServerContext
from batchling.testing.faults import BatchOutcome, find_failure_marker
from batchling.testing.file_store import StoredFile
from batchling.testing.openai_hosts import OPENAI, OpenAIHost, OpenAIHostName
from batchling.testing.replies import InvalidRequest, build_reply, reply_token_usage

Json = dict[str, Any]

TERMINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})
MAX_REPORTED_LINE_ERRORS = 1000


@dataclass
class ParsedInput:
    """The outcome of reading a batch input file."""

    lines: list[Json]
    errors: list[Json]
    marker_codes: dict[int, int]  # line index -> status requested by a [[fail:CODE]] marker


def parse_input_file(data: bytes, endpoint: str) -> ParsedInput:
    """Parse JSONL line by line and check it the way the real API validates input files."""
    lines: list[Json] = []
    errors: list[Json] = []
    marker_codes: dict[int, int] = {}
    seen_ids: set[str] = set()

    def error(code: str, message: str, line: int | None, param: str | None = None) -> None:
        if len(errors) < MAX_REPORTED_LINE_ERRORS:
            errors.append({"code": code, "message": message, "line": line, "param": param})

    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError:
            error("invalid_json_line", "This line is not parseable as valid JSON.", number)
            continue
        if not isinstance(item, dict):
            error("invalid_json_line", "Each line must be a JSON object.", number)
            continue
        custom_id = item.get("custom_id")
        body = item.get("body")
        if not isinstance(custom_id, str) or not custom_id:
            error(
                "missing_required_parameter",
                "Missing required parameter: 'custom_id'.",
                number,
                "custom_id",
            )
        elif custom_id in seen_ids:
            error(
                "duplicate_custom_id",
                f"The custom_id for this request is a duplicate of another request: {custom_id!r}.",
                number,
                "custom_id",
            )
        else:
            seen_ids.add(custom_id)
        if item.get("method") != "POST":
            error("invalid_method", "The only supported method is 'POST'.", number, "method")
        if item.get("url") != endpoint:
            error(
                "mismatched_endpoint",
                f"The url {item.get('url')!r} does not match the batch endpoint {endpoint!r}.",
                number,
                "url",
            )
        if not isinstance(body, dict):
            error(
                "missing_required_parameter", "Missing required parameter: 'body'.", number, "body"
            )
            continue
        if body.get("stream") is True:
            error(
                "invalid_request", "Streaming is not supported in batches.", number, "body.stream"
            )
        code = find_failure_marker(raw)
        if code is not None and find_failure_marker(json.dumps(body).encode()) is not None:
            marker_codes[len(lines)] = code
        lines.append(item)
    if not lines and not errors:
        error("empty_file", "The batch input file is empty.", None)
    return ParsedInput(lines, errors, marker_codes)


@dataclass(eq=False)
class BatchRecord:
    """One batch as the server keeps it. Mutated only under ``lock``."""

    id: str
    endpoint: str
    input_file_id: str
    completion_window: str
    metadata: dict[str, str] | None
    api_key: str
    headers: dict[str, str]
    lines: list[Json]
    created_at: int
    ready_at_monotonic: float
    outcome: BatchOutcome
    validation_errors: list[Json]
    marker_codes: dict[int, int]
    output_expires_after_seconds: int | None = None
    status: str = "validating"
    model: str | None = None
    expires_at: int | None = None
    in_progress_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[Json] | None = None
    completed_count: int = 0
    failed_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    provider: OpenAIHostName = "openai"
    """Which OpenAI-compatible host took the batch (``openai``, ``groq``, ``xai``, ``azure``)."""
    sequence: int = 0  # server-wide creation order across providers
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def to_api(self) -> Json:
        total = 0 if self.status in ("validating", "failed") else len(self.lines)
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.model,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "in_progress_at": self.in_progress_at,
            "expires_at": self.expires_at,
            "finalizing_at": self.finalizing_at,
            "completed_at": self.completed_at,
            "failed_at": self.failed_at,
            "expired_at": self.expired_at,
            "cancelling_at": self.cancelling_at,
            "cancelled_at": self.cancelled_at,
            "request_counts": {
                "total": total,
                "completed": self.completed_count,
                "failed": self.failed_count,
            },
            "usage": {
                "input_tokens": self.input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": self.output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": self.input_tokens + self.output_tokens,
            },
            "metadata": self.metadata,
        }


ErrorBody = Callable[[int, str, "str | None"], Json]


class BatchRunner:
    """Advances batch records through their states and writes their result files."""

    def __init__(
        self, context: ServerContext, error_body: ErrorBody, host: OpenAIHost = OPENAI
    ) -> None:
        self._context = context
        self._error_body = error_body
        self._host = host

    def advance(self, record: BatchRecord) -> None:
        """Bring ``record.status`` up to date with the wall clock."""
        with record.lock:
            if record.is_terminal:
                return
            if record.status == "cancelling":
                self._finish(record, "cancelled")
                return
            will_fail = bool(record.validation_errors) or record.outcome.outcome == "failed"
            if time.monotonic() < record.ready_at_monotonic:
                if not will_fail and record.status == "validating":
                    record.status = "in_progress"
                    record.in_progress_at = _now()
                return
            if will_fail:
                self._fail(record)
            else:
                self._finish(record, record.outcome.outcome)

    def cancel(self, record: BatchRecord) -> str | None:
        """Start cancelling; returns an error message if the batch cannot be cancelled."""
        with record.lock:
            if record.status == "cancelling":
                return None
            if record.is_terminal:
                return f"Cannot cancel a batch with status '{record.status}'."
            record.status = "cancelling"
            record.cancelling_at = _now()
            return None

    def _fail(self, record: BatchRecord) -> None:
        if record.validation_errors:
            record.errors = record.validation_errors
        else:
            record.errors = [
                {
                    "code": "injected_failure",
                    "message": "The batch failed (injected via set_batch_outcome).",
                    "line": None,
                    "param": None,
                }
            ]
        record.status = "failed"
        record.failed_at = _now()

    def _finish(self, record: BatchRecord, terminal: str) -> None:
        now = _now()
        if terminal == "completed":
            processed = len(record.lines)
        else:
            processed = int(len(record.lines) * record.outcome.completed_fraction)
        successes, failures = self._run_lines(record, processed, terminal)
        order = random.Random(record.id)
        record.output_file_id = self._write_result_file(record, successes, "output", order)
        record.error_file_id = self._write_result_file(record, failures, "error", order)
        record.completed_count = len(successes)
        record.failed_count = len(failures)
        if terminal != "cancelled":
            record.in_progress_at = record.in_progress_at or now
        if terminal == "completed":
            record.finalizing_at = now
            record.completed_at = now
        elif terminal == "expired":
            record.expired_at = now
        else:
            record.cancelling_at = record.cancelling_at or now
            record.cancelled_at = now
        record.status = terminal

    def _run_lines(
        self, record: BatchRecord, processed: int, terminal: str
    ) -> tuple[list[bytes], list[bytes]]:
        new_id = self._context.ids.new
        created = _now()
        successes: list[bytes] = []
        failures: list[bytes] = []
        skipped_code = "batch_expired" if terminal == "expired" else "batch_cancelled"
        skipped_message = (
            "This request could not be executed before the completion window expired."
            if terminal == "expired"
            else "This request was not executed because the batch was cancelled."
        )
        for index, line in enumerate(record.lines):
            custom_id = line.get("custom_id")
            if index >= processed:
                failures.append(
                    _dumps(
                        {
                            "id": new_id("batch_req_"),
                            "custom_id": custom_id,
                            "response": None,
                            "error": {"code": skipped_code, "message": skipped_message},
                        }
                    )
                )
                continue
            status, body = self._execute(record, index, line, created)
            target = successes if status == 200 else failures
            if status == 200:
                used_in, used_out = reply_token_usage(body)
                record.input_tokens += used_in
                record.output_tokens += used_out
            target.append(
                _dumps(
                    {
                        "id": new_id("batch_req_"),
                        "custom_id": custom_id,
                        "response": {
                            "status_code": status,
                            "request_id": new_id("req_"),
                            "body": body,
                        },
                        "error": None,
                    }
                )
            )
        return successes, failures

    def _execute(
        self, record: BatchRecord, index: int, line: Json, created: int
    ) -> tuple[int, Json]:
        code = record.marker_codes.get(index)
        if code is not None:
            return code, self._error_body(
                code, f"Injected failure {code} for this request.", "injected_failure"
            )
        try:
            return 200, build_reply(
                self._host.reply_endpoint(record.endpoint),
                line["body"],
                new_id=self._context.ids.new,
                created=created,
            )
        except InvalidRequest as exc:
            body = self._error_body(exc.status, exc.message, exc.code)
            body["error"]["param"] = exc.param
            return exc.status, body

    def _write_result_file(
        self, record: BatchRecord, lines: list[bytes], kind: str, order: random.Random
    ) -> str | None:
        if not lines:
            return None
        shuffle_away_from_input_order(lines, order)
        created = _now()
        expires = (
            created + record.output_expires_after_seconds
            if record.output_expires_after_seconds
            else None
        )
        stored = StoredFile(
            id=self._context.ids.new(self._host.file_id_prefix),
            filename=f"{record.id}_{kind}.jsonl",
            purpose="batch_output",
            data=b"".join(lines),
            created_at=created,
            expires_at=expires,
            owner=self._host.name,
        )
        self._context.files.add(stored)
        return stored.id


def shuffle_away_from_input_order(lines: list[bytes], rng: random.Random) -> None:
    """Deterministic shuffle that never leaves two or more lines in input order."""
    original = list(lines)
    rng.shuffle(lines)
    if len(lines) > 1 and lines == original:
        lines.reverse()


def _dumps(value: Json) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _now() -> int:
    return int(time.time())
