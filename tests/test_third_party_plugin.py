"""A third-party plugin distribution, installed through its entry points, batches a toy SDK.

`tests/plugin_package` is a separate distribution (`batchling-echo`) that the test environment
installs (`pip install -e tests/plugin_package`): nothing here registers it by hand. It brings a
toy SDK (`batchling_echo.echo_sdk`), a provider plugin for it, an observer-only plugin, and an
opt-in replacement of the built-in OpenAI provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from batchling_echo import echo_sdk, observer
from batchling_echo import plugin as echo_plugin
from batchling_echo.echo_sdk import AsyncEchoClient, EchoBadRequestError, EchoReply
from batchling_echo.openai_override import CountingOpenAIProvider

import batchling
from batchling import patching, plugins
from batchling import provider as provider_api
from batchling.provider import PLUGIN_API_VERSION, BatchState
from batchling.providers.openai import OpenAIProvider
from batchling.testing import FakeProviderServer

PACKAGE = Path(__file__).parent / "plugin_package"
DOCS = Path(__file__).parents[1] / "docs" / "plugins.md"
FAST = {"batch_window_seconds": 0.05, "poll_interval_seconds": 0.01, "progress": False}


@pytest.fixture(autouse=True)
def fresh_state() -> Iterator[None]:
    plugins.reset_plugins()
    echo_sdk.reset()
    observer.EVENTS.clear()
    yield
    plugins.reset_plugins()


def test_the_plugin_distribution_is_loaded_through_its_entry_points() -> None:
    entry_points = {
        entry_point.name: entry_point
        for entry_point in importlib.metadata.entry_points(group="batchling")
    }
    for name, module in (("echo", "batchling_echo.plugin"), ("echo_observer", observer.__name__)):
        assert entry_points[name].value == module
        assert entry_points[name].dist is not None
        assert entry_points[name].dist.name == "batchling-echo"

    providers = plugins.get_providers()

    assert type(providers["echo"]) is echo_plugin.EchoProvider
    assert providers["echo"].targets == (echo_plugin.COMPLETE,)
    manager = plugins.get_plugin_manager()
    assert manager.get_plugin("echo") is echo_plugin
    assert manager.get_plugin("echo_observer") is observer
    # Built-ins are untouched: the override is opt-in.
    assert type(providers["openai"]) is OpenAIProvider
    assert PLUGIN_API_VERSION == echo_plugin.SUPPORTED_PLUGIN_API == 1


async def test_concurrent_calls_become_one_batch_job_and_a_rerun_comes_from_the_journal() -> None:
    client = AsyncEchoClient()
    texts = [f"question {i}" for i in range(30)]
    texts[7] = "fail: question 7"

    async with batchling.batchify(**FAST) as ctx:
        replies = await asyncio.gather(
            *(client.complete(text) for text in texts), return_exceptions=True
        )

    assert echo_sdk.stats.batch_jobs_created == 1
    assert echo_sdk.stats.realtime_calls == 0
    assert ctx.report.batched == 30
    assert ctx.report.failed == 1
    assert len(ctx.report.batch_ids) == 1
    error = replies.pop(7)
    assert isinstance(error, EchoBadRequestError)
    assert error.status_code == 400
    assert str(error) == "refused: question 7"
    assert replies == [
        EchoReply(text=f"echo: question {i}", model="echo-1", characters=len(f"question {i}"))
        for i in range(30)
        if i != 7
    ]
    # Exactly what the real-time call returns, and raises.
    assert await client.complete("question 3") == replies[3]
    with pytest.raises(EchoBadRequestError, match=r"^refused: question 7$"):
        await client.complete(texts[7])
    assert echo_sdk.stats.realtime_calls == 2

    async with batchling.batchify(**FAST) as again:
        rerun = await asyncio.gather(
            *(client.complete(text) for text in texts), return_exceptions=True
        )

    assert again.report.from_journal == 30
    assert again.report.batch_ids == []
    assert echo_sdk.stats.batch_jobs_created == 1
    assert echo_sdk.stats.realtime_calls == 2
    rerun_error = rerun.pop(7)
    assert isinstance(rerun_error, EchoBadRequestError)
    assert str(rerun_error) == str(error)
    assert rerun == replies


async def test_a_call_the_provider_calls_not_batchable_is_sent_in_real_time() -> None:
    client = AsyncEchoClient()
    with pytest.warns(batchling.NotBatchedWarning, match="real-time service"):
        async with batchling.batchify(**FAST) as ctx:
            reply = await client.complete("hurry", priority="now")

    assert reply == EchoReply(text="echo: hurry", model="echo-1", characters=5)
    assert echo_sdk.stats.realtime_calls == 1
    assert echo_sdk.stats.batch_jobs_created == 0
    assert ctx.report.passed_through == {"priority": 1}
    assert observer.events("echo") == [("passed_through", "echo", "priority")]


async def test_the_observer_plugin_sees_the_block_through_its_hooks() -> None:
    client = AsyncEchoClient()
    texts = ["a", "b", "fail: c"]

    async with batchling.batchify(**FAST) as ctx:
        await asyncio.gather(*(client.complete(text) for text in texts), return_exceptions=True)

    (batch_id,) = ctx.report.batch_ids
    events = observer.events("echo")
    polled = [event for event in events if event[0] == "polled"]
    assert events[0] == ("submitted", "echo", batch_id, 3, False)
    assert polled
    assert polled[-1] == ("polled", "echo", batch_id, "completed")
    assert events[-1] == ("finished", "echo", batch_id, BatchState.COMPLETED, 1)
    assert len(events) == len(polled) + 2

    observer.EVENTS.clear()
    async with batchling.batchify(**FAST):
        await asyncio.gather(*(client.complete(text) for text in texts), return_exceptions=True)

    assert observer.events("echo") == [("from_journal", "echo")] * 3


async def test_a_job_left_running_by_an_interrupted_block_is_reattached_by_the_rerun() -> None:
    client = AsyncEchoClient()
    texts = [f"question {i}" for i in range(5)]

    with pytest.raises(RuntimeError, match="interrupted"):
        async with batchling.batchify(**FAST):
            calls = asyncio.gather(*(client.complete(text) for text in texts))
            while echo_sdk.stats.batch_jobs_created == 0:
                await asyncio.sleep(0.005)
            raise RuntimeError("interrupted")
    calls.cancel()
    # Its callers were told the job was left running (or the gather was cancelled first).
    with contextlib.suppress(asyncio.CancelledError, batchling.BatchSubmissionAbandonedError):
        await calls
    (job_id,) = echo_sdk.JOBS

    observer.EVENTS.clear()
    async with batchling.batchify(**FAST) as rerun:
        replies = await asyncio.gather(*(client.complete(text) for text in texts))

    assert replies == [await client.complete(text) for text in texts]
    assert rerun.report.resumed_batch_ids == [job_id]
    assert rerun.report.batch_ids == []
    assert echo_sdk.stats.batch_jobs_created == 1
    assert observer.events("echo")[0] == ("submitted", "echo", job_id, 5, True)


async def test_an_ambiguous_submit_failure_is_reconciled_with_find_submission() -> None:
    client = AsyncEchoClient()
    texts = [f"question {i}" for i in range(4)]
    echo_sdk.faults.lose_next_create_response = True

    async with batchling.batchify(**FAST) as ctx:
        failures = await asyncio.gather(
            *(client.complete(text) for text in texts), return_exceptions=True
        )

    # The job was created, but the provider could not know: the callers see the SDK's error,
    # and the journal keeps the submission instead of forgetting it.
    assert all(isinstance(error, echo_sdk.EchoConnectionError) for error in failures)
    assert ctx.report.failed == 4
    (job_id,) = echo_sdk.JOBS

    async with batchling.batchify(**FAST) as rerun:
        replies = await asyncio.gather(*(client.complete(text) for text in texts))

    assert [reply.text for reply in replies] == [f"echo: {text}" for text in texts]
    assert rerun.report.resumed_batch_ids == [job_id]
    assert echo_sdk.stats.batch_jobs_created == 1
    assert echo_sdk.stats.realtime_calls == 0


def test_a_plugin_refuses_a_plugin_api_it_was_not_written_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(provider_api, "PLUGIN_API_VERSION", PLUGIN_API_VERSION + 1)

    with pytest.raises(batchling.PluginError, match=r"'echo'.*supports batchling plugin API 1"):
        plugins.get_providers()


@pytest.fixture
def override_openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Load plugins with the echo package's OpenAI replacement; restore the built-in after."""
    monkeypatch.setenv(echo_plugin.OVERRIDE_OPENAI_ENV, "1")
    plugins.reset_plugins()
    CountingOpenAIProvider.submitted_jobs = 0
    CountingOpenAIProvider.submitted_requests = 0
    yield
    monkeypatch.delenv(echo_plugin.OVERRIDE_OPENAI_ENV)
    plugins.reset_plugins()
    # The wrappers keep a target -> provider table: point the OpenAI targets back at the
    # built-in provider.
    patching.install(plugins.get_providers().values())


async def test_a_plugin_can_replace_a_builtin_provider(
    override_openai: None, fake_server: FakeProviderServer, client: openai.AsyncOpenAI
) -> None:
    providers = plugins.get_providers()
    assert type(providers["openai"]) is CountingOpenAIProvider
    assert type(providers["echo"]) is echo_plugin.EchoProvider

    async with batchling.batchify(**FAST):
        replies = await asyncio.gather(
            *(
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": f"hi {i}"}]
                )
                for i in range(3)
            )
        )

    assert [reply.choices[0].message.content for reply in replies] == [
        f"echo: hi {i}" for i in range(3)
    ]
    assert CountingOpenAIProvider.submitted_jobs == 1
    assert CountingOpenAIProvider.submitted_requests == 3
    assert fake_server.stats.batches_created == 1
    assert fake_server.stats.realtime_calls == 0


def test_without_the_opt_in_the_builtin_openai_provider_is_back() -> None:
    assert type(plugins.get_providers()["openai"]) is OpenAIProvider


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "batchling_echo/plugin.py",
        "batchling_echo/openai_override.py",
        "batchling_echo/observer.py",
    ],
)
def test_the_documented_example_is_the_tested_one(path: str) -> None:
    assert (PACKAGE / path).read_text().rstrip("\n") in DOCS.read_text()
