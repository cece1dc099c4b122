"""Anthropic: `anthropic.AsyncAnthropic` calls through the Message Batches API.

Interception point: the SDK client's own `AsyncAPIClient.request`, as for OpenAI (see
`batchling.stainless`): `messages.create`, `messages.parse` (which does not go through
`create`), `beta.messages.create` / `.parse`, `with_raw_response` and direct `client.post`
calls all arrive there. Each batch request's `params` is the exact body the SDK would have
sent to `/v1/messages` (every named parameter, `extra_body` fields merged), and headers set on
the call (`betas=` → `anthropic-beta`, `workspace_id`, `extra_headers`) apply to the whole job,
so they are part of the queue's client identity and sent with the job.

Lifted limit: for a non-streaming `create` the SDK raises `ValueError` before sending when
`max_tokens` suggests the request may take over ten minutes (an HTTP timeout concern). A batched
request has no HTTP connection to time out, so inside `batchify()` batchling lets such calls
through to the batch (`BaseClient._calculate_nonstreaming_timeout` is a hook target).
Checked against anthropic 2.x.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import anthropic

from batchling import api_keys, backoff, job_clients, json_codec, stainless, stainless_direct
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

REQUEST_TARGET = PatchTarget("anthropic._base_client", "AsyncAPIClient.request")
SYNC_REQUEST_TARGET = PatchTarget("anthropic._base_client", "SyncAPIClient.request", sync=True)
TIMEOUT_GUARD_TARGET = PatchTarget(
    "anthropic._base_client", "BaseClient._calculate_nonstreaming_timeout", hook=True
)
# The common case, taken before the SDK builds its request (see batchling.stainless_direct).
_MESSAGES_MODULE = "anthropic.resources.messages.messages"
CREATE_TARGET = PatchTarget(_MESSAGES_MODULE, "AsyncMessages.create")
SYNC_CREATE_TARGET = PatchTarget(_MESSAGES_MODULE, "Messages.create", sync=True)
CREATE_NAMES = frozenset({
    "AsyncStream", "Stream", "Message", "RawMessageStreamEvent", "DEFAULT_TIMEOUT",
    "MODEL_NONSTREAMING_TOKENS", "_calculate_nonstreaming_timeout", "_client", "timeout",
    "get", "is_given", "DEPRECATED_MODELS", "MODELS_TO_WARN_WITH_THINKING_ENABLED",
    "DeprecationWarning", "UserWarning", "warn", "warnings", "strip_not_given",
    "make_request_options", "messages_create_request_attributes", "_post",
})  # fmt: skip
"""What `messages.create` does in the anthropic releases batchling was checked against (2.0 to
2.16): work out an HTTP timeout (moot for a batch), warn about deprecated models and thinking
settings, turn two arguments into headers, post. A release whose code names anything else has
its calls take the SDK's own path."""

MESSAGES_PATH = "/v1/messages"
_PER_CALL_HEADERS = ("anthropic-user-profile-id", "anthropic-workspace-id")
ENDPOINT = "/v1/messages"

# The status each Anthropic error type answers in real time (batch error lines carry no status).
ERROR_STATUS: Mapping[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "conflict_error": 409,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

CREATE_ATTEMPTS = 6
# A job found by listing counts as ours only if it was created this close to our attempt.
ADOPT_WINDOW_SECONDS = 120.0


@dataclasses.dataclass(frozen=True, slots=True)
class _Job:
    clients: JobClients
    """The callers' clients: the job is followed with the first one still open."""
    call_headers: Mapping[str, str]
    beta: bool

    @property
    def client(self) -> Any:
        return self.clients.current()


class _CorruptDownloadError(Exception):
    """A results line did not parse: the results are fetched again."""


def _is_beta(options: Any) -> bool:
    qualifiers = getattr(options, "qualifiers", None)
    return isinstance(qualifiers, Mapping) and str(qualifiers.get("beta", "")).lower() == "true"


def _batches(client: Any, beta: bool) -> Any:
    return client.beta.messages.batches if beta else client.messages.batches


class AnthropicProvider:
    """Batches `anthropic` async clients' `messages` calls through Message Batches."""

    name = "anthropic"
    targets: Sequence[PatchTarget] = (
        REQUEST_TARGET,
        SYNC_REQUEST_TARGET,
        TIMEOUT_GUARD_TARGET,
        CREATE_TARGET,
        SYNC_CREATE_TARGET,
    )
    max_requests_per_batch = 100_000
    max_bytes_per_batch = 256 * 1000 * 1000

    def __init__(self) -> None:
        self._create_methods: dict[type, stainless_direct.CreateMethod | None] = {}

    async def to_request(
        self, target: PatchTarget, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> BatchRequest | NotBatchable | None:
        if target is CREATE_TARGET or target is SYNC_CREATE_TARGET:
            # None: the SDK's own `create` runs, and its request comes back through `request`.
            return await self._direct_request(instance, args, kwargs)
        cast_to, options = stainless.request_arguments(args, kwargs)
        path = stainless.path_of(str(options.url))
        if str(options.method).lower() != "post" or path != MESSAGES_PATH:
            # count_tokens, files, batches, models...: no billed model request.
            return None
        if stainless.is_streaming(options, kwargs):
            return NotBatchable(
                "streaming",
                "A streamed response (stream=True, messages.stream()) cannot come from a Batch "
                "API.",
            )
        if stainless.wants_streaming_response(options):
            return NotBatchable(
                "streaming response",
                "with_streaming_response reads the HTTP response as it arrives, which a Batch "
                "API cannot give.",
            )
        if stainless.has_non_json_body(options):
            return NotBatchable("non-JSON body", f"POST {path} sends a non-JSON body.")
        call = await stainless.prepare(instance, cast_to, options)
        beta = _is_beta(call.options)
        return self._batch_request(instance, stainless.base_url_text(instance), beta, call)

    async def _direct_request(
        self, resource: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> BatchRequest | None:
        method = self._create_method(type(resource))
        body = method.body(args, kwargs) if method is not None else None
        if method is None or body is None or _warns(method, body):
            return None
        client = resource._client
        base_url = stainless.base_url_text(client)
        call = await stainless_direct.prepared_call(method, client, base_url, body)
        if call is None:
            return None
        return self._batch_request(client, base_url, False, call)

    def _create_method(self, resource_type: type) -> stainless_direct.CreateMethod | None:
        if resource_type not in self._create_methods:
            self._create_methods[resource_type] = stainless_direct.describe(
                resource_type.create,  # type: ignore[attr-defined]
                path=MESSAGES_PATH,
                cast_to=anthropic.types.Message,
                sdk_package="anthropic",
                known_names=CREATE_NAMES,
                # These become headers, which apply to a whole job; left out, `create` sends
                # markers that remove them.
                fallback_parameters=frozenset({"user_profile_id", "workspace_id"}),
                headers=dict.fromkeys(_PER_CALL_HEADERS, anthropic.omit),
            )
        return self._create_methods[resource_type]

    def _batch_request(
        self, client: Any, base_url: str, beta: bool, call: stainless.PreparedCall
    ) -> BatchRequest:
        model = str(call.body.get("model") or "")
        endpoint = ENDPOINT + ("?beta=true" if beta else "")
        return BatchRequest(
            provider=self.name,
            client_key=call.client_key,
            endpoint=endpoint,
            model=model,
            body=call.body,
            size_bytes=len(call.raw_body) + 100,
            request_hash=stainless.request_digest(
                self.name, endpoint, model, base_url, call.raw_body, call.call_headers
            ),
            base_url=base_url,
            client=client,
            call=call,
        )

    async def submit(
        self, lines: Sequence[BatchLine], *, completion_window: str, submission_id: str
    ) -> SubmittedBatch:
        first = lines[0].request
        call: stainless.PreparedCall = first.call
        job = _Job(
            clients=stainless.job_clients(line.request.client for line in lines),
            call_headers=dict(call.call_headers),
            beta=_is_beta(call.options),
        )
        requests = [{"custom_id": line.custom_id, "params": line.request.body} for line in lines]
        batch = await self._create_batch(job, requests)
        return SubmittedBatch(
            provider=self.name,
            batch_id=batch.id,
            endpoint=first.endpoint,
            model=first.model,
            size=len(lines),
            handle=job,
        )

    async def _create_batch(self, job: _Job, requests: list[dict[str, Any]]) -> Any:
        # Message Batches carry no metadata to tag a job with: after an ambiguous failure, a
        # job of the same size created since the first attempt is taken for the one it created.
        started = time.time()

        def create_with_an_open_client() -> Any:  # a caller may close its client meanwhile
            client = job.client
            once = _batches(client.with_options(max_retries=0), job.beta)
            return stainless.call(
                client, once.create, requests=requests, extra_headers=dict(job.call_headers) or None
            )

        return await backoff.create_once(
            create_with_an_open_client,
            lambda: self._find_recent(job, started, len(requests)),
            is_transient=self.is_transient,
            attempts=CREATE_ATTEMPTS,
        )

    async def _find_recent(self, job: _Job, since: float, size: int) -> Any:
        page = await stainless.call(
            job.client,
            _batches(job.client, job.beta).list,
            limit=20,
            extra_headers=dict(job.call_headers) or None,
        )
        for batch in page.data:
            counts = batch.request_counts
            total = (
                counts.processing + counts.succeeded + counts.errored + counts.canceled
                + counts.expired
            )  # fmt: skip
            if total == size and batch.created_at.timestamp() >= since - ADOPT_WINDOW_SECONDS:
                return batch
        return None

    async def poll(self, batch: SubmittedBatch) -> BatchStatus:
        job: _Job = batch.handle
        found = await stainless.call(
            job.client,
            _batches(job.client, job.beta).retrieve,
            batch.batch_id,
            extra_headers=dict(job.call_headers) or None,
        )
        counts = found.request_counts
        ended = found.processing_status == "ended"
        return BatchStatus(
            state=BatchState.COMPLETED if ended else BatchState.RUNNING,
            provider_status=found.processing_status,
            total=batch.size,
            completed=counts.succeeded,
            failed=counts.errored + counts.canceled + counts.expired,
            handle=found.results_url,
        )

    async def results(
        self, batch: SubmittedBatch, status: BatchStatus
    ) -> AsyncIterator[LineResult]:
        job: _Job = batch.handle
        if not status.handle:
            return
        response = await stainless.call(
            job.client,
            job.client.get,
            status.handle,
            cast_to=stainless.http_module_of_client(job.client).Response,
            options={"headers": {**job.call_headers, "Accept": "application/binary"}},
        )
        # The scheduler reads every line before routing any: a line that does not parse has
        # the results read again.
        for raw in json_codec.jsonl_lines(response.content):
            yield _decode_line(raw)

    async def to_response(self, request: BatchRequest, result: LineResult) -> Any:
        call: stainless.PreparedCall = request.call
        headers = {"request-id": result.request_id} if result.request_id else {}
        status_code = result.status_code or 500
        return await stainless.respond(
            request.client, call, status_code, result.body, headers, "request-id"
        )

    def response_now(self, request: BatchRequest, result: LineResult) -> Any:
        return stainless.respond_now(request, result)

    async def cancel(self, batch: SubmittedBatch) -> None:
        job: _Job = batch.handle
        await stainless.call(
            job.client,
            _batches(job.client, job.beta).cancel,
            batch.batch_id,
            extra_headers=dict(job.call_headers) or None,
        )

    def describe(self, batch: SubmittedBatch) -> Mapping[str, Any]:
        job: _Job = batch.handle
        return {"beta": job.beta}

    def reattach(
        self,
        batch_id: str,
        info: Mapping[str, Any],
        *,
        client: Any,
        template: BatchRequest | None,
        custom_ids: Sequence[str],
    ) -> SubmittedBatch:
        call_headers = dict(template.call.call_headers) if template is not None else {}
        return SubmittedBatch(
            provider=self.name,
            batch_id=batch_id,
            endpoint=template.endpoint if template is not None else ENDPOINT,
            model=template.model if template is not None else "",
            size=len(custom_ids),
            handle=_Job(stainless.job_clients([client]), call_headers, bool(info.get("beta"))),
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
        call_headers = dict(template.call.call_headers) if template is not None else {}
        beta = template is not None and _is_beta(template.call.options)
        job = _Job(stainless.job_clients([client]), call_headers, beta)
        found = await backoff.retrying(
            lambda: self._find_recent(job, since, size), is_transient=self.is_transient
        )
        return str(found.id) if found is not None else None

    def default_client(self, base_url: str) -> Any:
        name, key = api_keys.from_environment(("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"))
        if name == "ANTHROPIC_AUTH_TOKEN":
            return anthropic.AsyncAnthropic(base_url=base_url or None, auth_token=key)
        return anthropic.AsyncAnthropic(base_url=base_url or None, api_key=key)

    def hook(
        self,
        target: PatchTarget,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Inside `batchify()`, a large `max_tokens` gets the SDK's default timeout instead of
        a `ValueError`: the batch has no HTTP request to time out."""
        try:
            return wrapped(*args, **kwargs)
        except ValueError:
            return anthropic.DEFAULT_TIMEOUT

    def is_transient(self, error: BaseException) -> bool:
        if isinstance(error, anthropic.APIConnectionError | _CorruptDownloadError):
            return True
        if job_clients.is_closed_client_error(error):
            return True
        if isinstance(error, anthropic.APIStatusError):
            return stainless.is_transient_status(error.status_code)
        return False


def _warns(method: stainless_direct.CreateMethod, body: Mapping[str, Any]) -> bool:
    """Whether the SDK's `create` would warn about this call (a deprecated model, a deprecated
    thinking setting): such calls take the SDK's path, which warns."""
    model = body.get("model")
    if not isinstance(model, str) or model in method.sdk_globals.get("DEPRECATED_MODELS", {}):
        return True
    thinking = body.get("thinking")
    return bool(
        model in method.sdk_globals.get("MODELS_TO_WARN_WITH_THINKING_ENABLED", ())
        and isinstance(thinking, Mapping)
        and thinking.get("type") == "enabled"
    )


def _decode_line(raw: bytes) -> LineResult:
    try:
        line = json_codec.loads(raw)
        custom_id = str(line["custom_id"])
        result = line["result"]
        kind = result["type"]
    except (ValueError, KeyError, TypeError) as exc:
        raise _CorruptDownloadError(f"unreadable result line: {raw[:200]!r}") from exc
    if kind == "succeeded":
        return LineResult(custom_id, Outcome.SUCCEEDED, status_code=200, body=result["message"])
    if kind == "errored":
        error = result.get("error") or {}
        detail = error.get("error") or {}
        return LineResult(
            custom_id,
            Outcome.ERRORED,
            status_code=ERROR_STATUS.get(str(detail.get("type")), 500),
            body=error,
            request_id=error.get("request_id"),
            message=detail.get("message"),
        )
    if kind == "expired":
        return LineResult(custom_id, Outcome.EXPIRED)
    return LineResult(custom_id, Outcome.CANCELLED)


@hookimpl
def batchling_register_providers(register: Any) -> None:
    """Register the built-in Anthropic provider."""
    register(AnthropicProvider())
