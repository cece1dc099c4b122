"""LiteLLM inside `batchify()`.

For `openai/...` models LiteLLM sends requests with an `AsyncOpenAI` client (it calls the
client's request methods directly), so `acompletion` and `aembedding` are batched and LiteLLM
builds its own `ModelResponse` from the batched answer. For Anthropic and Gemini models LiteLLM
does not use the official SDKs: it speaks HTTP itself, which batchling cannot see, so those
calls go out in real time, unreported even under `strict=True` (documented below).
"""

from __future__ import annotations

import asyncio

import pydantic
import pytest

import batchling
from batchling.testing import FakeProviderServer
from tests_frameworks.conftest import (
    CONCURRENCY,
    LITELLM_READONLY_TYPEDDICT_WARNINGS,
    assert_batched,
    fast_batchify,
)

litellm = pytest.importorskip("litellm")

from litellm.types.utils import EmbeddingResponse, ModelResponse  # noqa: E402

pytestmark = LITELLM_READONLY_TYPEDDICT_WARNINGS


class Product(pydantic.BaseModel):
    name: str
    words: int


PROMPTS = [f"summarise product number {i}" for i in range(CONCURRENCY)]


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def test_acompletion_openai_calls_are_one_batch(fake_server: FakeProviderServer) -> None:
    async with fast_batchify() as ctx:
        replies = await asyncio.gather(
            *(
                litellm.acompletion(
                    model="openai/gpt-4o-mini",
                    api_base=fake_server.openai_base_url,
                    api_key="sk-test",
                    messages=user(prompt),
                    temperature=0.5,
                )
                for prompt in PROMPTS
            )
        )

    assert_batched(fake_server, openai=[CONCURRENCY])
    assert ctx.report.batched == CONCURRENCY
    for prompt, reply in zip(PROMPTS, replies, strict=True):
        assert type(reply) is ModelResponse
        assert reply.choices[0].message.content == f"echo: {prompt}"
        assert reply.usage.prompt_tokens == len(prompt.split())
        assert reply.model == "gpt-4o-mini"
    line = fake_server.batches[0].lines[0]
    assert line["url"] == "/v1/chat/completions"
    assert line["body"]["temperature"] == 0.5


async def test_acompletion_structured_output_is_batched(fake_server: FakeProviderServer) -> None:
    async with fast_batchify():
        replies = await asyncio.gather(
            *(
                litellm.acompletion(
                    model="openai/gpt-4o-mini",
                    api_base=fake_server.openai_base_url,
                    api_key="sk-test",
                    messages=user(prompt),
                    response_format=Product,
                )
                for prompt in PROMPTS
            )
        )

    assert_batched(fake_server, openai=[CONCURRENCY])
    for prompt, reply in zip(PROMPTS, replies, strict=True):
        product = Product.model_validate_json(reply.choices[0].message.content)
        assert product == Product(name=prompt, words=len(prompt.split()))
    assert fake_server.batches[0].lines[0]["body"]["response_format"]["type"] == "json_schema"


async def test_aembedding_openai_calls_are_one_batch(fake_server: FakeProviderServer) -> None:
    async with fast_batchify():
        replies = await asyncio.gather(
            *(
                litellm.aembedding(
                    model="openai/text-embedding-3-small",
                    api_base=fake_server.openai_base_url,
                    api_key="sk-test",
                    input=[prompt],
                )
                for prompt in PROMPTS
            )
        )

    assert_batched(fake_server, openai=[CONCURRENCY])
    assert fake_server.batches[0].endpoint == "/v1/embeddings"
    for reply in replies:
        assert type(reply) is EmbeddingResponse
        vector = reply.data[0]["embedding"]
        assert len(vector) == 8
        assert all(isinstance(value, float) for value in vector)


async def test_streaming_acompletion_is_passed_through_or_refused(
    fake_server: FakeProviderServer,
) -> None:
    async def streamed() -> str:
        stream = await litellm.acompletion(
            model="openai/gpt-4o-mini",
            api_base=fake_server.openai_base_url,
            api_key="sk-test",
            messages=user("hello there"),
            stream=True,
        )
        return "".join([chunk.choices[0].delta.content or "" async for chunk in stream])

    with pytest.warns(batchling.NotBatchedWarning, match="stream"):
        async with fast_batchify() as ctx:
            text = await streamed()
    assert text == "echo: hello there"
    assert ctx.report.passed_through["streaming"] == 1
    assert fake_server.stats.realtime_calls == 1

    # LiteLLM maps every exception to its own types; the refusal is the cause.
    with pytest.raises(Exception, match="stream") as refused:
        async with fast_batchify(strict=True):
            await streamed()
    assert _caused_by(refused.value, batchling.NotBatchableError)
    assert fake_server.stats.realtime_calls == 1
    assert fake_server.stats.batches_created == 0


@pytest.mark.parametrize(
    ("model", "provider"),
    [("anthropic/claude-haiku-4-5", "anthropic"), ("gemini/gemini-2.5-flash", "gemini")],
)
async def test_non_openai_models_bypass_the_sdks_so_they_are_not_batched(
    fake_server: FakeProviderServer, model: str, provider: str
) -> None:
    """LiteLLM talks to Anthropic and Gemini with its own HTTP code, not their SDKs.

    batchling never sees those calls: they are sent in real time at full price, without a
    `NotBatchedWarning`, and `strict=True` cannot refuse them. Use the provider's SDK (or a
    framework that does, e.g. LangChain or Pydantic AI) for these models inside `batchify()`.
    """
    api_base = fake_server.anthropic_base_url if provider == "anthropic" else None

    async def call(prompt: str) -> ModelResponse:
        return await litellm.acompletion(
            model=model,
            api_base=api_base or f"{fake_server.gemini_base_url}/v1beta",
            api_key="test-key",
            messages=user(prompt),
            max_tokens=100,
        )

    async with fast_batchify(strict=True) as ctx:
        replies = await asyncio.gather(*(call(prompt) for prompt in PROMPTS[:3]))

    assert [reply.choices[0].message.content for reply in replies] == [
        f"echo: {prompt}" for prompt in PROMPTS[:3]
    ]
    assert fake_server.stats.provider(provider).realtime_calls == 3
    assert fake_server.stats.batches_created == 0
    assert ctx.report.batched == 0
    assert ctx.report.passed_through_total == 0  # unseen, so not even reported


def _caused_by(error: BaseException | None, kind: type[BaseException]) -> bool:
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, kind):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False
