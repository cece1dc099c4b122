"""Shared fixtures: the bundled fake provider server and real SDK clients pointed at it."""

from __future__ import annotations

import os

# Every shortcut batchling takes past the SDKs' own steps is checked against them in tests.
os.environ["BATCHLING_VERIFY_FAST_PATHS"] = "1"

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types as genai_types

from batchling import batchify, journal
from batchling.testing import FakeProviderServer

# Short windows and polls keep the suite fast; the behaviour is the same as with the defaults.
FAST = {"batch_window_seconds": 0.05, "poll_interval_seconds": 0.01}


def fast_batchify(**overrides: Any) -> Any:
    """`batchify()` with test-speed timing."""
    return batchify(**{**FAST, **overrides})


def journaled_submission(batch_id: str) -> journal.Submission | None:
    """What the test's journal (`$BATCHLING_CACHE_DIR`) holds for a provider job."""
    path = journal.resolve_path(True)
    assert path is not None
    opened = journal.Journal(path)
    try:
        return opened.find_submission(batch_id)
    finally:
        opened.close()


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Every test gets its own empty journal: nothing leaks between tests or into ~/.cache."""
    directory = tmp_path / "batchling-cache"
    monkeypatch.setenv("BATCHLING_CACHE_DIR", str(directory))
    return directory


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


@pytest.fixture
async def anthropic_client(
    fake_server: FakeProviderServer,
) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=fake_server.anthropic_base_url, api_key="sk-ant-test"
    ) as sdk_client:
        yield sdk_client


@pytest.fixture
async def gemini_client(fake_server: FakeProviderServer) -> AsyncIterator[genai.Client]:
    sdk_client = genai.Client(
        api_key="gemini-test-key",
        http_options=genai_types.HttpOptions(base_url=fake_server.gemini_base_url),
    )
    try:
        yield sdk_client
    finally:
        await sdk_client.aio.aclose()
        sdk_client.close()


def pytest_report_header() -> str:
    from google.genai import version

    return (
        f"openai {openai.__version__}, anthropic {anthropic.__version__}, "
        f"google-genai {version.__version__}"
    )
