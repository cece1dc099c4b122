"""A plain `with batchify():` around code that runs its own event loops (`batchling run`)."""

from __future__ import annotations

import asyncio

import openai
import pytest

from batchling import batchify
from batchling.testing import FakeProviderServer
from tests.conftest import FAST


def program(base_url: str, count: int) -> list[str]:
    """A script's body: its own asyncio.run, its own client."""

    async def main() -> list[str]:
        async with openai.AsyncOpenAI(base_url=base_url, api_key="k") as client:
            replies = await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model="gpt-4o-mini", messages=[{"role": "user", "content": f"s{i}"}]
                    )
                    for i in range(count)
                )
            )
        return [reply.choices[0].message.content or "" for reply in replies]

    return asyncio.run(main())


def test_with_batchify_batches_calls_inside_asyncio_run(fake_server: FakeProviderServer) -> None:
    with batchify(**FAST, progress=False) as ctx:
        replies = program(fake_server.openai_base_url, 25)
    assert replies == [f"echo: s{i}" for i in range(25)]
    assert fake_server.stats.lines_per_batch == [25]
    assert fake_server.stats.realtime_calls == 0
    assert ctx.report.batched == 25


def test_each_asyncio_run_gets_its_own_queues(fake_server: FakeProviderServer) -> None:
    with batchify(**FAST, progress=False):
        first = program(fake_server.openai_base_url, 3)
        second = program(fake_server.openai_base_url, 4)
    assert first == [f"echo: s{i}" for i in range(3)]
    assert second[:3] == first  # served from the journal: the same requests again
    assert fake_server.stats.lines_per_batch == [3, 1]


def test_dry_run_around_a_script_stops_it_with_exit_code_0(fake_server: FakeProviderServer) -> None:
    with pytest.raises(SystemExit) as stopped, batchify(**FAST, dry_run=True) as ctx:
        program(fake_server.openai_base_url, 50)
    assert stopped.value.code == 0
    assert ctx.plan is not None
    assert ctx.plan.total_requests == 50
    assert fake_server.stats.requests == []


def test_outside_the_block_calls_go_real_time_again(fake_server: FakeProviderServer) -> None:
    with batchify(**FAST, progress=False):
        program(fake_server.openai_base_url, 1)
    program(fake_server.openai_base_url, 2)
    assert fake_server.stats.realtime_calls == 2
