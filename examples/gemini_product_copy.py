"""Product copy with Gemini, batched through the Gemini API's Batch Mode.

Run `python examples/gemini_product_copy.py`: it starts batchling's bundled fake provider on
loopback (no key, no network) and prints the results and what crossed the wire. Set
GEMINI_API_KEY and BATCHLING_EXAMPLE_LIVE=1 to run it against Google for real.
"""

from __future__ import annotations

import asyncio
import os

from google import genai
from google.genai import types

from batchling import batchify
from batchling.testing import FakeProviderServer


async def describe(client: genai.Client, product: str) -> str:
    reply = await client.aio.models.generate_content(
        model="gemini-2.5-flash",
        contents=product,
        config=types.GenerateContentConfig(
            system_instruction="You write short, factual product titles.", temperature=0.2
        ),
    )
    return reply.text or ""


async def main(client: genai.Client, *, fast: bool) -> list[str]:
    products = [f"linen curtain, {length} cm" for length in range(100, 300, 2)]
    timing = {"batch_window_seconds": 0.2, "poll_interval_seconds": 0.2} if fast else {}
    async with batchify(**timing):
        return await asyncio.gather(*(describe(client, product) for product in products))


async def run() -> None:
    if os.environ.get("BATCHLING_EXAMPLE_LIVE") == "1":
        client = genai.Client()
        print(*(await main(client, fast=False))[:5], sep="\n")
        return
    with FakeProviderServer() as server:
        client = genai.Client(
            api_key="offline", http_options=types.HttpOptions(base_url=server.gemini_base_url)
        )
        try:
            titles = await main(client, fast=True)
        finally:
            await client.aio.aclose()
        print(*titles[:3], "...", sep="\n")
        stats = server.stats.provider("gemini")
        print(
            f"{len(titles)} results; batch jobs created: {stats.batches_created} "
            f"({stats.lines_per_batch} requests); real-time calls: {server.stats.realtime_calls}"
        )


if __name__ == "__main__":
    asyncio.run(run())
