"""Framework proofs: LangChain, Instructor, Pydantic AI, LiteLLM and DSPy inside `batchify()`.

Every test drives a framework's own public API against the bundled fake provider server and
checks what crossed the wire (`server.stats`): the framework's calls became batch jobs, none
went out in real time, and the framework still returned its own result types.

Each test module skips itself (`pytest.importorskip`) when its framework is not installed;
`nox -s frameworks` installs them all.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from importlib import metadata
from typing import Any

import pytest

from batchling import batchify
from batchling.testing import FakeProviderServer

# Set before any framework is imported. LiteLLM otherwise fetches its model price map from the
# internet at import time; DSPy would create its disk cache under the home directory.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("DSPY_CACHEDIR", os.path.join(tempfile.gettempdir(), "batchling-dspy-cache"))

# Many concurrent calls, the way an application fans out work to a framework.
CONCURRENCY = 24

# Short polls keep the suite fast; the behaviour is the same as with the defaults. The window
# is long enough for a framework's concurrent calls to reach batchling on a busy machine (the
# suite runs on one worker per core): each call goes through the framework's own code first.
FAST: dict[str, Any] = {
    "batch_window_seconds": 0.3,
    "poll_interval_seconds": 0.01,
    "progress": False,
}

FRAMEWORKS = (
    "langchain-openai",
    "langchain-anthropic",
    "instructor",
    "pydantic-ai-slim",
    "litellm",
    "dspy",
    "openai",
    "anthropic",
    "google-genai",
)


# For runs of several rounds (tool calls, re-asks): each round's requests reach batchling as each
# run finishes processing the previous answer, so a longer window keeps one job per round even on
# a slow, busy machine.
ROUND_WINDOW_SECONDS = 0.5

# LiteLLM declares TypedDicts (`_DeviceCode`, `ChatCompletionThinkingBlock`, ...) with `ReadOnly`
# items, and pydantic warns about each when LiteLLM first validates it: inside LiteLLM (also under
# DSPy), nothing batchling or a caller can change.
LITELLM_READONLY_TYPEDDICT_WARNINGS = pytest.mark.filterwarnings(
    r"ignore:Items? .* on TypedDict class '\w+' (is|are) using the `ReadOnly` qualifier:UserWarning"
)


def fast_batchify(**overrides: Any) -> Any:
    """`batchify()` with test-speed timing and no live progress display."""
    return batchify(**{**FAST, **overrides})


def assert_batched(server: FakeProviderServer, **lines_by_provider: list[int]) -> None:
    """Nothing went out in real time; each provider saw exactly these batch jobs (by size)."""
    assert server.stats.realtime_calls == 0, server.stats.realtime_paths
    for provider in ("openai", "anthropic", "gemini"):
        expected = lines_by_provider.get(provider, [])
        assert sorted(server.stats.provider(provider).lines_per_batch) == sorted(expected), (
            provider,
            server.stats,
        )


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Every test gets its own empty batchling journal: nothing leaks between tests."""
    directory = tmp_path / "batchling-cache"
    monkeypatch.setenv("BATCHLING_CACHE_DIR", str(directory))
    return directory


@pytest.fixture
def fake_server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        yield server


def pytest_report_header() -> str:
    versions = []
    for name in FRAMEWORKS:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return "frameworks: " + ", ".join(versions)
