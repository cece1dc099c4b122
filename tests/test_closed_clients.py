"""A job is followed with its callers' own clients: one caller closing its client early does not
strand the others, and when every client is closed the callers are told, not left waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from mistralai.client import Mistral

import batchling
from batchling.testing import FakeProviderServer
from tests.conftest import fast_batchify


async def ask_anthropic(server: FakeProviderServer, text: str) -> str:
    async with anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key="k") as client:
        message = await client.messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": text}]
        )
    block = message.content[0]
    assert isinstance(block, anthropic.types.TextBlock)
    return block.text


async def ask_openai(server: FakeProviderServer, text: str) -> str:
    async with openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="k") as client:
        completion = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
        )
    return completion.choices[0].message.content or ""


async def ask_gemini(server: FakeProviderServer, text: str) -> str:
    options = genai.types.HttpOptions(base_url=server.gemini_base_url)
    client = genai.Client(api_key="k", http_options=options)
    try:
        reply = await client.aio.models.generate_content(model="gemini-2.5-flash", contents=text)
    finally:
        await client.aio.aclose()
    return reply.text or ""


async def ask_mistral(server: FakeProviderServer, text: str) -> str:
    async with Mistral(api_key="k", server_url=server.mistral_base_url) as client:
        reply = await client.chat.complete_async(
            model="mistral-small-latest", messages=[{"role": "user", "content": text}]
        )
    content = reply.choices[0].message.content
    assert isinstance(content, str)
    return content


Ask = Callable[[FakeProviderServer, str], Awaitable[str]]


@pytest.mark.parametrize(
    "ask",
    [ask_anthropic, ask_openai, ask_gemini, ask_mistral],
    ids=["anthropic", "openai", "gemini", "mistral"],
)
async def test_the_first_caller_closing_its_own_client_does_not_strand_the_others(
    ask: Ask,
) -> None:
    with FakeProviderServer(batch_delay_seconds=0.5) as server:
        async with fast_batchify() as ctx:
            first = asyncio.create_task(ask(server, "gives up"))
            second = asyncio.create_task(ask(server, "waits"))
            while not ctx.report.batch_ids:  # created, and its creation answered
                await asyncio.sleep(0.01)
            first.cancel()  # its `async with` closes the client the job was created with
            assert await second == "echo: waits"
        assert server.stats.batches_created == 1


async def test_with_every_client_closed_the_callers_get_client_closed_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with FakeProviderServer(batch_delay_seconds=0.5) as server:
        client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="k")

        def ask() -> Awaitable[Any]:
            return client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "left"}]
            )

        async with fast_batchify() as first:
            waiting = asyncio.create_task(ask())
            while not first.report.batch_ids:  # created, and its creation answered
                await asyncio.sleep(0.01)
            await client.close()
            with pytest.raises(batchling.ClientClosedError, match="run the program again"):
                await waiting
        (batch_id,) = first.report.batch_ids
        assert first.report.left_running_batch_ids == [batch_id]
        assert f"batchling batches cancel {batch_id}" in caplog.text
        # The job stayed journaled: a re-run with an open client collects it, paying nothing.
        client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="k")
        async with fast_batchify() as ctx:
            reply = await ask()
        await client.close()
    assert reply.choices[0].message.content == "echo: left"
    assert server.stats.batches_created == 1
    assert ctx.report.resumed_batch_ids == [server.batches[0].id]
