"""Gemini: `google.genai.Client(...).aio` calls through the Gemini Developer API's Batch Mode.

Interception point: the SDK client's own `BaseApiClient.async_request(method, path,
request_dict, http_options)`, which every async model call reaches with the exact wire body:
`client.aio.models.generate_content`, chats, each automatic-function-calling round and each
automatic continuation. batchling answers with the line's response as the `HttpResponse` the
SDK expects, so the SDK's own response processing builds the `GenerateContentResponse`
(`.text`, candidates, usage metadata, `.parsed` for a `response_schema`). A failed line raises
`google.genai.errors.ClientError` / `ServerError` with the real HTTP code.

Jobs are created inline (`models/{model}:batchGenerateContent`) with each request's id in its
`metadata`; a job whose inline payload would exceed the provider's inline limit is sent as an
uploaded JSONL file instead. `embed_content` calls (`models/{model}:batchEmbedContents`, one
request per content) become embedding jobs (`asyncBatchEmbedContent`), always inline: each of a
call's contents is one line of the job, and the call's answer is put together from its lines.
Vertex AI clients, streaming and media generation are passed through.
Checked against google-genai 3.x (default API version `v1`; job names are `batches/<id>`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import io
import json
import math
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any

from google.genai import errors, types
from google.genai.files import AsyncFiles, Files

from batchling import api_keys, backoff, job_clients, json_codec, listing, stainless
from batchling.hookspecs import hookimpl
from batchling.job_clients import JobClients
from batchling.provider import (
    BatchLine,
    BatchRequest,
    BatchState,
    BatchStatus,
    LineResult,
    NotBatchable,
    Outcome,
    PatchTarget,
    SubmittedBatch,
)
from batchling.providers import google_genai_parts

REQUEST_TARGET = PatchTarget("google.genai._api_client", "BaseApiClient.async_request")
STREAM_TARGET = PatchTarget("google.genai._api_client", "BaseApiClient.async_request_streamed")
SYNC_REQUEST_TARGET = PatchTarget("google.genai._api_client", "BaseApiClient.request", sync=True)
SYNC_STREAM_TARGET = PatchTarget(
    "google.genai._api_client", "BaseApiClient.request_streamed", sync=True
)

ENDPOINT = "generateContent"
EMBED_ENDPOINT = "batchEmbedContents"
"""An `embed_content` call: its contents go out as one embedding job's lines."""
EMBED_INPUTS_PER_JOB = 2_000
"""Most contents one embedding job holds. Its embeddings come back inline in the job's status
(up to 3,072 floats each, as JSON text): smaller jobs keep that one response bounded."""
ID_METADATA_KEY = "batchling_id"
INLINE_LIMIT_BYTES = 20_000_000
"""The Batch API refuses inline jobs above 20 MB; bigger jobs go as an uploaded file."""
INLINE_MARGIN_BYTES = 64_000

_MODEL_CALL = re.compile(r"^/?(?P<model>(?:models|tunedModels)/[^:?]+):(?P<method>[A-Za-z]+)")
# Model methods that are no billed generation: passed through unreported.
_FREE_METHODS = frozenset({"countTokens", "computeTokens"})

_STATES: Mapping[str, BatchState] = {
    "BATCH_STATE_SUCCEEDED": BatchState.COMPLETED,
    "BATCH_STATE_FAILED": BatchState.FAILED,
    "BATCH_STATE_CANCELLED": BatchState.CANCELLED,
    "BATCH_STATE_EXPIRED": BatchState.EXPIRED,
    "JOB_STATE_SUCCEEDED": BatchState.COMPLETED,
    "JOB_STATE_FAILED": BatchState.FAILED,
    "JOB_STATE_CANCELLED": BatchState.CANCELLED,
    "JOB_STATE_EXPIRED": BatchState.EXPIRED,
}

# google.rpc.Code -> the HTTP status Google's real-time API answers with it.
_GRPC_TO_HTTP: Mapping[int, int] = {
    1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409,
    11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401,
}  # fmt: skip
_HTTP_STATUS_NAMES: Mapping[int, str] = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL",
    501: "NOT_IMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}  # fmt: skip
# Headers that do not change where or as whom a call is sent (X-Server-Timeout is a deadline,
# like the `timeout` option; pydantic-ai sets it on every call).
_IRRELEVANT_HEADERS = frozenset(
    {"user-agent", "x-goog-api-client", "content-type", "x-server-timeout"}
)


@dataclasses.dataclass(frozen=True, slots=True)
class _Api:
    """The callers' own API clients, used the way the callers used them: a sync client's calls
    run in a worker thread with its sync HTTP client, an async client's on the loop. The first
    client still open speaks for the job (see `batchling.job_clients`)."""

    clients: JobClients
    sync: bool

    @classmethod
    def of(cls, clients: Iterable[Any], sync: bool) -> _Api:
        return cls(JobClients(clients, lambda client: _is_closed(client, sync)), sync)

    @property
    def api_client(self) -> Any:
        return self.clients.current()

    async def request(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.sync:
            response = await asyncio.to_thread(self.api_client.request, method, path, body, None)
        else:
            response = await self.api_client.async_request(method, path, body, None)
        return dict(json.loads(response.body or "{}"))

    async def upload(self, data: bytes, name: str) -> str:
        config = types.UploadFileConfig(mime_type="application/jsonl", display_name=name)
        if self.sync:
            uploaded = await asyncio.to_thread(
                Files(self.api_client).upload, file=io.BytesIO(data), config=config
            )
        else:
            uploaded = await AsyncFiles(self.api_client).upload(
                file=io.BytesIO(data), config=config
            )
        return str(uploaded.name)

    async def download(self, name: str) -> bytes:
        if self.sync:
            return bytes(await asyncio.to_thread(Files(self.api_client).download, file=name))
        return bytes(await AsyncFiles(self.api_client).download(file=name))


@dataclasses.dataclass(frozen=True, slots=True)
class _Call:
    model_path: str
    """`models/<id>`, as the SDK addressed it."""
    sync: bool
    """Whether the call came from the sync surface (`client.models`)."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Job:
    api: _Api
    name: str
    """`batches/<id>`."""
    source: str
    """`"inline"` or `"file"`."""
    custom_ids: tuple[str, ...]
    """Input order: inline responses come back in it."""
    embeddings: bool = False
    """An embedding job: each request's contents are lines of their own at the provider."""
    parts: tuple[int, ...] | None = None
    """An embedding job's: how many contents each request has (None: unknown, for a job found
    in the provider's listing; its lines' metadata then tells)."""

    @property
    def line_ids(self) -> list[str]:
        """The ids of the job's lines at the provider, in input order (as far as known)."""
        if self.parts is None:
            return [] if self.embeddings else list(self.custom_ids)
        return [
            _part_id(custom_id, index, count)
            for custom_id, count in zip(self.custom_ids, self.parts, strict=True)
            for index in range(count)
        ]


def _part_id(custom_id: str, index: int, count: int) -> str:
    """The id of one content of an embedding request, as its line's metadata carries it: the
    request's id, the content's place, and how many contents the request has."""
    return f"{custom_id}:{index}/{count}"


_PART_ID = re.compile(r"(?P<owner>.+):(?P<index>[0-9]+)/(?P<count>[0-9]+)")


class _CorruptDownloadError(Exception):
    """A results file line did not parse: the file is fetched again."""


def _is_closed(api_client: Any, sync: bool) -> bool:
    """Whether a `BaseApiClient`'s HTTP client (the sync or the async one) has been closed."""
    http_client = getattr(api_client, "_httpx_client" if sync else "_async_httpx_client", None)
    return bool(getattr(http_client, "is_closed", False))


def _http_status(code: object) -> int:
    """An HTTP status from a per-request error code (gRPC code, or already HTTP)."""
    value = int(code) if isinstance(code, int | str) and str(code).isdigit() else 13
    return value if value >= 100 else _GRPC_TO_HTTP.get(value, 500)


def _identity_headers(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    return sorted(
        (key.lower(), value)
        for key, value in headers.items()
        if key.lower() not in _IRRELEVANT_HEADERS
    )


class GoogleGenAIProvider:
    """Batches `google-genai` async model calls through the Gemini Batch API."""

    name = "gemini"
    targets: Sequence[PatchTarget] = (
        REQUEST_TARGET,
        STREAM_TARGET,
        SYNC_REQUEST_TARGET,
        SYNC_STREAM_TARGET,
        google_genai_parts.TARGET,
    )
    max_requests_per_batch = 100_000
    max_bytes_per_batch = 2_000_000_000

    def __init__(self) -> None:
        self._text_parts = google_genai_parts.TextParts()

    def hook(
        self,
        target: PatchTarget,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Inside `batchify()`, a text-only part's wire form is written directly (see
        `batchling.providers.google_genai_parts`)."""
        return self._text_parts.to_mldev(wrapped, args, kwargs)

    async def to_request(
        self, target: PatchTarget, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> BatchRequest | NotBatchable | None:
        method, path, request_dict, http_options = _arguments(args, kwargs)
        match = _MODEL_CALL.match(path)
        if str(method).lower() != "post" or match is None:
            return None  # files, batches, caches, listings...
        model_method = match.group("method")
        if model_method in _FREE_METHODS:
            return None
        if target in (STREAM_TARGET, SYNC_STREAM_TARGET) or model_method == "streamGenerateContent":
            return NotBatchable(
                "streaming",
                "A streamed response (generate_content_stream) cannot come from a Batch API.",
            )
        if model_method not in (ENDPOINT, EMBED_ENDPOINT):
            return NotBatchable(
                f"method {model_method}",
                f"batchling batches Gemini generateContent and batchEmbedContents calls, not "
                f"{model_method} (media generation is sent in real time for now).",
            )
        if instance.vertexai:
            return NotBatchable(
                "vertex ai",
                "Vertex AI batch prediction reads from Cloud Storage or BigQuery; batchling "
                "batches Gemini Developer API clients only.",
            )
        if _has_routing_options(http_options):
            return NotBatchable(
                "per-call http_options",
                "The call sets its own http_options (base URL, version or headers), which a "
                "batch line cannot carry.",
            )
        # Build on a copy: the SDK's request builder deletes and merges keys in place.
        # The standard library's codec, as the SDK's: it refuses what real time refuses (a
        # `Decimal`, a `set`...), and `submit` writes the lines with it, so the size is exact.
        body_copy = json.loads(json.dumps(request_dict))
        http_request = instance._build_request(method, path, body_copy, None)
        body: dict[str, Any] = http_request.data
        prefix = http_request.url[: http_request.url.find(match.group("model"))]
        model_path = match.group("model")
        size_bytes = len(json.dumps(body, separators=(",", ":"))) + 80
        units, max_units, limits = 1, None, None
        if model_method == EMBED_ENDPOINT:
            contents = body.get("requests")
            if not isinstance(contents, list) or not contents:
                return None  # nothing to embed: real time answers its own error, at no cost
            units = len(contents)
            size_bytes += 80 * units  # each content's line carries its own id
            # Always inline (see `submit`): a job stays under the inline limit.
            max_bytes = INLINE_LIMIT_BYTES - INLINE_MARGIN_BYTES
            max_units, limits = EMBED_INPUTS_PER_JOB, (self.max_requests_per_batch, max_bytes)
        return BatchRequest(
            provider=self.name,
            client_key=stainless.digest(prefix, _identity_headers(http_request.headers)),
            endpoint=model_method,
            model=model_path.split("/", 1)[1],
            body=body,
            size_bytes=size_bytes,
            request_hash=stainless.digest(self.name, model_method, model_path, prefix, body),
            base_url=str(instance._http_options.base_url or ""),
            client=instance,
            call=_Call(model_path, target.sync),
            limits=limits,
            units=units,
            max_units=max_units,
        )

    async def submit(
        self, lines: Sequence[BatchLine], *, completion_window: str, submission_id: str
    ) -> SubmittedBatch:
        first = lines[0].request
        api = _Api.of((line.request.client for line in lines), first.call.sync)
        model_path = first.call.model_path
        if first.endpoint == EMBED_ENDPOINT:
            return await self._submit_embeddings(api, lines, submission_id)
        inline = [
            {"request": line.request.body, "metadata": {ID_METADATA_KEY: line.custom_id}}
            for line in lines
        ]
        payload = json.dumps(inline, separators=(",", ":")).encode()
        if len(payload) + INLINE_MARGIN_BYTES <= INLINE_LIMIT_BYTES:
            source = "inline"
            input_config: dict[str, Any] = {"requests": {"requests": inline}}
        else:
            source = "file"
            input_config = {"fileName": await self._upload(api, lines, submission_id)}
        operation = await self._create(
            api,
            f"{model_path}:batchGenerateContent",
            {"batch": {"displayName": submission_id, "inputConfig": input_config}},
            submission_id,
        )
        return SubmittedBatch(
            provider=self.name,
            batch_id=operation["name"],
            endpoint=first.endpoint,
            model=first.model,
            size=len(lines),
            handle=_Job(api, operation["name"], source, tuple(line.custom_id for line in lines)),
        )

    async def _submit_embeddings(
        self, api: _Api, lines: Sequence[BatchLine], submission_id: str
    ) -> SubmittedBatch:
        """One embedding job whose lines are the requests' contents, each tagged with its
        request's id and its place in the request."""
        first = lines[0].request
        parts = tuple(_embed_contents(line.request) for line in lines)
        # The SDK's own embedding jobs name the model once, for the job, not on each line.
        inline = [
            {
                "request": _without_model(content),
                "metadata": {ID_METADATA_KEY: _part_id(line.custom_id, index, len(contents))},
            }
            for line, contents in zip(lines, parts, strict=True)
            for index, content in enumerate(contents)
        ]
        operation = await self._create(
            api,
            f"{first.call.model_path}:asyncBatchEmbedContent",
            {
                "batch": {
                    "displayName": submission_id,
                    "inputConfig": {"requests": {"requests": inline}},
                }
            },
            submission_id,
        )
        custom_ids = tuple(line.custom_id for line in lines)
        return SubmittedBatch(
            provider=self.name,
            batch_id=operation["name"],
            endpoint=EMBED_ENDPOINT,
            model=first.model,
            size=len(lines),
            handle=_Job(api, operation["name"], "inline", custom_ids, True, tuple(map(len, parts))),
        )

    async def _upload(self, api: _Api, lines: Sequence[BatchLine], name: str) -> str:
        data = b"".join(
            json.dumps({"key": line.custom_id, "request": line.request.body}).encode() + b"\n"
            for line in lines
        )
        return await api.upload(data, name)

    async def _create(
        self, api: _Api, path: str, body: dict[str, Any], submission_id: str
    ) -> dict[str, Any]:
        # The job an earlier attempt may have created carries the submission id as display name.
        return await backoff.create_once(
            lambda: api.request("post", path, body),
            lambda: self._find_submission(api, submission_id),
            is_transient=self.is_transient,
        )

    async def _find_submission(
        self, api: _Api, submission_id: str, since: float | None = None
    ) -> dict[str, Any] | None:
        """The job whose display name is `submission_id`. Listings come newest first: pages
        are read back to `since` (a minute's margin for clock skew), or only the first without
        it (a look-up right after a create attempt)."""

        async def page_at(token: str | None) -> tuple[list[dict[str, Any]], str | None]:
            path = "batches?pageSize=50" + (f"&pageToken={token}" if token else "")
            page = await api.request("get", path, {})
            return list(page.get("operations") or []), page.get("nextPageToken") or None

        found = await listing.find_job(
            page_at,
            lambda operation: (operation.get("metadata") or {}).get("displayName") == submission_id,
            lambda operation: _unix_time((operation.get("metadata") or {}).get("createTime")),
            since=since,
        )
        return dict(found) if found is not None else None

    async def poll(self, batch: SubmittedBatch) -> BatchStatus:
        job: _Job = batch.handle
        operation = await job.api.request("get", job.name, {})
        metadata = operation.get("metadata") or {}
        state_name = str(metadata.get("state") or "BATCH_STATE_PENDING")
        stats = metadata.get("batchStats") or {}
        error = operation.get("error") or {}
        return BatchStatus(
            state=_STATES.get(state_name, BatchState.RUNNING),
            provider_status=state_name.removeprefix("BATCH_STATE_").lower(),
            total=int(stats.get("requestCount") or batch.size),
            completed=int(stats.get("successfulRequestCount") or 0),
            failed=int(stats.get("failedRequestCount") or 0),
            message=error.get("message"),
            handle=metadata.get("output") or operation.get("response") or {},
        )

    async def results(
        self, batch: SubmittedBatch, status: BatchStatus
    ) -> AsyncIterator[LineResult]:
        job: _Job = batch.handle
        output: Mapping[str, Any] = status.handle or {}
        if job.embeddings:
            for result in _embedding_results(job, output):
                yield result
            return
        responses_file = output.get("responsesFile")
        if responses_file:
            data = await job.api.download(str(responses_file))
            parsed = [_decode_file_line(raw) for raw in json_codec.jsonl_lines(data)]
        else:
            inlined = (output.get("inlinedResponses") or {}).get("inlinedResponses") or []
            parsed = [
                _decode_inline(item, job.custom_ids[index] if index < len(job.custom_ids) else "")
                for index, item in enumerate(inlined)
            ]
        for result in parsed:
            yield result

    async def to_response(self, request: BatchRequest, result: LineResult) -> Any:
        status_code = result.status_code or 500
        if status_code >= 400:
            errors.APIError.raise_error(status_code, result.body, None)
        return types.HttpResponse(headers={}, body=json_codec.dumps(result.body).decode())

    async def cancel(self, batch: SubmittedBatch) -> None:
        job: _Job = batch.handle
        await job.api.request("post", f"{job.name}:cancel", {})

    def describe(self, batch: SubmittedBatch) -> Mapping[str, Any]:
        job: _Job = batch.handle
        if job.embeddings:
            # What `reattach` needs to tell which line belongs to which request.
            parts = list(job.parts) if job.parts is not None else None
            return {"source": job.source, "endpoint": EMBED_ENDPOINT, "parts": parts}
        return {"source": job.source}

    def reattach(
        self,
        batch_id: str,
        info: Mapping[str, Any],
        *,
        client: Any,
        template: BatchRequest | None,
        custom_ids: Sequence[str],
    ) -> SubmittedBatch:
        # A job found in the listing has no journaled facts: the request it was found for says.
        embeddings = (info.get("endpoint") or getattr(template, "endpoint", None)) == EMBED_ENDPOINT
        parts = info.get("parts")
        known_parts = (
            tuple(int(count) for count in parts)
            if isinstance(parts, list) and len(parts) == len(custom_ids)
            else None
        )
        return SubmittedBatch(
            provider=self.name,
            batch_id=batch_id,
            endpoint=EMBED_ENDPOINT if embeddings else ENDPOINT,
            model=template.model if template is not None else "",
            size=len(custom_ids),
            handle=_Job(
                _Api.of([client], template.call.sync if template is not None else False),
                batch_id,
                str(info.get("source", "inline")),
                tuple(custom_ids),
                embeddings,
                known_parts if embeddings else None,
            ),
        )

    async def find_submission(
        self,
        submission_id: str,
        *,
        client: Any,
        template: BatchRequest | None,
        size: int,
        since: float,
    ) -> str | None:
        api = _Api.of([client], template.call.sync if template is not None else False)
        found = await backoff.retrying(
            lambda: self._find_submission(api, submission_id, since), is_transient=self.is_transient
        )
        return str(found["name"]) if found is not None else None

    def default_client(self, base_url: str) -> Any:
        from google import genai

        _, key = api_keys.from_environment(("GOOGLE_API_KEY", "GEMINI_API_KEY"))
        options = types.HttpOptions(base_url=base_url) if base_url else None
        return genai.Client(api_key=key, http_options=options)._api_client

    def is_transient(self, error: BaseException) -> bool:
        if isinstance(error, _CorruptDownloadError) or job_clients.is_closed_client_error(error):
            return True
        if isinstance(error, errors.APIError):
            return stainless.is_transient_status(int(error.code or 0))
        # The SDK's HTTP layer (httpx2, httpx or aiohttp) raises its own connection errors.
        return isinstance(error, ConnectionError | TimeoutError) or type(error).__name__ in {
            "ConnectError", "ReadTimeout", "ConnectTimeout", "RemoteProtocolError", "ReadError",
            "WriteError", "PoolTimeout", "ClientConnectionError", "ServerDisconnectedError",
        }  # fmt: skip


def _arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[str, str, dict[str, Any], Any]:
    names = ("http_method", "path", "request_dict", "http_options")
    values = list(args[:4])
    for name in names[len(values) :]:
        values.append(kwargs.get(name))
    return str(values[0]), str(values[1]), values[2] or {}, values[3]


def _unix_time(rfc3339: object) -> float:
    """Seconds since the epoch of an RFC 3339 time; +inf if absent or unreadable (the page is
    then read on)."""
    try:
        return datetime.datetime.fromisoformat(str(rfc3339).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return math.inf


def _has_routing_options(http_options: Any) -> bool:
    """Whether per-call http_options change where or how the request is sent."""
    if not http_options:
        return False
    options = (
        http_options.model_dump(exclude_none=True)
        if isinstance(http_options, types.HttpOptions)
        else {key: value for key, value in dict(http_options).items() if value is not None}
    )
    headers = options.pop("headers", None) or {}
    # Chats and automatic function calling tag their calls through the user agent headers.
    if any(key.lower() not in _IRRELEVANT_HEADERS for key in headers):
        return True
    return bool(set(options) - {"timeout", "retry_options"})


def _error_result(custom_id: str, error: Mapping[str, Any]) -> LineResult:
    status_code = _http_status(error.get("code"))
    message = str(error.get("message") or "The batch returned an error for this request.")
    body = {
        "error": {
            "code": status_code,
            "message": message,
            "status": _HTTP_STATUS_NAMES.get(status_code, "UNKNOWN"),
            "details": error.get("details") or [],
        }
    }
    return LineResult(custom_id, Outcome.ERRORED, status_code=status_code, body=body,
                      message=message)  # fmt: skip


def _decode_inline(item: Mapping[str, Any], custom_id_by_order: str) -> LineResult:
    # Inline responses come back in input order; the id in the metadata is checked first.
    custom_id = str((item.get("metadata") or {}).get(ID_METADATA_KEY) or custom_id_by_order)
    if item.get("error"):
        return _error_result(custom_id, item["error"])
    return LineResult(custom_id, Outcome.SUCCEEDED, status_code=200, body=item.get("response"))


def _embed_contents(request: BatchRequest) -> list[Mapping[str, Any]]:
    contents = request.body.get("requests")
    return list(contents) if isinstance(contents, list) else []


def _without_model(content: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in content.items() if key != "model"}


def _embedding_results(job: _Job, output: Mapping[str, Any]) -> list[LineResult]:
    """Each request's answer put together from its contents' lines: the `batchEmbedContents`
    body real time answers (embeddings in the request's order), or the first line's error."""
    # The SDK reads both names for an embedding job's inline output.
    container = output.get("inlinedEmbedContentResponses") or output.get("inlinedResponses")
    items = (container or {}).get("inlinedResponses") or []
    line_ids = job.line_ids
    by_line: dict[str, Mapping[str, Any]] = {}
    for index, item in enumerate(items):
        # Inline responses come back in input order; the id in the metadata is checked first.
        line_id = (item.get("metadata") or {}).get(ID_METADATA_KEY)
        if line_id is None and index < len(line_ids):
            line_id = line_ids[index]
        by_line[str(line_id)] = item
    parts = job.parts
    if parts is None:  # a job found in the listing: its lines' ids tell each request's share
        counts: dict[str, int] = {}
        for line_id in by_line:
            if (found := _PART_ID.fullmatch(line_id)) is not None:
                counts[found["owner"]] = int(found["count"])
        parts = tuple(counts.get(custom_id, 0) for custom_id in job.custom_ids)
    results = []
    for custom_id, count in zip(job.custom_ids, parts, strict=True):
        if count == 0:
            continue  # no line of it came back: the scheduler tells its caller
        answered = [by_line.get(_part_id(custom_id, index, count)) for index in range(count)]
        if any(item is None for item in answered):
            continue  # unfinished: the scheduler tells its caller, as for a missing line
        failed = next((item for item in answered if item and item.get("error")), None)
        if failed is not None:
            results.append(_error_result(custom_id, failed["error"]))
            continue
        embeddings = [(item or {}).get("response", {}).get("embedding") for item in answered]
        results.append(
            LineResult(
                custom_id, Outcome.SUCCEEDED, status_code=200, body={"embeddings": embeddings}
            )
        )
    return results


def _decode_file_line(raw: bytes) -> LineResult:
    try:
        line = json_codec.loads(raw)
        custom_id = str(line["key"])
    except (ValueError, KeyError, TypeError) as exc:
        raise _CorruptDownloadError(f"unreadable result line: {raw[:200]!r}") from exc
    error = line.get("error") or line.get("status")
    if error and not line.get("response"):
        return _error_result(custom_id, error)
    return LineResult(custom_id, Outcome.SUCCEEDED, status_code=200, body=line.get("response"))


@hookimpl
def batchling_register_providers(register: Any) -> None:
    """Register the built-in Gemini provider."""
    register(GoogleGenAIProvider())
