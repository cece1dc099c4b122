"""Anthropic emulation: Messages (real-time, streaming) and Message Batches, under ``/v1``."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from batchling.testing.anthropic_batches import (
    AnthropicBatchRecord,
    AnthropicBatchRunner,
    error_body,
)
from batchling.testing.anthropic_replies import build_message, count_tokens, message_stream_events
from batchling.testing.context import ServerContext
from batchling.testing.faults import find_failure_marker
from batchling.testing.http_types import (
    DropConnection,
    Request,
    Response,
    dump_json,
    json_object,
    json_response,
)
from batchling.testing.replies import InvalidRequest
from batchling.testing.routing import Handler, Router

Json = dict[str, Any]

MAX_BATCH_REQUESTS = 100_000
CUSTOM_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_CUSTOM_ID_LENGTH = 64
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 1000


def anthropic_api_key(request: Request) -> str | None:
    """The key of an ``x-api-key`` header, else of ``Authorization: Bearer`` (anthropic 2.x)."""
    key = request.headers.get("x-api-key", "").strip()
    return key or request.bearer_token()


def looks_like_anthropic(request: Request) -> bool:
    """True for requests an Anthropic client sent (for provider-shaped fallback errors)."""
    return "anthropic-version" in request.headers or "x-api-key" in request.headers


class AnthropicProtocol:
    """Registers the Anthropic routes and keeps the Anthropic-side state (message batches)."""

    def __init__(self, context: ServerContext, *, batch_delay_seconds: float = 0.0) -> None:
        self._context = context
        self._batch_delay_seconds = batch_delay_seconds
        self._lock = threading.Lock()
        self._batches: dict[str, AnthropicBatchRecord] = {}
        self._runner = AnthropicBatchRunner(context)

    # ------------------------------------------------------------------ plumbing

    def register(self, router: Router) -> None:
        routes: list[tuple[str, Handler]] = [
            ("POST /v1/messages/count_tokens", self.count_tokens),
            ("POST /v1/messages/batches", self.create_batch),
            ("GET /v1/messages/batches", self.list_batches),
            ("GET /v1/messages/batches/{id}", self.retrieve_batch),
            ("DELETE /v1/messages/batches/{id}", self.delete_batch),
            ("POST /v1/messages/batches/{id}/cancel", self.cancel_batch),
            ("GET /v1/messages/batches/{id}/results", self.batch_results),
        ]
        for route, handler in routes:
            router.add(route, self._authenticated(handler), self.error_response)
        router.add(
            "POST /v1/messages",
            self._authenticated(self.realtime),
            self.error_response,
            on_arrival=self._count_realtime_call,
        )

    def error_response(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """Anthropic-shaped error (``code`` is ignored: Anthropic errors carry only a type)."""
        request_id = self._context.ids.new("req_")
        return json_response(
            status,
            error_body(status, message, request_id),
            {"request-id": request_id, **(headers or {})},
        )

    def _json(self, status: int, value: Any) -> Response:
        return json_response(status, value, {"request-id": self._context.ids.new("req_")})

    def _authenticated(self, handler: Handler) -> Handler:
        def guarded(request: Request) -> Response | DropConnection:
            if anthropic_api_key(request) is None:
                return self.error_response(401, "x-api-key header is required")
            return handler(request)

        return guarded

    def _count_realtime_call(self, request: Request) -> None:
        self._context.stats.record_realtime_call(request.path, "anthropic")

    # ------------------------------------------------------------------ real-time

    def realtime(self, request: Request) -> Response:
        body = json_object(request.body)
        if body is None:
            return self.error_response(400, "The request body is not valid JSON.")
        self._context.bodies.append(body)
        code = find_failure_marker(request.body)
        if code is not None:
            return self.error_response(
                code,
                f"Injected failure {code} for this request.",
                headers={"x-should-retry": "false"},
            )
        try:
            message = build_message(body, new_id=self._context.ids.new)
        except InvalidRequest as exc:
            return self.error_response(exc.status, exc.message)
        if body.get("stream") is True:
            return self._stream(message)
        return self._json(200, message)

    def _stream(self, message: Json) -> Response:
        stream = b"".join(
            b"event: " + name.encode() + b"\ndata: " + dump_json(data) + b"\n\n"
            for name, data in message_stream_events(message)
        )
        return Response(
            status=200,
            body=stream,
            headers={"request-id": self._context.ids.new("req_"), "cache-control": "no-cache"},
            content_type="text/event-stream; charset=utf-8",
        )

    def count_tokens(self, request: Request) -> Response:
        body = json_object(request.body)
        if body is None:
            return self.error_response(400, "The request body is not valid JSON.")
        try:
            return self._json(200, count_tokens(body))
        except InvalidRequest as exc:
            return self.error_response(exc.status, exc.message)

    # ------------------------------------------------------------------ batches

    def create_batch(self, request: Request) -> Response:
        payload = json_object(request.body)
        if payload is None:
            return self.error_response(400, "The request body is not valid JSON.")
        items = payload.get("requests")
        try:
            marker_codes = _validate_batch_requests(items, b"[[fail:" in request.body)
        except InvalidRequest as exc:
            return self.error_response(exc.status, exc.message)
        assert isinstance(items, list)
        first_model = items[0]["params"].get("model")
        record = AnthropicBatchRecord(
            id=self._context.ids.new("msgbatch_"),
            api_key=anthropic_api_key(request) or "",
            headers=dict(request.headers),
            lines=items,
            created_at=time.time(),
            ready_at_monotonic=time.monotonic() + self._batch_delay_seconds,
            outcome=self._context.faults.batch_outcome,
            marker_codes=marker_codes,
            results_base_url=_origin(request),
            sequence=self._context.next_sequence(),
            model=first_model if isinstance(first_model, str) else None,
        )
        with self._lock:
            self._batches[record.id] = record
        self._context.bodies.extend([item["params"] for item in items])
        self._context.stats.record_batch_created(len(items), "anthropic")
        return self._json(200, _snapshot(record))

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
        self._runner.advance(record)
        self._runner.cancel(record)
        return self._json(200, _snapshot(record))

    def delete_batch(self, request: Request) -> Response:
        record = self._find_batch(request.path_params["id"])
        if record is None:
            return self._no_such_batch(request.path_params["id"])
        self._runner.advance(record)
        with record.lock:
            if not record.is_terminal:
                return self.error_response(
                    400,
                    f"Message batch {record.id} is still being processed; "
                    "cancel it before deleting it.",
                )
            record.deleted = True
        return self._json(200, {"id": record.id, "type": "message_batch_deleted"})

    def batch_results(self, request: Request) -> Response:
        record = self._find_batch(request.path_params["id"])
        if record is None:
            return self._no_such_batch(request.path_params["id"])
        self._runner.advance(record)
        with record.lock:
            results = record.results
        if results is None:
            return self.error_response(
                400, f"Message batch {record.id} has not finished processing yet."
            )
        return Response(
            status=200,
            body=results,
            headers={"request-id": self._context.ids.new("req_")},
            content_type="application/x-jsonl",
        )

    def list_batches(self, request: Request) -> Response:
        records = [record for record in self.batches() if not record.deleted]
        records.reverse()  # newest first, like the real API
        return self._json(200, _page([_snapshot(r) for r in records], request))

    def batches(self) -> list[AnthropicBatchRecord]:
        """All message batches in creation order, each brought up to date first."""
        with self._lock:
            records = list(self._batches.values())
        for record in records:
            self._runner.advance(record)
        return records

    def _find_batch(self, batch_id: str) -> AnthropicBatchRecord | None:
        with self._lock:
            record = self._batches.get(batch_id)
        return None if record is None or record.deleted else record

    def _no_such_batch(self, batch_id: str) -> Response:
        return self.error_response(404, f"Message batch {batch_id} not found.")


def _validate_batch_requests(items: Any, scan_markers: bool) -> dict[int, int]:
    """Check a create body's ``requests`` like the API does; returns the marker codes by index.

    ``scan_markers`` is False when the raw body has no marker at all (skips a JSON dump per line).
    """
    if not isinstance(items, list) or not items:
        raise InvalidRequest("requests: List should have at least 1 item", param="requests")
    if len(items) > MAX_BATCH_REQUESTS:
        raise InvalidRequest(
            f"requests: List should have at most {MAX_BATCH_REQUESTS} items", param="requests"
        )
    seen: set[str] = set()
    marker_codes: dict[int, int] = {}
    for index, item in enumerate(items):
        where = f"requests.{index}"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where}: Input should be an object", param=where)
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str):
            raise InvalidRequest(f"{where}.custom_id: Field required", param=f"{where}.custom_id")
        if len(custom_id) > MAX_CUSTOM_ID_LENGTH:
            raise InvalidRequest(
                f"{where}.custom_id: String should have at most {MAX_CUSTOM_ID_LENGTH} characters",
                param=f"{where}.custom_id",
            )
        if CUSTOM_ID_PATTERN.fullmatch(custom_id) is None:
            raise InvalidRequest(
                f"{where}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'",
                param=f"{where}.custom_id",
            )
        if custom_id in seen:
            raise InvalidRequest(
                f"{where}.custom_id: Duplicate custom_id {custom_id!r}; custom_id values must "
                "be unique within a batch.",
                param=f"{where}.custom_id",
            )
        seen.add(custom_id)
        params = item.get("params")
        if not isinstance(params, dict):
            raise InvalidRequest(f"{where}.params: Field required", param=f"{where}.params")
        max_tokens = params.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise InvalidRequest(
                f"{where}.params.max_tokens: Input should be an integer greater than or equal to 1",
                param=f"{where}.params.max_tokens",
            )
        if params.get("stream") is True:
            raise InvalidRequest(
                f"{where}.params.stream: Streaming is not supported in message batches.",
                param=f"{where}.params.stream",
            )
        code = find_failure_marker(dump_json(params)) if scan_markers else None
        if code is not None:
            marker_codes[index] = code
    return marker_codes


def _snapshot(record: AnthropicBatchRecord) -> Json:
    with record.lock:
        return record.to_api()


def _page(items: list[Json], request: Request) -> Json:
    """An Anthropic page (``data``, ``has_more``, ``first_id``, ``last_id``) of ``items``."""
    limit = _clamp_limit(request.query_value("limit"))
    ids = [item["id"] for item in items]
    before = request.query_value("before_id")
    after = request.query_value("after_id")
    if before:
        preceding = items[: ids.index(before)] if before in ids else []
        page = preceding[-limit:]
        has_more = len(preceding) > limit
    elif after:
        following = items[ids.index(after) + 1 :] if after in ids else []
        page = following[:limit]
        has_more = len(following) > limit
    else:
        page = items[:limit]
        has_more = len(items) > limit
    return {
        "data": page,
        "has_more": has_more,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
    }


def _clamp_limit(raw: str | None) -> int:
    try:
        value = int(raw) if raw else DEFAULT_PAGE_SIZE
    except ValueError:
        value = DEFAULT_PAGE_SIZE
    return min(max(value, 1), MAX_PAGE_SIZE)


def _origin(request: Request) -> str:
    """``http://host:port`` as the client addressed this server."""
    return f"http://{request.headers.get('host', '127.0.0.1')}"
