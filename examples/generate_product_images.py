"""The seed's example, made runnable offline: product copy for new products, batched.

Run it with `python examples/generate_product_images.py`. It starts batchling's bundled fake
OpenAI server on loopback (no API key, no network), makes one `chat.completions.create` call per
product inside `batchify()`, and prints the results and what crossed the wire: one batch job,
no real-time call. Set OPENAI_API_KEY and BATCHLING_EXAMPLE_LIVE=1 to run it against OpenAI
for real (it then waits for the real Batch API, up to 24 h).
"""

from __future__ import annotations

import asyncio
import os

from openai import AsyncOpenAI

from batchling import batchify
from batchling.testing import FakeProviderServer


async def get_new_product_descriptions() -> list[str]:
    """Fetches pending product descriptions having no image yet."""
    return [f"hand-made oak chair, model {n}" for n in range(1, 201)]


async def generate_image_prompt(client: AsyncOpenAI, text: str) -> str:
    reply = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "Write a one-line prompt for a product photo."},
            {"role": "user", "content": text},
        ],
    )
    return reply.choices[0].message.content or ""


async def main(client: AsyncOpenAI, *, fast: bool) -> list[str]:
    descriptions = await get_new_product_descriptions()
    tasks = [generate_image_prompt(client, text) for text in descriptions]
    timing = {"batch_window_seconds": 0.2, "poll_interval_seconds": 0.2} if fast else {}
    async with batchify(**timing):
        return await asyncio.gather(*tasks)


async def run() -> None:
    if os.environ.get("BATCHLING_EXAMPLE_LIVE") == "1":
        async with AsyncOpenAI() as client:
            prompts = await main(client, fast=False)
        print(*prompts[:5], sep="\n")
        return
    with FakeProviderServer() as server:
        async with AsyncOpenAI(base_url=server.openai_base_url, api_key="offline") as client:
            prompts = await main(client, fast=True)
        print(*prompts[:3], "...", sep="\n")
        print(
            f"{len(prompts)} results; batch jobs created: {server.stats.batches_created} "
            f"({server.stats.lines_per_batch} lines); real-time calls: "
            f"{server.stats.realtime_calls}"
        )


if __name__ == "__main__":
    asyncio.run(run())
