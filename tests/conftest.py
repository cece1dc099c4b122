"""Shared fixtures: the bundled fake provider server and real SDK clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest

from batchling import batchify
from batchling.testing import FakeProviderServer

# Short windows and polls keep the suite fast; the behaviour is the same as with the defaults.
FAST = {"batch_window_seconds": 0.05, "poll_interval_seconds": 0.01}


def fast_batchify(**overrides: Any) -> Any:
    """`batchify()` with test-speed timing."""
    return batchify(**{**FAST, **overrides})


@pytest.fixture
def fake_server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        yield server


@pytest.fixture
async def client(fake_server: FakeProviderServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=fake_server.openai_base_url, api_key="sk-test-key-a"
    ) as sdk_client:
        yield sdk_client


@pytest.fixture
async def other_client(fake_server: FakeProviderServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=fake_server.openai_base_url, api_key="sk-test-key-b"
    ) as sdk_client:
        yield sdk_client


def pytest_report_header() -> str:
    return f"openai {openai.__version__}"
