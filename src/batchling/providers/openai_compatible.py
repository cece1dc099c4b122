"""Hosts whose Batch API speaks OpenAI's Files + Batches protocol, reached with the `openai` SDK.

The OpenAI provider batches any `openai` client, whatever its base URL, and creates the job with
that very client. What differs between hosts is described by an `OpenAICompatibleHost`: which
endpoints its Batch API serves, how batch lines name them, its per-job limits, and, for a host
whose Batch API is not OpenAI's Files + Batches on the wire (Together), the protocol that speaks
it. Built-in profiles cover OpenAI, Groq, xAI, Azure OpenAI and Together; declare another host
with `register_openai_compatible_host`.
"""

from __future__ import annotations

import dataclasses
import threading
import urllib.parse
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol

from batchling.provider import BatchLine, BatchRequest, BatchStatus, LineResult, SubmittedBatch
from batchling.providers.together import TogetherBatchAPI

ALL_ENDPOINTS = frozenset({
    "/chat/completions", "/responses", "/embeddings", "/completions", "/moderations",
    # `images.edit` uploads its images (multipart), which no batch line carries: only JSON
    # bodies sent to it (`client.post`) are batched. `/videos` is left out: a video job is
    # already asynchronous, and `videos.create` answers with the job, not the video.
    "/images/generations", "/images/edits",
})  # fmt: skip
"""What OpenAI's Batch API serves, and any host's is assumed to unless its profile says
otherwise (a host that refuses a job answers the create with its error, which its callers
get: declare its endpoints with `register_openai_compatible_host`)."""


class HostBatchAPI(Protocol):
    """A host's own Batch API wire protocol, spoken with the caller's `openai` client.

    The OpenAI provider hands a job's steps to it when the client's host profile names one;
    without one, a host is assumed to speak OpenAI's Files + Batches. The methods mirror the
    `Provider` protocol's; `provider` is the name jobs are reported under.
    """

    async def submit(
        self,
        provider: str,
        lines: Sequence[BatchLine],
        *,
        completion_window: str,
        submission_id: str,
    ) -> SubmittedBatch:
        """Create one job holding `lines` with the first line's client."""
        ...

    async def poll(self, batch: SubmittedBatch) -> BatchStatus:
        """Fetch the job's status once."""
        ...

    def results(self, batch: SubmittedBatch, status: BatchStatus) -> AsyncIterator[LineResult]:
        """Yield a result for every line the terminal job has one for."""
        ...

    async def cancel(self, batch: SubmittedBatch) -> None:
        """Ask the host to cancel the job."""
        ...

    def describe(self, batch: SubmittedBatch) -> Mapping[str, Any]:
        """JSON-able facts `reattach` needs (journaled: no secrets)."""
        ...

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
        """Follow a job created earlier with `client`."""
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
        """The id of the job an interrupted submission created, if the host has one."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class OpenAICompatibleHost:
    """How one host's OpenAI-shaped Batch API differs from OpenAI's."""

    name: str
    hostnames: tuple[str, ...] = ()
    """Host names (or their suffixes, e.g. `.openai.azure.com`) this profile applies to."""
    base_urls: tuple[str, ...] = ()
    """Base URL prefixes this profile applies to (for proxies, gateways and tests)."""
    endpoints: frozenset[str] = ALL_ENDPOINTS
    """SDK paths (`/chat/completions`, ...) the host's Batch API serves."""
    line_url_prefix: str = "/v1"
    """Prefix of each batch line's `url` and of the job's `endpoint` (Azure uses none)."""
    max_requests_per_batch: int = 50_000
    max_bytes_per_batch: int = 200_000_000
    batch_api: HostBatchAPI | None = None
    """The host's own Batch API protocol; None: OpenAI's Files + Batches."""
    api_key_env: tuple[str, ...] = ("OPENAI_API_KEY",)
    """Where the host's API key is usually kept, for the `batchling batches` commands (which
    build a client from the environment to reach a job created earlier)."""

    def applies_to(self, base_url: str) -> bool:
        """Whether a client with this base URL talks to this host."""
        if any(base_url.startswith(prefix.rstrip("/")) for prefix in self.base_urls):
            return True
        hostname = urllib.parse.urlsplit(base_url).hostname or ""
        return any(
            hostname == name or (name.startswith(".") and hostname.endswith(name))
            for name in self.hostnames
        )

    def batch_endpoint(self, path: str) -> str:
        """The line `url` and job `endpoint` for an SDK path."""
        return self.line_url_prefix + path


OPENAI = OpenAICompatibleHost("openai", hostnames=("api.openai.com",))
GROQ = OpenAICompatibleHost(
    "groq",
    hostnames=("api.groq.com",),
    endpoints=frozenset({"/chat/completions"}),
    max_bytes_per_batch=100_000_000,
    api_key_env=("GROQ_API_KEY",),
)
XAI = OpenAICompatibleHost(
    "xai",
    hostnames=("api.x.ai",),
    endpoints=frozenset({"/chat/completions", "/responses"}),
    api_key_env=("XAI_API_KEY",),
)
AZURE = OpenAICompatibleHost(
    "azure",
    hostnames=(".openai.azure.com", ".cognitiveservices.azure.com"),
    endpoints=frozenset({"/chat/completions", "/responses", "/embeddings", "/completions"}),
    line_url_prefix="",
    max_requests_per_batch=100_000,
    # What `AzureOpenAI` reads itself, in its order: a Microsoft Entra ID token wins over a key.
    api_key_env=("AZURE_OPENAI_AD_TOKEN", "AZURE_OPENAI_API_KEY"),
)
TOGETHER = OpenAICompatibleHost(
    "together",
    hostnames=("api.together.xyz", "api.together.ai"),
    # Together's Batch API serves chat completions (and audio transcriptions/translations, whose
    # multipart bodies are no batch line here). Older Together SDKs also listed `/v1/completions`;
    # today's API reference does not [UNVERIFIED whether it is still accepted], so it is left out.
    endpoints=frozenset({"/chat/completions"}),
    # docs.together.ai/docs/inference/batch/overview: up to 50,000 requests per batch and
    # 100 MB per input file.
    max_requests_per_batch=50_000,
    max_bytes_per_batch=100_000_000,
    batch_api=TogetherBatchAPI(),
    api_key_env=("TOGETHER_API_KEY",),
)
GENERIC = OpenAICompatibleHost("openai-compatible")
"""Any other host: assumed to serve OpenAI's Batch API as OpenAI does."""

_lock = threading.Lock()
_registered: list[OpenAICompatibleHost] = []
_resolved: dict[tuple[str, bool], OpenAICompatibleHost] = {}
"""`host_for` answers, forgotten whenever the registrations change."""
_BUILT_IN = (OPENAI, GROQ, XAI, AZURE, TOGETHER)


def register_openai_compatible_host(host: OpenAICompatibleHost) -> None:
    """Declare a host (or override a built-in profile): later registrations win."""
    with _lock:
        _registered.insert(0, host)
        _resolved.clear()


def unregister_openai_compatible_host(host: OpenAICompatibleHost) -> None:
    """Undo `register_openai_compatible_host`."""
    with _lock:
        if host in _registered:
            _registered.remove(host)
        _resolved.clear()


def host_for(base_url: str, *, azure_client: bool = False) -> OpenAICompatibleHost:
    """The profile for a client's base URL (Azure clients are Azure wherever they point)."""
    key = (base_url, azure_client)
    found = _resolved.get(key)
    if found is not None:
        return found
    with _lock:
        candidates = [*_registered, *_BUILT_IN]
        found = next((host for host in candidates if host.applies_to(base_url)), None)
        if found is None:
            found = AZURE if azure_client else GENERIC
        _resolved[key] = found
    return found
