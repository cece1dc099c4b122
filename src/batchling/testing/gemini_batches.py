"""Gemini batch jobs (``batchGenerateContent`` / ``asyncBatchEmbedContent``) as Operations.

A job moves lazily, whenever it is observed: ``BATCH_STATE_PENDING`` on create, then
``BATCH_STATE_RUNNING`` until ``batch_delay_seconds`` after creation, then its terminal state.
Inline jobs answer ``metadata.output.inlinedResponses`` in input order (as the real API
does); file jobs answer ``metadata.output.responsesFile``, a generated JSONL file of
``{"key", "response"}`` / ``{"key", "error"}`` lines (in an order that differs from the input,
so clients must match by key).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from batchling.testing.context import ServerContext
from batchling.testing.faults import GRPC_CODES, BatchOutcome, grpc_code
from batchling.testing.gemini_replies import embed_content, generate_content
from batchling.testing.openai_batches import shuffle_away_from_input_order
from batchling.testing.replies import InvalidRequest
from batchling.testing.timestamps import rfc3339

Json = dict[str, Any]
GeminiEndpoint = Literal["batchGenerateContent", "asyncBatchEmbedContent"]
AddFile = Callable[[bytes], str]
"""Stores a generated JSONL file and returns its ``files/<id>`` name."""

TYPE_PREFIX = "type.googleapis.com/google.ai.generativelanguage.v1beta."
TERMINAL_STATES = frozenset(
    {
        "BATCH_STATE_SUCCEEDED",
        "BATCH_STATE_FAILED",
        "BATCH_STATE_CANCELLED",
        "BATCH_STATE_EXPIRED",
    }
)
_RESOURCE_TYPES: dict[str, tuple[str, str]] = {
    "batchGenerateContent": ("GenerateContentBatch", "GenerateContentBatchOutput"),
    "asyncBatchEmbedContent": ("EmbedContentBatch", "EmbedContentBatchOutput"),
}


@dataclass(eq=False)
class GeminiBatchRecord:
    """One Gemini batch job as the server keeps it. Mutated only under ``lock``.

    ``lines`` are the inline items as received (``{"request", "metadata"?}``) or, for a
    file source, the parsed JSONL lines (``{"key", "request"}``); ``status`` is the
    ``BATCH_STATE_*`` value.
    """

    id: str  # "batches/<id>"
    endpoint: GeminiEndpoint
    model: str  # without the "models/" prefix
    source: Literal["inline", "file"]
    lines: list[Json]
    api_key: str
    headers: dict[str, str]
    created_at: float
    ready_at_monotonic: float
    outcome: BatchOutcome
    marker_codes: dict[int, int]  # line index -> status requested by a [[fail:CODE]] marker
    display_name: str | None = None
    input_file: str | None = None
    validation_error: str | None = None
    sequence: int = 0
    status: str = "BATCH_STATE_PENDING"
    updated_at: float = 0.0
    ended_at: float | None = None
    output: Json | None = None
    error: Json | None = None
    successful_count: int = 0
    failed_count: int = 0
    deleted: bool = False
    provider: Literal["gemini"] = "gemini"
    metadata: dict[str, str] | None = None
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATES

    def to_api(self) -> Json:
        """The ``google.longrunning.Operation`` that ``batches.get`` reads."""
        resource_type, output_type = _RESOURCE_TYPES[self.endpoint]
        total = len(self.lines)
        metadata: Json = {
            "@type": TYPE_PREFIX + resource_type,
            "name": self.id,
            "model": "models/" + self.model,
            "createTime": rfc3339(self.created_at),
            "updateTime": rfc3339(self.updated_at or self.created_at),
            "batchStats": {
                "requestCount": str(total),
                "successfulRequestCount": str(self.successful_count),
                "failedRequestCount": str(self.failed_count),
                "pendingRequestCount": str(
                    total - self.successful_count - self.failed_count
                    if self.status in ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING")
                    else 0
                ),
            },
            "state": self.status,
        }
        if self.display_name is not None:
            metadata["displayName"] = self.display_name
        if self.ended_at is not None:
            metadata["endTime"] = rfc3339(self.ended_at)
        if self.output is not None:
            metadata["output"] = self.output
        operation: Json = {"name": self.id, "metadata": metadata}
        if self.is_terminal:
            operation["done"] = True
            if self.error is not None:
                operation["error"] = self.error
            elif self.output is not None:
                operation["response"] = {"@type": TYPE_PREFIX + output_type, **self.output}
        return operation


class GeminiBatchRunner:
    """Advances Gemini batch jobs through their states and computes their output."""

    def __init__(self, context: ServerContext, add_file: AddFile) -> None:
        self._context = context
        self._add_file = add_file

    def advance(self, record: GeminiBatchRecord) -> None:
        """Bring ``record.status`` up to date with the wall clock."""
        with record.lock:
            if record.is_terminal:
                return
            if time.monotonic() < record.ready_at_monotonic:
                if record.status == "BATCH_STATE_PENDING":
                    record.status = "BATCH_STATE_RUNNING"
                    record.updated_at = time.time()
                return
            outcome = record.outcome.outcome
            if record.validation_error is not None:
                self._fail(record, "INVALID_ARGUMENT", record.validation_error)
            elif outcome == "failed":
                self._fail(record, "INTERNAL", "The batch failed (injected via set_batch_outcome).")
            elif outcome == "expired":
                self._end(record, "BATCH_STATE_EXPIRED", processed=0, with_output=False)
            elif outcome == "cancelled":
                self._end(record, "BATCH_STATE_CANCELLED", processed=self._fraction(record))
            else:
                self._end(record, "BATCH_STATE_SUCCEEDED", processed=len(record.lines))

    def cancel(self, record: GeminiBatchRecord) -> str | None:
        """Cancel now; returns an error message if the job already ended otherwise."""
        with record.lock:
            self.advance(record)
            if record.status == "BATCH_STATE_CANCELLED":
                return None
            if record.is_terminal:
                return f"Batch {record.id} has already ended in state {record.status}."
            self._end(record, "BATCH_STATE_CANCELLED", processed=self._fraction(record))
            return None

    @staticmethod
    def _fraction(record: GeminiBatchRecord) -> int:
        return int(len(record.lines) * record.outcome.completed_fraction)

    def _fail(self, record: GeminiBatchRecord, status: str, message: str) -> None:
        record.error = {"code": GRPC_CODES[status], "message": message, "details": []}
        self._close(record, "BATCH_STATE_FAILED")

    def _end(
        self, record: GeminiBatchRecord, state: str, *, processed: int, with_output: bool = True
    ) -> None:
        if with_output:
            results = [self._execute(record, index) for index in range(processed)]
            record.successful_count = sum(1 for result in results if "response" in result)
            record.failed_count = len(results) - record.successful_count
            if record.source == "inline":
                record.output = self._inline_output(record, results)
            else:
                record.output = {"responsesFile": self._write_file(record, results)}
        self._close(record, state)

    def _close(self, record: GeminiBatchRecord, state: str) -> None:
        now = time.time()
        record.status = state
        record.ended_at = now
        record.updated_at = now

    def _execute(self, record: GeminiBatchRecord, index: int) -> Json:
        """``{"response": ...}`` or ``{"error": google.rpc.Status}`` for line ``index``."""
        code = record.marker_codes.get(index)
        if code is not None:
            return {"error": status_error(code, f"Injected failure {code} for this request.")}
        request = record.lines[index]["request"]
        try:
            if record.endpoint == "asyncBatchEmbedContent":
                return {"response": embed_content(request)}
            return {"response": generate_content(request, record.model, self._context.ids.new)}
        except InvalidRequest as exc:
            return {"error": status_error(exc.status, exc.message)}

    @staticmethod
    def _inline_output(record: GeminiBatchRecord, results: list[Json]) -> Json:
        answered = []
        for line, result in zip(record.lines, results, strict=False):
            item = dict(result)
            if isinstance(line.get("metadata"), dict):
                item["metadata"] = line["metadata"]
            answered.append(item)
        return {"inlinedResponses": {"inlinedResponses": answered}}

    def _write_file(self, record: GeminiBatchRecord, results: list[Json]) -> str:
        lines = [
            _dumps({"key": line.get("key"), **result})
            for line, result in zip(record.lines, results, strict=False)
        ]
        shuffle_away_from_input_order(lines, random.Random(record.id))
        return self._add_file(b"".join(lines))


def status_error(http_status: int, message: str) -> Json:
    """A per-request ``google.rpc.Status`` whose ``code`` is the gRPC code for ``http_status``."""
    return {"code": grpc_code(http_status), "message": message, "details": []}


def parse_input_file(data: bytes) -> tuple[list[Json], str | None]:
    """The ``{"key", "request"}`` lines of a batch input file, and the first problem found."""
    lines: list[Json] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError:
            return lines, f"Line {number} of the input file is not valid JSON."
        if not isinstance(item, dict) or not isinstance(item.get("request"), dict):
            return lines, f"Line {number} of the input file has no 'request' object."
        lines.append(item)
    if not lines:
        return lines, "The input file has no requests."
    return lines, None


def _dumps(value: Json) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
