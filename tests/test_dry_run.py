"""`batchify(dry_run=True)`: see every call and its cost, send nothing."""

from __future__ import annotations

import asyncio

import openai
import pytest

from batchling.testing import FakeProviderServer
from tests.conftest import fast_batchify


def ask(client: openai.AsyncOpenAI, text: str, model: str = "gpt-4o-mini"):  # type: ignore[no-untyped-def]
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])


async def test_dry_run_sees_all_1000_calls_of_a_gather_and_sends_nothing(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    ctx = fast_batchify(dry_run=True)
    with pytest.raises(SystemExit) as stopped:
        async with ctx:
            await asyncio.gather(*(ask(client, f"item {i}") for i in range(1000)))
    assert stopped.value.code == 0
    assert ctx.plan is not None
    assert ctx.plan.total_requests == 1000
    [group] = list(ctx.plan)
    assert (group.provider, group.endpoint, group.model) == (
        "openai",
        "/v1/chat/completions",
        "gpt-4o-mini",
    )
    assert group.requests == 1000
    assert group.batches == 1
    assert group.input_tokens > 0
    assert fake_server.stats.requests == []


async def test_dry_run_splits_batches_and_groups_like_a_real_run(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    ctx = fast_batchify(dry_run=True, batch_size=300)
    with pytest.raises(SystemExit):
        async with ctx:
            await asyncio.gather(
                *(ask(client, f"q{i}") for i in range(700)),
                *(ask(client, f"r{i}", model="gpt-4.1") for i in range(10)),
            )
    assert ctx.plan is not None
    groups = {group.model: group for group in ctx.plan}
    assert groups["gpt-4o-mini"].batches == 3
    assert groups["gpt-4.1"].batches == 1
    assert fake_server.stats.requests == []


async def test_dry_run_splits_embedding_jobs_by_their_inputs_like_a_real_run(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("batchling.providers.openai.EMBEDDING_INPUTS_PER_JOB", 5)
    ctx = fast_batchify(dry_run=True)
    with pytest.raises(SystemExit):
        async with ctx:
            await asyncio.gather(*(
                client.embeddings.create(
                    model="text-embedding-3-small", input=[f"t{i}.{k}" for k in range(count)]
                )
                for i, count in enumerate([3, 1, 2, 4, 1])
            ))  # fmt: skip
    assert ctx.plan is not None
    [group] = list(ctx.plan)
    assert group.batches == 3  # 3+1, 2, 4+1 (as test_openai_batching's real run makes them)
    assert fake_server.stats.requests == []


async def test_dry_run_counts_streaming_as_real_time_without_sending_it(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    ctx = fast_batchify(dry_run=True)
    with pytest.raises(SystemExit):
        async with ctx:
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "s"}], stream=True
            )
    assert ctx.plan is not None
    assert ctx.plan.passed_through == {("openai", "streaming"): 1}
    assert fake_server.stats.requests == []


async def test_dry_run_marks_requests_the_journal_already_has(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify():
        await asyncio.gather(*(ask(client, f"k{i}") for i in range(3)))
    before = len(fake_server.stats.requests)
    ctx = fast_batchify(dry_run=True)
    with pytest.raises(SystemExit):
        async with ctx:
            await asyncio.gather(*(ask(client, f"k{i}") for i in range(5)))
    assert ctx.plan is not None
    [group] = list(ctx.plan)
    assert (group.cached, group.requests) == (3, 2)
    assert len(fake_server.stats.requests) == before


async def test_user_except_exception_does_not_swallow_the_dry_run_stop(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    swallowed = []

    async def careful() -> None:
        try:
            await ask(client, "guarded")
        except Exception as exc:  # what user code often does
            swallowed.append(exc)

    with pytest.raises(SystemExit):
        async with fast_batchify(dry_run=True):
            await careful()
    assert swallowed == []


async def test_a_block_inside_a_dry_run_is_part_of_it_and_sends_nothing(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    outer = fast_batchify(dry_run=True)
    with pytest.raises(SystemExit) as stopped:
        async with outer, fast_batchify() as inner:  # e.g. a program's own block
            await asyncio.gather(*(ask(client, f"q{i}") for i in range(5)))
    assert stopped.value.code == 0
    assert inner.plan is outer.plan
    assert outer.plan is not None
    assert outer.plan.total_requests == 5
    assert fake_server.stats.requests == []


def test_a_sync_block_inside_a_dry_run_sends_nothing(fake_server: FakeProviderServer) -> None:
    client = openai.OpenAI(base_url=fake_server.openai_base_url, api_key="sk-test-key-a")
    outer = fast_batchify(dry_run=True)
    with pytest.raises(SystemExit), outer, fast_batchify():
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "sync"}]
        )
    client.close()
    assert outer.plan is not None
    assert outer.plan.total_requests == 1
    assert fake_server.stats.requests == []


def test_a_large_jobs_input_tokens_are_estimated_from_an_even_sample() -> None:
    from batchling.dryrun import SAMPLED_LINES, estimate_input_tokens, estimate_job_input_tokens

    short = {"model": "m", "messages": [{"role": "user", "content": "x" * 40}]}
    long = {"model": "m", "messages": [{"role": "user", "content": "y" * 400}]}
    few = [short, long, short]
    assert estimate_job_input_tokens(few) == sum(estimate_input_tokens(body) for body in few)
    many = [short if i % 2 else long for i in range(SAMPLED_LINES * 7 + 3)]
    exact = sum(estimate_input_tokens(body) for body in many)
    estimate = estimate_job_input_tokens(many)
    assert estimate != 0
    assert abs(estimate - exact) / exact < 0.02
