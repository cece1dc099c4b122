"""Fixtures for the fake provider server's own tests (driven with the real provider SDKs)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import openai
import pytest
from google.genai.client import AsyncClient as GeminiAsyncClient

from batchling.testing import FakeProviderServer

from .gemini_support import gemini_client_for

AZURE_VERSION = "2024-10-21"


# `fake_server` comes from tests/conftest.py.


@pytest.fixture
async def openai_client(fake_server: FakeProviderServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=fake_server.openai_base_url, api_key="test-key"
    ) as client:
        yield client


@pytest.fixture
async def groq_client(fake_server: FakeProviderServer) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official OpenAI SDK pointed at the fake Groq (``/openai/v1``), as Groq users do."""
    async with openai.AsyncOpenAI(base_url=fake_server.groq_base_url, api_key="gsk-key") as client:
        yield client


@pytest.fixture
async def xai_client(fake_server: FakeProviderServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=fake_server.xai_base_url, api_key="xai-key") as client:
        yield client


@pytest.fixture
async def azure_client(
    fake_server: FakeProviderServer,
) -> AsyncIterator[openai.AsyncAzureOpenAI]:
    async with openai.AsyncAzureOpenAI(
        azure_endpoint=fake_server.azure_endpoint, api_key="azure-key", api_version=AZURE_VERSION
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
