"""A toy provider SDK: a real-time `complete` call and a Batch API, both served in memory.

It stands in for a real vendor SDK that batchling knows nothing about. The "service" lives in
this module: `complete` answers at once (and counts the real-time call), `client.batches`
creates, polls, lists, cancels and reads batch jobs kept in the module-level `JOBS` dict. A
job finishes `PROCESSING_SECONDS` after it was created. Both paths answer a request the same
way (see `_serve`): `"fail: ..."` texts are refused with a 400 error.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import itertools
import time
from collections.abc import Mapping, Sequence
from typing import Any

DEFAULT_BASE_URL = "memory://echo/v1"
PROCESSING_SECONDS = 0.05
"""How long a batch job takes to finish after it was created."""


@dataclasses.dataclass
class Stats:
    """What the in-memory service saw (tests read and reset it)."""

    realtime_calls: int = 0
    batch_jobs_created: int = 0


@dataclasses.dataclass
class Faults:
    """Failures the service will simulate (tests set them)."""

    lose_next_create_response: bool = False
    """The next batch create succeeds, but the connection drops before its answer arrives."""


stats = Stats()
faults = Faults()
JOBS: dict[str, EchoBatchJob] = {}
_job_numbers = itertools.count(1)


@dataclasses.dataclass(frozen=True)
class EchoReply:
    """What `complete` returns."""

    text: str
    model: str
    characters: int

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> EchoReply:
        """Parse the service's JSON answer (the SDK's own response parsing)."""
        return cls(text=str(body["text"]), model=str(body["model"]), characters=body["characters"])


class EchoError(Exception):
    """The service refused a request."""

    def __init__(self, message: str, *, status_code: int, body: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


class EchoBadRequestError(EchoError):
    """A 4xx answer."""


class EchoServerError(EchoError):
    """A 5xx answer."""


class EchoConnectionError(Exception):
    """The connection to the service failed; the request may or may not have been processed."""


def error_from_response(status_code: int, body: Any) -> EchoError:
    """The exception the SDK raises for an error answer (the SDK's own error mapping)."""
    message = str(body.get("error", {}).get("message", "")) if isinstance(body, Mapping) else ""
    cls = EchoServerError if status_code >= 500 else EchoBadRequestError
    return cls(message or f"HTTP {status_code}", status_code=status_code, body=body)


@dataclasses.dataclass
class EchoBatchJob:
    """A batch job as the service reports it."""

    id: str
    owner: str
    """The API key the job was created with (the service keeps it; batchling never does)."""
    requests: list[dict[str, Any]]
    metadata: dict[str, str]
    created_at: float
    cancelled: bool = False

    @property
    def status(self) -> str:
        if self.cancelled:
            return "cancelled"
        if time.monotonic() - self.created_at < PROCESSING_SECONDS:
            return "in_progress"
        return "completed"

    @property
    def request_counts(self) -> dict[str, int]:
        done = self.status == "completed"
        failed = sum(1 for request in self.requests if _serve(request["body"])[0] >= 400)
        return {
            "total": len(self.requests),
            "completed": len(self.requests) - failed if done else 0,
            "failed": failed if done else 0,
        }


def _serve(body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    """How the service answers one request: `(status code, JSON body)`."""
    text = str(body.get("text", ""))
    if text.startswith("fail:"):
        message = f"refused: {text.removeprefix('fail:').strip()}"
        return 400, {"error": {"type": "invalid_request", "message": message}}
    return 200, {"text": f"echo: {text}", "model": str(body["model"]), "characters": len(text)}


class AsyncBatches:
    """`client.batches`: the service's Batch API."""

    def __init__(self, client: AsyncEchoClient) -> None:
        self._client = client

    def _job(self, batch_id: str) -> EchoBatchJob:
        job = JOBS.get(batch_id)
        if job is None or job.owner != self._client.api_key:
            raise EchoBadRequestError(f"no batch {batch_id}", status_code=404)
        return job

    async def create(
        self, *, requests: Sequence[Mapping[str, Any]], metadata: Mapping[str, str] | None = None
    ) -> EchoBatchJob:
        """Create a job from `{"custom_id": ..., "body": {...}}` requests."""
        await asyncio.sleep(0.001)
        job = EchoBatchJob(
            id=f"echobatch_{next(_job_numbers)}",
            owner=self._client.api_key,
            requests=[{"custom_id": r["custom_id"], "body": dict(r["body"])} for r in requests],
            metadata=dict(metadata or {}),
            created_at=time.monotonic(),
        )
        JOBS[job.id] = job
        stats.batch_jobs_created += 1
        if faults.lose_next_create_response:
            faults.lose_next_create_response = False
            raise EchoConnectionError("connection reset while reading the response")
        return job

    async def retrieve(self, batch_id: str) -> EchoBatchJob:
        await asyncio.sleep(0.001)
        return self._job(batch_id)

    async def list(self) -> list[EchoBatchJob]:
        """This key's jobs, newest first."""
        await asyncio.sleep(0.001)
        mine = [job for job in JOBS.values() if job.owner == self._client.api_key]
        return sorted(mine, key=lambda job: job.created_at, reverse=True)

    async def cancel(self, batch_id: str) -> EchoBatchJob:
        await asyncio.sleep(0.001)
        job = self._job(batch_id)
        if job.status == "in_progress":
            job.cancelled = True
        return job

    async def results(self, batch_id: str) -> builtins.list[dict[str, Any]]:
        """One `{"custom_id", "status_code", "body"}` line per request of a completed job."""
        await asyncio.sleep(0.001)
        job = self._job(batch_id)
        if job.status != "completed":
            raise EchoBadRequestError(f"batch {batch_id} is {job.status}", status_code=409)
        lines = []
        for request in job.requests:
            status_code, body = _serve(request["body"])
            lines.append(
                {"custom_id": request["custom_id"], "status_code": status_code, "body": body}
            )
        return lines


class AsyncEchoClient:
    """The toy SDK's async client."""

    def __init__(
        self, *, api_key: str = "echo-key", model: str = "echo-1", base_url: str = DEFAULT_BASE_URL
    ) -> None:
        self.api_key = api_key
        self.model = model
        self.base_url = base_url
        self.batches = AsyncBatches(self)

    async def complete(self, text: str, *, priority: str = "standard") -> EchoReply:
        """Echo `text` back, in real time.

        `priority="now"` asks the service to jump its queue (the Batch API cannot honour it).
        """
        stats.realtime_calls += 1
        await asyncio.sleep(0)
        status_code, body = _serve({"model": self.model, "text": text})
        if status_code >= 400:
            raise error_from_response(status_code, body)
        return EchoReply.from_json(body)


def reset() -> None:
    """Forget every job and count (for tests)."""
    JOBS.clear()
    stats.realtime_calls = 0
    stats.batch_jobs_created = 0
    faults.lose_next_create_response = False
