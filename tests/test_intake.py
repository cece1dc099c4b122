"""How a burst of calls is taken in (`Scheduler.take_in`): a turn's worth at a time, in order,
so that a full job goes to the provider while later calls are still being read."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from batchling import scheduler
from batchling.providers.openai import OpenAIProvider
from batchling.testing import FakeProviderServer
from tests.conftest import fast_batchify

PER_TURN = 10


@pytest.fixture(autouse=True)
def small_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduler, "INTAKE_PER_TURN", PER_TURN)


def ask(client: openai.AsyncOpenAI, text: str) -> Any:
    return client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
    )


async def burst(server: FakeProviderServer, count: int, **options: Any) -> list[str]:
    """The answers to `count` calls gathered in one block."""
    async with (
        openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="k") as client,
        fast_batchify(**options),
    ):
        replies = await asyncio.gather(*(ask(client, f"b{i}") for i in range(count)))
    return [reply.choices[0].message.content for reply in replies]


async def test_a_full_job_is_submitted_before_the_last_call_of_a_burst_is_read(
    fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    happened: list[str] = []
    to_request, submit = OpenAIProvider.to_request, OpenAIProvider.submit

    async def reading(self: Any, target: Any, *args: Any) -> Any:
        happened.append("read")
        return await to_request(self, target, *args)

    async def submitting(self: Any, lines: Any, **kwargs: Any) -> Any:
        happened.append("submit")
        return await submit(self, lines, **kwargs)

    monkeypatch.setattr(OpenAIProvider, "to_request", reading)
    monkeypatch.setattr(OpenAIProvider, "submit", submitting)
    assert await burst(fake_server, 90, batch_size=30) == [f"echo: b{i}" for i in range(90)]
    assert happened.count("submit") == 3
    assert happened.index("submit") < len(happened) - 1 - happened[::-1].index("read")
    assert fake_server.stats.batches_created == 3


async def test_a_batch_window_does_not_end_while_calls_wait_to_be_read(
    fake_server: FakeProviderServer,
) -> None:
    # With no window at all, the calls of one burst still share one job.
    assert len(await burst(fake_server, 5 * PER_TURN, batch_window_seconds=0.0)) == 5 * PER_TURN
    assert fake_server.stats.batches_created == 1


async def test_a_call_cancelled_while_waiting_to_be_read_leaves_the_others_answered(
    fake_server: FakeProviderServer,
) -> None:
    async with (
        openai.AsyncOpenAI(base_url=fake_server.openai_base_url, api_key="k") as client,
        fast_batchify(),
    ):
        tasks = [asyncio.ensure_future(ask(client, f"c{i}")) for i in range(3 * PER_TURN)]
        await asyncio.sleep(0)  # every call has started; the last ones wait their turn
        tasks[-1].cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(outcomes[-1], asyncio.CancelledError)
    assert [outcome.choices[0].message.content for outcome in outcomes[:-1]] == [  # type: ignore[union-attr]
        f"echo: c{i}" for i in range(3 * PER_TURN - 1)
    ]
    assert fake_server.stats.batches_created == 1
    assert sum(fake_server.stats.provider("openai").lines_per_batch) == 3 * PER_TURN - 1


@pytest.mark.parametrize(
    ("per_turn", "turns"), [(1, 20_000), (3 * PER_TURN, 1_000)], ids=["trickle", "flood"]
)
async def test_calls_that_keep_coming_do_not_hold_a_batch_window_open(
    fake_server: FakeProviderServer, per_turn: int, turns: int
) -> None:
    # A window waits for the calls that came before it ended, not for every later one: calls
    # started turn after turn (fewer than a turn's worth, or more; never a full job) still
    # see a job go out.
    started: list[asyncio.Task[Any]] = []
    async with (
        openai.AsyncOpenAI(base_url=fake_server.openai_base_url, api_key="k") as client,
        fast_batchify(),
    ):
        for _ in range(turns):
            if fake_server.stats.batches_created:
                break
            started += [asyncio.ensure_future(ask(client, f"s{i}")) for i in range(per_turn)]
            await asyncio.sleep(0)
        still_coming = not fake_server.stats.batches_created
        await asyncio.gather(*started)
    assert not still_coming


async def test_a_call_slow_to_read_does_not_hold_the_others(
    fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A call whose reading waits (a token provider over the network, say) joins a later job.
    others_answered = asyncio.Event()
    to_request = OpenAIProvider.to_request

    async def reading(self: Any, target: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if kwargs.get("messages", [{}])[0].get("content") == "slow":
            await others_answered.wait()
        return await to_request(self, target, instance, args, kwargs)

    monkeypatch.setattr(OpenAIProvider, "to_request", reading)
    async with (
        openai.AsyncOpenAI(base_url=fake_server.openai_base_url, api_key="k") as client,
        fast_batchify(),
    ):
        slow = asyncio.ensure_future(ask(client, "slow"))
        others = await asyncio.wait_for(
            asyncio.gather(*(ask(client, f"o{i}") for i in range(5))), timeout=30
        )
        others_answered.set()
        last = await slow
    assert [reply.choices[0].message.content for reply in others] == [
        f"echo: o{i}" for i in range(5)
    ]
    assert last.choices[0].message.content == "echo: slow"
    assert fake_server.stats.batches_created == 2
