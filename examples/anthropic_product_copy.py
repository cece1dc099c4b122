"""Product copy with Claude, batched through Anthropic's Message Batches API.

Run `python examples/anthropic_product_copy.py`: it starts batchling's bundled fake provider on
loopback (no key, no network) and prints the results and what crossed the wire. Set
ANTHROPIC_API_KEY and BATCHLING_EXAMPLE_LIVE=1 to run it against Anthropic for real.
"""

from __future__ import annotations

import asyncio
import os

import pydantic
from anthropic import AsyncAnthropic

from batchling import batchify
from batchling.testing import FakeProviderServer


class ProductCopy(pydantic.BaseModel):
    title: str
    word_count: int


async def describe(client: AsyncAnthropic, product: str) -> ProductCopy | None:
    reply = await client.messages.parse(
        model="claude-sonnet-5-5",
        max_tokens=300,
        system="You write short, factual product titles.",
        messages=[{"role": "user", "content": product}],
        output_format=ProductCopy,
    )
    return reply.parsed_output


async def main(client: AsyncAnthropic, *, fast: bool) -> list[ProductCopy | None]:
    products = [f"walnut desk, {width} cm" for width in range(100, 200, 2)]
    timing = {"batch_window_seconds": 0.2, "poll_interval_seconds": 0.2} if fast else {}
    async with batchify(**timing):
        return await asyncio.gather(*(describe(client, product) for product in products))


async def run() -> None:
    if os.environ.get("BATCHLING_EXAMPLE_LIVE") == "1":
        async with AsyncAnthropic() as client:
            print(*(await main(client, fast=False))[:5], sep="\n")
        return
    with FakeProviderServer() as server:
        async with AsyncAnthropic(base_url=server.anthropic_base_url, api_key="offline") as client:
            copies = await main(client, fast=True)
        print(*copies[:3], "...", sep="\n")
        stats = server.stats.provider("anthropic")
        print(
            f"{len(copies)} results; message batches created: {stats.batches_created} "
            f"({stats.lines_per_batch} requests); real-time calls: {server.stats.realtime_calls}"
        )


if __name__ == "__main__":
    asyncio.run(run())
