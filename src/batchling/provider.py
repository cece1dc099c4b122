"""The provider plugin contract: the `Provider` protocol and the values it exchanges.

A provider adapts one SDK to one Batch API. batchling calls it in this order:

1. `to_request` when an intercepted SDK method is called inside `batchify()`: turn the call
   into a `BatchRequest`, say why it is `NotBatchable` (it is sent in real time and reported),
   or return `None` for a call that is no model request at all (a file upload, a batch poll):
   it is sent as usual and not reported.
2. `submit` with the lines of one batch job, all sharing a queue key (same client identity,
   endpoint and model); it returns a `SubmittedBatch`.
3. `poll` until the returned `BatchStatus` is terminal, then `results` to read every line.
4. `to_response` for each caller: build exactly what the real-time call returns, or raise the
   SDK's own exception for that line. A provider that can build some answers without awaiting
   anything may also implement `response_now` (see `RespondsAtOnce`): batchling then builds
   those while it routes the job's results, all in one pass.

Values are frozen dataclasses; `client`, `call` and `handle` fields are opaque to batchling and
belong to the provider that produced them.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

PLUGIN_API_VERSION = 1
"""The version of the provider plugin API (this module and `batchling.hookspecs`). It grows
when a change would break existing plugins; plugins can check it at registration."""


@dataclass(frozen=True, slots=True)
class PatchTarget:
    """One SDK method a provider wraps, named as `wrapt.wrap_function_wrapper` names it."""

    module: str
    qualname: str
    hook: bool = False
    """A hook target is no request: inside `batchify()` its calls go to `Provider.hook` (e.g. to
    lift a real-time-only limit), outside they run unchanged."""
    sync: bool = False
    """The method is a plain (blocking) function of a sync client: batchling runs the provider's
    async steps on its own event loop thread and blocks the calling thread until the result."""


@dataclass(frozen=True, slots=True)
class NotBatchable:
    """Why an intercepted call goes to the real-time endpoint instead of a batch.

    `kind` is a short stable label (one warning is emitted per kind and context); `reason` is
    a sentence for the user.
    """

    kind: str
    reason: str


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One intercepted call, ready to become a line of a batch job."""

    provider: str
    client_key: str
    """Digest of everything that decides where and as whom the request is sent (credentials,
    base URL, organization, headers that matter). Never the secret itself."""
    endpoint: str
    model: str
    body: Mapping[str, Any]
    """The JSON body the real-time call would have sent."""
    size_bytes: int
    """Approximate size of this request's line in the batch input, to split by byte limits."""
    request_hash: str
    """Stable digest of (provider, endpoint, model, base URL, body); custom ids derive from it."""
    base_url: str
    """Where the request goes (journaled, to find the job again; no secret)."""
    client: Any = field(repr=False, compare=False)
    """The SDK client the call was made on: the batch is submitted and polled with it."""
    call: Any = field(default=None, repr=False, compare=False)
    """Provider-private state `to_response` needs (e.g. the SDK's request options)."""
    limits: tuple[int, int] | None = None
    """`(requests, bytes)` per job where they differ from the provider's own limits (e.g. by
    host)."""
    units: int = 1
    """How much of a job's `max_units` this request uses (e.g. its embedding inputs)."""
    max_units: int | None = None
    """At most this many `units`, summed over its requests, in the job this request joins
    (OpenAI: 50,000 embedding inputs per job); None: no such limit."""

    @property
    def queue_key(self) -> tuple[str, str, str, str]:
        """Requests that may share one batch job have equal queue keys."""
        return (self.provider, self.client_key, self.endpoint, self.model)


@dataclass(frozen=True, slots=True)
class BatchLine:
    """A request with the `custom_id` it carries inside its batch job."""

    custom_id: str
    request: BatchRequest


@dataclass(frozen=True, slots=True)
class SubmittedBatch:
    """A batch job the provider accepted."""

    provider: str
    batch_id: str
    endpoint: str
    model: str
    size: int
    handle: Any = field(default=None, repr=False, compare=False)
    """Provider-private state for polling and reading results (client, options...)."""


class BatchState(enum.StrEnum):
    """Where a batch job is, in provider-independent terms."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """Whether the job will not change any more."""
        return self is not BatchState.RUNNING


@dataclass(frozen=True, slots=True)
class BatchStatus:
    """One poll's answer."""

    state: BatchState
    provider_status: str
    total: int = 0
    completed: int = 0
    failed: int = 0
    message: str | None = None
    """Why the job failed, in the provider's words, when it did."""
    handle: Any = field(default=None, repr=False, compare=False)
    """Provider-private state `results` needs (e.g. the output file ids)."""


class Outcome(enum.StrEnum):
    """What happened to one line of a batch job."""

    SUCCEEDED = "succeeded"
    ERRORED = "errored"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class LineResult:
    """The provider's answer for one line."""

    custom_id: str
    outcome: Outcome
    status_code: int | None = None
    """HTTP status the request would have had in real time (for succeeded and errored lines)."""
    body: Any = None
    """The response body (succeeded) or the provider's error body (errored)."""
    request_id: str | None = None
    message: str | None = None


@runtime_checkable
class Provider(Protocol):
    """What a provider plugin registers through `batchling_register_providers(register)`."""

    name: str
    """Unique provider name, e.g. `"openai"`. A plugin registering an existing name replaces
    that provider (later registration wins)."""
    targets: Sequence[PatchTarget]
    """The SDK methods batchling wraps for this provider."""
    max_requests_per_batch: int
    max_bytes_per_batch: int

    async def to_request(
        self, target: PatchTarget, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> BatchRequest | NotBatchable | None:
        """Turn one intercepted call into a batch request, or say why it cannot be batched.

        `None` means the call is not a model request (e.g. listing files): it is passed through
        silently.
        """
        ...

    async def submit(
        self, lines: Sequence[BatchLine], *, completion_window: str, submission_id: str
    ) -> SubmittedBatch:
        """Create one batch job holding `lines` with the first line's client.

        `submission_id` is unique per submission; providers tag the job with it so that a retry
        after an ambiguous failure finds the job instead of creating a second one.
        """
        ...

    async def poll(self, batch: SubmittedBatch) -> BatchStatus:
        """Fetch the job's current status once."""
        ...

    def results(self, batch: SubmittedBatch, status: BatchStatus) -> AsyncIterator[LineResult]:
        """Yield a result for every line the terminal job has one for, in any order."""
        ...

    async def to_response(self, request: BatchRequest, result: LineResult) -> Any:
        """Build what the real-time call returns, or raise the SDK's exception for the line."""
        ...

    async def cancel(self, batch: SubmittedBatch) -> None:
        """Ask the provider to cancel the job."""
        ...

    def is_transient(self, error: BaseException) -> bool:
        """Whether retrying the provider call that raised `error` may succeed."""
        ...

    def describe(self, batch: SubmittedBatch) -> Mapping[str, Any]:
        """JSON-able facts `reattach` needs to follow the job again (journaled: no secrets)."""
        ...

    def reattach(
        self,
        batch_id: str,
        info: Mapping[str, Any],
        *,
        client: Any,
        template: BatchRequest | None,
        custom_ids: Sequence[str],
    ) -> SubmittedBatch:
        """Follow a job created earlier (by this process or a previous run) with `client`.

        `template` is a request of this run that belongs to the job's queue, when there is one
        (it carries per-call settings such as headers); `custom_ids` are the job's lines in
        submission order.
        """
        ...

    async def find_submission(
        self,
        submission_id: str,
        *,
        client: Any,
        template: BatchRequest | None,
        size: int,
        since: float,
    ) -> str | None:
        """The id of the job an interrupted submission created, if the provider has one.

        Called when a previous run recorded `submission_id` but stopped before it learned the
        job id; `size` is its line count and `since` when it was recorded (Unix time).
        """
        ...

    def default_client(self, base_url: str) -> Any:
        """A client built from the environment (API key variables) for `base_url`, for the
        `batchling batches` commands."""
        ...

    def hook(
        self,
        target: PatchTarget,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Stand in for a `hook=True` target inside `batchify()`; `wrapped(*args, **kwargs)`
        runs the original."""
        ...


@runtime_checkable
class RespondsAtOnce(Protocol):
    """Optional for providers: answers built while a job's results are routed.

    batchling routes a finished job's results in one synchronous pass. For each succeeded line
    it first asks `response_now`; what that returns is handed to the caller as is, and
    `to_response` runs (in the caller's task) only for the lines it returns `None` for. Building
    many answers in one pass lets batchling pause Python's garbage collector around it (see
    `batchling.collector`), which at tens of thousands of answers saves seconds.
    """

    def response_now(self, request: BatchRequest, result: LineResult) -> Any:
        """Exactly what `to_response(request, result)` would return, or `None` to leave the line
        to `to_response`. Must not await, call user code, or raise: return `None` instead."""
        ...


@runtime_checkable
class ClientForJob(Protocol):
    """Optional for providers: a client for a journaled job, built from what was journaled.

    The `batchling batches` commands use it instead of `default_client(base_url)` when a job's
    host or credentials cannot be told from its base URL alone (an Azure OpenAI job on a custom
    domain, say).
    """

    def client_for_job(self, base_url: str, info: Mapping[str, Any]) -> Any:
        """A client for the job created at `base_url`, with `info` from `describe(batch)`,
        its API key from the environment (`batchling.api_keys.from_environment`)."""
        ...


class WithoutHookTargets:
    """Mixin for providers that declare no `hook=True` targets: `hook` just runs the original."""

    def hook(
        self,
        target: PatchTarget,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Run the original method (there is nothing to stand in for)."""
        return wrapped(*args, **kwargs)


__all__ = [
    "PLUGIN_API_VERSION",
    "BatchLine",
    "BatchRequest",
    "BatchState",
    "BatchStatus",
    "ClientForJob",
    "LineResult",
    "NotBatchable",
    "Outcome",
    "PatchTarget",
    "Provider",
    "RespondsAtOnce",
    "SubmittedBatch",
    "WithoutHookTargets",
]
