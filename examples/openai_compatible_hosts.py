"""Groq, xAI, Azure OpenAI and Together AI through the `openai` SDK, batched, in one block.

Run `python examples/openai_compatible_hosts.py`: it starts batchling's bundled fake provider,
which serves each host's Batch API under its own prefix (Groq, xAI and Azure speak OpenAI's
Files + Batches; Together has its own upload flow and job format), and prints what crossed the
wire. Against the real hosts, use their base URLs (`https://api.groq.com/openai/v1`,
`https://api.x.ai/v1`, `https://api.together.xyz/v1`) or
`AsyncAzureOpenAI(azure_endpoint=..., api_version=...)` and your keys: batchling recognises them
by host name, and each host's calls become their own batch job, created with that host's client.
"""

from __future__ import annotations

import asyncio
import dataclasses

from openai import AsyncAzureOpenAI, AsyncOpenAI

from batchling import batchify
from batchling.providers import openai_compatible
from batchling.testing import FakeProviderServer


async def ask(client: AsyncOpenAI, model: str, text: str) -> str:
    reply = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}]
    )
    return reply.choices[0].message.content or ""


async def main(server: FakeProviderServer) -> None:
    groq = AsyncOpenAI(base_url=server.groq_base_url, api_key="offline")
    xai = AsyncOpenAI(base_url=server.xai_base_url, api_key="offline")
    together = AsyncOpenAI(base_url=server.together_base_url, api_key="offline")
    # Azure: `model` is your deployment's name.
    azure = AsyncAzureOpenAI(
        azure_endpoint=server.azure_endpoint, api_key="offline", api_version="2024-10-21"
    )
    calls = [
        *(ask(groq, "llama-3.3-70b-versatile", f"groq {i}") for i in range(20)),
        *(ask(xai, "grok-4", f"xai {i}") for i in range(20)),
        *(ask(azure, "my-gpt-4o-deployment", f"azure {i}") for i in range(20)),
        *(
            ask(together, "meta-llama/Llama-3.3-70B-Instruct-Turbo", f"together {i}")
            for i in range(20)
        ),
    ]
    async with batchify(batch_window_seconds=0.2, poll_interval_seconds=0.2, progress=False):
        replies = await asyncio.gather(*calls)
    for client in (groq, xai, azure, together):
        await client.close()
    print(*replies[::20], sep="\n")
    for name in ("groq", "xai", "azure", "together"):
        stats = server.stats.provider(name)
        print(f"{name}: {stats.batches_created} batch job(s), {stats.lines_per_batch} lines")
    print(f"real-time calls: {server.stats.realtime_calls}")


if __name__ == "__main__":
    with FakeProviderServer() as fake:
        # The fake hosts live on 127.0.0.1, not on the hosts' real names: point the built-in
        # profiles at them, as you would for a proxy or gateway in front of a real host.
        for profile, base_url in [
            (openai_compatible.GROQ, fake.groq_base_url),
            (openai_compatible.XAI, fake.xai_base_url),
            (openai_compatible.TOGETHER, fake.together_base_url),
        ]:
            openai_compatible.register_openai_compatible_host(
                dataclasses.replace(profile, base_urls=(base_url,))
            )
        asyncio.run(main(fake))
