"""Helpers for driving the fake provider server with the real google-genai SDK."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
from google import genai
from google.genai import types
from google.genai.client import AsyncClient

from batchling.testing import FakeProviderServer

MODEL = "gemini-2.0-flash"
DONE_STATES = frozenset(
    {
        types.JobState.JOB_STATE_SUCCEEDED,
        types.JobState.JOB_STATE_FAILED,
        types.JobState.JOB_STATE_CANCELLED,
        types.JobState.JOB_STATE_EXPIRED,
    }
)


@contextlib.asynccontextmanager
async def gemini_client_for(
    server: FakeProviderServer, **http_options: Any
) -> AsyncIterator[AsyncClient]:
    """``genai.Client(...).aio`` pointed at ``server``; both transports closed on exit."""
    client = genai.Client(
        api_key="test-key",
        http_options=types.HttpOptions(base_url=server.gemini_base_url, **http_options),
    )
    try:
        yield client.aio
    finally:
        await client.aio.aclose()
        client.close()


def fast_retries(attempts: int = 3) -> types.HttpRetryOptions:
    """Retry options without back-off (google-genai does not retry unless told to)."""
    return types.HttpRetryOptions(attempts=attempts, initial_delay=0.0, max_delay=0.0, jitter=0.0)


def inline_request(text: str, **metadata: str) -> dict[str, Any]:
    item: dict[str, Any] = {"contents": [{"parts": [{"text": text}], "role": "user"}]}
    if metadata:
        item["metadata"] = metadata
    return item


def file_line(key: str, text: str) -> dict[str, Any]:
    return {"key": key, "request": {"contents": [{"parts": [{"text": text}], "role": "user"}]}}


async def wait_done(client: AsyncClient, name: str, limit_seconds: float = 10.0) -> types.BatchJob:
    async with asyncio.timeout(limit_seconds):
        while True:
            job = await client.batches.get(name=name)
            if job.state in DONE_STATES:
                return job
            await asyncio.sleep(0.02)


async def raw_operation(server: FakeProviderServer, name: str) -> dict[str, Any]:
    """The Operation JSON of a batch, as the wire carries it (the SDK drops some fields)."""
    async with httpx2.AsyncClient(base_url=server.url) as http:
        answer = await http.get(f"/v1/{name}", headers={"x-goog-api-key": "test-key"})
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def jsonl(items: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def parse_jsonl(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]
