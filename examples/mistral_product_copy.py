"""Product copy with Mistral, batched through Mistral's Batch API.

Run `python examples/mistral_product_copy.py`: it starts batchling's bundled fake provider on
loopback (no key, no network) and prints the results and what crossed the wire. Set
MISTRAL_API_KEY and BATCHLING_EXAMPLE_LIVE=1 to run it against Mistral for real.

The code is plain `mistralai`: `chat.complete_async` for titles and `chat.parse_async` for a
structured spec sheet. Inside `batchify()` both go into Mistral batch jobs (one uploaded JSONL
file and one job per endpoint and model), and each call still returns the SDK's own
`ChatCompletionResponse` / `ParsedChatCompletionResponse`.
"""

from __future__ import annotations

import asyncio
import os

import pydantic
from mistralai.client import Mistral

from batchling import batchify
from batchling.testing import FakeProviderServer

MODEL = "mistral-small-latest"


class SpecSheet(pydantic.BaseModel):
    title: str
    material: str


async def title(client: Mistral, product: str) -> str:
    reply = await client.chat.complete_async(
        model=MODEL,
        messages=[
            {"role": "system", "content": "You write short, factual product titles."},
            {"role": "user", "content": product},
        ],
        temperature=0.2,
        max_tokens=40,
    )
    content = reply.choices[0].message.content
    return content if isinstance(content, str) else ""


async def spec_sheet(client: Mistral, product: str) -> SpecSheet | None:
    reply = await client.chat.parse_async(
        SpecSheet, model=MODEL, messages=[{"role": "user", "content": product}]
    )
    return reply.choices[0].message.parsed if reply.choices[0].message else None


async def main(client: Mistral, *, fast: bool) -> tuple[list[str], list[SpecSheet | None]]:
    products = [f"linen curtain, {length} cm" for length in range(100, 300, 2)]
    timing = {"batch_window_seconds": 0.2, "poll_interval_seconds": 0.2} if fast else {}
    async with batchify(**timing):
        titles = asyncio.gather(*(title(client, product) for product in products))
        sheets = asyncio.gather(*(spec_sheet(client, product) for product in products[:10]))
        return await titles, await sheets


async def run() -> None:
    if os.environ.get("BATCHLING_EXAMPLE_LIVE") == "1":
        async with Mistral(api_key=os.environ["MISTRAL_API_KEY"]) as client:
            titles, sheets = await main(client, fast=False)
        print(*titles[:5], sheets[0], sep="\n")
        return
    with FakeProviderServer() as server:
        async with Mistral(api_key="offline", server_url=server.mistral_base_url) as client:
            titles, sheets = await main(client, fast=True)
        print(*titles[:3], "...", sheets[0], sep="\n")
        stats = server.stats.provider("mistral")
        print(
            f"{len(titles) + len(sheets)} results; batch jobs created: {stats.batches_created} "
            f"({stats.lines_per_batch} requests); real-time calls: {server.stats.realtime_calls}"
        )


if __name__ == "__main__":
    asyncio.run(run())
