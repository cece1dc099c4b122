"""Gemini Files: the resumable upload protocol, file metadata, download and deletion.

An upload is two (or more) requests, as ``client.aio.files.upload`` makes them:

1. ``POST /upload/{ver}/files`` with ``X-Goog-Upload-Protocol: resumable`` and
   ``X-Goog-Upload-Command: start`` (authenticated) answers an ``x-goog-upload-url`` header
   pointing back at this server, with an ``upload_id`` query parameter;
2. ``POST <that url>`` with ``X-Goog-Upload-Command: upload`` (more chunks follow) or
   ``upload, finalize`` (last chunk) and ``X-Goog-Upload-Offset``; the final one answers
   ``x-goog-upload-status: final`` and ``{"file": {...}}``.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from batchling.testing.context import ServerContext
from batchling.testing.file_store import FileStore, StoredFile
from batchling.testing.http_types import Request, Response, json_object, json_response
from batchling.testing.timestamps import rfc3339

Json = dict[str, Any]
ErrorResponse = Callable[..., Response]

FILE_LIFETIME_SECONDS = 48 * 3600
UPLOAD_CHUNK_GRANULARITY = 8 * 1024 * 1024
DEFAULT_PAGE_SIZE = 10
UPLOADED = "gemini_upload"
GENERATED = "gemini_output"


@dataclass
class _UploadSession:
    display_name: str | None
    mime_type: str
    declared_size: int | None
    api_version: str
    data: bytearray = field(default_factory=bytearray)


class GeminiFiles:
    """Gemini's file store and its HTTP handlers (``files/<id>`` names)."""

    def __init__(self, context: ServerContext, error_response: ErrorResponse) -> None:
        self._context = context
        self._error_response = error_response
        self.store = FileStore()
        self._lock = threading.Lock()
        self._sessions: dict[str, _UploadSession] = {}

    # ------------------------------------------------------------------ upload

    def upload(self, request: Request, api_key: str | None) -> Response:
        """Both steps of a resumable upload (``upload_id`` tells a continuation apart)."""
        upload_id = request.query_value("upload_id")
        if upload_id is not None:
            return self._continue_upload(request, upload_id)
        if api_key is None:
            return self._error_response(403, _MISSING_KEY_MESSAGE)
        command = request.headers.get("x-goog-upload-command", "").lower()
        protocol = request.headers.get("x-goog-upload-protocol", "").lower()
        if protocol != "resumable" or "start" not in command:
            return self._error_response(
                400, "The fake server supports only resumable uploads (start, upload, finalize)."
            )
        described = json_object(request.body) or {}
        file_field = described.get("file")
        file_info: Json = file_field if isinstance(file_field, dict) else {}
        mime_type = (
            request.headers.get("x-goog-upload-header-content-type")
            or _either(file_info, "mime_type", "mimeType")
            or "application/octet-stream"
        )
        size = request.headers.get("x-goog-upload-header-content-length")
        session = _UploadSession(
            display_name=_either(file_info, "display_name", "displayName"),
            mime_type=str(mime_type),
            declared_size=int(size) if size and size.isdigit() else None,
            api_version=request.path.split("/")[2],
        )
        new_upload_id = self._context.ids.new("upload")
        with self._lock:
            self._sessions[new_upload_id] = session
        upload_url = (
            f"{origin(request)}{request.path}?upload_id={new_upload_id}&upload_protocol=resumable"
        )
        return Response(
            status=200,
            headers={
                "x-goog-upload-url": upload_url,
                "x-goog-upload-status": "active",
                "x-goog-upload-chunk-granularity": str(UPLOAD_CHUNK_GRANULARITY),
                "x-goog-upload-control-url": upload_url,
            },
            body=b"",
            content_type="text/plain; charset=utf-8",
        )

    def _continue_upload(self, request: Request, upload_id: str) -> Response:
        final = {"x-goog-upload-status": "final"}
        with self._lock:
            session = self._sessions.get(upload_id)
        if session is None:
            answer = self._error_response(404, f"No upload session {upload_id!r}.")
            answer.headers.update(final)
            return answer
        command = request.headers.get("x-goog-upload-command", "").lower()
        offset = request.headers.get("x-goog-upload-offset")
        if "upload" in command:
            if offset is not None and offset.isdigit() and int(offset) != len(session.data):
                answer = self._error_response(
                    400, f"Upload offset {offset} does not match {len(session.data)}."
                )
                answer.headers.update(final)
                return answer
            session.data.extend(request.body)
        if "finalize" not in command:
            return Response(
                status=200,
                headers={"x-goog-upload-status": "active"},
                body=b"",
                content_type="text/plain; charset=utf-8",
            )
        with self._lock:
            self._sessions.pop(upload_id, None)
        stored = self.add(bytes(session.data), session.mime_type, session.display_name)
        self._context.stats.record_file_uploaded("gemini")
        body = {"file": self.describe(stored, origin(request), session.api_version)}
        return json_response(200, body, final)

    def add(
        self, data: bytes, mime_type: str, display_name: str | None, *, generated: bool = False
    ) -> StoredFile:
        """Store a file (uploaded, or ``generated`` by a batch) under a fresh ``files/<id>``."""
        created = int(time.time())
        name = "files/" + self._context.ids.new("")
        return self.store.add(
            StoredFile(
                id=name,
                filename=display_name or name.removeprefix("files/"),
                purpose=GENERATED if generated else UPLOADED,
                data=data,
                created_at=created,
                expires_at=created + FILE_LIFETIME_SECONDS,
                mime_type=mime_type,
                owner="gemini",
            )
        )

    # ------------------------------------------------------------------ metadata and content

    def get(self, request: Request) -> Response:
        stored = self.store.get("files/" + request.path_params["id"])
        if stored is None:
            return self._no_such_file(request.path_params["id"])
        return json_response(200, self.describe(stored, origin(request), _version(request)))

    def delete(self, request: Request) -> Response:
        if not self.store.delete("files/" + request.path_params["id"]):
            return self._no_such_file(request.path_params["id"])
        return json_response(200, {})

    def download(self, request: Request) -> Response:
        stored = self.store.get("files/" + request.path_params["id"])
        if stored is None:
            return self._no_such_file(request.path_params["id"])
        return Response(
            status=200,
            body=stored.data,
            content_type=stored.mime_type or "application/octet-stream",
        )

    def list(self, request: Request) -> Response:
        files = list(reversed(self.store.all()))
        described = [self.describe(f, origin(request), _version(request)) for f in files]
        return json_response(200, page(described, request, "files", DEFAULT_PAGE_SIZE))

    def describe(self, stored: StoredFile, base: str, api_version: str) -> Json:
        """The ``File`` resource as the API answers it (camelCase, int64 as strings)."""
        described: Json = {
            "name": stored.id,
            "mimeType": stored.mime_type or "application/octet-stream",
            "sizeBytes": str(stored.size),
            "createTime": rfc3339(stored.created_at),
            "updateTime": rfc3339(stored.created_at),
            "expirationTime": rfc3339(stored.expires_at),
            "sha256Hash": base64.b64encode(
                hashlib.sha256(stored.data).hexdigest().encode()
            ).decode(),
            "uri": f"{base}/{api_version}/{stored.id}",
            "downloadUri": f"{base}/{api_version}/{stored.id}:download?alt=media",
            "state": "ACTIVE",
            "source": "GENERATED" if stored.purpose == GENERATED else "UPLOADED",
        }
        if stored.filename != stored.id.removeprefix("files/"):
            described["displayName"] = stored.filename
        return described

    def _no_such_file(self, file_id: str) -> Response:
        return self._error_response(
            403, f"You do not have permission to access the File {file_id} or it may not exist."
        )


_MISSING_KEY_MESSAGE = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)


def page(items: list[Json], request: Request, key: str, default_size: int) -> Json:
    """A Google list page: ``{key: [...], "nextPageToken": ...}`` (token = next offset)."""
    try:
        size = int(request.query_value("pageSize") or default_size)
    except ValueError:
        size = default_size
    size = max(size, 1)
    token = request.query_value("pageToken") or "0"
    start = int(token) if token.isdigit() else 0
    answer: Json = {key: items[start : start + size]}
    if start + size < len(items):
        answer["nextPageToken"] = str(start + size)
    return answer


def origin(request: Request) -> str:
    """``http://host:port`` as the client addressed this server."""
    return f"http://{request.headers.get('host', '127.0.0.1')}"


def _version(request: Request) -> str:
    return request.path.split("/")[1]


def _either(values: Json, *names: str) -> str | None:
    for name in names:
        value = values.get(name)
        if isinstance(value, str) and value:
            return value
    return None
