"""Gemini Developer API emulation: generateContent, embeddings, batches and files.

Every route exists under ``/v1`` (google-genai's default) and ``/v1beta`` (and ``/v1alpha``).
``/v1/batches...`` and ``/v1/files...`` are OpenAI paths too: there the Gemini routes serve
only requests that look like Gemini's (an ``x-goog-api-key`` / ``x-goog-api-client`` header
or a ``key`` query parameter), and OpenAI's routes serve the rest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from batchling.testing.context import ServerContext
from batchling.testing.faults import GRPC_CODES, find_failure_marker, google_status
from batchling.testing.gemini_batches import (
    GeminiBatchRecord,
    GeminiBatchRunner,
    GeminiEndpoint,
    parse_input_file,
)
from batchling.testing.gemini_files import GeminiFiles, page
from batchling.testing.gemini_replies import (
    batch_embed_contents,
    count_tokens,
    embed_content,
    generate_content,
    generate_content_chunks,
)
from batchling.testing.http_types import (
    DropConnection,
    Request,
    Response,
    dump_json,
    json_object,
    json_response,
)
from batchling.testing.replies import InvalidRequest
from batchling.testing.routing import Guard, Handler, Router

Json = dict[str, Any]

API_VERSIONS = ("v1", "v1beta", "v1alpha")
DEFAULT_INLINE_LIMIT_BYTES = 20_000_000
DEFAULT_BATCH_PAGE_SIZE = 50
MISSING_KEY_MESSAGE = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)


def gemini_api_key(request: Request) -> str | None:
    """The ``x-goog-api-key`` header, else the ``key`` query parameter."""
    key = request.headers.get("x-goog-api-key", "").strip() or request.query_value("key")
    return key or None


def looks_like_gemini(request: Request) -> bool:
    """True for requests a google-genai client sent."""
    return (
        "x-goog-api-key" in request.headers
        or "x-goog-api-client" in request.headers
        or request.query_value("key") is not None
    )


class GeminiProtocol:
    """Registers the Gemini routes and keeps the Gemini-side state (batch jobs, files)."""

    def __init__(
        self,
        context: ServerContext,
        *,
        batch_delay_seconds: float = 0.0,
        inline_limit_bytes: int = DEFAULT_INLINE_LIMIT_BYTES,
    ) -> None:
        self._context = context
        self._batch_delay_seconds = batch_delay_seconds
        self._inline_limit_bytes = inline_limit_bytes
        self._lock = threading.Lock()
        self._batches: dict[str, GeminiBatchRecord] = {}
        self.files = GeminiFiles(context, self.error_response)
        self._runner = GeminiBatchRunner(context, self._add_output_file)

    # ------------------------------------------------------------------ plumbing

    def register(self, router: Router) -> None:
        for version in API_VERSIONS:
            self._register_version(router, version)

    def _register_version(self, router: Router, version: str) -> None:
        shared: Guard | None = looks_like_gemini if version == "v1" else None
        model = f"/{version}/models/{{model}}"
        realtime: list[tuple[str, Handler]] = [
            (f"POST {model}:generateContent", self.generate_content),
            (f"POST {model}:streamGenerateContent", self.stream_generate_content),
            (f"POST {model}:embedContent", self.embed_content),
            (f"POST {model}:batchEmbedContents", self.batch_embed_contents),
        ]
        for route, handler in realtime:
            router.add(
                route,
                self._authenticated(handler),
                self.error_response,
                on_arrival=self._count_realtime_call,
            )
        own: list[tuple[str, Handler]] = [
            (f"POST {model}:countTokens", self.count_tokens),
            (f"POST {model}:batchGenerateContent", self.create_generate_batch),
            (f"POST {model}:asyncBatchEmbedContent", self.create_embed_batch),
            (f"POST /{version}/batches/{{id}}:cancel", self.cancel_batch),
        ]
        for route, handler in own:
            router.add(route, self._authenticated(handler), self.error_response)
        router.add(f"POST /upload/{version}/files", self._upload, self.error_response)
        # Paths OpenAI uses too under /v1 (the download route must precede GET .../{id}).
        overlapping: list[tuple[str, Handler]] = [
            (f"GET /{version}/batches", self.list_batches),
            (f"GET /{version}/batches/{{id}}", self.get_batch),
            (f"DELETE /{version}/batches/{{id}}", self.delete_batch),
            (f"GET /{version}/files", self.files.list),
            (f"GET /{version}/files/{{id}}:download", self.files.download),
            (f"GET /{version}/files/{{id}}", self.files.get),
            (f"DELETE /{version}/files/{{id}}", self.files.delete),
        ]
        for route, handler in overlapping:
            router.add(route, self._authenticated(handler), self.error_response, when=shared)

    def error_response(self, status: int, message: str, code: str | None = None) -> Response:
        """Google-shaped error: ``{"error": {"code": <http>, "message", "status"}}``.

        ``code`` may name the canonical status (e.g. ``"FAILED_PRECONDITION"``); anything
        else (such as ``"injected_failure"``) is ignored in favour of the HTTP status's name.
        """
        name = code if code in GRPC_CODES else google_status(status)
        body = {"error": {"code": status, "message": message, "status": name}}
        return json_response(status, body)

    def _authenticated(self, handler: Handler) -> Handler:
        def guarded(request: Request) -> Response | DropConnection:
            if gemini_api_key(request) is None:
                return self.error_response(403, MISSING_KEY_MESSAGE)
            return handler(request)

        return guarded

    def _count_realtime_call(self, request: Request) -> None:
        self._context.stats.record_realtime_call(request.path, "gemini")

    def _upload(self, request: Request) -> Response:
        return self.files.upload(request, gemini_api_key(request))

    def _add_output_file(self, data: bytes) -> str:
        return self.files.add(data, "application/jsonl", None, generated=True).id

    # ------------------------------------------------------------------ real-time

    def generate_content(self, request: Request) -> Response:
        return self._realtime(request, self._generate)

    def stream_generate_content(self, request: Request) -> Response:
        def stream(body: Json, model: str) -> Response:
            chunks = generate_content_chunks(self._generate(body, model))
            payload = b"".join(b"data: " + dump_json(chunk) + b"\r\n\r\n" for chunk in chunks)
            return Response(status=200, body=payload, content_type="text/event-stream")

        return self._realtime(request, stream)

    def embed_content(self, request: Request) -> Response:
        return self._realtime(request, lambda body, _model: embed_content(body))

    def batch_embed_contents(self, request: Request) -> Response:
        return self._realtime(request, lambda body, _model: batch_embed_contents(body))

    def count_tokens(self, request: Request) -> Response:
        body = json_object(request.body)
        if body is None:
            return self.error_response(400, "Invalid JSON payload received.")
        return json_response(200, count_tokens(body))

    def _generate(self, body: Json, model: str) -> Json:
        return generate_content(body, model, self._context.ids.new)

    def _realtime(
        self, request: Request, answer: Callable[[Json, str], Json | Response]
    ) -> Response:
        body = json_object(request.body)
        if body is None:
            return self.error_response(400, "Invalid JSON payload received.")
        self._context.bodies.append(body)
        code = find_failure_marker(request.body)
        if code is not None:
            return self.error_response(code, f"Injected failure {code} for this request.")
        try:
            result = answer(body, _model_name(request.path_params["model"]))
        except InvalidRequest as exc:
            return self.error_response(exc.status, exc.message)
        return result if isinstance(result, Response) else json_response(200, result)

    # ------------------------------------------------------------------ batches

    def create_generate_batch(self, request: Request) -> Response:
        return self._create_batch(request, "batchGenerateContent")

    def create_embed_batch(self, request: Request) -> Response:
        return self._create_batch(request, "asyncBatchEmbedContent")

    def _create_batch(self, request: Request, endpoint: GeminiEndpoint) -> Response:
        payload = json_object(request.body)
        batch = payload.get("batch") if payload is not None else None
        if not isinstance(batch, dict):
            return self.error_response(400, "Invalid JSON payload received: 'batch' is required.")
        input_config = batch.get("inputConfig", batch.get("input_config"))
        if not isinstance(input_config, dict):
            return self.error_response(400, "* batch.input_config: input_config is required.")
        inline = input_config.get("requests")
        file_name = input_config.get("fileName", input_config.get("file_name"))
        if (inline is None) == (file_name is None):
            return self.error_response(
                400, "* batch.input_config: exactly one of requests or file_name is required."
            )
        validation_error: str | None = None
        if inline is not None:
            if len(request.body) > self._inline_limit_bytes:
                return self.error_response(
                    400,
                    f"Request payload size exceeds the limit: {self._inline_limit_bytes} bytes.",
                )
            items = inline.get("requests") if isinstance(inline, dict) else None
            if not isinstance(items, list) or not items:
                return self.error_response(
                    400, "* batch.input_config.requests.requests: requests is required."
                )
            for index, item in enumerate(items):
                if not isinstance(item, dict) or not isinstance(item.get("request"), dict):
                    return self.error_response(
                        400,
                        f"* batch.input_config.requests.requests[{index}].request: "
                        "request is required.",
                    )
            lines: list[Json] = items
            raw_input = request.body
        else:
            stored = self.files.store.get(str(file_name))
            if stored is None:
                return self.error_response(
                    403,
                    f"You do not have permission to access the File {file_name} "
                    "or it may not exist.",
                )
            lines, validation_error = parse_input_file(stored.data)
            raw_input = stored.data
        display_name = batch.get("displayName", batch.get("display_name"))
        now = time.time()
        record = GeminiBatchRecord(
            id="batches/" + self._context.ids.new(""),
            endpoint=endpoint,
            model=_model_name(request.path_params["model"]),
            source="inline" if inline is not None else "file",
            lines=lines,
            api_key=gemini_api_key(request) or "",
            headers=dict(request.headers),
            created_at=now,
            updated_at=now,
            ready_at_monotonic=time.monotonic() + self._batch_delay_seconds,
            outcome=self._context.faults.batch_outcome,
            marker_codes=_marker_codes(lines) if b"[[fail:" in raw_input else {},
            display_name=display_name if isinstance(display_name, str) else None,
            input_file=str(file_name) if file_name is not None else None,
            validation_error=validation_error,
            sequence=self._context.next_sequence(),
        )
        with self._lock:
            self._batches[record.id] = record
        self._context.bodies.extend([line["request"] for line in lines])
        self._context.stats.record_batch_created(len(lines), "gemini")
        return json_response(200, _snapshot(record))

    def get_batch(self, request: Request) -> Response:
        record = self._find_batch(request.path_params["id"])
        if record is None:
            return self._no_such_batch(request.path_params["id"])
        self._runner.advance(record)
        return json_response(200, _snapshot(record))

    def cancel_batch(self, request: Request) -> Response:
        record = self._find_batch(request.path_params["id"])
        if record is None:
            return self._no_such_batch(request.path_params["id"])
        problem = self._runner.cancel(record)
        if problem is not None:
            return self.error_response(400, problem, "FAILED_PRECONDITION")
        return json_response(200, {})

    def delete_batch(self, request: Request) -> Response:
        record = self._find_batch(request.path_params["id"])
        if record is None:
            return self._no_such_batch(request.path_params["id"])
        with record.lock:
            record.deleted = True
        return json_response(200, {})

    def list_batches(self, request: Request) -> Response:
        records = [record for record in self.batches() if not record.deleted]
        records.reverse()  # newest first
        operations = [_snapshot(record) for record in records]
        return json_response(200, page(operations, request, "operations", DEFAULT_BATCH_PAGE_SIZE))

    def batches(self) -> list[GeminiBatchRecord]:
        """All batch jobs in creation order, each brought up to date first."""
        with self._lock:
            records = list(self._batches.values())
        for record in records:
            self._runner.advance(record)
        return records

    def _find_batch(self, batch_id: str) -> GeminiBatchRecord | None:
        with self._lock:
            record = self._batches.get("batches/" + batch_id)
        return None if record is None or record.deleted else record

    def _no_such_batch(self, batch_id: str) -> Response:
        return self.error_response(404, f"Batch batches/{batch_id} not found.")


def _marker_codes(lines: list[Json]) -> dict[int, int]:
    """Line index -> status of the ``[[fail:CODE]]`` marker in that line's request."""
    codes: dict[int, int] = {}
    for index, line in enumerate(lines):
        code = find_failure_marker(dump_json(line["request"]))
        if code is not None:
            codes[index] = code
    return codes


def _model_name(raw: str) -> str:
    return raw.removeprefix("models/")


def _snapshot(record: GeminiBatchRecord) -> Json:
    with record.lock:
        return record.to_api()
