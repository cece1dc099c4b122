"""Together AI's Batch API, spoken with the caller's `openai` client.

`openai.AsyncOpenAI(base_url="https://api.together.xyz/v1", api_key=...)` reaches Together's
OpenAI-compatible real-time endpoints, but its Batch API differs from OpenAI's on the wire:

- the input file is uploaded in three steps (see `together_upload`);
- lines are `{"custom_id", "body"}` (see `together_lines`);
- `POST /v1/batches` takes `endpoint`, `input_file_id` and an optional `completion_window`, and
  answers `{"job": {...}, "warning": ...}`; `GET /v1/batches/{id}` answers the job itself, with
  `status` in `VALIDATING | IN_PROGRESS | COMPLETED | FAILED | EXPIRED | CANCELLED`, a `progress`
  percentage, `output_file_id`, `error_file_id` and an `error` message; `GET /v1/batches` lists
  jobs as a bare JSON array; `POST /v1/batches/{id}/cancel` cancels;
- results come from `GET /v1/files/{id}/content`, the output file and the error file;
- the completion window is fixed at 24 hours ("cannot be changed", docs.together.ai batch
  overview), and jobs carry no metadata to tag them with.

Every call goes through the client's own request methods (`client.post` / `client.get`), so the
caller's key, base URL, default headers, retries and proxies apply; only the upload's `PUT` to
object storage uses the client's HTTP client directly, without the key.

Never paying twice: a job is created with the SDK's retries off, and each submission uploads a
file of its own named after its submission id. After an ambiguous create failure the job listed
with that file as `input_file_id` is adopted; after a crash, the file is found by name
(`GET /v1/files`) and then its job (`GET /v1/batches`).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import openai

from batchling import backoff, json_codec, stainless
from batchling.job_clients import JobClients
from batchling.provider import (
    BatchLine,
    BatchRequest,
    BatchState,
    BatchStatus,
    LineResult,
    SubmittedBatch,
)
from batchling.providers import together_lines, together_upload

log = logging.getLogger("batchling")

COMPLETION_WINDOW = "24h"
WINDOW_HOURS = 24
CREATE_ATTEMPTS = 6
DOWNLOAD_ATTEMPTS = 3

_STATES: Mapping[str, BatchState] = {
    "COMPLETED": BatchState.COMPLETED,
    "FAILED": BatchState.FAILED,
    "EXPIRED": BatchState.EXPIRED,
    "CANCELLED": BatchState.CANCELLED,
}
_WINDOW = re.compile(r"\s*([0-9]+)\s*([hd])\s*\Z")


@dataclasses.dataclass(frozen=True, slots=True)
class TogetherJob:
    """What following one Together job needs: the callers' clients (the first one still open
    is used) and the call's headers."""

    clients: JobClients
    call_headers: Mapping[str, str]

    @property
    def client(self) -> Any:
        return self.clients.current()


class TogetherBatchAPI:
    """Together's Batch API protocol for the OpenAI provider (see the module docstring)."""

    async def submit(
        self,
        provider: str,
        lines: Sequence[BatchLine],
        *,
        completion_window: str,
        submission_id: str,
    ) -> SubmittedBatch:
        check_completion_window(completion_window)
        first = lines[0].request
        job = TogetherJob(
            stainless.job_clients(line.request.client for line in lines),
            dict(first.call.call_headers),
        )
        data = b"".join(together_lines.encode(line) for line in lines)
        file_id = await together_upload.upload(
            job.client, data, file_name=input_file_name(submission_id), headers=job.call_headers
        )
        created = await backoff.create_once(
            # With the first client still open at each attempt (a caller may close its own).
            lambda: _create(job.client.with_options(max_retries=0), job, file_id, first.endpoint),
            # The file is this submission's alone: a job listed with it is the one an earlier
            # attempt created.
            lambda: _job_with_input_file(job, file_id),
            is_transient=is_transient,
            attempts=CREATE_ATTEMPTS,
        )
        return SubmittedBatch(
            provider=provider,
            batch_id=str(created["id"]),
            endpoint=first.endpoint,
            model=first.model,
            size=len(lines),
            handle=job,
        )

    async def poll(self, batch: SubmittedBatch) -> BatchStatus:
        job: TogetherJob = batch.handle
        found = _job_object(await _get(job, f"/batches/{batch.batch_id}"))
        status = str(found.get("status") or "")
        progress = found.get("progress")
        done = 0
        if isinstance(progress, int | float) and not isinstance(progress, bool):
            done = min(batch.size, max(0, int(batch.size * float(progress) / 100)))
        error = found.get("error")
        return BatchStatus(
            state=_STATES.get(status.upper(), BatchState.RUNNING),
            provider_status=status or "unknown",
            total=batch.size,
            completed=done,
            message=str(error) if error else None,
            handle=(found.get("output_file_id"), found.get("error_file_id")),
        )

    async def results(
        self, batch: SubmittedBatch, status: BatchStatus
    ) -> AsyncIterator[LineResult]:
        job: TogetherJob = batch.handle
        for file_id in status.handle or ():
            if not file_id:
                continue
            # Parsed whole before yielding, so a truncated download is fetched again rather
            # than half-routed.
            parsed = await backoff.retrying(
                _reader(job, str(file_id), status.state),
                is_transient=_is_transient_download,
                attempts=DOWNLOAD_ATTEMPTS,
            )
            for result in parsed:
                yield result

    async def cancel(self, batch: SubmittedBatch) -> None:
        job: TogetherJob = batch.handle
        await _post(job, f"/batches/{batch.batch_id}/cancel")

    def describe(self, batch: SubmittedBatch) -> Mapping[str, Any]:
        return {}

    def reattach(
        self,
        provider: str,
        batch_id: str,
        info: Mapping[str, Any],
        *,
        client: Any,
        template: BatchRequest | None,
        custom_ids: Sequence[str],
    ) -> SubmittedBatch:
        call_headers = dict(template.call.call_headers) if template is not None else {}
        return SubmittedBatch(
            provider=provider,
            batch_id=batch_id,
            endpoint=template.endpoint if template is not None else "",
            model=template.model if template is not None else "",
            size=len(custom_ids),
            handle=TogetherJob(stainless.job_clients([client]), call_headers),
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
        job = TogetherJob(
            stainless.job_clients([client]), dict(template.call.call_headers) if template else {}
        )

        async def find() -> str | None:
            for file_id in await _files_named(job, input_file_name(submission_id)):
                found = await _job_with_input_file(job, file_id)
                if found is not None:
                    return str(found["id"])
            return None

        return await backoff.retrying(find, is_transient=is_transient)


def input_file_name(submission_id: str) -> str:
    """The name a submission's input file is uploaded under (how a re-run finds it)."""
    return f"{submission_id}.jsonl"


def check_completion_window(window: str) -> None:
    """Refuse a completion window shorter than Together's fixed 24 hours.

    A longer window (`"48h"`, `"7d"`) is met by a 24-hour job and accepted.
    """
    found = _WINDOW.match(window)
    if found is None:
        raise ValueError(
            f"completion_window={window!r} is not a duration like '24h' or '7d'. Together's "
            "Batch API runs every job with a fixed 24h window; pass completion_window='24h' "
            "(the default)."
        )
    hours = int(found.group(1)) * (24 if found.group(2) == "d" else 1)
    if hours < WINDOW_HOURS:
        raise ValueError(
            f"completion_window={window!r} is shorter than Together's fixed 24h batch window, "
            "so Together cannot promise it. Pass completion_window='24h' (the default), or "
            "send these calls outside batchify() for real-time answers."
        )


def is_transient(error: BaseException) -> bool:
    """Whether retrying the Together call that raised `error` may succeed."""
    if isinstance(error, openai.APIConnectionError):
        return True
    if isinstance(error, openai.APIStatusError):
        return stainless.is_transient_status(error.status_code)
    return False


def _is_transient_download(error: BaseException) -> bool:
    return isinstance(error, together_lines.CorruptResultFileError) or is_transient(error)


async def _create(client: Any, job: TogetherJob, file_id: str, endpoint: str) -> Mapping[str, Any]:
    """`POST /batches` once (with the SDK's retries off); returns the created job."""
    answer = await stainless.call(
        client,
        client.post,
        "/batches",
        cast_to=object,
        body={
            "endpoint": endpoint,
            "input_file_id": file_id,
            "completion_window": COMPLETION_WINDOW,
        },
        options={"headers": dict(job.call_headers)},
    )
    if isinstance(answer, Mapping) and answer.get("warning"):
        log.warning("together: creating a batch job: %s", answer["warning"])
    created = _job_object(answer)
    if not created.get("id"):
        raise together_upload.TogetherProtocolError(
            "Together accepted the batch job but its answer names no job id, so batchling "
            "cannot follow it; look for it with GET /v1/batches."
        )
    return created


async def _job_with_input_file(job: TogetherJob, file_id: str) -> Mapping[str, Any] | None:
    """The listed job created from `file_id`, if there is one."""
    listed = await _get(job, "/batches")
    items = listed.get("data") if isinstance(listed, Mapping) else listed
    for item in items if isinstance(items, list) else ():
        if isinstance(item, Mapping) and item.get("input_file_id") == file_id and item.get("id"):
            return item
    return None


async def _files_named(job: TogetherJob, name: str) -> list[str]:
    """Ids of the account's files uploaded under `name`."""
    # Together's SDK reads the listing as `{"data": [file, ...]}` with each file's `filename`;
    # a bare array is taken too [UNVERIFIED whether the listing is ever paginated].
    listed = await _get(job, "/files")
    items = listed.get("data") if isinstance(listed, Mapping) else listed
    return [
        str(item["id"])
        for item in (items if isinstance(items, list) else ())
        if isinstance(item, Mapping) and item.get("filename") == name and item.get("id")
    ]


def _reader(
    job: TogetherJob, file_id: str, state: BatchState
) -> Callable[[], Awaitable[list[LineResult]]]:
    """Reads and parses one result file (a fresh download on every call)."""

    async def read() -> list[LineResult]:
        content = await stainless.call(
            job.client,
            job.client.get,
            f"/files/{file_id}/content",
            cast_to=bytes,
            options={"headers": {**job.call_headers, "Accept": "application/octet-stream"}},
        )
        return [together_lines.decode(raw, state) for raw in json_codec.jsonl_lines(content)]

    return read


def _job_object(answer: Any) -> Mapping[str, Any]:
    """The job in an answer: create wraps it as `{"job": ..., "warning": ...}`, retrieve not."""
    if isinstance(answer, Mapping):
        inner = answer.get("job")
        return inner if isinstance(inner, Mapping) else answer
    raise together_upload.TogetherProtocolError(
        f"Together answered with a {type(answer).__name__} where a batch job was expected."
    )


async def _get(job: TogetherJob, path: str) -> Any:
    return await stainless.call(
        job.client,
        job.client.get,
        path,
        cast_to=object,
        options={"headers": dict(job.call_headers)},
    )


async def _post(job: TogetherJob, path: str) -> Any:
    return await stainless.call(
        job.client,
        job.client.post,
        path,
        cast_to=object,
        options={"headers": dict(job.call_headers)},
    )
