"""Helpers for driving the fake provider server with the real openai SDK."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import openai
from openai.types import Batch

from batchling.testing.jsonl import batch_line, to_jsonl

TERMINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})


def chat_body(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


async def upload_jsonl(client: openai.AsyncOpenAI, data: bytes) -> str:
    uploaded = await client.files.create(
        file=("b.jsonl", data, "application/jsonl"), purpose="batch"
    )
    return uploaded.id


async def submit_batch(
    client: openai.AsyncOpenAI,
    bodies: Mapping[str, Mapping[str, Any]],
    endpoint: str = "/v1/chat/completions",
    **create_kwargs: Any,
) -> Batch:
    """Upload one line per ``custom_id -> body`` and create a batch for ``endpoint``."""
    data = to_jsonl(batch_line(cid, endpoint, body) for cid, body in bodies.items())
    return await create_batch(client, await upload_jsonl(client, data), endpoint, **create_kwargs)


async def create_batch(
    client: openai.AsyncOpenAI,
    file_id: str,
    endpoint: str,
    completion_window: str = "24h",
    **create_kwargs: Any,
) -> Batch:
    return await client.batches.create(
        input_file_id=file_id,
        endpoint=endpoint,  # type: ignore[arg-type]
        completion_window=completion_window,  # type: ignore[arg-type]
        **create_kwargs,
    )


async def wait_terminal(
    client: openai.AsyncOpenAI, batch_id: str, limit_seconds: float = 10.0
) -> Batch:
    async with asyncio.timeout(limit_seconds):
        while True:
            batch = await client.batches.retrieve(batch_id)
            if batch.status in TERMINAL_STATUSES:
                return batch
            await asyncio.sleep(0.02)


async def file_lines(client: openai.AsyncOpenAI, file_id: str | None) -> list[dict[str, Any]]:
    """Parsed JSONL lines of a result file ([] for a null file id)."""
    if file_id is None:
        return []
    content = await client.files.content(file_id)
    return [json.loads(line) for line in content.text.splitlines() if line.strip()]
