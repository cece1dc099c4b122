"""Helpers for driving the fake provider server with the real anthropic SDK."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse

MODEL = "claude-sonnet-5-5"


def params(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def batch_request(custom_id: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "params": params(text, **extra)}


async def wait_ended(
    client: anthropic.AsyncAnthropic, batch_id: str, limit_seconds: float = 10.0
) -> MessageBatch:
    async with asyncio.timeout(limit_seconds):
        while True:
            batch = await client.messages.batches.retrieve(batch_id)
            if batch.processing_status == "ended":
                return batch
            await asyncio.sleep(0.02)


async def results_by_id(
    client: anthropic.AsyncAnthropic, batch_id: str
) -> dict[str, MessageBatchIndividualResponse]:
    decoder = await client.messages.batches.results(batch_id)
    return {item.custom_id: item async for item in decoder}
