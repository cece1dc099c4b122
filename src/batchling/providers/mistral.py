"""Mistral: `mistralai` client calls through Mistral's Batch API (Files + Batch Jobs).

Interception point: the SDK's own `BaseSDK.do_request_async(hook_ctx, request, ...)` (and the
blocking `BaseSDK.do_request` for sync calls): the single method every generated operation
(`chat.complete_async` / `complete`, `chat.parse_async` / `parse`, which call `complete`,
`embeddings.create_async`, `fim.complete_async`...) hands its fully built HTTP request to, and
whose returned HTTP response the operation then parses itself. A batch line carries that
request's exact body bytes; the caller is answered with the line's response as the HTTP
response `do_request_async` would have returned (after the SDK's own after-success /
after-error hooks), so the SDK's own code builds the `ChatCompletionResponse` (or raises
`HTTPValidationError` for a 422, `SDKError` for any other error status) exactly as in real
time.

Jobs: the lines go into one uploaded JSONL file (`{"custom_id", "body"}` per line, purpose
`batch`), then `POST /v1/batch/jobs` with `input_files`, `endpoint`, `model`, `timeout_hours`
(from `completion_window`) and `metadata={"batchling_submission": ...}`; results come from the
job's `output_file` and `error_file` (`{"custom_id", "response": {"status_code", "body"},
"error"}` lines). Streaming and the endpoints batchling does not batch are passed through.
Checked against mistralai 3.0 through 3.7 (`from mistralai.client import Mistral`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any

from mistralai.client import errors, models, utils
from mistralai.client._hooks import AfterErrorContext, AfterSuccessContext
from mistralai.client.files import Files
from mistralai.client.jobs import Jobs

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
    WithoutHookTargets,
)

REQUEST_TARGET = PatchTarget("mistralai.client.basesdk", "BaseSDK.do_request_async")
SYNC_REQUEST_TARGET = PatchTarget("mistralai.client.basesdk", "BaseSDK.do_request", sync=True)

ENDPOINTS = frozenset({"/v1/chat/completions", "/v1/embeddings", "/v1/fim/completions"})
"""The endpoints batchling batches (Mistral's Batch API serves each of them)."""
# Billed model calls that are sent in real time (and reported); every other call the SDK makes
# (files, batch jobs, models, libraries, agents...) is no model request and passes silently.
REALTIME_ONLY_PATHS = frozenset({
    "/v1/agents/completions", "/v1/audio/speech", "/v1/audio/transcriptions",
    "/v1/chat/classifications", "/v1/chat/moderations", "/v1/classifications",
    "/v1/moderations", "/v1/ocr", "/v1/responses",
})  # fmt: skip
REALTIME_ONLY_PREFIXES = ("/v1/conversations",)

SUBMISSION_METADATA_KEY = "batchling_submission"
CREATE_ATTEMPTS = 6
LIST_PAGE_SIZE = 100
# A job listed as created this long before the submission was recorded cannot be ours.
LISTING_CLOCK_SLACK_SECONDS = 3600.0

# Headers that say nothing about where or as whom a request goes.
_IRRELEVANT_HEADERS = frozenset({
    "accept", "accept-encoding", "connection", "content-length", "content-type", "host",
    "user-agent",
})  # fmt: skip
_WINDOW = re.compile(r"^([1-9][0-9]*)([hd])$")

_STATES: Mapping[str, BatchState] = {
    "SUCCESS": BatchState.COMPLETED,
    "FAILED": BatchState.FAILED,
    "TIMEOUT_EXCEEDED": BatchState.EXPIRED,
    "CANCELLED": BatchState.CANCELLED,
}


@dataclasses.dataclass(frozen=True, slots=True)
class _Call:
    """What `to_response` needs to answer like `do_request_async` would have."""

    http_request: Any
    """The request the SDK built (`httpx2.Request`): the answer becomes its response."""
    hook_ctx: Any
    is_error_status_code: Callable[[int], bool]
    raw_body: bytes
    call_headers: Mapping[str, str]
    """Headers this call sets beyond the client's own (e.g. `http_headers=`): they apply to
    the whole job, so they are part of its identity and sent with every batch call."""
    sync: bool


@dataclasses.dataclass(frozen=True, slots=True)
class _Api:
    """The callers' SDK configuration, used the way the callers used it: a sync call's batch
    calls run in a worker thread with its blocking HTTP client, an async call's on the loop.
    The first caller's SDK still open speaks for the job (see `batchling.job_clients`)."""

    sdks: JobClients
    """`BaseSDK`s (the `Chat` a call was made on, or a `Mistral` client)."""
    server_url: str | None
    headers: Mapping[str, str]
    sync: bool

    @property
    def sdk(self) -> Any:
        return self.sdks.current()

    def _options(self) -> dict[str, Any]:
        return {"server_url": self.server_url, "http_headers": dict(self.headers) or None}

    async def _call(self, resource: Any, name: str, **kwargs: Any) -> Any:
        kwargs.update(self._options())
        if self.sync:
            return await asyncio.to_thread(getattr(resource, name), **kwargs)
        return await getattr(resource, name + "_async")(**kwargs)

    def _files(self) -> Files:
        return Files(self.sdk.sdk_configuration, parent_ref=self.sdk.parent_ref)

    def _jobs(self) -> Jobs:
        return Jobs(self.sdk.sdk_configuration, parent_ref=self.sdk.parent_ref)

    async def upload(self, data: bytes, file_name: str) -> str:
        uploaded = await self._call(
            self._files(),
            "upload",
            file=models.File(file_name=file_name, content=data),
            purpose="batch",
        )
        return str(uploaded.id)

    async def create(self, **kwargs: Any) -> Any:
        # One attempt: the SDK's own retries (if configured) could create a second paid job.
        return await self._call(self._jobs(), "create", retries=None, **kwargs)

    async def get(self, job_id: str) -> Any:
        return await self._call(self._jobs(), "get", job_id=job_id)

    async def cancel(self, job_id: str) -> Any:
        return await self._call(self._jobs(), "cancel", job_id=job_id)

    async def list(self, page: int) -> Any:
        return await self._call(
            self._jobs(), "list", page=page, page_size=LIST_PAGE_SIZE, order_by="-created"
        )

    async def download(self, file_id: str) -> bytes:
        response = await self._call(self._files(), "download", file_id=file_id)
        if self.sync:

            def read() -> bytes:
                try:
                    return bytes(response.read())
                finally:
                    response.close()

            return await asyncio.to_thread(read)
        try:
            return bytes(await response.aread())
        finally:
            await response.aclose()


@dataclasses.dataclass(frozen=True, slots=True)
class _Job:
    api: _Api
    custom_ids: tuple[str, ...]
    """The job's lines: those a timed-out job never answered are reported as expired."""


class _CorruptDownloadError(Exception):
    """A result file line did not parse: the file is fetched again."""


def _arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any, Any, bool]:
    """`(hook_ctx, request, is_error_status_code, stream)` of a `do_request(_async)` call."""
    names = ("hook_ctx", "request", "is_error_status_code", "stream")
    values = list(args[:4])
    for name in names[len(values) :]:
        values.append(kwargs.get(name))
    return values[0], values[1], values[2], bool(values[3])


def _relative_path(http_request: Any, base_url: str) -> str:
    """The operation's path (`/v1/chat/completions`) below the server URL it was sent to."""
    path = str(http_request.url.path)
    base_path = str(type(http_request.url)(base_url).path).rstrip("/") if base_url else ""
    return path[len(base_path) :] if base_path and path.startswith(base_path + "/") else path


def _config_authorization(sdk_configuration: Any) -> str | None:
    """The `Authorization` header the client's own security settings produce."""
    security = sdk_configuration.security
    if callable(security):
        security = security()
    security = utils.get_security_from_env(security, models.Security)
    headers, _ = utils.get_security(security)
    return next((value for key, value in headers.items() if key.lower() == "authorization"), None)


def _timeout_hours(completion_window: str) -> int:
    found = _WINDOW.match(completion_window)
    if found is None:
        raise ValueError(
            f"Mistral batch jobs take a timeout in hours; cannot use completion window "
            f"{completion_window!r} (use e.g. '24h' or '7d')."
        )
    count = int(found.group(1))
    return count * 24 if found.group(2) == "d" else count


def _file_id(value: Any) -> str | None:
    """A job's `output_file` / `error_file` as a string id (None when unset or null)."""
    return str(value) if isinstance(value, str) and value else None


def _job_metadata(job: Any) -> Mapping[str, Any]:
    metadata = job.metadata
    return metadata if isinstance(metadata, Mapping) else {}


class MistralProvider(WithoutHookTargets):
    """Batches `mistralai` calls through Mistral's Batch API."""

    name = "mistral"
    targets: Sequence[PatchTarget] = (REQUEST_TARGET, SYNC_REQUEST_TARGET)
    max_requests_per_batch = 1_000_000
    max_bytes_per_batch = 500 * 1000 * 1000
    """Input files may hold up to 512 MB."""

    async def to_request(
        self, target: PatchTarget, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> BatchRequest | NotBatchable | None:
        hook_ctx, http_request, is_error_status_code, stream = _arguments(args, kwargs)
        if hook_ctx is None or http_request is None or str(http_request.method) != "POST":
            return None
        base_url = str(hook_ctx.base_url or "")
        path = _relative_path(http_request, base_url)
        if path not in ENDPOINTS:
            if path in REALTIME_ONLY_PATHS or path.startswith(REALTIME_ONLY_PREFIXES):
                return NotBatchable(
                    f"endpoint {path}",
                    f"batchling batches Mistral {', '.join(sorted(ENDPOINTS))} calls, not "
                    f"POST {path}.",
                )
            return None
        if stream or http_request.url.fragment == "stream":
            return NotBatchable(
                "streaming",
                "A streamed response (stream_async, stream) cannot come from a Batch API.",
            )
        if http_request.url.query:
            return NotBatchable(
                "query parameters",
                f"POST {path} carries query parameters, which a batch line cannot carry.",
            )
        content_type = str(http_request.headers.get("content-type", ""))
        if not content_type.startswith("application/json"):
            return NotBatchable("non-JSON body", f"POST {path} sends a non-JSON body.")
        raw_body = bytes(http_request.content or b"{}")
        body = json.loads(raw_body)
        if not isinstance(body, dict):
            return None  # Not a request the API accepts: the SDK sends it and gets its error.
        if body.get("stream") is True:
            return NotBatchable(
                "streaming", "A streamed response (stream=True) cannot come from a Batch API."
            )
        config_auth = _config_authorization(instance.sdk_configuration)
        identity = sorted(
            (key.lower(), value)
            for key, value in http_request.headers.items()
            if key.lower() not in _IRRELEVANT_HEADERS
        )
        call_headers = {
            key: value
            for key, value in identity
            if not (key == "authorization" and value == config_auth)
        }
        model = str(body.get("model") or "")
        # Headers the call sets itself can change the answer: they are part of what the journal
        # knows it by (only then, so other calls keep the digests they had).
        known_by = [self.name, path, model, base_url, body]
        if call_headers:
            known_by.append(sorted(call_headers.items()))
        return BatchRequest(
            provider=self.name,
            client_key=stainless.digest(base_url, identity),
            endpoint=path,
            model=model,
            body=body,
            size_bytes=len(raw_body) + 80,
            request_hash=stainless.digest(*known_by),
            base_url=base_url,
            client=instance,
            call=_Call(
                http_request,
                hook_ctx,
                is_error_status_code,
                raw_body,
                call_headers,
                target.sync,
            ),
        )

    async def submit(
        self, lines: Sequence[BatchLine], *, completion_window: str, submission_id: str
    ) -> SubmittedBatch:
        first = lines[0].request
        call: _Call = first.call
        timeout_hours = _timeout_hours(completion_window)
        api = _Api(
            _sdks((line.request.client for line in lines), call.sync),
            first.base_url or None,
            call.call_headers,
            call.sync,
        )
        data = b"".join(_encode_line(line) for line in lines)
        # An upload is safe to repeat (at worst an unused file is left behind).
        file_id = await backoff.retrying(
            lambda: api.upload(data, f"{submission_id}.jsonl"), is_transient=self.is_transient
        )
        create: dict[str, Any] = {
            "input_files": [file_id],
            "endpoint": first.endpoint,
            "timeout_hours": timeout_hours,
            "metadata": {SUBMISSION_METADATA_KEY: submission_id},
        }
        if first.model:
            create["model"] = first.model
        job = await self._create_job(api, create, submission_id)
        return SubmittedBatch(
            provider=self.name,
            batch_id=str(job.id),
            endpoint=first.endpoint,
            model=first.model,
            size=len(lines),
            handle=_Job(api, tuple(line.custom_id for line in lines)),
        )

    async def _create_job(self, api: _Api, create: dict[str, Any], submission_id: str) -> Any:
        # The job an earlier attempt may have created carries the submission id in metadata.
        started = time.time()
        return await backoff.create_once(
            lambda: api.create(**create),
            lambda: self._find_submission(api, submission_id, since=started),
            is_transient=self.is_transient,
            attempts=CREATE_ATTEMPTS,
        )

    async def _find_submission(self, api: _Api, submission_id: str, since: float) -> Any:
        async def page_at(number: int | None) -> tuple[list[Any], int | None]:
            number = number or 0
            page = await api.list(number)
            more = (number + 1) * LIST_PAGE_SIZE < int(page.total or 0)
            return list(page.data or []), number + 1 if more else None

        return await listing.find_job(
            page_at,
            lambda job: _job_metadata(job).get(SUBMISSION_METADATA_KEY) == submission_id,
            lambda job: job.created_at,
            since=since,
            margin_seconds=LISTING_CLOCK_SLACK_SECONDS,
            max_pages=None,
        )

    async def poll(self, batch: SubmittedBatch) -> BatchStatus:
        job = await batch.handle.api.get(batch.batch_id)
        status = str(job.status)
        message = "; ".join(
            error.message + (f" ({error.count} requests)" if (error.count or 1) > 1 else "")
            for error in job.errors or []
        )
        return BatchStatus(
            state=_STATES.get(status, BatchState.RUNNING),
            provider_status=status,
            total=int(job.total_requests or 0),
            completed=int(job.succeeded_requests or 0),
            failed=int(job.failed_requests or 0),
            message=message or None,
            handle=(_file_id(job.output_file), _file_id(job.error_file)),
        )

    async def results(
        self, batch: SubmittedBatch, status: BatchStatus
    ) -> AsyncIterator[LineResult]:
        job: _Job = batch.handle
        answered: set[str] = set()
        for file_id in status.handle or ():
            if not file_id:
                continue
            data = await job.api.download(file_id)
            # Parse the whole file before yielding, so a truncated download is fetched again
            # rather than half-routed.
            parsed = [_decode_line(raw) for raw in json_codec.jsonl_lines(data)]
            for result in parsed:
                answered.add(result.custom_id)
                yield result
        if status.state is BatchState.EXPIRED:
            # A timed-out job leaves the lines it never processed out of its files.
            for custom_id in job.custom_ids:
                if custom_id not in answered:
                    yield LineResult(
                        custom_id,
                        Outcome.EXPIRED,
                        message="The batch job timed out before this request was processed.",
                    )

    async def to_response(self, request: BatchRequest, result: LineResult) -> Any:
        call: _Call = request.call
        status_code = result.status_code
        body = result.body
        if status_code is None:
            # The line failed without an HTTP status (a bare `error`): answered as the server
            # error it stands for, so a re-run sends the request again.
            status_code = 500
            body = {
                "object": "error",
                "message": result.message or "The batch returned an error for this request.",
                "type": "batch_error",
                "param": None,
                "code": None,
            }
        http = stainless.http_module(call.http_request)
        response = http.Response(status_code, json=body, request=call.http_request)
        # What `do_request_async` does with a response once it has one.
        hooks = request.client.sdk_configuration.__dict__.get("_hooks")
        if call.is_error_status_code(status_code):
            if hooks is None:
                return response
            answer, error = hooks.after_error(AfterErrorContext(call.hook_ctx), response, None)
            if error is not None:
                raise error
            if answer is None:
                raise errors.SDKError("Unexpected error occurred", response)
            return answer
        if hooks is None:
            return response
        return hooks.after_success(AfterSuccessContext(call.hook_ctx), response)

    async def cancel(self, batch: SubmittedBatch) -> None:
        job: _Job = batch.handle
        await job.api.cancel(batch.batch_id)

    def describe(self, batch: SubmittedBatch) -> Mapping[str, Any]:
        # The job id, endpoint, model and server URL are journaled already; `reattach` needs
        # nothing else (and the client, with its key, must never be journaled).
        return {}

    def reattach(
        self,
        batch_id: str,
        info: Mapping[str, Any],
        *,
        client: Any,
        template: BatchRequest | None,
        custom_ids: Sequence[str],
    ) -> SubmittedBatch:
        return SubmittedBatch(
            provider=self.name,
            batch_id=batch_id,
            endpoint=template.endpoint if template is not None else "",
            model=template.model if template is not None else "",
            size=len(custom_ids),
            handle=_Job(_api_for(client, template), tuple(custom_ids)),
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
        api = _api_for(client, template)
        found = await backoff.retrying(
            lambda: self._find_submission(api, submission_id, since=since),
            is_transient=self.is_transient,
        )
        return str(found.id) if found is not None else None

    def default_client(self, base_url: str) -> Any:
        from mistralai.client import Mistral

        _, api_key = api_keys.from_environment(("MISTRAL_API_KEY",))
        return Mistral(api_key=api_key, server_url=base_url or None)

    def is_transient(self, error: BaseException) -> bool:
        if isinstance(error, _CorruptDownloadError | errors.NoResponseError):
            return True
        if job_clients.is_closed_client_error(error):
            return True  # the next attempt picks a caller's client still open
        if isinstance(error, errors.MistralError):
            return stainless.is_transient_status(error.status_code)
        # The SDK's HTTP layer (httpx2, or a user-supplied client) raises its own errors.
        return isinstance(error, ConnectionError | TimeoutError) or any(
            cls.__name__ in ("TransportError", "TimeoutException") for cls in type(error).__mro__
        )


def _api_for(client: Any, template: BatchRequest | None) -> _Api:
    if template is None:
        return _Api(_sdks([client], False), None, {}, False)
    call: _Call = template.call
    return _Api(_sdks([client], call.sync), template.base_url or None, call.call_headers, call.sync)


def _sdks(sdks: Iterable[Any], sync: bool) -> JobClients:
    """The callers' SDKs; one is closed once its `Mistral` client closed its HTTP client
    (`async with Mistral(...)` closes it on the way out, and from mistralai 3.x's later
    releases also sets it to None)."""

    def is_closed(sdk: Any) -> bool:
        configuration = sdk.sdk_configuration
        http_client = configuration.client if sync else configuration.async_client
        return http_client is None or bool(getattr(http_client, "is_closed", False))

    return JobClients(sdks, is_closed)


def _encode_line(line: BatchLine) -> bytes:
    # The body is spliced in as the SDK serialized it, so the batch carries the exact bytes the
    # real-time request would have carried.
    head = json.dumps({"custom_id": line.custom_id}, separators=(",", ":"))
    raw_body: bytes = line.request.call.raw_body
    return head[:-1].encode() + b',"body":' + raw_body + b"}\n"


def _decode_line(raw: bytes) -> LineResult:
    try:
        line = json_codec.loads(raw)
        custom_id = str(line["custom_id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise _CorruptDownloadError(f"unreadable result line: {raw[:200]!r}") from exc
    response = line.get("response") if isinstance(line.get("response"), dict) else None
    error = line.get("error")
    status_code = response.get("status_code") if response is not None else None
    if isinstance(status_code, int) and status_code > 0:
        succeeded = 200 <= status_code < 300
        return LineResult(
            custom_id=custom_id,
            outcome=Outcome.SUCCEEDED if succeeded else Outcome.ERRORED,
            status_code=status_code,
            body=response.get("body") if response is not None else None,
            message=None if succeeded else _error_message(error),
        )
    # No HTTP status: the line failed as a whole (Mistral may give `error` as a bare string).
    return LineResult(
        custom_id=custom_id,
        outcome=Outcome.ERRORED,
        body=error,
        message=_error_message(error) or "The batch returned no response for this request.",
    )


def _error_message(error: Any) -> str | None:
    if isinstance(error, dict):
        return str(error.get("message") or json.dumps(error))
    return str(error) if error else None


@hookimpl
def batchling_register_providers(register: Any) -> None:
    """Register the built-in Mistral provider."""
    register(MistralProvider())
