"""Together AI emulation: upload flow, Batch API and real-time endpoints, under ``/together/v1``.

The ``openai`` SDK is pointed at it with ``AsyncOpenAI(base_url=server.together_base_url)``
(``http://host:port/together/v1``, standing for ``https://api.together.xyz/v1``).

Routes (every ``/together/v1`` route wants ``Authorization: Bearer``):

- ``POST /together/v1/files``: form fields ``purpose`` (``batch-api``, ``fine-tune``, ``eval``),
  ``file_name``, ``file_type`` (``jsonl``, ``parquet``, ``csv``); answered by a **302** whose
  ``Location`` is a signed URL on the fake object store and whose ``X-Together-File-Id`` names
  the file.
- ``PUT /together-storage/{token}?X-Signature=...``: the fake object store. It takes the bytes
  only when the signature matches and refuses (403) any request carrying an ``Authorization``,
  ``api-key`` or ``x-api-key`` header: a client that leaks its API key to the storage fails here.
- ``POST /together/v1/files/{id}/preprocess``: completes the upload and answers the file object.
- ``GET /together/v1/files``, ``GET /together/v1/files/{id}``,
  ``GET /together/v1/files/{id}/content``.
- ``POST /together/v1/batches`` (``endpoint``, ``input_file_id``, optional ``completion_window``
  that must be ``"24h"``, ``model_id``, ``priority``) answers 201 ``{"job", "warning"}``;
  ``GET /together/v1/batches`` (a bare JSON array, newest first),
  ``GET /together/v1/batches/{id}``, ``POST /together/v1/batches/{id}/cancel``.
- Real time: ``POST /together/v1/chat/completions`` (also streamed), ``/completions`` and
  ``/embeddings``, answered like OpenAI's.

Errors are ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from dataclasses import dataclass
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
from batchling.testing.multipart import MultipartError, parse_multipart
from batchling.testing.replies import InvalidRequest, build_reply, chat_completion_chunks
from batchling.testing.routing import Handler, Router
from batchling.testing.together_batches import (
    TogetherBatchRecord,
    TogetherBatchRunner,
    marker_codes,
    parse_input_file,
)

Json = dict[str, Any]

PREFIX = "/together/v1"
"""Where the fake Together API lives; ``server.together_base_url`` ends with it."""
STORAGE_PREFIX = "/together-storage"
"""The fake object store that signed upload URLs point at."""
OWNER: Final = "together"
FILE_PURPOSES = frozenset({"batch-api", "fine-tune", "eval"})
FILE_TYPES = frozenset({"jsonl", "parquet", "csv"})
BATCH_ENDPOINTS = frozenset({"/v1/chat/completions"})
REALTIME_ENDPOINTS: tuple[str, ...] = ("/chat/completions", "/completions", "/embeddings")
_CREDENTIAL_HEADERS = ("authorization", "api-key", "x-api-key")


def looks_like_together(request: Request) -> bool:
    """True for requests sent to the fake Together API or its object store."""
    return request.path.startswith((PREFIX + "/", STORAGE_PREFIX + "/"))


@dataclass
class _PendingUpload:
    file_id: str
    filename: str
    purpose: str
    file_type: str
    signature: str
    data: bytes | None = None


class TogetherProtocol:
    """Registers the Together routes and keeps the Together-side state (uploads, batch jobs)."""

    def __init__(self, context: ServerContext, *, batch_delay_seconds: float = 0.0) -> None:
        self._context = context
        self._batch_delay_seconds = batch_delay_seconds
        self._lock = threading.Lock()
        self._uploads: dict[str, _PendingUpload] = {}  # by storage token
        self._by_file_id: dict[str, str] = {}  # file id -> storage token
        self._batches: dict[str, TogetherBatchRecord] = {}
        self._runner = TogetherBatchRunner(context, self.error_body, self._add_result_file)

    # ------------------------------------------------------------------ plumbing

    def register(self, router: Router) -> None:
        routes: list[tuple[str, Handler]] = [
            (f"POST {PREFIX}/files", self.register_upload),
            (f"GET {PREFIX}/files", self.list_files),
            (f"POST {PREFIX}/files/{{id}}/preprocess", self.preprocess_file),
            (f"GET {PREFIX}/files/{{id}}/content", self.file_content),
            (f"GET {PREFIX}/files/{{id}}", self.retrieve_file),
            (f"POST {PREFIX}/batches", self.create_batch),
            (f"GET {PREFIX}/batches", self.list_batches),
            (f"GET {PREFIX}/batches/{{id}}", self.get_batch),
            (f"POST {PREFIX}/batches/{{id}}/cancel", self.cancel_batch),
        ]
        for route, handler in routes:
            router.add(route, self._authenticated(handler), self.error_response)
        router.add(f"PUT {STORAGE_PREFIX}/{{token}}", self.store_upload, self._storage_error)
        for endpoint in REALTIME_ENDPOINTS:
            router.add(
                f"POST {PREFIX}{endpoint}",
                self._authenticated(self._realtime_handler("/v1" + endpoint)),
                self.error_response,
                on_arrival=self._count_realtime_call,
            )

    def error_body(self, status: int, message: str, code: str | None = None) -> Json:
        return {
            "error": {
                "message": message,
                "type": openai_error_type(status),
                "param": None,
                "code": code,
            }
        }

    def error_response(self, status: int, message: str, code: str | None = None) -> Response:
        return self._json(status, self.error_body(status, message, code))

    def _json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> Response:
        return json_response(
            status, value, {"x-request-id": self._context.ids.new("req_"), **(headers or {})}
        )

    def _authenticated(self, handler: Handler) -> Handler:
        def guarded(request: Request) -> Response | DropConnection:
            if request.bearer_token() is None:
                return self.error_response(401, "Invalid API key provided.", "invalid_api_key")
            return handler(request)

        return guarded

    def _count_realtime_call(self, request: Request) -> None:
        self._context.stats.record_realtime_call(request.path, OWNER)

    # ------------------------------------------------------------------ upload flow

    def register_upload(self, request: Request) -> Response:
        try:
            parts = parse_multipart(request.body, request.headers.get("content-type", ""))
        except MultipartError as exc:
            return self.error_response(400, f"Invalid multipart body: {exc}")
        fields = {part.name: part.data.decode(errors="replace") for part in parts}
        purpose = fields.get("purpose", "")
        file_name = fields.get("file_name", "")
        file_type = fields.get("file_type", "jsonl")
        if purpose not in FILE_PURPOSES:
            return self.error_response(400, f"Invalid purpose {purpose!r}.", "invalid_purpose")
        if not file_name:
            return self.error_response(400, "Missing required field: file_name.")
        if file_type not in FILE_TYPES:
            return self.error_response(400, f"Invalid file_type {file_type!r}.")
        token = uuid.uuid4().hex
        pending = _PendingUpload(
            file_id=f"file-{uuid.uuid4()}",
            filename=file_name,
            purpose=purpose,
            file_type=file_type,
            signature=secrets.token_hex(16),
        )
        with self._lock:
            self._uploads[token] = pending
            self._by_file_id[pending.file_id] = token
        host = request.headers.get("host") or "127.0.0.1"
        location = f"http://{host}{STORAGE_PREFIX}/{token}?X-Signature={pending.signature}"
        return Response(
            status=302,
            body=b"",
            headers={
                "Location": location,
                "X-Together-File-Id": pending.file_id,
                "x-request-id": self._context.ids.new("req_"),
            },
            content_type="text/plain",
        )

    def store_upload(self, request: Request) -> Response:
        """The object store's side of a signed upload URL."""
        leaked = [name for name in _CREDENTIAL_HEADERS if name in request.headers]
        if leaked:
            return self._storage_error(
                403, f"A signed upload URL takes no credentials, got {', '.join(leaked)}.", None
            )
        with self._lock:
            pending = self._uploads.get(request.path_params["token"])
        if pending is None:
            return self._storage_error(404, "The specified upload does not exist.", None)
        if request.query_value("X-Signature") != pending.signature:
            return self._storage_error(403, "The request signature does not match.", None)
        pending.data = request.body
        return Response(status=200, headers={"ETag": f'"{uuid.uuid4().hex}"'})

    def _storage_error(self, status: int, message: str, code: str | None) -> Response:
        name = {403: "AccessDenied", 404: "NoSuchUpload"}.get(status, code or "InternalError")
        body = f"<Error><Code>{name}</Code><Message>{message}</Message></Error>"
        return Response(status=status, body=body.encode(), content_type="application/xml")

    def preprocess_file(self, request: Request) -> Response:
        file_id = request.path_params["id"]
        with self._lock:
            token = self._by_file_id.get(file_id)
            pending = self._uploads.get(token) if token is not None else None
        if pending is None:
            return self._no_such_file(file_id)
        if pending.data is None:
            return self.error_response(
                400, f"File {file_id} has no content yet: PUT it to its upload URL first."
            )
        stored = self._context.files.get(file_id)
        if stored is None:
            stored = self._context.files.add(
                StoredFile(
                    id=file_id,
                    filename=pending.filename,
                    purpose=pending.purpose,
                    data=pending.data,
                    created_at=int(time.time()),
                    mime_type=pending.file_type,
                    owner=OWNER,
                )
            )
            self._context.stats.record_file_uploaded(OWNER)
        return self._json(200, _file_object(stored))

    # ------------------------------------------------------------------ files

    def list_files(self, request: Request) -> Response:
        files = [f for f in reversed(self._context.files.all()) if f.owner == OWNER]
        return self._json(200, {"object": "list", "data": [_file_object(f) for f in files]})

    def retrieve_file(self, request: Request) -> Response:
        stored = self._own_file(request.path_params["id"])
        if stored is None:
            return self._no_such_file(request.path_params["id"])
        return self._json(200, _file_object(stored))

    def file_content(self, request: Request) -> Response:
        stored = self._own_file(request.path_params["id"])
        if stored is None:
            return self._no_such_file(request.path_params["id"])
        return Response(status=200, body=stored.data, content_type="application/octet-stream")

    def _own_file(self, file_id: str) -> StoredFile | None:
        stored = self._context.files.get(file_id)
        return stored if stored is not None and stored.owner == OWNER else None

    def _no_such_file(self, file_id: str) -> Response:
        return self.error_response(404, f"File {file_id} not found.", "file_not_found")

    def _add_result_file(self, data: bytes, filename: str) -> str:
        stored = StoredFile(
            id=f"file-{uuid.uuid4()}",
            filename=filename,
            purpose="batch-generated",
            data=data,
            created_at=int(time.time()),
            mime_type="jsonl",
            owner=OWNER,
        )
        return self._context.files.add(stored).id

    # ------------------------------------------------------------------ batch jobs

    def create_batch(self, request: Request) -> Response:
        payload = json_object(request.body)
        if payload is None:
            return self.error_response(400, "The request body is not a JSON object.")
        endpoint = payload.get("endpoint")
        if endpoint not in BATCH_ENDPOINTS:
            return self.error_response(
                400, f"Invalid endpoint {endpoint!r} (the fake serves /v1/chat/completions)."
            )
        window = payload.get("completion_window")
        if window is not None and window != "24h":
            return self.error_response(
                400, f"Invalid completion_window {window!r}: batches run within 24h."
            )
        model = payload.get("model_id")
        if model is not None and not isinstance(model, str):
            return self.error_response(400, "model_id must be a string.")
        file_id = payload.get("input_file_id")
        stored = self._own_file(file_id) if isinstance(file_id, str) else None
        if stored is None:
            return self.error_response(404, f"Input file {file_id!r} not found.", "file_not_found")
        if stored.purpose != "batch-api":
            return self.error_response(
                400, f"File {file_id} has purpose {stored.purpose!r}, expected 'batch-api'."
            )
        lines, problem = parse_input_file(stored.data)
        first_model = lines[0]["body"].get("model") if lines else None
        record = TogetherBatchRecord(
            id=str(uuid.uuid4()),
            endpoint=str(endpoint),
            input_file_id=stored.id,
            file_size_bytes=stored.size,
            lines=lines,
            completion_window=window,
            api_key=request.bearer_token() or "",
            headers=dict(request.headers),
            created_at=time.time(),
            ready_at_monotonic=time.monotonic() + self._batch_delay_seconds,
            outcome=self._context.faults.batch_outcome,
            marker_codes=marker_codes(lines),
            model=model or (first_model if isinstance(first_model, str) else None),
            validation_error=problem,
            sequence=self._context.next_sequence(),
        )
        with self._lock:
            self._batches[record.id] = record
        self._context.bodies.extend([line["body"] for line in lines])
        self._context.stats.record_batch_created(len(lines), OWNER)
        return self._json(201, {"job": _snapshot(record), "warning": None})

    def get_batch(self, request: Request) -> Response:
        record = self._find_batch(request.path_params["id"])
        if record is None:
            return self._no_such_batch(request.path_params["id"])
        self._runner.advance(record)
        return self._json(200, _snapshot(record))

    def cancel_batch(self, request: Request) -> Response:
        record = self._find_batch(request.path_params["id"])
        if record is None:
            return self._no_such_batch(request.path_params["id"])
        problem = self._runner.cancel(record)
        if problem is not None:
            return self.error_response(400, problem)
        return self._json(200, _snapshot(record))

    def list_batches(self, request: Request) -> Response:
        records = self.batches()
        records.reverse()  # newest first
        return self._json(200, [_snapshot(record) for record in records])

    def batches(self) -> list[TogetherBatchRecord]:
        """Every batch job in creation order, each brought up to date first."""
        with self._lock:
            records = list(self._batches.values())
        for record in records:
            self._runner.advance(record)
        return records

    def _find_batch(self, batch_id: str) -> TogetherBatchRecord | None:
        with self._lock:
            return self._batches.get(batch_id)

    def _no_such_batch(self, batch_id: str) -> Response:
        return self.error_response(404, f"Batch job {batch_id} not found.", "batch_not_found")

    # ------------------------------------------------------------------ real time

    def _realtime_handler(self, endpoint: str) -> Handler:
        def handler(request: Request) -> Response:
            return self.realtime(request, endpoint)

        return handler

    def realtime(self, request: Request, endpoint: str) -> Response:
        """Answer a real-time call of ``endpoint`` (``/v1/...``) as OpenAI's fake does."""
        body = json_object(request.body)
        if body is None:
            return self.error_response(400, "The request body is not a JSON object.")
        self._context.bodies.append(body)
        code = find_failure_marker(request.body)
        if code is not None:
            return self._json(
                code,
                self.error_body(code, f"Injected failure {code} for this request.", "injected"),
                {"x-should-retry": "false"},
            )
        created = int(time.time())
        try:
            if body.get("stream") is True:
                if endpoint != "/v1/chat/completions":
                    raise InvalidRequest("The fake Together streams only chat completions.")
                events = chat_completion_chunks(body, self._context.ids.new, created)
                stream = b"".join(b"data: " + dump_json(event) + b"\n\n" for event in events)
                return Response(
                    status=200,
                    body=stream + b"data: [DONE]\n\n",
                    content_type="text/event-stream",
                )
            reply = build_reply(endpoint, body, new_id=self._context.ids.new, created=created)
        except InvalidRequest as exc:
            return self.error_response(exc.status, exc.message, exc.code)
        return self._json(200, reply)


def _snapshot(record: TogetherBatchRecord) -> Json:
    with record.lock:
        return record.to_api()


def _file_object(stored: StoredFile) -> Json:
    return {
        "id": stored.id,
        "object": "file",
        "created_at": stored.created_at,
        "filename": stored.filename,
        "bytes": stored.size,
        "purpose": stored.purpose,
        "Processed": True,
        "FileType": stored.mime_type or "jsonl",
        "LineCount": len([line for line in stored.data.split(b"\n") if line.strip()]),
    }
