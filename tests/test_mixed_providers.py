"""One `batchify()` block gathering OpenAI, Anthropic and Gemini calls at once."""

from __future__ import annotations

import asyncio

import anthropic
import openai
from google import genai

from batchling.testing import FakeProviderServer
from tests.conftest import fast_batchify


async def test_one_block_with_three_sdks_makes_three_batches_and_answers_everyone(
    client: openai.AsyncOpenAI,
    anthropic_client: anthropic.AsyncAnthropic,
    gemini_client: genai.Client,
    fake_server: FakeProviderServer,
) -> None:
    async def via_openai(i: int) -> str:
        reply = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"o{i}"}]
        )
        return reply.choices[0].message.content or ""

    async def via_anthropic(i: int) -> str:
        reply = await anthropic_client.messages.create(
            model="claude-sonnet-5-5",
            max_tokens=20,
            messages=[{"role": "user", "content": f"a{i}"}],
        )
        return "".join(block.text for block in reply.content if block.type == "text")

    async def via_gemini(i: int) -> str:
        reply = await gemini_client.aio.models.generate_content(
            model="gemini-2.5-flash", contents=f"g{i}"
        )
        return reply.text or ""

    calls = [make(i) for i in range(20) for make in (via_openai, via_anthropic, via_gemini)]
    async with fast_batchify() as ctx:
        replies = await asyncio.gather(*calls)
    expected = [f"echo: {p}{i}" for i in range(20) for p in "oag"]
    assert replies == expected
    assert sorted(batch.provider for batch in fake_server.batches) == [
        "anthropic",
        "gemini",
        "openai",
    ]
    assert fake_server.stats.lines_per_batch == [20, 20, 20]
    assert fake_server.stats.realtime_calls == 0
    assert ctx.report.batched == 60
