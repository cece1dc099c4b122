"""Pydantic AI agents inside `batchify()`, with OpenAI, Anthropic and Google models.

Pydantic AI's models call the official SDK clients its providers hold (`AsyncOpenAI`,
`AsyncAnthropic`, `genai.Client(...).aio`), so every model request an agent run makes is one
batched line. A run with a tool round trip makes one request per step, so N concurrent runs of a
two-step agent become two batch jobs of N lines each. Streaming runs (`run_stream`) are passed
through, or refused with `strict=True`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from importlib import metadata

import pydantic
import pytest
from google import genai
from google.genai import types as genai_types

import batchling
from batchling.testing import FakeProviderServer
from tests_frameworks.conftest import (
    CONCURRENCY,
    ROUND_WINDOW_SECONDS,
    assert_batched,
    fast_batchify,
)

pytest.importorskip("pydantic_ai")

from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import ToolCallPart, ToolReturnPart
from pydantic_ai.models import Model
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.google import GoogleModel
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.google import GoogleProvider
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.tools import ToolDefinition

# google-genai subclasses aiohttp.ClientSession when aiohttp is installed (LiteLLM brings it in),
# and aiohttp deprecates subclassing it: a google-genai matter, not batchling's or this test's.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession from ClientSession:DeprecationWarning"
)


class Product(pydantic.BaseModel):
    name: str
    words: int


PROMPTS = [f"find product number {i}" for i in range(CONCURRENCY)]

ModelFactory = Callable[[FakeProviderServer, genai.Client | None], Model]


@pytest.fixture
async def gemini_client(fake_server: FakeProviderServer) -> AsyncIterator[genai.Client]:
    client = genai.Client(
        api_key="gemini-test-key",
        http_options=genai_types.HttpOptions(base_url=fake_server.gemini_base_url),
    )
    try:
        yield client
    finally:
        await client.aio.aclose()
        client.close()


def openai_chat(server: FakeProviderServer, _: genai.Client | None) -> Model:
    provider = OpenAIProvider(base_url=server.openai_base_url, api_key="sk-test")
    return OpenAIChatModel("gpt-4o-mini", provider=provider)


def openai_responses(server: FakeProviderServer, _: genai.Client | None) -> Model:
    provider = OpenAIProvider(base_url=server.openai_base_url, api_key="sk-test")
    return OpenAIResponsesModel("gpt-4.1-mini", provider=provider)


def anthropic(server: FakeProviderServer, _: genai.Client | None) -> Model:
    version = metadata.version("pydantic-ai-slim")
    if tuple(int(part) for part in version.split(".")[:2]) < (2, 60):
        pytest.fail(
            f"pydantic-ai-slim {version} cannot build Anthropic requests with anthropic "
            f"{metadata.version('anthropic')} (it calls the `BetaMessageParam` union as a "
            "TypedDict: 'Cannot instantiate typing.Union'); 2.60 fixed that. Install "
            "pydantic-ai-slim>=2.60 (an upstream incompatibility, not a batchling matter)."
        )
    provider = AnthropicProvider(base_url=server.anthropic_base_url, api_key="sk-ant-test")
    return AnthropicModel("claude-haiku-4-5", provider=provider)


def google(_: FakeProviderServer, client: genai.Client | None) -> Model:
    assert client is not None
    # The provider wraps a genai.Client made by the caller; see the test below for
    # GoogleProvider(api_key=..., base_url=...).
    return GoogleModel("gemini-2.5-flash", provider=GoogleProvider(client=client))


MODELS: dict[str, tuple[ModelFactory, str]] = {
    "openai-chat": (openai_chat, "openai"),
    "openai-responses": (openai_responses, "openai"),
    "anthropic": (anthropic, "anthropic"),
    "google": (google, "gemini"),
}


@pytest.fixture(params=list(MODELS))
async def model_and_provider(
    request: pytest.FixtureRequest, fake_server: FakeProviderServer, gemini_client: genai.Client
) -> AsyncIterator[tuple[Model, str]]:
    factory, provider = MODELS[request.param]
    # Entering the model closes the HTTP client its provider made, as `async with agent:` does.
    async with factory(fake_server, gemini_client) as model:
        yield model, provider


async def test_text_runs_are_one_batch(
    fake_server: FakeProviderServer, model_and_provider: tuple[Model, str]
) -> None:
    model, provider = model_and_provider
    agent = Agent(model, instructions="Answer briefly.")
    async with fast_batchify() as ctx:
        results = await asyncio.gather(*(agent.run(prompt) for prompt in PROMPTS))

    assert_batched(fake_server, **{provider: [CONCURRENCY]})
    assert [result.output for result in results] == [f"echo: {prompt}" for prompt in PROMPTS]
    assert all(result.usage.requests == 1 for result in results)
    assert all(result.usage.input_tokens > 0 for result in results)
    assert ctx.report.batched == CONCURRENCY


async def test_structured_output_runs_are_one_batch(
    fake_server: FakeProviderServer, model_and_provider: tuple[Model, str]
) -> None:
    model, provider = model_and_provider
    agent = Agent(model, output_type=Product)
    async with fast_batchify():
        results = await asyncio.gather(*(agent.run(prompt) for prompt in PROMPTS))

    assert_batched(fake_server, **{provider: [CONCURRENCY]})
    for prompt, result in zip(PROMPTS, results, strict=True):
        assert type(result.output) is Product
        assert result.output == Product(name=prompt, words=len(prompt.split()))


async def test_tool_round_trip_is_one_batch_per_step(
    fake_server: FakeProviderServer, model_and_provider: tuple[Model, str]
) -> None:
    model, provider = model_and_provider
    looked_up: list[str] = []

    async def first_step_only(ctx: RunContext[None], tool: ToolDefinition) -> ToolDefinition | None:
        # The fake server answers a request whose tool choice is forced with a call to the first
        # tool offered. Offering the function tool in the first step only makes the run
        # deterministic: step 1 calls `lookup`, step 2 (only the output tool left) answers.
        return tool if ctx.run_step <= 1 else None

    agent = Agent(model, output_type=Product)

    @agent.tool_plain(prepare=first_step_only)
    async def lookup(sku: str) -> str:
        """Look a product up by its SKU."""
        looked_up.append(sku)
        return f"{sku} is in stock"

    async with fast_batchify(batch_window_seconds=ROUND_WINDOW_SECONDS) as ctx:
        results = await asyncio.gather(*(agent.run(prompt) for prompt in PROMPTS))

    # Step 1 (tool call) for every run is one job, step 2 (final answer) another.
    assert_batched(fake_server, **{provider: [CONCURRENCY, CONCURRENCY]})
    assert ctx.report.batched == 2 * CONCURRENCY
    assert sorted(looked_up) == sorted(PROMPTS)
    for result in results:
        assert type(result.output) is Product
        assert result.usage.requests == 2
        parts = [part for message in result.all_messages() for part in message.parts]
        calls = [part for part in parts if isinstance(part, ToolCallPart)]
        returns = [part for part in parts if isinstance(part, ToolReturnPart)]
        assert [call.tool_name for call in calls] == ["lookup", "final_result"]
        assert returns[0].content == f"{calls[0].args_as_dict()['sku']} is in stock"


async def test_three_providers_in_one_block_make_one_batch_each(
    fake_server: FakeProviderServer, gemini_client: genai.Client
) -> None:
    agents = [
        Agent(factory(fake_server, gemini_client), output_type=Product)
        for factory in (openai_chat, anthropic, google)
    ]
    async with agents[0], agents[1], agents[2], fast_batchify():
        results = await asyncio.gather(
            *(agent.run(prompt) for agent in agents for prompt in PROMPTS)
        )

    assert_batched(fake_server, openai=[CONCURRENCY], anthropic=[CONCURRENCY], gemini=[CONCURRENCY])
    assert all(type(result.output) is Product for result in results)


# GoogleProvider(api_key=..., base_url=...) sends per-call http_options headers
# ({'X-Server-Timeout': '1200', ...} in pydantic-ai 2.66): a deadline, not routing.
async def test_google_provider_with_api_key_and_base_url_is_batched(
    fake_server: FakeProviderServer,
) -> None:
    provider = GoogleProvider(api_key="gemini-test-key", base_url=fake_server.gemini_base_url)
    agent = Agent(GoogleModel("gemini-2.5-flash", provider=provider))
    async with agent, fast_batchify(strict=True):
        results = await asyncio.gather(*(agent.run(prompt) for prompt in PROMPTS))

    assert_batched(fake_server, gemini=[CONCURRENCY])
    assert [result.output for result in results] == [f"echo: {prompt}" for prompt in PROMPTS]


async def test_run_stream_is_passed_through_or_refused(fake_server: FakeProviderServer) -> None:
    agent = Agent(openai_chat(fake_server, None))

    async def streamed(prompt: str) -> str:
        async with agent.run_stream(prompt) as run:
            return await run.get_output()

    async with agent:
        with pytest.warns(batchling.NotBatchedWarning, match="stream"):
            async with fast_batchify() as ctx:
                output = await streamed("hello there")
        assert output == "echo: hello there"
        assert ctx.report.passed_through["streaming"] == 1
        assert fake_server.stats.realtime_calls == 1

        with pytest.raises(batchling.NotBatchableError, match="stream"):
            async with fast_batchify(strict=True):
                await streamed("hello there")
    assert fake_server.stats.realtime_calls == 1
    assert fake_server.stats.batches_created == 0
