"""OpenAI emulation: Files, Batches and the real-time endpoints.

One instance serves one OpenAI-compatible host (OpenAI under ``/v1``, Groq, xAI, Azure OpenAI;
see ``openai_hosts``) with its own batches and files; all share replies, counters and faults.
"""

from __future__ import annotations

import threading
import time
from typing import Any

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
from batchling.testing.openai_batches import BatchRecord, BatchRunner, parse_input_file
from batchling.testing.openai_hosts import OPENAI, OpenAIHost
from batchling.testing.replies import InvalidRequest, build_reply, chat_completion_chunks
from batchling.testing.routing import Handler, Router

Json = dict[str, Any]

DEFAULT_FILE_LIFETIME_SECONDS = 30 * 24 * 3600
_BEARER_MISSING = (
    "You didn't provide an API key. You need to provide your API key in an "
    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
_API_KEY_MISSING = (
    "Access denied due to missing subscription key. Make sure to include subscription key "
    "when making requests to an API."
)
_API_VERSION_MISSING = (
    "The api-version query parameter (?api-version=) is required for all requests."
)


class OpenAIProtocol:
    """Registers one OpenAI-compatible host's routes and keeps its state (batches).

    ``host`` (default OpenAI itself) decides the path prefix, authentication, accepted batch
    endpoints and completion windows; files and batches are visible only through their host.
    """

    def __init__(
        self,
        context: ServerContext,
        *,
        batch_delay_seconds: float = 0.0,
        host: OpenAIHost = OPENAI,
    ) -> None:
        self._context = context
        self._batch_delay_seconds = batch_delay_seconds
        self._host = host
        self._lock = threading.Lock()
        self._batches: dict[str, BatchRecord] = {}
        self._runner = BatchRunner(context, self.error_body, host)

    @property
    def host(self) -> OpenAIHost:
        return self._host

    # ------------------------------------------------------------------ plumbing

    def register(self, router: Router) -> None:
        prefix = self._host.prefix
        routes: list[tuple[str, Handler]] = [
            (f"POST {prefix}/files", self.upload_file),
            (f"GET {prefix}/files", self.list_files),
            (f"GET {prefix}/files/{{id}}", self.retrieve_file),
            (f"DELETE {prefix}/files/{{id}}", self.delete_file),
            (f"GET {prefix}/files/{{id}}/content", self.file_content),
            (f"POST {prefix}/batches", self.create_batch),
            (f"GET {prefix}/batches", self.list_batches),
            (f"GET {prefix}/batches/{{id}}", self.retrieve_batch),
            (f"POST {prefix}/batches/{{id}}/cancel", self.cancel_batch),
        ]
        for route, handler in routes:
            router.add(route, self._authenticated(handler), self.error_response)
        for realtime in self._host.realtime:
            router.add(
                f"POST {realtime.path}",
                self._authenticated(self._realtime_handler(realtime.reply_endpoint)),
                self.error_response,
                on_arrival=self._count_realtime_call,
            )

    def error_body(
        self, status: int, message: str, code: str | None, param: str | None = None
    ) -> Json:
        return {
            "error": {
                "message": message,
                "type": openai_error_type(status),
                "param": param,
                "code": code,
            }
        }

    def error_response(
        self,
        status: int,
        message: str,
        code: str | None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        return self._json(status, self.error_body(status, message, code, param), headers)

    def _json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> Response:
        return json_response(
            status, value, {"x-request-id": self._context.ids.new("req_"), **(headers or {})}
        )

    def _authenticated(self, handler: Handler) -> Handler:
        """Checks what the host requires: Azure an ``api-version`` query parameter (400) and an
        ``api-key`` header (401), every other host an ``Authorization: Bearer`` token (401)."""

        def guarded(request: Request) -> Response | DropConnection:
            if self._host.requires_api_version and not request.query_value("api-version"):
                return self.error_response(400, _API_VERSION_MISSING, "MissingApiVersionParameter")
            if self._credential(request) is None:
                if self._host.auth == "api-key":
                    return self.error_response(401, _API_KEY_MISSING, "401")
                return self.error_response(401, _BEARER_MISSING, None)
            return handler(request)

        return guarded

    def _credential(self, request: Request) -> str | None:
        """The caller's API key: the ``api-key`` header on Azure, else the bearer token."""
        if self._host.auth == "api-key":
            return request.headers.get("api-key", "").strip() or None
        return request.bearer_token()

    def _count_realtime_call(self, request: Request) -> None:
        self._context.stats.record_realtime_call(request.path, self._host.name)

    # ------------------------------------------------------------------ files

    def upload_file(self, request: Request) -> Response:
        try:
            parts = parse_multipart(request.body, request.headers.get("content-type", ""))
        except MultipartError as exc:
            return self.error_response(400, f"Invalid multipart body: {exc}", None)
        fields = {part.name: part for part in parts}
        file_part = fields.get("file")
        purpose = fields["purpose"].data.decode() if "purpose" in fields else None
        if file_part is None:
            return self.error_response(400, "Missing required parameter: 'file'.", None, "file")
        if not purpose:
            return self.error_response(
                400, "Missing required parameter: 'purpose'.", None, "purpose"
            )
        created = int(time.time())
        lifetime: int | None = DEFAULT_FILE_LIFETIME_SECONDS if purpose == "batch" else None
        if "expires_after[seconds]" in fields:
            try:
                lifetime = int(fields["expires_after[seconds]"].data)
            except ValueError:
                return self.error_response(
                    400, "Invalid 'expires_after[seconds]'.", None, "expires_after"
                )
        stored = self._context.files.add(
            StoredFile(
                id=self._context.ids.new(self._host.file_id_prefix),
                filename=file_part.filename or "upload",
                purpose=purpose,
                data=file_part.data,
                created_at=created,
                expires_at=created + lifetime if lifetime is not None else None,
                owner=self._host.name,
            )
        )
        self._context.stats.record_file_uploaded(self._host.name)
        return self._json(200, _file_object(stored))

    def list_files(self, request: Request) -> Response:
        purpose = request.query_value("purpose")
        files = [
            f
            for f in reversed(self._context.files.all())
            if f.owner == self._host.name and purpose in (None, f.purpose)
        ]
        return self._json(200, _page([_file_object(f) for f in files], request))

    def _own_file(self, file_id: str) -> StoredFile | None:
        """A file uploaded to or generated by this host (other hosts' files do not exist here)."""
        stored = self._context.files.get(file_id)
        return stored if stored is not None and stored.owner == self._host.name else None

    def retrieve_file(self, request: Request) -> Response:
        stored = self._own_file(request.path_params["id"])
        if stored is None:
            return self._no_such_file(request.path_params["id"])
        return self._json(200, _file_object(stored))

    def delete_file(self, request: Request) -> Response:
        file_id = request.path_params["id"]
        if self._own_file(file_id) is None or not self._context.files.delete(file_id):
            return self._no_such_file(file_id)
        return self._json(200, {"id": file_id, "object": "file", "deleted": True})

    def file_content(self, request: Request) -> Response:
        stored = self._own_file(request.path_params["id"])
        if stored is None:
            return self._no_such_file(request.path_params["id"])
        return Response(
            status=200,
            body=stored.data,
            headers={"x-request-id": self._context.ids.new("req_")},
            content_type="application/octet-stream",
        )

    def _no_such_file(self, file_id: str) -> Response:
        return self.error_response(404, f"No such File object: {file_id}", None, "id")

    # ------------------------------------------------------------------ batches

    def create_batch(self, request: Request) -> Response:
        payload = json_object(request.body)
        if payload is None:
            return self.error_response(
                400, "We could not parse the JSON body of your request.", None
            )
        endpoint = payload.get("endpoint")
        window = payload.get("completion_window")
        file_id = payload.get("input_file_id")
        metadata = payload.get("metadata")
        if not isinstance(file_id, str):
            return self.error_response(
                400, "Missing required parameter: 'input_file_id'.", None, "input_file_id"
            )
        if endpoint not in self._host.batch_endpoints:
            return self.error_response(
                400, f"Invalid value for 'endpoint': {endpoint!r}.", None, "endpoint"
            )
        window_seconds = self._host.completion_window_seconds(window)
        if window_seconds is None:
            return self.error_response(
                400,
                f"Invalid value for 'completion_window': {window!r}.",
                None,
                "completion_window",
            )
        if metadata is not None and not _is_valid_metadata(metadata):
            return self.error_response(400, "Invalid 'metadata'.", None, "metadata")
        stored = self._own_file(file_id)
        if stored is None:
            return self.error_response(
                404, f"No such File object: {file_id}", None, "input_file_id"
            )
        if stored.purpose != "batch":
            return self.error_response(
                400,
                f"File {file_id} has purpose {stored.purpose!r}, expected 'batch'.",
                None,
                "input_file_id",
            )
        parsed = parse_input_file(stored.data, str(endpoint))
        created = int(time.time())
        first_body = parsed.lines[0].get("body") if parsed.lines else None
        model = first_body.get("model") if isinstance(first_body, dict) else None
        record = BatchRecord(
            id=self._context.ids.new("batch_"),
            endpoint=str(endpoint),
            input_file_id=file_id,
            completion_window=str(window),
            metadata=metadata,
            api_key=self._credential(request) or "",
            headers=dict(request.headers),
            lines=parsed.lines,
            created_at=created,
            ready_at_monotonic=time.monotonic() + self._batch_delay_seconds,
            outcome=self._context.faults.batch_outcome,
            validation_errors=parsed.errors,
            marker_codes=parsed.marker_codes,
            output_expires_after_seconds=_expires_after_seconds(
                payload.get("output_expires_after")
            ),
            model=model if isinstance(model, str) else None,
            expires_at=created + window_seconds,
            sequence=self._context.next_sequence(),
            provider=self._host.name,
        )
        with self._lock:
            self._batches[record.id] = record
        self._context.bodies.extend([line.get("body") for line in parsed.lines])
        self._context.stats.record_batch_created(len(parsed.lines), self._host.name)
        return self._json(200, record.to_api())

    def retrieve_batch(self, request: Request) -> Response:
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
            return self.error_response(400, problem, None)
        return self._json(200, _snapshot(record))

    def list_batches(self, request: Request) -> Response:
        records = self.batches()
        records.reverse()  # newest first, like the real API
        return self._json(200, _page([_snapshot(r) for r in records], request))

    def batches(self) -> list[BatchRecord]:
        """All batches in creation order, each brought up to date first."""
        with self._lock:
            records = list(self._batches.values())
        for record in records:
            self._runner.advance(record)
        return records

    def _find_batch(self, batch_id: str) -> BatchRecord | None:
        with self._lock:
            return self._batches.get(batch_id)

    def _no_such_batch(self, batch_id: str) -> Response:
        return self.error_response(404, f"No batch found with id '{batch_id}'.", None, "batch_id")

    # ------------------------------------------------------------------ real-time

    def _realtime_handler(self, reply_endpoint: str) -> Handler:
        def handler(request: Request) -> Response:
            return self.realtime(request, reply_endpoint)

        return handler

    def realtime(self, request: Request, endpoint: str) -> Response:
        """Answer a real-time call with the reply ``endpoint`` (``/v1/...``) gives its body.

        On Azure the path names the deployment; a body without ``model`` is answered as if
        the deployment name were its model (``received_bodies`` keeps the body as sent).
        """
        body = json_object(request.body)
        if body is None:
            return self.error_response(
                400, "We could not parse the JSON body of your request.", None
            )
        self._context.bodies.append(body)
        deployment = request.path_params.get("deployment")
        if deployment is not None and "model" not in body:
            body = {**body, "model": deployment}
        code = find_failure_marker(request.body)
        if code is not None:
            return self.error_response(
                code,
                f"Injected failure {code} for this request.",
                "injected_failure",
                headers={"x-should-retry": "false"},
            )
        created = int(time.time())
        try:
            if body.get("stream") is True:
                return self._stream(endpoint, body, created)
            reply = build_reply(endpoint, body, new_id=self._context.ids.new, created=created)
        except InvalidRequest as exc:
            return self.error_response(exc.status, exc.message, exc.code, exc.param)
        return self._json(200, reply)

    def _stream(self, endpoint: str, body: Json, created: int) -> Response:
        if endpoint != "/v1/chat/completions":
            raise InvalidRequest("The fake server streams only chat completions.", param="stream")
        events = chat_completion_chunks(body, self._context.ids.new, created)
        stream = b"".join(b"data: " + dump_json(event) + b"\n\n" for event in events)
        return Response(
            status=200,
            body=stream + b"data: [DONE]\n\n",
            headers={"x-request-id": self._context.ids.new("req_"), "cache-control": "no-cache"},
            content_type="text/event-stream; charset=utf-8",
        )


def _snapshot(record: BatchRecord) -> Json:
    with record.lock:
        return record.to_api()


def _file_object(stored: StoredFile) -> Json:
    return {
        "id": stored.id,
        "object": "file",
        "bytes": stored.size,
        "created_at": stored.created_at,
        "expires_at": stored.expires_at,
        "filename": stored.filename,
        "purpose": stored.purpose,
        "status": "processed",
        "status_details": None,
    }


def _page(items: list[Json], request: Request) -> Json:
    """A cursor page of ``items`` (already in listing order) honouring ``after`` and ``limit``."""
    after = request.query_value("after")
    if after:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    limit = _clamp_limit(request.query_value("limit"))
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }


def _clamp_limit(raw: str | None) -> int:
    try:
        value = int(raw) if raw else 20
    except ValueError:
        value = 20
    return min(max(value, 1), 100)


def _is_valid_metadata(metadata: Any) -> bool:
    return (
        isinstance(metadata, dict)
        and len(metadata) <= 16
        and all(isinstance(k, str) and len(k) <= 64 for k in metadata)
        and all(isinstance(v, str) and len(v) <= 512 for v in metadata.values())
    )


def _expires_after_seconds(value: Any) -> int | None:
    if isinstance(value, dict) and isinstance(value.get("seconds"), int):
        return int(value["seconds"])
    return None
