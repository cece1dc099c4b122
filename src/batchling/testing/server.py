"""The fake provider HTTP server: a stdlib ``ThreadingHTTPServer`` on a daemon thread."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from batchling.testing.anthropic_batches import AnthropicBatchRecord
from batchling.testing.anthropic_protocol import AnthropicProtocol, looks_like_anthropic
from batchling.testing.context import ServerContext
from batchling.testing.faults import BatchOutcomeName
from batchling.testing.gemini_batches import GeminiBatchRecord
from batchling.testing.gemini_protocol import (
    DEFAULT_INLINE_LIMIT_BYTES,
    GeminiProtocol,
    looks_like_gemini,
)
from batchling.testing.http_types import DropConnection, Request, Response
from batchling.testing.mistral_batches import MistralBatchRecord
from batchling.testing.mistral_protocol import MistralProtocol, looks_like_mistral
from batchling.testing.openai_batches import BatchRecord
from batchling.testing.openai_hosts import AZURE, GROQ, XAI
from batchling.testing.openai_protocol import OpenAIProtocol
from batchling.testing.routing import ErrorResponder, ProviderProtocol, Router
from batchling.testing.stats import FakeServerStats
from batchling.testing.together_batches import TogetherBatchRecord
from batchling.testing.together_protocol import TogetherProtocol, looks_like_together

logger = logging.getLogger(__name__)

_POLL_INTERVAL_SECONDS = 0.05
AnyBatchRecord = (
    BatchRecord
    | AnthropicBatchRecord
    | GeminiBatchRecord
    | MistralBatchRecord
    | TogetherBatchRecord
)
"""A batch of any provider; ``.provider`` says which (``openai``, ``groq``, ``xai``, ``azure``,
``anthropic``, ``gemini``, ``mistral``, ``together``)."""
_JOIN_TIMEOUT_SECONDS = 5.0


class FakeProviderServer:
    """An offline stand-in for the OpenAI, Anthropic, Gemini and Mistral APIs, for tests and demos.

    Usable from sync and async code alike::

        with FakeProviderServer() as server:
            openai_client = AsyncOpenAI(base_url=server.openai_base_url, api_key="k")
            anthropic_client = AsyncAnthropic(base_url=server.anthropic_base_url, api_key="k")
            gemini_client = genai.Client(
                api_key="k", http_options=types.HttpOptions(base_url=server.gemini_base_url)
            )
            mistral_client = Mistral(api_key="k", server_url=server.mistral_base_url)

    It also plays the OpenAI-compatible hosts, each with its own files and batches (see
    ``openai_hosts``): Groq (``AsyncOpenAI(base_url=server.groq_base_url)``, paths
    ``/openai/v1/...``), xAI (``server.xai_base_url``, paths ``/xai/v1/...``) and Azure OpenAI
    (``AsyncAzureOpenAI(azure_endpoint=server.azure_endpoint, api_version=...)``), and Together
    AI with its own upload flow and Batch API (``AsyncOpenAI(base_url=server.together_base_url)``,
    paths ``/together/v1/...``; see ``together_protocol``).

    ``gemini_inline_limit_bytes``: a Gemini inline batch create whose request body is larger
    answers 400 ``INVALID_ARGUMENT`` (the real limit is about 20 MB), so clients must upload
    a JSONL file instead.
    """

    def __init__(
        self,
        *,
        batch_delay_seconds: float = 0.0,
        port: int = 0,
        host: str = "127.0.0.1",
        gemini_inline_limit_bytes: int = DEFAULT_INLINE_LIMIT_BYTES,
    ) -> None:
        if batch_delay_seconds < 0:
            raise ValueError("batch_delay_seconds must be >= 0")
        if gemini_inline_limit_bytes < 1:
            raise ValueError("gemini_inline_limit_bytes must be >= 1")
        self._host = host
        self._requested_port = port
        self._context = ServerContext()
        self._router = Router()
        self._openai = OpenAIProtocol(self._context, batch_delay_seconds=batch_delay_seconds)
        self._openai_compatible = [
            OpenAIProtocol(self._context, batch_delay_seconds=batch_delay_seconds, host=host)
            for host in (GROQ, XAI, AZURE)
        ]
        self._anthropic = AnthropicProtocol(self._context, batch_delay_seconds=batch_delay_seconds)
        self._gemini = GeminiProtocol(
            self._context,
            batch_delay_seconds=batch_delay_seconds,
            inline_limit_bytes=gemini_inline_limit_bytes,
        )
        self.register_protocol(self._openai)
        for protocol in self._openai_compatible:
            self.register_protocol(protocol)
        self.register_protocol(self._anthropic)
        self.register_protocol(self._gemini)
        self._mistral = MistralProtocol(self._context, batch_delay_seconds=batch_delay_seconds)
        self.register_protocol(self._mistral)
        self._together = TogetherProtocol(self._context, batch_delay_seconds=batch_delay_seconds)
        self.register_protocol(self._together)
        self._lifecycle = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeProviderServer:
        """Start serving (no-op if already running). Returns ``self``."""
        with self._lifecycle:
            if self._httpd is not None:
                return self
            httpd = _HTTPServer((self._host, self._requested_port), _RequestHandler, self._dispatch)
            thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": _POLL_INTERVAL_SECONDS},
                name=f"FakeProviderServer:{httpd.server_address[1]}",
                daemon=True,
            )
            thread.start()
            self._httpd, self._thread = httpd, thread
            return self

    def stop(self) -> None:
        """Stop serving and close every socket (no-op if not running)."""
        with self._lifecycle:
            httpd, thread = self._httpd, self._thread
            self._httpd = self._thread = None
        if httpd is None or thread is None:
            return
        httpd.shutdown()
        thread.join(_JOIN_TIMEOUT_SECONDS)
        httpd.close_open_connections()
        httpd.join_workers(_JOIN_TIMEOUT_SECONDS)
        httpd.server_close()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def __enter__(self) -> FakeProviderServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> FakeProviderServer:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        httpd = self._httpd
        if httpd is None:
            raise RuntimeError("FakeProviderServer is not running; call start() first")
        return int(httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def groq_base_url(self) -> str:
        """For ``AsyncOpenAI(base_url=...)`` posing as Groq (``https://api.groq.com/openai/v1``)."""
        return f"{self.url}/openai/v1"

    @property
    def xai_base_url(self) -> str:
        """For ``AsyncOpenAI(base_url=...)`` posing as xAI (``https://api.x.ai/v1``).

        Served under ``/xai/v1`` so requests to it are told apart from OpenAI's ``/v1``.
        """
        return f"{self.url}/xai/v1"

    @property
    def azure_endpoint(self) -> str:
        """For ``AsyncAzureOpenAI(azure_endpoint=..., api_key=..., api_version=...)``.

        The SDK sends ``/openai/files``, ``/openai/batches`` and
        ``/openai/deployments/{model}/chat/completions``, each with ``?api-version=`` and an
        ``api-key`` header; both are required (400 / 401 without).
        """
        return self.url

    @property
    def together_base_url(self) -> str:
        """For ``AsyncOpenAI(base_url=...)`` posing as Together (``https://api.together.xyz/v1``).

        Served under ``/together/v1``; signed upload URLs point at ``/together-storage/...`` on
        the same server, which refuses requests carrying an API key.
        """
        return f"{self.url}/together/v1"

    @property
    def anthropic_base_url(self) -> str:
        """For ``AsyncAnthropic(base_url=...)`` (its paths carry ``/v1`` themselves)."""
        return self.url

    @property
    def gemini_base_url(self) -> str:
        """For ``types.HttpOptions(base_url=...)`` (the SDK adds ``/v1/`` or ``/v1beta/``)."""
        return self.url

    @property
    def mistral_base_url(self) -> str:
        """For ``Mistral(server_url=...)`` (its paths carry ``/v1`` themselves).

        Served under ``/mistral`` so requests to it are told apart from OpenAI's ``/v1``.
        """
        return f"{self.url}/mistral"

    # ------------------------------------------------------------------ observation

    @property
    def stats(self) -> FakeServerStats:
        return self._context.stats

    @property
    def batches(self) -> list[AnyBatchRecord]:
        """Batch records of every provider in creation order (statuses brought up to date).

        ``.provider`` tells them apart; ``.status`` is the provider's own status value
        (OpenAI-compatible ``status``, Anthropic ``processing_status``, Gemini
        ``BATCH_STATE_*``, Mistral ``QUEUED``... ``SUCCESS``, Together ``VALIDATING``...
        ``COMPLETED``).
        Deleted Anthropic/Gemini batches stay here with ``.deleted`` set.
        """
        records: list[AnyBatchRecord] = [
            *self._openai.batches(),
            *(record for protocol in self._openai_compatible for record in protocol.batches()),
            *self._anthropic.batches(),
            *self._gemini.batches(),
            *self._mistral.batches(),
            *self._together.batches(),
        ]
        return sorted(records, key=lambda record: record.sequence)

    @property
    def received_bodies(self) -> list[Any]:
        """Every request body from batch lines and real-time calls, in arrival order.

        OpenAI-compatible batch lines (OpenAI, Groq, xAI, Azure) contribute their ``body``,
        Anthropic batch requests their
        ``params``, Gemini batch requests their ``request`` and Mistral and Together batch lines
        their ``body``.
        """
        return self._context.bodies.snapshot()

    def file_content(self, file_id: str) -> bytes:
        """Bytes of an uploaded or generated file: OpenAI ``file-...`` (Groq ``file_...``, xAI,
        Azure), Gemini ``files/...``, Mistral (a UUID) or Together (``file-`` and a UUID).

        Raises KeyError if unknown.
        """
        stored = self._context.files.get(file_id) or self._gemini.files.store.get(file_id)
        if stored is None:
            raise KeyError(file_id)
        return stored.data

    def reset(self) -> None:
        """Clear statistics, received bodies and faults (batches and files are kept)."""
        self._context.stats.reset()
        self._context.bodies.clear()
        self._context.faults.clear()

    # ------------------------------------------------------------------ faults

    def set_batch_outcome(
        self, outcome: BatchOutcomeName, *, completed_fraction: float = 0.0
    ) -> None:
        """How batches created from now on end (every provider).

        OpenAI (and Groq, xAI, Azure):

        - ``"completed"`` (default): every line is answered (marker lines go to the error file).
        - ``"failed"``: ``validating`` -> ``failed`` with an ``injected_failure`` error, no files.
        - ``"expired"`` / ``"cancelled"``: the first ``completed_fraction`` of the lines (input
          order, rounded down) are answered; the rest go to the error file with
          ``"response": null`` and error code ``batch_expired`` / ``batch_cancelled``.

        Anthropic (the batch always ends as ``ended``): ``"expired"`` / ``"cancelled"`` answer
        the first ``completed_fraction`` of the requests and give the rest ``expired`` /
        ``canceled`` results; ``"failed"`` makes every result ``errored`` with an ``api_error``.

        Gemini: ``"failed"`` -> ``BATCH_STATE_FAILED`` with an operation ``error`` and no
        output; ``"expired"`` -> ``BATCH_STATE_EXPIRED`` with no output; ``"cancelled"`` ->
        ``BATCH_STATE_CANCELLED`` with only the first ``completed_fraction`` of the responses.

        Mistral: ``"failed"`` -> ``FAILED`` with ``errors`` and no files; ``"expired"`` /
        ``"cancelled"`` -> ``TIMEOUT_EXCEEDED`` / ``CANCELLED`` with only the first
        ``completed_fraction`` of the lines answered (the rest appear in no file).

        Together: ``"failed"`` -> ``FAILED`` with an ``error`` message and no files;
        ``"expired"`` / ``"cancelled"`` -> ``EXPIRED`` / ``CANCELLED`` with only the first
        ``completed_fraction`` of the lines answered (the rest appear in no file).

        ``completed_fraction`` also decides how many lines a client-side cancel answers.
        """
        self._context.faults.set_batch_outcome(outcome, completed_fraction)

    def fail_next(
        self, route: str, status: int, times: int = 1, *, retry_after_ms: int | None = 10
    ) -> None:
        """Answer the next ``times`` requests matching ``route`` with ``status``.

        ``route`` is ``"METHOD /path"`` where ``{id}`` matches one segment, e.g.
        ``"GET /v1/batches/{id}"``, Groq's ``"POST /openai/v1/batches"``, Azure's
        ``"GET /openai/batches/{id}"`` (the path only, never the ``?api-version=`` query) or
        Mistral's ``"POST /mistral/v1/batch/jobs"``, Together's ``"POST /together/v1/batches"``
        or its object store's ``"PUT /together-storage/{id}"``.

        ``retry_after_ms`` is sent as ``retry-after-ms`` so SDK retries are fast; None omits it.
        """
        self._context.faults.fail_next(route, status, times, retry_after_ms=retry_after_ms)

    def drop_next(self, route: str, times: int = 1) -> None:
        """Close the connection without answering the next ``times`` requests matching ``route``."""
        self._context.faults.drop_next(route, times)

    def clear_faults(self) -> None:
        """Forget pending fail/drop rules and go back to the ``completed`` outcome."""
        self._context.faults.clear()

    @property
    def pending_faults(self) -> int:
        """One-shot route faults (fail_next/drop_next) that have not fired yet."""
        return self._context.faults.pending_route_faults()

    # ------------------------------------------------------------------ routing

    @property
    def context(self) -> ServerContext:
        """Shared state (stats, faults, files, ids, bodies) for protocols plugged in later."""
        return self._context

    def register_protocol(self, protocol: ProviderProtocol) -> None:
        """Plug in another provider emulation; its routes are tried after earlier ones."""
        protocol.register(self._router)

    def _dispatch(self, request: Request) -> Response | DropConnection:
        self._context.stats.record_request(request.method, request.path)
        found = self._router.find(request.method, request.path, request)
        if found is None:
            errors = self._fallback_errors(request)
            if self._router.path_is_known(request.path):
                return errors(405, f"Method {request.method} not allowed.", None)
            return errors(404, f"Unknown route {request.method} {request.path}.", None)
        route = found.route
        if route.on_arrival is not None:
            route.on_arrival(request)
        fault = self._context.faults.take(request.method, request.path)
        if fault is not None:
            if fault.drop:
                return DropConnection()
            answer = route.errors(
                fault.status,
                f"Injected failure {fault.status} on {fault.route}.",
                "injected_failure",
            )
            if fault.retry_after_ms is not None:
                answer.headers["retry-after-ms"] = str(fault.retry_after_ms)
            return answer
        try:
            return route.handler(dataclasses.replace(request, path_params=found.path_params))
        except Exception:
            logger.exception("fake provider server failed on %s %s", request.method, request.path)
            return route.errors(500, "The fake provider server failed on this request.", None)

    def _fallback_errors(self, request: Request) -> ErrorResponder:
        """The error shape of the provider whose client sent an unroutable request."""
        if looks_like_anthropic(request):
            return self._anthropic.error_response
        if looks_like_gemini(request):
            return self._gemini.error_response
        if looks_like_mistral(request):
            return self._mistral.error_response
        if looks_like_together(request):
            return self._together.error_response
        return self._openai.error_response

    def __repr__(self) -> str:
        where = self.url if self.running else "stopped"
        return f"FakeProviderServer({where})"


class _HTTPServer(ThreadingHTTPServer):
    """Tracks worker threads and their sockets so ``stop()`` can close everything."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024  # listen backlog: SDKs open many connections at once

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        dispatch: Callable[[Request], Response | DropConnection],
    ) -> None:
        super().__init__(address, handler)
        self.dispatch = dispatch
        self._tracked_lock = threading.Lock()
        self._workers: set[threading.Thread] = set()
        self._connections: set[socket.socket] = set()

    def process_request(self, request: Any, client_address: Any) -> None:
        worker = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            daemon=True,
            name="FakeProviderWorker",
        )
        with self._tracked_lock:
            self._workers.add(worker)
            self._connections.add(request)
        worker.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._tracked_lock:
                self._workers.discard(threading.current_thread())
                self._connections.discard(request)

    def close_open_connections(self) -> None:
        with self._tracked_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def join_workers(self, timeout: float) -> None:
        with self._tracked_lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join(timeout)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("fake provider server connection error from %s", client_address, exc_info=True)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _HTTPServer

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

    def _handle(self) -> None:
        body = self._read_body()
        parts = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        answer = self.server.dispatch(request)
        if isinstance(answer, DropConnection):
            self.close_connection = True
            return
        self._send(answer)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size_line = self.rfile.readline(65537)
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(65537)  # CRLF after each chunk

    def _send(self, answer: Response) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)
