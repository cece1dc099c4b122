"""Fixtures for the fake provider server's own tests (driven with the real provider SDKs)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anthropic
import openai
import pytest
from google.genai.client import AsyncClient as GeminiAsyncClient

from batchling.testing import FakeProviderServer

from .gemini_support import gemini_client_for


@pytest.fixture
def fake_server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        yield server


@pytest.fixture
async def openai_client(fake_server: FakeProviderServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=fake_server.openai_base_url, api_key="test-key"
    ) as client:
        yield client


@pytest.fixture
async def anthropic_client(
    fake_server: FakeProviderServer,
) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=fake_server.anthropic_base_url, api_key="test-key"
    ) as client:
        yield client


@pytest.fixture
async def gemini_client(fake_server: FakeProviderServer) -> AsyncIterator[GeminiAsyncClient]:
    async with gemini_client_for(fake_server) as client:
        yield client
