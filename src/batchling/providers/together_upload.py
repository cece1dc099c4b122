"""Together's file upload, done with the caller's own `openai` client.

Together does not take the file in the `POST /v1/files` request. That request carries form
fields only (`purpose`, `file_name`, `file_type`) and is answered by a redirect (302) whose
`Location` is a pre-signed object-storage URL and whose `X-Together-File-Id` header names the
new file. The bytes go to that URL in a `PUT`; then `POST /v1/files/{id}/preprocess` makes the
file usable by a batch job. (Together's own SDK, `together/lib/resources/files.py`, does the
same; files above 5 GiB take a multipart route batch input files never need: Together caps
them at 100 MB.) `checksum`, the file's SHA-256 hex digest, is an optional form field.

The pre-signed URL is a credential of its own and must not carry the caller's: the `PUT` goes
through the client's own HTTP client (its proxies, TLS settings and timeouts) but without any
`Authorization`, `api-key` or cookie header and without the client's auth, and neither the URL
nor its signature is ever logged by batchling.

No `checksum` field is sent. Together may answer an upload whose checksum it has seen before with
a 409 naming the earlier file; batchling relies on every submission uploading a file of its own,
so that the job created from that file is known to be this submission's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

import openai

from batchling import backoff, stainless
from batchling.errors import BatchlingError

UPLOAD_PURPOSE = "batch-api"
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_FILE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}\Z")
_CREDENTIAL_HEADERS = ("authorization", "api-key", "x-api-key", "cookie")
_PUT_ATTEMPTS = 4


class TogetherProtocolError(BatchlingError):
    """Together answered in a way batchling cannot follow (nothing was billed for it)."""


async def upload(client: Any, data: bytes, *, file_name: str, headers: Mapping[str, str]) -> str:
    """Upload `data` as a Together batch input file named `file_name`; returns the file id."""
    location, file_id = await _register(client, file_name, headers)
    await backoff.retrying(
        lambda: _put(client, location, data), is_transient=_is_transient, attempts=_PUT_ATTEMPTS
    )
    await stainless.call(
        client,
        client.post,
        f"/files/{file_id}/preprocess",
        cast_to=object,
        options={"headers": dict(headers)},
    )
    return file_id


async def _register(client: Any, file_name: str, headers: Mapping[str, str]) -> tuple[str, str]:
    """`POST /files` with the file's description; returns (signed URL, file id)."""
    try:
        answer = await stainless.call(
            client,
            client.post,
            "/files",
            cast_to=object,
            body={"purpose": UPLOAD_PURPOSE, "file_name": file_name, "file_type": "jsonl"},
            options={
                # The SDK sends a JSON body as form fields when told the body is multipart.
                "headers": {**headers, "Content-Type": "multipart/form-data"},
                "follow_redirects": False,
            },
        )
    except openai.APIStatusError as exc:
        # The SDK raises on every non-2xx answer, the expected redirect included.
        if exc.status_code not in _REDIRECT_STATUSES:
            raise
        response = exc.response
    else:
        raise TogetherProtocolError(
            "Together answered the file registration (POST /files) without redirecting to an "
            f"upload URL ({type(answer).__name__} body), so the batch input could not be "
            "uploaded. Check that the client's base_url is Together's API "
            "(https://api.together.xyz/v1)."
        )
    location = response.headers.get("location")
    file_id = response.headers.get("x-together-file-id")
    if not location or not file_id:
        raise TogetherProtocolError(
            "Together redirected the file registration without a Location or "
            "X-Together-File-Id header; the batch input could not be uploaded."
        )
    if not _FILE_ID.match(file_id):
        raise TogetherProtocolError(
            f"Together named the uploaded file {file_id[:80]!r}, which is no file id batchling "
            "can use in a URL path."
        )
    return _upload_url(str(client.base_url), location), file_id


def _upload_url(base_url: str, location: str) -> str:
    """The absolute upload URL; refused if it would downgrade an HTTPS API to plain HTTP."""
    url = urllib.parse.urljoin(base_url, location)
    scheme = urllib.parse.urlsplit(url).scheme
    base_scheme = urllib.parse.urlsplit(base_url).scheme
    if scheme != "https" and not (scheme == "http" and base_scheme == "http"):
        raise TogetherProtocolError(
            f"Together's upload URL uses {scheme or 'no'} scheme while the API is reached over "
            f"{base_scheme}; batchling does not send batch input to it."
        )
    return url


async def _put(client: Any, url: str, data: bytes) -> None:
    """PUT `data` to the signed URL with the client's own HTTP client and none of its keys."""
    http_client = client._client
    http = stainless.http_module_of_client(client)
    request = http_client.build_request("PUT", url, content=data)
    for name in _CREDENTIAL_HEADERS:
        request.headers.pop(name, None)
    with _signature_hidden_from_logs(url):
        try:
            if stainless.is_sync_client(client):
                response = await asyncio.to_thread(
                    http_client.send, request, auth=None, follow_redirects=False
                )
            else:
                response = await http_client.send(request, auth=None, follow_redirects=False)
        except http.TimeoutException as exc:
            raise openai.APITimeoutError(request=request) from exc
        except http.TransportError as exc:
            raise openai.APIConnectionError(
                message="Uploading the batch input to Together's file storage failed: "
                f"{type(exc).__name__}.",
                request=request,
            ) from exc
    if not 200 <= response.status_code < 300:
        # The storage's error body may echo the signed URL: it is left out of the message.
        raise openai.APIStatusError(
            f"Together's file storage refused the batch input upload (HTTP "
            f"{response.status_code}).",
            response=response,
            body=None,
        )


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, openai.APIConnectionError):
        return True
    if isinstance(error, openai.APIStatusError):
        return stainless.is_transient_status(error.status_code)
    return False


# ----------------------------------------------------------------------- log redaction

_LOGGERS = ("httpx", "httpx2")
_hidden_lock = threading.Lock()
_hidden: dict[str, int] = {}


class _SignedURLFilter(logging.Filter):
    """Replaces a signed upload URL in the HTTP library's request log line by its bare path."""

    def filter(self, record: logging.LogRecord) -> bool:
        with _hidden_lock:
            if not _hidden:
                return True
            hidden = set(_hidden)
        if isinstance(record.args, tuple) and any(str(arg) in hidden for arg in record.args):
            record.args = tuple(
                _without_query(str(arg)) if str(arg) in hidden else arg for arg in record.args
            )
        return True


_FILTER = _SignedURLFilter()


@contextlib.contextmanager
def _signature_hidden_from_logs(url: str) -> Iterator[None]:
    """While uploading, keep the URL's query (its signature) out of httpx's INFO log line."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    with _hidden_lock:
        _hidden[url] = _hidden.get(url, 0) + 1
    try:
        yield
    finally:
        with _hidden_lock:
            _hidden[url] -= 1
            if not _hidden[url]:
                del _hidden[url]


def _without_query(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")) + (
        "?<signature hidden>" if parts.query else ""
    )
