"""Fixtures for the fake provider server's own tests (driven with the real openai SDK)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import openai
import pytest

from batchling.testing import FakeProviderServer


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
