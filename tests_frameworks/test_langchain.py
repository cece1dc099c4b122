"""LangChain chat models (`langchain-openai`, `langchain-anthropic`) inside `batchify()`.

LangChain's `ChatOpenAI` calls `AsyncOpenAI.chat.completions.with_raw_response.create` (or
`.responses...` with `use_responses_api=True`), its `ChatAnthropic` calls
`AsyncAnthropic.messages.create`: both are official-SDK calls, so batchling batches them without
any change to LangChain. Streaming (`astream`, `streaming=True`) cannot come from a Batch API and
is passed through (or refused with `strict=True`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pydantic
import pytest

import batchling
from batchling.testing import FakeProviderServer
from tests_frameworks.conftest import CONCURRENCY, assert_batched, fast_batchify

pytest.importorskip("langchain_openai")
pytest.importorskip("langchain_anthropic")

from langchain_anthropic import ChatAnthropic
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_openai import ChatOpenAI


class Product(pydantic.BaseModel):
    name: str
    words: int


PROMPTS = [f"describe product number {i}" for i in range(CONCURRENCY)]


def chat_openai(server: FakeProviderServer, **kwargs: Any) -> ChatOpenAI:
    return ChatOpenAI(
        model="gpt-4o-mini", base_url=server.openai_base_url, api_key="sk-test", **kwargs
    )


def chat_anthropic(server: FakeProviderServer, **kwargs: Any) -> ChatAnthropic:
    return ChatAnthropic(
        model="claude-sonnet-4-6",
        base_url=server.anthropic_base_url,
        api_key="sk-ant-test",
        **kwargs,
    )


def assert_echo_messages(replies: list[Any]) -> None:
    for prompt, reply in zip(PROMPTS, replies, strict=True):
        assert type(reply) is AIMessage
        assert reply.content == f"echo: {prompt}"
        assert reply.usage_metadata is not None
        assert reply.usage_metadata["input_tokens"] == len(prompt.split())


def assert_products(replies: list[Any]) -> None:
    assert replies == [Product(name=prompt, words=len(prompt.split())) for prompt in PROMPTS]


# ------------------------------------------------------------------------------ ChatOpenAI


async def test_chat_openai_concurrent_ainvoke_is_one_batch(fake_server: FakeProviderServer) -> None:
    llm = chat_openai(fake_server)
    async with fast_batchify() as ctx:
        replies = await asyncio.gather(*(llm.ainvoke(prompt) for prompt in PROMPTS))

    assert_batched(fake_server, openai=[CONCURRENCY])
    assert_echo_messages(replies)
    assert replies[0].response_metadata["model_name"] == "gpt-4o-mini"
    assert replies[0].response_metadata["finish_reason"] == "stop"
    assert ctx.report.batched == CONCURRENCY
    assert fake_server.batches[0].endpoint == "/v1/chat/completions"


async def test_chat_openai_abatch_is_one_batch(fake_server: FakeProviderServer) -> None:
    llm = chat_openai(fake_server, temperature=0.2, max_tokens=50)
    async with fast_batchify():
        replies = await llm.abatch(PROMPTS)

    assert_batched(fake_server, openai=[CONCURRENCY])
    assert_echo_messages(replies)
    body = fake_server.batches[0].lines[0]["body"]
    assert body["temperature"] == 0.2
    assert body["max_completion_tokens"] == 50
    assert body["stream"] is False


async def test_abatch_max_concurrency_makes_one_job_per_wave(
    fake_server: FakeProviderServer,
) -> None:
    """`max_concurrency` caps calls in flight, so each wave waits for the previous job.

    Inside `batchify()` every wave is a batch job of its own (hours apart with a real provider):
    leave `max_concurrency` unset there, the Batch API has no rate limit to protect.
    """
    llm = chat_openai(fake_server)
    async with fast_batchify():
        replies = await llm.abatch(PROMPTS, config={"max_concurrency": CONCURRENCY // 3})

    assert_batched(fake_server, openai=[CONCURRENCY // 3] * 3)
    assert_echo_messages(replies)


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
async def test_chat_openai_structured_output_is_batched(
    fake_server: FakeProviderServer, method: str
) -> None:
    structured = chat_openai(fake_server).with_structured_output(Product, method=method)
    async with fast_batchify():
        replies = await structured.abatch(PROMPTS)

    assert_batched(fake_server, openai=[CONCURRENCY])
    assert_products(replies)
    body = fake_server.batches[0].lines[0]["body"]
    if method == "json_schema":
        assert body["response_format"]["type"] == "json_schema"
    else:
        assert body["tool_choice"]["function"]["name"] == "Product"


async def test_chat_openai_structured_output_include_raw(fake_server: FakeProviderServer) -> None:
    structured = chat_openai(fake_server).with_structured_output(Product, include_raw=True)
    async with fast_batchify():
        replies = await asyncio.gather(*(structured.ainvoke(prompt) for prompt in PROMPTS))

    assert_batched(fake_server, openai=[CONCURRENCY])
    assert_products([reply["parsed"] for reply in replies])
    assert all(type(reply["raw"]) is AIMessage for reply in replies)
    assert all(reply["parsing_error"] is None for reply in replies)


async def test_chat_openai_responses_api_is_batched(fake_server: FakeProviderServer) -> None:
    llm = chat_openai(fake_server, use_responses_api=True)
    async with fast_batchify():
        replies = await llm.abatch(PROMPTS)

    assert_batched(fake_server, openai=[CONCURRENCY])
    assert fake_server.batches[0].endpoint == "/v1/responses"
    for prompt, reply in zip(PROMPTS, replies, strict=True):
        assert type(reply) is AIMessage
        assert reply.text == f"echo: {prompt}"


async def test_chat_openai_streaming_is_passed_through_or_refused(
    fake_server: FakeProviderServer,
) -> None:
    llm = chat_openai(fake_server)
    with pytest.warns(batchling.NotBatchedWarning, match="stream"):
        async with fast_batchify() as ctx:
            chunks = [chunk async for chunk in llm.astream("hello there")]
    assert all(isinstance(chunk, AIMessageChunk) for chunk in chunks)
    assert "".join(str(chunk.content) for chunk in chunks) == "echo: hello there"
    assert ctx.report.passed_through["streaming"] == 1
    assert fake_server.stats.realtime_calls == 1

    with pytest.raises(batchling.NotBatchableError, match="stream"):
        async with fast_batchify(strict=True):
            await chat_openai(fake_server, streaming=True).ainvoke("hello there")
    assert fake_server.stats.realtime_calls == 1  # refused: nothing sent at full price
    assert fake_server.stats.batches_created == 0


# ------------------------------------------------------------------------------ ChatAnthropic


async def test_chat_anthropic_concurrent_ainvoke_is_one_batch(
    fake_server: FakeProviderServer,
) -> None:
    llm = chat_anthropic(fake_server)
    async with fast_batchify() as ctx:
        replies = await asyncio.gather(*(llm.ainvoke(prompt) for prompt in PROMPTS))

    assert_batched(fake_server, anthropic=[CONCURRENCY])
    assert_echo_messages(replies)
    assert replies[0].response_metadata["model_name"] == "claude-sonnet-4-6"
    assert replies[0].response_metadata["usage"]["service_tier"] == "batch"
    assert ctx.report.batched == CONCURRENCY
    # LangChain's default max_tokens is large enough that the SDK would refuse a non-streaming
    # real-time call; inside batchify() the batched call is allowed.
    assert fake_server.batches[0].lines[0]["params"]["max_tokens"] >= 8192


async def test_chat_anthropic_abatch_is_one_batch(fake_server: FakeProviderServer) -> None:
    llm = chat_anthropic(fake_server, max_tokens=100, temperature=0.1)
    async with fast_batchify():
        replies = await llm.abatch(PROMPTS)

    assert_batched(fake_server, anthropic=[CONCURRENCY])
    assert_echo_messages(replies)
    params = fake_server.batches[0].lines[0]["params"]
    assert params["max_tokens"] == 100
    assert params["temperature"] == 0.1


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
async def test_chat_anthropic_structured_output_is_batched(
    fake_server: FakeProviderServer, method: str
) -> None:
    structured = chat_anthropic(fake_server).with_structured_output(Product, method=method)
    async with fast_batchify():
        replies = await structured.abatch(PROMPTS)

    assert_batched(fake_server, anthropic=[CONCURRENCY])
    assert_products(replies)
    params = fake_server.batches[0].lines[0]["params"]
    if method == "function_calling":
        assert params["tool_choice"] == {"type": "tool", "name": "Product"}
    else:
        assert params["output_config"]["format"]["type"] == "json_schema"


async def test_chat_anthropic_streaming_is_passed_through_or_refused(
    fake_server: FakeProviderServer,
) -> None:
    llm = chat_anthropic(fake_server, max_tokens=100)
    with pytest.warns(batchling.NotBatchedWarning, match="stream"):
        async with fast_batchify() as ctx:
            chunks = [chunk async for chunk in llm.astream("hello there")]
    assert "".join(str(chunk.content) for chunk in chunks if isinstance(chunk.content, str)) == (
        "echo: hello there"
    )
    assert ctx.report.passed_through["streaming"] == 1
    assert fake_server.stats.realtime_calls == 1

    with pytest.raises(batchling.NotBatchableError, match="stream"):
        async with fast_batchify(strict=True):
            await chat_anthropic(fake_server, max_tokens=100, streaming=True).ainvoke("hi")
    assert fake_server.stats.realtime_calls == 1
    assert fake_server.stats.batches_created == 0


# ------------------------------------------------------------------------------ both at once


async def test_openai_and_anthropic_chains_in_one_block_make_one_batch_each(
    fake_server: FakeProviderServer,
) -> None:
    openai_llm = chat_openai(fake_server)
    anthropic_llm = chat_anthropic(fake_server).with_structured_output(Product)
    async with fast_batchify():
        texts, products = await asyncio.gather(
            openai_llm.abatch(PROMPTS), anthropic_llm.abatch(PROMPTS)
        )

    assert_batched(fake_server, openai=[CONCURRENCY], anthropic=[CONCURRENCY])
    assert_echo_messages(texts)
    assert_products(products)
