"""The batchling provider plugin for the toy echo SDK (entry point `echo`).

`EchoProvider` sends `AsyncEchoClient.complete` calls made inside `batchify()` through the echo
service's Batch API, and answers each caller with the `EchoReply` (or `EchoError`) the
real-time call gives.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import batchling
from batchling import provider as api
from batchling.provider import (
    BatchLine,
    BatchRequest,
    BatchState,
    BatchStatus,
    LineResult,
    NotBatchable,
    Outcome,
    PatchTarget,
    Provider,
    SubmittedBatch,
)

from . import echo_sdk

SUPPORTED_PLUGIN_API = 1
"""The `batchling.provider.PLUGIN_API_VERSION` this plugin is written against."""
ENDPOINT = "/v1/complete"
SUBMISSION_KEY = "batchling_submission"
OVERRIDE_OPENAI_ENV = "BATCHLING_ECHO_OVERRIDE_OPENAI"

# Wrapped on the class: clients created before the first `batchify()` are covered too.
COMPLETE = PatchTarget("batchling_echo.echo_sdk", "AsyncEchoClient.complete")

_STATES: Mapping[str, BatchState] = {
    "completed": BatchState.COMPLETED,
    "cancelled": BatchState.CANCELLED,
    "expired": BatchState.EXPIRED,
    "failed": BatchState.FAILED,
}


def _complete_signature(text: str, *, priority: str = "standard") -> None:
    """`AsyncEchoClient.complete`'s parameters, to read a call's arguments."""


def _digest(*parts: object) -> str:
    """A stable SHA-256 hex digest (the same in every process, unlike `hash()`)."""
    data = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(data.encode()).hexdigest()


class EchoProvider:
    """Batches `AsyncEchoClient.complete` through the echo Batch API."""

    name = "echo"
    targets: Sequence[PatchTarget] = (COMPLETE,)
    max_requests_per_batch = 10_000
    max_bytes_per_batch = 10_000_000

    async def to_request(
        self, target: PatchTarget, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> BatchRequest | NotBatchable | None:
        # Runs for every intercepted call, in a dry run too: no I/O, no side effects.
        try:
            call = inspect.signature(_complete_signature).bind(*args, **kwargs)
        except TypeError:
            return None  # A malformed call: the SDK raises its own error, in real time.
        if call.arguments.get("priority", "standard") != "standard":
            return NotBatchable("priority", "complete(priority=...) asks for real-time service.")
        client: echo_sdk.AsyncEchoClient = instance
        body = {"model": client.model, "text": call.arguments["text"]}
        return BatchRequest(
            provider=self.name,
            # Where and as whom the request goes: a digest, never the key itself.
            client_key=_digest(client.api_key, client.base_url),
            endpoint=ENDPOINT,
            model=client.model,
            body=body,
            size_bytes=len(json.dumps(body)) + 64,
            # The same request gets the same hash in every run: that is how a re-run finds it.
            request_hash=_digest(self.name, ENDPOINT, client.model, client.base_url, body),
            base_url=client.base_url,
            client=client,
        )

    async def submit(
        self, lines: Sequence[BatchLine], *, completion_window: str, submission_id: str
    ) -> SubmittedBatch:
        first = lines[0].request
        client: echo_sdk.AsyncEchoClient = first.client
        # One create call, never retried blindly: the job carries the submission id, so
        # `find_submission` can tell whether an interrupted attempt created it.
        job = await client.batches.create(
            requests=[{"custom_id": line.custom_id, "body": line.request.body} for line in lines],
            metadata={SUBMISSION_KEY: submission_id},
        )
        return SubmittedBatch(
            provider=self.name,
            batch_id=job.id,
            endpoint=first.endpoint,
            model=first.model,
            size=len(lines),
            handle=client,
        )

    async def poll(self, batch: SubmittedBatch) -> BatchStatus:
        client: echo_sdk.AsyncEchoClient = batch.handle
        job = await client.batches.retrieve(batch.batch_id)
        counts = job.request_counts
        return BatchStatus(
            state=_STATES.get(job.status, BatchState.RUNNING),
            provider_status=job.status,
            total=counts["total"],
            completed=counts["completed"],
            failed=counts["failed"],
        )

    async def results(
        self, batch: SubmittedBatch, status: BatchStatus
    ) -> AsyncIterator[LineResult]:
        if status.state is not BatchState.COMPLETED:
            return  # The echo service keeps no partial results: callers get the job's fate.
        client: echo_sdk.AsyncEchoClient = batch.handle
        for line in await client.batches.results(batch.batch_id):
            status_code = int(line["status_code"])
            yield LineResult(
                custom_id=line["custom_id"],
                outcome=Outcome.SUCCEEDED if status_code < 400 else Outcome.ERRORED,
                status_code=status_code,
                body=line["body"],  # JSON: the journal stores it for re-runs.
            )

    async def to_response(self, request: BatchRequest, result: LineResult) -> Any:
        # The SDK's own parsing and error mapping, exactly as in real time.
        if result.outcome is Outcome.SUCCEEDED:
            return echo_sdk.EchoReply.from_json(result.body)
        raise echo_sdk.error_from_response(result.status_code or 500, result.body)

    async def cancel(self, batch: SubmittedBatch) -> None:
        client: echo_sdk.AsyncEchoClient = batch.handle
        await client.batches.cancel(batch.batch_id)

    def is_transient(self, error: BaseException) -> bool:
        if isinstance(error, echo_sdk.EchoError):
            return error.status_code >= 500 or error.status_code in (408, 429)
        return isinstance(error, echo_sdk.EchoConnectionError)

    def describe(self, batch: SubmittedBatch) -> Mapping[str, Any]:
        # The job id, base URL, endpoint and model are journaled already, and the client (with
        # its key) must never be: `reattach` needs nothing else.
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
            endpoint=template.endpoint if template is not None else ENDPOINT,
            model=template.model if template is not None else "",
            size=len(custom_ids),
            handle=client,
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
        echo_client: echo_sdk.AsyncEchoClient = client
        for job in await echo_client.batches.list():
            if job.metadata.get(SUBMISSION_KEY) == submission_id:
                return job.id
        return None

    def default_client(self, base_url: str) -> Any:
        return echo_sdk.AsyncEchoClient(
            api_key=os.environ["ECHO_API_KEY"], base_url=base_url or echo_sdk.DEFAULT_BASE_URL
        )

    def hook(
        self,
        target: PatchTarget,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        return wrapped(*args, **kwargs)  # The echo provider has no hook targets.


@batchling.hookimpl
def batchling_register_providers(register: Callable[[Provider], None]) -> None:
    """Register the echo provider (and, on request, a replacement of the OpenAI one)."""
    if api.PLUGIN_API_VERSION != SUPPORTED_PLUGIN_API:
        raise RuntimeError(
            f"batchling-echo supports batchling plugin API {SUPPORTED_PLUGIN_API}, this batchling "
            f"has {api.PLUGIN_API_VERSION}: install a matching batchling-echo."
        )
    register(EchoProvider())
    if os.environ.get(OVERRIDE_OPENAI_ENV) == "1":
        from .openai_override import CountingOpenAIProvider

        register(CountingOpenAIProvider())
