"""Instructor (`from_openai`, `from_anthropic`, `from_genai`) inside `batchify()`.

Instructor wraps the official SDK clients and calls their own `create` methods, so each
`response_model=` call is one batched line; Instructor's validation and re-asking run unchanged
on the batched answers (a re-ask is one more batched round). `create_partial` /
`create_iterable` stream and are passed through (or refused with `strict=True`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import anthropic
import openai
import pydantic
import pytest
from anthropic.types import Message
from google import genai
from google.genai import types as genai_types
from openai.types.chat import ChatCompletion

import batchling
from batchling.testing import FakeProviderServer
from tests_frameworks.conftest import (
    CONCURRENCY,
    ROUND_WINDOW_SECONDS,
    assert_batched,
    fast_batchify,
)

instructor = pytest.importorskip("instructor")

from instructor.core import InstructorRetryException  # noqa: E402


class Product(pydantic.BaseModel):
    name: str
    words: int


PROMPTS = [f"extract product number {i}" for i in range(CONCURRENCY)]
EXPECTED = [{"name": prompt, "words": len(prompt.split())} for prompt in PROMPTS]


def dumps(products: list[pydantic.BaseModel]) -> list[dict[str, object]]:
    """Instructor returns instances of its own subclass of the response model: compare fields."""
    for product in products:
        assert isinstance(product, Product)
    return [product.model_dump() for product in products]


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture
async def openai_client(fake_server: FakeProviderServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=fake_server.openai_base_url, api_key="sk-test"
    ) as client:
        yield client


@pytest.fixture
async def anthropic_client(
    fake_server: FakeProviderServer,
) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=fake_server.anthropic_base_url, api_key="sk-ant-test"
    ) as client:
        yield client


@pytest.mark.parametrize("mode", ["TOOLS", "JSON_SCHEMA", "RESPONSES_TOOLS"])
async def test_from_openai_response_model_calls_are_one_batch(
    fake_server: FakeProviderServer, openai_client: openai.AsyncOpenAI, mode: str
) -> None:
    client = instructor.from_openai(openai_client, mode=instructor.Mode[mode])
    async with fast_batchify() as ctx:
        products = await asyncio.gather(
            *(
                client.create(model="gpt-4o-mini", response_model=Product, messages=user(prompt))
                for prompt in PROMPTS
            )
        )

    assert_batched(fake_server, openai=[CONCURRENCY])
    assert dumps(products) == EXPECTED
    assert ctx.report.batched == CONCURRENCY
    expected_endpoint = "/v1/responses" if mode == "RESPONSES_TOOLS" else "/v1/chat/completions"
    assert fake_server.batches[0].endpoint == expected_endpoint


async def test_from_openai_create_with_completion_returns_the_sdk_completion(
    fake_server: FakeProviderServer, openai_client: openai.AsyncOpenAI
) -> None:
    client = instructor.from_openai(openai_client)
    async with fast_batchify():
        results = await asyncio.gather(
            *(
                client.chat.completions.create_with_completion(
                    model="gpt-4o-mini", response_model=Product, messages=user(prompt)
                )
                for prompt in PROMPTS
            )
        )

    assert_batched(fake_server, openai=[CONCURRENCY])
    assert dumps([product for product, _ in results]) == EXPECTED
    for _, completion in results:
        assert type(completion) is ChatCompletion
        assert completion.choices[0].finish_reason == "tool_calls"
        assert completion._request_id is not None


async def test_from_openai_validation_reask_is_a_second_batched_round(
    fake_server: FakeProviderServer, openai_client: openai.AsyncOpenAI
) -> None:
    rejected: set[str] = set()

    class CheckedProduct(pydantic.BaseModel):
        name: str
        words: int

        @pydantic.field_validator("name")
        @classmethod
        def reject_first_answer(cls, value: str) -> str:
            if value not in rejected:  # the first answer for each prompt fails validation
                rejected.add(value)
                raise ValueError("try again")
            return value

    client = instructor.from_openai(openai_client)
    async with fast_batchify(batch_window_seconds=ROUND_WINDOW_SECONDS):
        products = await asyncio.gather(
            *(
                client.create(
                    model="gpt-4o-mini",
                    response_model=CheckedProduct,
                    messages=user(prompt),
                    max_retries=2,
                )
                for prompt in PROMPTS
            )
        )

    # One job for the first answers, one for the re-asks.
    assert_batched(fake_server, openai=[CONCURRENCY, CONCURRENCY])
    assert [product.name for product in products] == PROMPTS
    reask_messages = fake_server.batches[1].lines[0]["body"]["messages"]
    assert len(reask_messages) > 1  # the re-ask carries the validation error back


async def test_from_anthropic_response_model_calls_are_one_batch(
    fake_server: FakeProviderServer, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    client = instructor.from_anthropic(anthropic_client)
    async with fast_batchify():
        results = await asyncio.gather(
            *(
                client.messages.create_with_completion(
                    model="claude-haiku-4-5",
                    max_tokens=200,
                    response_model=Product,
                    messages=user(prompt),
                )
                for prompt in PROMPTS
            )
        )

    assert_batched(fake_server, anthropic=[CONCURRENCY])
    assert dumps([product for product, _ in results]) == EXPECTED
    for _, message in results:
        assert type(message) is Message
        assert message.stop_reason == "tool_use"
        assert message.usage.service_tier == "batch"
    params = fake_server.batches[0].lines[0]["params"]
    assert params["tool_choice"]["name"] == "Product"


@pytest.mark.filterwarnings(
    # google-genai subclasses aiohttp.ClientSession when aiohttp is installed (LiteLLM brings it
    # in), and aiohttp deprecates subclassing it: a google-genai matter, not ours.
    "ignore:Inheritance class AiohttpClientSession from ClientSession:DeprecationWarning"
)
@pytest.mark.parametrize("mode", ["TOOLS", "JSON"])
async def test_from_genai_response_model_calls_are_one_batch(
    fake_server: FakeProviderServer, mode: str
) -> None:
    pytest.importorskip("jsonref", reason="instructor[google-genai] is not installed")
    sdk_client = genai.Client(
        api_key="gemini-test-key",
        http_options=genai_types.HttpOptions(base_url=fake_server.gemini_base_url),
    )
    client = instructor.from_genai(sdk_client, mode=instructor.Mode[mode], use_async=True)
    try:
        async with fast_batchify():
            products = await asyncio.gather(
                *(
                    client.create(
                        model="gemini-2.5-flash", response_model=Product, messages=user(prompt)
                    )
                    for prompt in PROMPTS
                )
            )
    finally:
        await sdk_client.aio.aclose()
        sdk_client.close()

    assert_batched(fake_server, gemini=[CONCURRENCY])
    assert dumps(products) == EXPECTED


async def test_create_partial_streams_so_it_is_passed_through_or_refused(
    fake_server: FakeProviderServer, openai_client: openai.AsyncOpenAI
) -> None:
    client = instructor.from_openai(openai_client)

    async def last_partial() -> Product:
        partials = client.create_partial(
            model="gpt-4o-mini", response_model=Product, messages=user("a red chair")
        )
        last = None
        async for partial in partials:
            last = partial
        assert last is not None
        return Product.model_validate(last.model_dump())

    with pytest.warns(batchling.NotBatchedWarning, match="stream"):
        async with fast_batchify() as ctx:
            product = await last_partial()
    assert product == Product(name="a red chair", words=3)
    assert ctx.report.passed_through["streaming"] == 1
    assert fake_server.stats.realtime_calls == 1

    # Instructor wraps the error of its last attempt in its own retry exception.
    with pytest.raises(InstructorRetryException) as refused:
        async with fast_batchify(strict=True):
            await last_partial()
    assert isinstance(refused.value.__cause__, batchling.NotBatchableError)
    assert fake_server.stats.realtime_calls == 1
    assert fake_server.stats.batches_created == 0
