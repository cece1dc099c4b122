"""Sync clients (`OpenAI()`, `Anthropic()`, `genai.Client().models`) from thread pools."""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import time
import warnings
from collections.abc import Iterator

import anthropic
import openai
import pytest
from google import genai
from google.genai import types as genai_types

import batchling
from batchling import batchify
from batchling.testing import FakeProviderServer
from tests.conftest import FAST


@pytest.fixture
def sync_clients(
    fake_server: FakeProviderServer,
) -> Iterator[tuple[openai.OpenAI, anthropic.Anthropic, genai.Client]]:
    openai_client = openai.OpenAI(base_url=fake_server.openai_base_url, api_key="k")
    anthropic_client = anthropic.Anthropic(base_url=fake_server.anthropic_base_url, api_key="k")
    gemini_client = genai.Client(
        api_key="k", http_options=genai_types.HttpOptions(base_url=fake_server.gemini_base_url)
    )
    yield openai_client, anthropic_client, gemini_client
    openai_client.close()
    anthropic_client.close()
    gemini_client.close()


def test_1000_calls_from_32_threads_mixed_providers_with_a_failing_line(
    sync_clients: tuple[openai.OpenAI, anthropic.Anthropic, genai.Client],
    fake_server: FakeProviderServer,
) -> None:
    openai_client, anthropic_client, gemini_client = sync_clients

    def work(i: int) -> str:
        kind = i % 3
        text = f"w{i}" + (" [[fail:400]]" if i == 7 else "")
        if kind == 0:
            reply = openai_client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
            )
            return reply.choices[0].message.content or ""
        if kind == 1:
            message = anthropic_client.messages.create(
                model="claude-sonnet-5-5",
                max_tokens=10,
                messages=[{"role": "user", "content": text}],
            )
            return message.content[0].text  # type: ignore[union-attr]
        response = gemini_client.models.generate_content(model="gemini-2.5-flash", contents=text)
        return response.text or ""

    with batchify(**FAST, progress=False) as ctx, concurrent.futures.ThreadPoolExecutor(32) as pool:
        futures = [pool.submit(work, i) for i in range(1000)]
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result())
            except Exception as exc:
                outcomes.append(exc)

    assert type(outcomes[7]) is anthropic.BadRequestError
    for i, outcome in enumerate(outcomes):
        if i != 7:
            assert outcome == f"echo: w{i}"
    assert fake_server.stats.realtime_calls == 0
    assert sorted({batch.provider for batch in fake_server.batches}) == [
        "anthropic",
        "gemini",
        "openai",
    ]
    assert sum(fake_server.stats.lines_per_batch) == 1000
    assert ctx.report.batched == 1000


def test_a_lone_sync_call_makes_a_one_line_batch(
    sync_clients: tuple[openai.OpenAI, anthropic.Anthropic, genai.Client],
    fake_server: FakeProviderServer,
) -> None:
    openai_client = sync_clients[0]
    with batchify(**FAST, progress=False):
        reply = openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "alone"}]
        )
    assert reply.choices[0].message.content == "echo: alone"
    assert fake_server.stats.lines_per_batch == [1]


def test_sync_streaming_passes_through_with_a_warning(
    sync_clients: tuple[openai.OpenAI, anthropic.Anthropic, genai.Client],
    fake_server: FakeProviderServer,
) -> None:
    openai_client = sync_clients[0]
    with (
        batchify(**FAST, progress=False) as ctx,
        pytest.warns(batchling.NotBatchedWarning, match="stream") as caught,
    ):
        stream = openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "s"}], stream=True
        )
        chunks = list(stream)
    assert chunks
    # Decided on the block's loop thread, reported at the program's call in its own thread.
    assert caught[0].filename == __file__
    assert ctx.report.passed_through == {"streaming": 1}


def test_sync_calls_outside_the_block_are_untouched(
    sync_clients: tuple[openai.OpenAI, anthropic.Anthropic, genai.Client],
    fake_server: FakeProviderServer,
) -> None:
    openai_client = sync_clients[0]
    with batchify(**FAST, progress=False):
        pass
    openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "after"}]
    )
    assert fake_server.stats.realtime_calls == 1


async def test_sync_client_in_to_thread_inside_async_block_is_batched(
    sync_clients: tuple[openai.OpenAI, anthropic.Anthropic, genai.Client],
    fake_server: FakeProviderServer,
) -> None:
    import asyncio

    openai_client = sync_clients[0]

    def call(i: int) -> str:
        reply = openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"t{i}"}]
        )
        return reply.choices[0].message.content or ""

    async with batchify(**FAST, progress=False):
        replies = await asyncio.gather(*(asyncio.to_thread(call, i) for i in range(5)))
    assert replies == [f"echo: t{i}" for i in range(5)]
    assert fake_server.stats.realtime_calls == 0
    assert fake_server.stats.lines_per_batch == [5]


def test_a_sync_caller_whose_job_a_failing_block_left_running_gets_an_error() -> None:
    # Not a thread blocked forever: the job is left running (journaled) and the caller told so.
    with FakeProviderServer(batch_delay_seconds=30) as server:
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="k")
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            with (
                pytest.raises(RuntimeError, match="stop"),
                batchify(**FAST, progress=False) as block,
            ):
                call = pool.submit(
                    client.chat.completions.create,
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": "left running"}],
                )
                while not block.report.batch_ids:
                    time.sleep(0.01)
                raise RuntimeError("stop")
            with pytest.raises(batchling.BatchSubmissionAbandonedError, match="left running"):
                call.result(timeout=60)
        client.close()
        assert server.batches[0].status not in ("cancelling", "cancelled")


def _ask_in_a_forked_child(base_url: str) -> tuple[str, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with openai.OpenAI(base_url=base_url, api_key="k") as client:
            reply = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "child"}]
            )
    return reply.choices[0].message.content or "", [str(warning.message) for warning in caught]


def test_a_process_forked_inside_a_block_calls_in_real_time_and_says_so() -> None:
    with (
        FakeProviderServer() as server,
        openai.OpenAI(base_url=server.openai_base_url, api_key="k") as client,
    ):
        with batchify(**FAST, progress=False) as ctx:
            # A sync call first: it starts the block's loop thread, which a fork does not copy.
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "parent"}]
            )
            with multiprocessing.get_context("fork").Pool(1) as pool:
                pending = pool.apply_async(_ask_in_a_forked_child, (server.openai_base_url,))
                answer, warned = pending.get(timeout=60)  # it hung here before
        assert ctx.report.batched == 1
    assert answer == "echo: child"
    assert any("forked inside a batchify() block" in message for message in warned)
    assert server.stats.realtime_calls == 1


async def test_calls_from_threads_the_block_s_context_does_not_reach_are_reported() -> None:
    with (
        FakeProviderServer() as server,
        openai.OpenAI(base_url=server.openai_base_url, api_key="k") as client,
    ):

        def ask(text: str) -> str:
            reply = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
            )
            return reply.choices[0].message.content or ""

        loop = asyncio.get_running_loop()
        async with batchify(**FAST, progress=False) as ctx:
            with pytest.warns(batchling.NotBatchedWarning, match="run_in_executor") as caught:
                answers = await asyncio.gather(
                    *(loop.run_in_executor(None, ask, f"q{i}") for i in range(3))
                )
            batched = await asyncio.to_thread(ask, "carried")  # to_thread carries the context
    assert answers == [f"echo: q{i}" for i in range(3)]
    assert batched == "echo: carried"
    assert len(caught) == 1  # once per block; every call is counted
    assert caught[0].filename == __file__
    assert ctx.report.passed_through == {"thread outside the block": 3}
    assert ctx.report.batched == 1
    assert server.stats.realtime_calls == 3
