"""Mistral emulation: Files, Batch Jobs and the real-time endpoints, under ``/mistral/v1``.

The ``mistralai`` SDK is pointed at it with ``Mistral(server_url=server.mistral_base_url)``
(``http://host:port/mistral``); its paths carry ``/v1/...`` themselves. Serving Mistral under
its own prefix keeps it apart from OpenAI, whose paths (``/v1/files``,
``/v1/chat/completions``) it shares.

Routes: ``POST /v1/files`` (multipart ``file``, ``purpose``, ``visibility``, ``expiry``),
``GET /v1/files``, ``GET``/``DELETE /v1/files/{id}``, ``GET /v1/files/{id}/content``;
``POST /v1/batch/jobs`` (``input_files`` or inline ``requests``), ``GET /v1/batch/jobs``
(``page``, ``page_size``, ``status``, ``model``, ``order_by``), ``GET /v1/batch/jobs/{id}``
(``?inline=true`` adds ``outputs``), ``POST /v1/batch/jobs/{id}/cancel``,
``DELETE /v1/batch/jobs/{id}``; real time ``POST /v1/chat/completions`` (also streamed),
``/v1/embeddings`` and ``/v1/fim/completions``. Every route wants ``Authorization: Bearer``.
Errors are ``{"object": "error", "message", "type", "param", "code"}``.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, Final

from batchling.testing.context import ServerContext
from batchling.testing.faults import find_failure_marker, openai_error_type
from batchling.testing.file_store import StoredFile
from batchling.testing.http_types import (
    DropConnection,
    Request,
    Response,
    dump_json,
    json_object,
    json_response,
)
from batchling.testing.mistral_batches import (
    MistralBatchRecord,
    MistralBatchRunner,
    marker_codes,
    parse_input_file,
    parse_lines,
)
from batchling.testing.mistral_replies import ENDPOINTS, build_reply, chat_chunks
from batchling.testing.multipart import MultipartError, parse_multipart
from batchling.testing.replies import InvalidRequest
from batchling.testing.routing import Handler, Router

Json = dict[str, Any]

PREFIX = "/mistral"
"""Where the fake Mistral lives; ``server.mistral_base_url`` ends with it."""
OWNER: Final = "mistral"
FILE_PURPOSES = frozenset({"fine-tune", "batch", "ocr", "agentic_safety"})
DEFAULT_TIMEOUT_HOURS = 24
DEFAULT_PAGE_SIZE = 100


def looks_like_mistral(request: Request) -> bool:
    """True for requests sent to the fake Mistral's prefix."""
    return request.path == PREFIX or request.path.startswith(PREFIX + "/")


class MistralProtocol:
    """Registers the Mistral routes and keeps the Mistral-side state (batch jobs)."""

    def __init__(self, context: ServerContext, *, batch_delay_seconds: float = 0.0) -> None:
        self._context = context
        self._batch_delay_seconds = batch_delay_seconds
        self._lock = threading.Lock()
        self._batches: dict[str, MistralBatchRecord] = {}
        self._runner = MistralBatchRunner(context, self.error_body, self._add_result_file)

    # ------------------------------------------------------------------ plumbing

    def register(self, router: Router) -> None:
        v1 = PREFIX + "/v1"
        routes: list[tuple[str, Handler]] = [
            (f"POST {v1}/files", self.upload_file),
            (f"GET {v1}/files", self.list_files),
            (f"GET {v1}/files/{{id}}/content", self.file_content),
            (f"GET {v1}/files/{{id}}", self.retrieve_file),
            (f"DELETE {v1}/files/{{id}}", self.delete_file),
            (f"POST {v1}/batch/jobs", self.create_batch),
            (f"GET {v1}/batch/jobs", self.list_batches),
            (f"GET {v1}/batch/jobs/{{id}}", self.get_batch),
            (f"POST {v1}/batch/jobs/{{id}}/cancel", self.cancel_batch),
            (f"DELETE {v1}/batch/jobs/{{id}}", self.delete_batch),
        ]
        for route, handler in routes:
            router.add(route, self._authenticated(handler), self.error_response)
        for endpoint in ENDPOINTS:
            router.add(
                f"POST {PREFIX}{endpoint}",
                self._authenticated(self._realtime_handler(endpoint)),
                self.error_response,
                on_arrival=self._count_realtime_call,
            )

    def error_body(self, status: int, message: str, code: str | None = None) -> Json:
        return {
            "object": "error",
            "message": message,
            "type": openai_error_type(status),
            "param": None,
            "code": code,
        }

    def error_response(self, status: int, message: str, code: str | None = None) -> Response:
        return self._json(status, self.error_body(status, message, code))

    def _json(self, status: int, value: Any) -> Response:
        return json_response(status, value, {"mistral-correlation-id": str(uuid.uuid4())})

    def _authenticated(self, handler: Handler) -> Handler:
        def guarded(request: Request) -> Response | DropConnection:
            if request.bearer_token() is None:
                return self.error_response(401, "Unauthorized")
            return handler(request)

        return guarded

    def _count_realtime_call(self, request: Request) -> None:
        self._context.stats.record_realtime_call(request.path, OWNER)

    def _new_id(self, _prefix: str) -> str:
        return self._context.ids.new("")

    # ------------------------------------------------------------------ files

    def upload_file(self, request: Request) -> Response:
        try:
            parts = parse_multipart(request.body, request.headers.get("content-type", ""))
        except MultipartError as exc:
            return self.error_response(400, f"Invalid multipart body: {exc}")
        fields = {part.name: part for part in parts}
        file_part = fields.get("file")
        if file_part is None:
            return self.error_response(422, "Field required: file.")
        purpose = fields["purpose"].data.decode() if "purpose" in fields else "fine-tune"
        if purpose not in FILE_PURPOSES:
            return self.error_response(422, f"Invalid purpose {purpose!r}.")
        created = int(time.time())
        expires_at: int | None = None
        if "expiry" in fields:
            try:
                expires_at = created + 3600 * int(fields["expiry"].data)
            except ValueError:
                return self.error_response(422, "Invalid expiry.")
        data = file_part.data
        stored = self._context.files.add(
            StoredFile(
                id=str(uuid.uuid4()),
                filename=file_part.filename or "upload",
                purpose=purpose,
                data=data,
                created_at=created,
                expires_at=expires_at,
                mime_type=file_part.content_type,
                owner=OWNER,
            )
        )
        self._context.stats.record_file_uploaded(OWNER)
        return self._json(200, _file_object(stored, "upload"))

    def list_files(self, request: Request) -> Response:
        files = [f for f in reversed(self._context.files.all()) if f.owner == OWNER]
        page, size = _paging(request)
        chosen = files[page * size : (page + 1) * size]
        return self._json(
            200,
            {"object": "list", "data": [_file_object(f) for f in chosen], "total": len(files)},
        )

    def retrieve_file(self, request: Request) -> Response:
        stored = self._own_file(request.path_params["id"])
        if stored is None:
            return self._no_such_file()
        return self._json(200, {**_file_object(stored), "deleted": False})

    def delete_file(self, request: Request) -> Response:
        file_id = request.path_params["id"]
        if self._own_file(file_id) is None or not self._context.files.delete(file_id):
            return self._no_such_file()
        return self._json(200, {"id": file_id, "object": "file", "deleted": True})

    def file_content(self, request: Request) -> Response:
        stored = self._own_file(request.path_params["id"])
        if stored is None:
            return self._no_such_file()
        return Response(status=200, body=stored.data, content_type="application/octet-stream")

    def _own_file(self, file_id: str) -> StoredFile | None:
        stored = self._context.files.get(file_id)
        return stored if stored is not None and stored.owner == OWNER else None

    def _no_such_file(self) -> Response:
        return self.error_response(404, "File not found.")

    def _add_result_file(self, data: bytes, filename: str) -> str:
        stored = StoredFile(
            id=str(uuid.uuid4()),
            filename=filename,
            purpose="batch",
            data=data,
            created_at=int(time.time()),
            mime_type="application/jsonl",
            owner=OWNER,
        )
        return self._context.files.add(stored).id

    # ------------------------------------------------------------------ batch jobs

    def create_batch(self, request: Request) -> Response:
        payload = json_object(request.body)
        if payload is None:
            return self.error_response(400, "The request body is not a JSON object.")
        endpoint = payload.get("endpoint")
        if endpoint not in ENDPOINTS:
            return self.error_response(
                422, f"Invalid endpoint {endpoint!r} (the fake serves {', '.join(ENDPOINTS)})."
            )
        input_files = payload.get("input_files")
        inline = payload.get("requests")
        if (input_files is None) == (inline is None):
            return self.error_response(422, "Provide exactly one of input_files or requests.")
        model = payload.get("model")
        if model is not None and not isinstance(model, str):
            return self.error_response(422, "Invalid model.")
        metadata = payload.get("metadata")
        if metadata is not None and not (
            isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
        ):
            return self.error_response(422, "metadata must map strings to strings.")
        timeout_hours = payload.get("timeout_hours", DEFAULT_TIMEOUT_HOURS)
        if isinstance(timeout_hours, bool) or not isinstance(timeout_hours, int):
            return self.error_response(422, "timeout_hours must be a positive integer.")
        if timeout_hours < 1:
            return self.error_response(422, "timeout_hours must be a positive integer.")
        if inline is not None:
            if not isinstance(inline, list):
                return self.error_response(422, "requests must be a list.")
            lines, problem = parse_lines(inline, "Request")
            if problem is not None and not lines:
                return self.error_response(422, problem)
            files: list[str] = []
        else:
            if not isinstance(input_files, list) or not input_files:
                return self.error_response(422, "input_files must be a non-empty list.")
            lines, problem = [], None
            for file_id in input_files:
                stored = self._own_file(str(file_id))
                if stored is None:
                    return self.error_response(404, f"File {file_id} not found.")
                more, problem = parse_input_file(stored.data)
                lines.extend(more)
                if problem is not None:
                    break
            files = [str(file_id) for file_id in input_files]
        record = MistralBatchRecord(
            id=str(uuid.uuid4()),
            endpoint=str(endpoint),
            model=model,
            source="inline" if inline is not None else "file",
            lines=lines,
            input_files=files,
            metadata=metadata,
            timeout_hours=timeout_hours,
            api_key=request.bearer_token() or "",
            headers=dict(request.headers),
            created_at=int(time.time()),
            ready_at_monotonic=time.monotonic() + self._batch_delay_seconds,
            outcome=self._context.faults.batch_outcome,
            marker_codes=marker_codes(lines),
            validation_error=problem,
            sequence=self._context.next_sequence(),
        )
        with self._lock:
            self._batches[record.id] = record
        self._context.bodies.extend([line["body"] for line in lines])
        self._context.stats.record_batch_created(len(lines), OWNER)
        return self._json(200, _snapshot(record))

    def get_batch(self, request: Request) -> Response:
        record = self._find_batch(request.path_params["id"])
        if record is None:
            return self._no_such_batch()
        self._runner.advance(record)
        inline = (request.query_value("inline") or "").lower() == "true"
        return self._json(200, _snapshot(record, inline=inline))

    def cancel_batch(self, request: Request) -> Response:
        record = self._find_batch(request.path_params["id"])
        if record is None:
            return self._no_such_batch()
        problem = self._runner.cancel(record)
        if problem is not None:
            return self.error_response(400, problem)
        return self._json(200, _snapshot(record))

    def delete_batch(self, request: Request) -> Response:
        record = self._find_batch(request.path_params["id"])
        if record is None:
            return self._no_such_batch()
        with record.lock:
            record.deleted = True
        return self._json(200, {"id": record.id, "object": "batch", "deleted": True})

    def list_batches(self, request: Request) -> Response:
        records = [record for record in self.batches() if not record.deleted]
        if request.query_value("order_by") != "created":
            records.reverse()  # newest first by default
        statuses = set(request.query.get("status", []))
        model = request.query_value("model")
        chosen = [
            record
            for record in records
            if (not statuses or record.status in statuses) and model in (None, record.model)
        ]
        page, size = _paging(request)
        data = [_snapshot(record) for record in chosen[page * size : (page + 1) * size]]
        return self._json(200, {"object": "list", "data": data, "total": len(chosen)})

    def batches(self) -> list[MistralBatchRecord]:
        """Every batch job in creation order, each brought up to date first."""
        with self._lock:
            records = list(self._batches.values())
        for record in records:
            self._runner.advance(record)
        return records

    def _find_batch(self, batch_id: str) -> MistralBatchRecord | None:
        with self._lock:
            record = self._batches.get(batch_id)
        return None if record is None or record.deleted else record

    def _no_such_batch(self) -> Response:
        return self.error_response(404, "Batch job not found.")

    # ------------------------------------------------------------------ real time

    def _realtime_handler(self, endpoint: str) -> Handler:
        def handler(request: Request) -> Response:
            return self.realtime(request, endpoint)

        return handler

    def realtime(self, request: Request, endpoint: str) -> Response:
        """Answer a real-time call of ``endpoint`` (``/v1/...``)."""
        body = json_object(request.body)
        if body is None:
            return self.error_response(400, "The request body is not a JSON object.")
        self._context.bodies.append(body)
        code = find_failure_marker(request.body)
        if code is not None:
            return self.error_response(
                code, f"Injected failure {code} for this request.", "injected_failure"
            )
        created = int(time.time())
        try:
            if body.get("stream") is True:
                return self._stream(endpoint, body, created)
            reply = build_reply(endpoint, body, self._new_id, created)
        except InvalidRequest as exc:
            return self.error_response(exc.status, exc.message)
        return self._json(200, reply)

    def _stream(self, endpoint: str, body: Json, created: int) -> Response:
        if endpoint != "/v1/chat/completions":
            raise InvalidRequest("The fake Mistral streams only chat completions.")
        events = chat_chunks(body, self._new_id, created)
        stream = b"".join(b"data: " + dump_json(event) + b"\n\n" for event in events)
        return Response(
            status=200,
            body=stream + b"data: [DONE]\n\n",
            content_type="text/event-stream",
        )


def _snapshot(record: MistralBatchRecord, *, inline: bool = False) -> Json:
    with record.lock:
        return record.to_api(inline=inline)


def _file_object(stored: StoredFile, source: str | None = None) -> Json:
    generated = stored.filename.endswith(("_output.jsonl", "_error.jsonl"))
    sample_type = "batch_result" if generated else "batch_request"
    if stored.filename.endswith("_error.jsonl"):
        sample_type = "batch_error"
    return {
        "id": stored.id,
        "object": "file",
        "bytes": stored.size,
        "created_at": stored.created_at,
        "filename": stored.filename,
        "purpose": stored.purpose,
        "sample_type": sample_type if stored.purpose == "batch" else "instruct",
        "source": source or ("mistral" if generated else "upload"),
        "num_lines": len([line for line in stored.data.split(b"\n") if line.strip()]),
        "mimetype": stored.mime_type,
        "signature": None,
        "expires_at": stored.expires_at,
        "visibility": "workspace",
    }


def _paging(request: Request) -> tuple[int, int]:
    def number(name: str, default: int, low: int) -> int:
        try:
            return max(int(request.query_value(name) or default), low)
        except ValueError:
            return default

    return number("page", 0, 0), min(number("page_size", DEFAULT_PAGE_SIZE, 1), 1000)
