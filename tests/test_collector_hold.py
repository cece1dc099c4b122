"""What batchling keeps out of Python's garbage collector during a block (`collector.hold`).

The first active block freezes what the program built before it; while many calls wait for
batch results, survivors of full collections are frozen too; everything is given back when the
calls are answered or the last block ends. A program that manages the collector itself is left
alone.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator, Iterator

import openai
import pytest

from batchling import collector
from batchling.testing import FakeProviderServer
from tests.conftest import fast_batchify


class _Cycle:
    """An object that only the cyclic collector can free."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def nothing_frozen() -> Iterator[None]:
    assert gc.get_freeze_count() == 0
    yield
    assert gc.get_freeze_count() == 0


@pytest.fixture
def slow_server() -> Iterator[FakeProviderServer]:
    """Jobs take 0.3 s: long enough to collect garbage while calls wait."""
    with FakeProviderServer(batch_delay_seconds=0.3) as server:
        yield server


@pytest.fixture
async def slow_client(slow_server: FakeProviderServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=slow_server.openai_base_url, api_key="sk-a") as client:
        yield client


async def _submitted(server: FakeProviderServer) -> None:
    while not server.batches:
        await asyncio.sleep(0.01)


def _ask(client: openai.AsyncOpenAI, text: str) -> asyncio.Task[object]:
    return asyncio.ensure_future(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
        )
    )


async def test_a_block_freezes_what_came_before_it_and_gives_it_back(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify():
        assert gc.get_freeze_count() > 0
        reply = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "q"}]
        )
    assert gc.get_freeze_count() == 0
    assert reply.choices[0].message.content == "echo: q"


async def test_nested_blocks_give_back_only_when_the_last_ends(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify():
        async with fast_batchify():
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "q"}]
            )
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


async def test_survivors_are_held_while_many_calls_wait_and_freed_once_answered(
    slow_server: FakeProviderServer,
    slow_client: openai.AsyncOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(collector, "HOLD_THRESHOLD", 3)
    async with fast_batchify():
        calls = [_ask(slow_client, f"q{i}") for i in range(3)]
        await _submitted(slow_server)
        cycle = _Cycle()
        alive = weakref.ref(cycle)
        gc.collect()  # a full pass while 3 calls wait: its survivors are frozen
        del cycle
        gc.collect()
        assert alive() is not None, "frozen: out of the collector's reach"
        replies = await asyncio.gather(*calls)
        gc.collect()  # no call waits any more: everything is given back ...
        assert gc.get_freeze_count() == 0
        gc.collect()  # ... and freed by the next pass
        assert alive() is None
    assert [reply.choices[0].message.content for reply in replies] == [  # type: ignore[attr-defined]
        "echo: q0",
        "echo: q1",
        "echo: q2",
    ]


async def test_a_burst_of_tasks_counts_before_its_calls_reach_batchling(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collector, "HOLD_THRESHOLD", 50)
    async with fast_batchify():
        calls = [_ask(client, f"q{i}") for i in range(60)]  # scheduled, none started yet
        frozen = gc.get_freeze_count()
        kept = [[] for _ in range(1000)]
        gc.collect()
        assert gc.get_freeze_count() >= frozen + len(kept)
        await asyncio.gather(*calls)


async def test_garbage_held_during_a_block_is_freed_after_it(
    slow_server: FakeProviderServer,
    slow_client: openai.AsyncOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(collector, "HOLD_THRESHOLD", 2)
    async with fast_batchify():
        cycle = _Cycle()
        alive = weakref.ref(cycle)
        calls = [_ask(slow_client, f"q{i}") for i in range(2)]
        await _submitted(slow_server)
        gc.collect()
        del cycle
        await asyncio.gather(*calls)
    gc.collect()
    assert alive() is None


async def test_calls_below_the_threshold_freeze_nothing_after_a_collection(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify():
        frozen_at_entry = gc.get_freeze_count()
        task = _ask(client, "q")
        await asyncio.sleep(0)
        kept = [[] for _ in range(1000)]
        gc.collect()
        # (Frozen objects freed by reference counting leave the count: it may only shrink.)
        assert gc.get_freeze_count() <= frozen_at_entry
        await task
    assert kept


async def test_a_program_that_freezes_objects_itself_is_left_alone(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        async with fast_batchify():
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "q"}]
            )
            kept = [[] for _ in range(1000)]
            gc.collect()
            assert gc.get_freeze_count() <= frozen, "nothing more frozen"
        assert gc.get_freeze_count() > frozen // 2, "nothing given back"
        assert kept
    finally:
        gc.unfreeze()


async def test_a_collector_the_program_turned_off_is_left_alone(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    gc.disable()
    try:
        async with fast_batchify():
            assert gc.get_freeze_count() == 0
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "q"}]
            )
    finally:
        gc.enable()


def test_a_forked_child_forgets_the_blocks_and_keeps_what_was_frozen() -> None:
    release = collector.hold(lambda: 10**9)  # as if very many calls waited
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 0
        collector._forget_in_child()  # what os.register_at_fork runs in a child
        kept = [[] for _ in range(1000)]
        gc.collect()
        assert gc.get_freeze_count() <= frozen, "no block in the child: nothing more frozen"
        release()  # the parent's block ends nothing in the child
        assert gc.get_freeze_count() > 0, "kept, as after gc.freeze() before a fork"
        assert kept
    finally:
        gc.unfreeze()


async def test_answering_a_job_alone_starts_no_holding(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collector, "HOLD_THRESHOLD", 50)
    async with fast_batchify():
        frozen_at_entry = gc.get_freeze_count()
        await asyncio.gather(*(_ask(client, f"q{i}") for i in range(60)))
        # The routing pass's wakeups filled the loop's ready queue: no waiting calls, though.
        assert gc.get_freeze_count() <= frozen_at_entry


def test_a_count_that_raises_does_not_escape_the_collector(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken() -> int:
        raise RuntimeError("a bug")

    release = collector.hold(broken)
    try:
        gc.collect()  # pytest's unraisable hook would fail the test if the callback raised
    finally:
        release()
