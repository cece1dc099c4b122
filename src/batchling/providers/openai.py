"""OpenAI: `openai` client calls through the OpenAI Batch API (Files + Batches).

The same provider serves every host whose Batch API is OpenAI-shaped (Groq, xAI, Azure OpenAI,
gateways...): see `batchling.providers.openai_compatible` for what differs per host.

Interception point: the SDK client's own `AsyncAPIClient.request`. Every public method
(`chat.completions.create` / `.parse`, `responses.create` / `.parse`, `embeddings.create`,
`completions.create`, `moderations.create`), `with_raw_response`, and direct `client.post(...)`
calls (as LiteLLM makes) go through it with the SDK's own request options. batchling builds
the exact wire body with the SDK's `_build_request`, and answers each caller by feeding the
batch line's response through the SDK's own `_process_response` (or
`_make_status_error_from_response`), so callers get the very objects and exceptions the
real-time call produces. Checked against openai 2.0 (httpx) through 3.57 (httpx2).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import openai

from batchling import (
    api_keys,
    backoff,
    job_clients,
    json_codec,
    listing,
    stainless,
    stainless_direct,
)
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
from batchling.providers import openai_compatible

REQUEST_TARGET = PatchTarget("openai._base_client", "AsyncAPIClient.request")
SYNC_REQUEST_TARGET = PatchTarget("openai._base_client", "SyncAPIClient.request", sync=True)
# The common case, taken before the SDK transforms its arguments (see batchling.stainless_direct).
_CHAT_MODULE = "openai.resources.chat.completions.completions"
CHAT_CREATE_TARGET = PatchTarget(_CHAT_MODULE, "AsyncCompletions.create")
SYNC_CHAT_CREATE_TARGET = PatchTarget(_CHAT_MODULE, "Completions.create", sync=True)
CHAT_PATH = "/chat/completions"
CHAT_CREATE_NAMES = frozenset({
    "AsyncStream", "Stream", "ChatCompletion", "ChatCompletionChunk",
    "CompletionCreateParamsNonStreaming", "CompletionCreateParamsStreaming",
    "completion_create_params", "_post", "async_maybe_transform", "maybe_transform",
    "make_request_options", "validate_response_format",
})  # fmt: skip
"""What `chat.completions.create` does in the openai releases batchling was checked against
(2.0 to 3.57): validate `response_format`, transform the arguments, post. A release whose code
names anything else has its calls take the SDK's own path."""


# Paths that are no model requests (files, batches, listings...): passed through unreported.
NON_MODEL_PATH_PREFIXES = (
    "/files", "/uploads", "/batches", "/models", "/vector_stores", "/fine_tuning",
    "/assistants", "/threads", "/containers", "/conversations", "/evals", "/organization",
    "/admin", "/skills", "/webhooks",
)  # fmt: skip

SUBMISSION_METADATA_KEY = "batchling_submission"
AZURE_API_VERSION_KEY = "azure_api_version"
"""Journaled with an Azure OpenAI job: the API version its client used."""
AZURE_API_VERSION_ENV = "OPENAI_API_VERSION"  # where `AzureOpenAI` itself looks
CREATE_ATTEMPTS = 6
IMAGES_PER_JOB = 100
"""Most images one image-generation job is asked for (`n` summed over its requests). Each comes
back base64-encoded in the job's result file, a few MB apiece, and a job's results are read
whole before its callers are answered: smaller jobs keep that bounded."""
EMBEDDING_INPUTS_PER_JOB = 50_000
"""OpenAI's limit on the embedding inputs (texts or token lists) summed over one job's requests
(the `batches.create` reference); a job above it fails as a whole."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Job:
    clients: JobClients
    """The callers' clients: the job is followed with the first one still open."""
    call_headers: Mapping[str, str]

    @property
    def client(self) -> Any:
        return self.clients.current()


class _CorruptDownloadError(Exception):
    """A result file line did not parse: the download is fetched again."""


_AZURE_CLIENTS = (openai.AsyncAzureOpenAI, openai.AzureOpenAI)


def _is_azure(client: Any) -> bool:
    return isinstance(client, _AZURE_CLIENTS)


def _host_api(client: Any) -> openai_compatible.HostBatchAPI | None:
    """The host's own Batch API protocol (Together), or None for OpenAI's Files + Batches."""
    return openai_compatible.host_for(
        str(client.base_url), azure_client=_is_azure(client)
    ).batch_api


class OpenAIProvider(WithoutHookTargets):
    """Batches `openai` async clients' calls through the OpenAI Batch API."""

    name = "openai"
    targets: Sequence[PatchTarget] = (
        REQUEST_TARGET,
        SYNC_REQUEST_TARGET,
        CHAT_CREATE_TARGET,
        SYNC_CHAT_CREATE_TARGET,
    )
    max_requests_per_batch = 50_000
    max_bytes_per_batch = 200 * 1000 * 1000

    def __init__(self) -> None:
        self._chat_methods: dict[type, stainless_direct.CreateMethod | None] = {}

    async def to_request(
        self, target: PatchTarget, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> BatchRequest | NotBatchable | None:
        if target is CHAT_CREATE_TARGET or target is SYNC_CHAT_CREATE_TARGET:
            # None: the SDK's own `create` runs, and its request comes back through `request`.
            return await self._direct_chat_request(instance, args, kwargs)
        cast_to, options = stainless.request_arguments(args, kwargs)
        path = stainless.path_of(str(options.url))
        if str(options.method).lower() != "post" or path.startswith(NON_MODEL_PATH_PREFIXES):
            return None
        host = openai_compatible.host_for(
            stainless.base_url_text(instance), azure_client=_is_azure(instance)
        )
        if path not in host.endpoints:
            return NotBatchable(
                f"endpoint {path}",
                f"The {host.name} Batch API does not serve POST {path or options.url} "
                f"(batchling batches {', '.join(sorted(host.endpoints))} there).",
            )
        endpoint = host.batch_endpoint(path)
        if stainless.is_streaming(options, kwargs):
            return NotBatchable(
                "streaming",
                "A streamed response (stream=True, .stream()) cannot come from a Batch API.",
            )
        if stainless.wants_streaming_response(options):
            return NotBatchable(
                "streaming response",
                "with_streaming_response reads the HTTP response as it arrives, which a Batch "
                "API cannot give.",
            )
        if stainless.has_non_json_body(options):
            return NotBatchable(
                "non-JSON body",
                f"POST {path} uploads files or raw bytes (multipart), and a batch line carries "
                "a JSON body only.",
            )
        if isinstance(options.params, Mapping) and options.params:
            return NotBatchable(
                "query parameters",
                f"POST {path} carries query parameters, which a batch line cannot carry.",
            )
        json_data = options.json_data if isinstance(options.json_data, Mapping) else {}
        if path == "/responses" and json_data.get("background"):
            return NotBatchable(
                "background response",
                "responses.create(background=True) runs asynchronously at OpenAI already and "
                "cannot be batched.",
            )
        call = await stainless.prepare(instance, cast_to, options)
        if (deployment := _azure_deployment(instance)) is not None and "model" in call.body:
            call = _for_deployment(call, deployment)
        return self._batch_request(
            instance, stainless.base_url_text(instance), host, endpoint, call
        )

    async def _direct_chat_request(
        self, resource: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> BatchRequest | None:
        client = resource._client
        if _is_azure(client):
            return None  # Azure routes by deployment: its URL is the SDK's to build
        method = self._chat_method(type(resource))
        body = method.body(args, kwargs) if method is not None else None
        if method is None or body is None:
            return None
        base_url = stainless.base_url_text(client)
        call = await stainless_direct.prepared_call(method, client, base_url, body)
        if call is None:
            return None
        host = openai_compatible.host_for(base_url)
        return self._batch_request(client, base_url, host, host.batch_endpoint(CHAT_PATH), call)

    def _chat_method(self, resource_type: type) -> stainless_direct.CreateMethod | None:
        if resource_type not in self._chat_methods:
            from openai.types.chat import ChatCompletion, completion_create_params

            self._chat_methods[resource_type] = stainless_direct.describe(
                resource_type.create,  # type: ignore[attr-defined]
                path=CHAT_PATH,
                cast_to=ChatCompletion,
                sdk_package="openai",
                known_names=CHAT_CREATE_NAMES,
                params_type=completion_create_params.CompletionCreateParamsNonStreaming,
            )
        return self._chat_methods[resource_type]

    def _batch_request(
        self,
        client: Any,
        base_url: str,
        host: openai_compatible.OpenAICompatibleHost,
        endpoint: str,
        call: stainless.PreparedCall,
    ) -> BatchRequest:
        model = str(call.body.get("model") or "")
        units, max_units = _units(endpoint, call.body)
        return BatchRequest(
            provider=self.name,
            client_key=call.client_key,
            endpoint=endpoint,
            model=model,
            body=call.body,
            size_bytes=len(call.raw_body) + len(endpoint) + 110,
            request_hash=stainless.request_digest(
                self.name, endpoint, model, base_url, call.raw_body, call.call_headers
            ),
            base_url=base_url,
            limits=(host.max_requests_per_batch, host.max_bytes_per_batch),
            client=client,
            call=call,
            units=units,
            max_units=max_units,
        )

    async def submit(
        self, lines: Sequence[BatchLine], *, completion_window: str, submission_id: str
    ) -> SubmittedBatch:
        first = lines[0].request
        clients = stainless.job_clients(line.request.client for line in lines)
        client = clients.current()
        if (api := _host_api(client)) is not None:
            return await api.submit(
                self.name, lines, completion_window=completion_window, submission_id=submission_id
            )
        call_headers = dict(first.call.call_headers)
        data = _encode_lines(lines)
        input_file = await stainless.call(
            client,
            client.files.create,
            file=(f"{submission_id}.jsonl", data, "application/jsonl"),
            purpose="batch",
            extra_headers=call_headers or None,
        )
        batch = await self._create_batch(
            clients, input_file.id, first.endpoint, completion_window, submission_id, call_headers
        )
        return SubmittedBatch(
            provider=self.name,
            batch_id=batch.id,
            endpoint=first.endpoint,
            model=first.model,
            size=len(lines),
            handle=_Job(clients, call_headers),
        )

    async def _create_batch(
        self,
        clients: JobClients,
        input_file_id: str,
        endpoint: str,
        completion_window: str,
        submission_id: str,
        call_headers: dict[str, str],
    ) -> Any:
        def create_with_an_open_client() -> Any:  # a caller may close its client meanwhile
            client = clients.current()
            return stainless.call(
                client,
                _without_retries(client).batches.create,
                input_file_id=input_file_id,
                endpoint=endpoint,
                completion_window=completion_window,
                metadata={SUBMISSION_METADATA_KEY: submission_id},
                extra_headers=call_headers or None,
            )

        return await backoff.create_once(
            create_with_an_open_client,
            # The job an earlier attempt may have created carries the submission id.
            lambda: self._find_submission(clients.current(), submission_id, call_headers),
            is_transient=self.is_transient,
            attempts=CREATE_ATTEMPTS,
        )

    async def _find_submission(
        self,
        client: Any,
        submission_id: str,
        call_headers: dict[str, str],
        since: float | None = None,
    ) -> Any:
        """The job tagged with `submission_id`. Listings come newest first: pages are read back
        to `since` (a minute's margin for clock skew), or only the first without it (a look-up
        right after a create attempt)."""

        async def page_after(after: str | None) -> tuple[list[Any], str | None]:
            options: dict[str, Any] = {"limit": 100, "extra_headers": call_headers or None}
            if after is not None:
                options["after"] = after
            page = await stainless.call(client, client.batches.list, **options)
            more = bool(page.data) and getattr(page, "has_more", False)
            return page.data, page.data[-1].id if more else None

        return await listing.find_job(
            page_after,
            lambda batch: (batch.metadata or {}).get(SUBMISSION_METADATA_KEY) == submission_id,
            lambda batch: batch.created_at,
            since=since,
        )

    async def poll(self, batch: SubmittedBatch) -> BatchStatus:
        if (api := _host_api(batch.handle.client)) is not None:
            return await api.poll(batch)
        job: _Job = batch.handle
        found = await stainless.call(
            job.client,
            job.client.batches.retrieve,
            batch.batch_id,
            extra_headers=dict(job.call_headers) or None,
        )
        counts = found.request_counts
        message = None
        if found.errors is not None and found.errors.data:
            message = "; ".join(
                f"{error.code}: {error.message}" + (f" (line {error.line})" if error.line else "")
                for error in found.errors.data
            )
        return BatchStatus(
            state=_STATES.get(found.status, BatchState.RUNNING),
            provider_status=found.status,
            total=counts.total if counts else 0,
            completed=counts.completed if counts else 0,
            failed=counts.failed if counts else 0,
            message=message,
            handle=(found.output_file_id, found.error_file_id),
        )

    async def results(
        self, batch: SubmittedBatch, status: BatchStatus
    ) -> AsyncIterator[LineResult]:
        if (api := _host_api(batch.handle.client)) is not None:
            async for line in api.results(batch, status):
                yield line
            return
        job: _Job = batch.handle
        for file_id in status.handle or ():
            if not file_id:
                continue
            content = await stainless.call(
                job.client,
                job.client.files.content,
                file_id,
                extra_headers=dict(job.call_headers) or None,
            )
            # The scheduler reads every line before routing any: a line that does not parse
            # has the whole file read again.
            for raw in json_codec.jsonl_lines(content.content):
                yield _decode_line(raw)

    async def to_response(self, request: BatchRequest, result: LineResult) -> Any:
        call: stainless.PreparedCall = request.call
        if result.status_code is None:
            http_request = await stainless.http_request_of(request.client, call)
            if result.message and "timeout" in result.message.lower():
                raise openai.APITimeoutError(request=http_request)
            raise openai.APIError(
                result.message or "The batch returned an error for this request.",
                http_request,
                body=result.body,
            )
        headers = {"x-request-id": result.request_id} if result.request_id else {}
        return await stainless.respond(
            request.client, call, result.status_code, result.body, headers, "x-request-id"
        )

    def response_now(self, request: BatchRequest, result: LineResult) -> Any:
        return stainless.respond_now(request, result)

    async def cancel(self, batch: SubmittedBatch) -> None:
        if (api := _host_api(batch.handle.client)) is not None:
            await api.cancel(batch)
            return
        job: _Job = batch.handle
        await stainless.call(
            job.client,
            job.client.batches.cancel,
            batch.batch_id,
            extra_headers=dict(job.call_headers) or None,
        )

    def describe(self, batch: SubmittedBatch) -> Mapping[str, Any]:
        client = batch.handle.client
        if (api := _host_api(client)) is not None:
            return api.describe(batch)
        if _is_azure(client) and (version := getattr(client, "_api_version", None)):
            # What `client_for_job` needs to reach the job again, wherever the endpoint is.
            return {AZURE_API_VERSION_KEY: str(version)}
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
        if (api := _host_api(client)) is not None:
            return api.reattach(
                self.name, batch_id, info, client=client, template=template, custom_ids=custom_ids
            )
        call_headers = dict(template.call.call_headers) if template is not None else {}
        return SubmittedBatch(
            provider=self.name,
            batch_id=batch_id,
            endpoint=template.endpoint if template is not None else "",
            model=template.model if template is not None else "",
            size=len(custom_ids),
            handle=_Job(stainless.job_clients([client]), call_headers),
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
        if (api := _host_api(client)) is not None:
            return await api.find_submission(
                submission_id, client=client, template=template, size=size, since=since
            )
        call_headers = dict(template.call.call_headers) if template is not None else {}
        found = await backoff.retrying(
            lambda: self._find_submission(client, submission_id, call_headers, since),
            is_transient=self.is_transient,
        )
        return str(found.id) if found is not None else None

    def default_client(self, base_url: str) -> Any:
        return self.client_for_job(base_url, {})

    def client_for_job(self, base_url: str, info: Mapping[str, Any]) -> Any:
        """An `AsyncOpenAI` client with the key variable of the job's host (`TOGETHER_API_KEY`
        for Together...), or an `AsyncAzureOpenAI` one for an Azure OpenAI job."""
        version = info.get(AZURE_API_VERSION_KEY)
        host = openai_compatible.host_for(base_url, azure_client=version is not None)
        name, key = api_keys.from_environment(host.api_key_env)
        if host.name != openai_compatible.AZURE.name:
            return openai.AsyncOpenAI(base_url=base_url or None, api_key=key)
        version = version or os.environ.get(AZURE_API_VERSION_ENV)
        if not version:
            raise RuntimeError(
                f"{AZURE_API_VERSION_ENV} is not set: export the Azure OpenAI API version the "
                "job was created with (e.g. 2024-10-21), then run this again."
            )
        if name == "AZURE_OPENAI_AD_TOKEN":
            return openai.AsyncAzureOpenAI(
                base_url=base_url, api_version=version, azure_ad_token=key
            )
        return openai.AsyncAzureOpenAI(base_url=base_url, api_version=version, api_key=key)

    def is_transient(self, error: BaseException) -> bool:
        if isinstance(error, openai.APIConnectionError | _CorruptDownloadError):
            return True
        if job_clients.is_closed_client_error(error):
            return True
        if isinstance(error, openai.APIStatusError):
            return stainless.is_transient_status(error.status_code)
        return False


_STATES: Mapping[str, BatchState] = {
    "completed": BatchState.COMPLETED,
    "failed": BatchState.FAILED,
    "expired": BatchState.EXPIRED,
    "cancelled": BatchState.CANCELLED,
}


def _units(endpoint: str, body: Mapping[str, Any]) -> tuple[int, int | None]:
    """What a request counts against a per-job limit beyond the request count, and that limit:
    its embedding inputs, or the images it asks for."""
    if endpoint.endswith("/embeddings"):
        inputs = body.get("input")
        # A list of token ids is one input; a list of strings or of token lists is several.
        if isinstance(inputs, list) and inputs and not isinstance(inputs[0], int):
            return len(inputs), EMBEDDING_INPUTS_PER_JOB
        return 1, EMBEDDING_INPUTS_PER_JOB
    if endpoint.endswith(("/images/generations", "/images/edits")):
        images = body.get("n")
        return (images if isinstance(images, int) and images > 0 else 1), IMAGES_PER_JOB
    return 1, None


def _without_retries(client: Any) -> Any:
    """`client` with the SDK's retries off (a retried create could make a second job)."""
    once = client.with_options(max_retries=0)
    if _azure_deployment(client) is not None and _azure_deployment(once) is None:
        # openai 2.x's copy forgets the deployment a client is bound to, and with it that
        # files and batches live under `{endpoint}/openai/`, not under the deployment.
        once._azure_deployment = client._azure_deployment
        once._azure_endpoint = client._azure_endpoint
    return once


def _azure_deployment(client: Any) -> str | None:
    """The deployment an Azure client was bound to (`azure_deployment=`), if any."""
    if not _is_azure(client):
        return None
    deployment = getattr(client, "_azure_deployment", None)
    return deployment if isinstance(deployment, str) and deployment else None


def _for_deployment(call: stainless.PreparedCall, deployment: str) -> stainless.PreparedCall:
    """A call of a client bound to an Azure deployment: in real time the deployment comes from
    the client's URL, whatever the body's `model` says; a batch line names it as its `model`."""
    body = {**json.loads(call.raw_body), "model": deployment}  # the wire body, as plain JSON
    raw_body = stainless.encode_json(body)
    assert raw_body is not None, "decoded JSON encodes again"
    return dataclasses.replace(call, body=body, raw_body=raw_body)


def _encode_lines(lines: Sequence[BatchLine]) -> bytes:
    """The JSONL input of a job: each line's body spliced in as batchling encoded it."""
    # Custom ids are batchling's own (^[A-Za-z0-9_-]+$): nothing in them needs escaping.
    endpoint = json.dumps(lines[0].request.endpoint).encode()
    middle = b'","method":"POST","url":' + endpoint + b',"body":'
    return b"".join(
        b'{"custom_id":"' + line.custom_id.encode() + middle + line.request.call.raw_body + b"}\n"
        for line in lines
    )


def _decode_line(raw: bytes) -> LineResult:
    try:
        line = json_codec.loads(raw)
        custom_id = str(line["custom_id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise _CorruptDownloadError(f"unreadable result line: {raw[:200]!r}") from exc
    response = line.get("response")
    if response:
        status_code = int(response.get("status_code") or 0)
        return LineResult(
            custom_id=custom_id,
            outcome=Outcome.SUCCEEDED if 200 <= status_code < 300 else Outcome.ERRORED,
            status_code=status_code,
            body=response.get("body"),
            request_id=response.get("request_id"),
        )
    error = line.get("error") or {}
    code = str(error.get("code") or "")
    outcome = {"batch_expired": Outcome.EXPIRED, "batch_cancelled": Outcome.CANCELLED}.get(
        code, Outcome.ERRORED
    )
    return LineResult(
        custom_id=custom_id,
        outcome=outcome,
        body=error or None,
        message=f"{code}: {error.get('message')}" if error else None,
    )


@hookimpl
def batchling_register_providers(register: Any) -> None:
    """Register the built-in OpenAI provider."""
    register(OpenAIProvider())
