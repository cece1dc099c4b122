"""Never pay twice: the journal, resume after a crash, and surviving provider faults."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from google import genai
from openai.types.chat import ChatCompletion

import batchling
from batchling import backoff, journal, scheduler
from batchling.providers import google_genai
from batchling.providers import openai as openai_provider
from batchling.testing import FakeProviderServer
from tests.conftest import fast_batchify, journaled_submission

PROGRAM = Path(__file__).parent / "programs" / "resume_program.py"
LEFT_RUNNING = "left running and journaled"
ASKED_TO_CANCEL = "asked the provider to cancel it"


def ask(client: openai.AsyncOpenAI, text: str):  # type: ignore[no-untyped-def]
    return client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
    )


def run_program(server: FakeProviderServer, count: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(PROGRAM), server.openai_base_url, str(count), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")},
    )


def wait_for(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    give_up = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > give_up:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


async def test_rerun_after_a_completed_run_makes_no_provider_call_and_returns_the_same(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify():
        first = await asyncio.gather(*(ask(client, f"q{i}") for i in range(20)))
    requests_after_first_run = len(fake_server.stats.requests)
    async with fast_batchify() as ctx:
        second = await asyncio.gather(*(ask(client, f"q{i}") for i in range(20)))
    assert len(fake_server.stats.requests) == requests_after_first_run
    assert [r.model_dump() for r in second] == [r.model_dump() for r in first]
    assert all(type(r) is ChatCompletion for r in second)
    assert ctx.report.from_journal == 20
    assert ctx.report.batched == 0


async def test_rerun_submits_only_the_new_requests(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify():
        await asyncio.gather(*(ask(client, f"q{i}") for i in range(5)))
    async with fast_batchify() as ctx:
        replies = await asyncio.gather(*(ask(client, f"q{i}") for i in range(8)))
    assert fake_server.stats.lines_per_batch == [5, 3]
    assert ctx.report.from_journal == 5
    assert [r.choices[0].message.content for r in replies] == [f"echo: q{i}" for i in range(8)]


async def test_identical_requests_are_told_apart_across_runs(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify():
        await asyncio.gather(ask(client, "same"), ask(client, "same"))
    async with fast_batchify() as ctx:
        await asyncio.gather(ask(client, "same"), ask(client, "same"), ask(client, "same"))
    assert ctx.report.from_journal == 2
    assert fake_server.stats.lines_per_batch == [2, 1]


async def test_cache_false_writes_nothing_and_resubmits(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer, cache_dir: Path
) -> None:
    for _ in range(2):
        async with fast_batchify(cache=False):
            await ask(client, "uncached")
    assert fake_server.stats.batches_created == 2
    assert not cache_dir.exists()


async def test_cache_path_puts_the_journal_there(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer, tmp_path: Path
) -> None:
    target = tmp_path / "elsewhere"
    async with fast_batchify(cache=target):
        await ask(client, "here")
    assert (target / journal.FILE_NAME).exists()


async def test_journal_is_owner_only_and_holds_no_secret(
    fake_server: FakeProviderServer, cache_dir: Path
) -> None:
    secret = "sk-very-secret-key-1234567890"
    async with (
        openai.AsyncOpenAI(
            base_url=fake_server.openai_base_url,
            api_key=secret,
            default_headers={"X-Proxy-Token": "proxy-secret-token"},
        ) as client,
        fast_batchify(),
    ):
        await ask(client, "hello")
    path = cache_dir / journal.FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700
    for candidate in cache_dir.iterdir():
        data = candidate.read_bytes()
        assert secret.encode() not in data
        assert b"proxy-secret-token" not in data


def test_killed_after_batch_creation_rerun_attaches_instead_of_paying_again() -> None:
    with FakeProviderServer(batch_delay_seconds=1.5) as server:
        child = run_program(server, 30)
        wait_for(lambda: server.stats.batches_created == 1)
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
        rerun = run_program(server, 30)
        out, err = rerun.communicate(timeout=60)
        assert rerun.returncode == 0, err
        assert json.loads(out) == [f"echo: item {i}" for i in range(30)]
        assert server.stats.batches_created == 1
        assert server.stats.realtime_calls == 0


def test_crash_between_batch_creation_and_journal_write_does_not_create_a_second_batch() -> None:
    with FakeProviderServer() as server:
        crashed = run_program(server, 10, "crash-after-create")
        crashed.communicate(timeout=60)
        assert crashed.returncode == 9
        assert server.stats.batches_created == 1
        rerun = run_program(server, 10)
        out, err = rerun.communicate(timeout=60)
        assert rerun.returncode == 0, err
        assert json.loads(out) == [f"echo: item {i}" for i in range(10)]
        assert server.stats.batches_created == 1


def test_interrupted_submission_that_created_nothing_is_submitted_again(
    cache_dir: Path,
) -> None:
    with FakeProviderServer() as server:
        server.fail_next("POST /v1/batches", 400)
        failed = run_program(server, 3)
        failed.communicate(timeout=60)
        assert failed.returncode != 0
        assert server.stats.batches_created == 0
        rerun = run_program(server, 3)
        _, err = rerun.communicate(timeout=60)
        assert rerun.returncode == 0, err
        assert server.stats.batches_created == 1


async def test_a_create_whose_outcome_the_provider_cannot_tell_stays_journaled(
    client: openai.AsyncOpenAI,
    fake_server: FakeProviderServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The first create fails transiently (it may have made a job), then the look-up that would
    # tell is refused: the submission must stay in the journal for a re-run to look up.
    fake_server.fail_next("POST /v1/batches", 500)
    fake_server.fail_next("GET /v1/batches", 403)
    async with fast_batchify():
        with pytest.raises(
            batchling.BatchCreationUncertainError, match="may have created it"
        ) as err:
            await ask(client, "uncertain")
    assert isinstance(err.value.__cause__, openai.PermissionDeniedError)
    assert fake_server.stats.batches_created == 0
    caplog.set_level("INFO", logger="batchling")
    async with fast_batchify():
        reply = await ask(client, "uncertain")
    assert reply.choices[0].message.content == "echo: uncertain"
    assert "created no job; submitting again" in caplog.text  # looked up, not forgotten
    assert fake_server.stats.batches_created == 1


async def test_a_fault_after_the_provider_accepted_the_job_keeps_it_journaled(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only a refusal (a 4xx answer) proves nothing was created; an answer batchling could not
    # read after the job was accepted must not let a re-run pay again.
    real_submit = openai_provider.OpenAIProvider.submit

    async def accepted_then_unreadable(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        await real_submit(self, *args, **kwargs)
        raise KeyError("id")

    monkeypatch.setattr(openai_provider.OpenAIProvider, "submit", accepted_then_unreadable)
    async with fast_batchify():
        with pytest.raises(KeyError):
            await ask(client, "accepted")
    monkeypatch.setattr(openai_provider.OpenAIProvider, "submit", real_submit)
    async with fast_batchify() as ctx:
        reply = await ask(client, "accepted")
    assert reply.choices[0].message.content == "echo: accepted"
    assert fake_server.stats.batches_created == 1
    assert ctx.report.resumed_batch_ids == [fake_server.batches[0].id]


async def test_a_refusal_after_a_transient_failure_is_uncertain_too() -> None:
    attempts: list[str] = []

    async def create() -> str:
        attempts.append("create")
        if len(attempts) == 1:
            raise ConnectionError("reset")  # may have reached the provider
        raise ValueError("refused")

    async def find_created() -> str | None:
        return None  # the listing may lag behind the first attempt's job

    with pytest.raises(batchling.BatchCreationUncertainError) as err:
        await backoff.create_once(
            create, find_created, is_transient=lambda exc: isinstance(exc, ConnectionError)
        )
    assert isinstance(err.value.__cause__, ValueError)
    assert attempts == ["create", "create"]
    with pytest.raises(ValueError, match="refused"):  # at the first attempt: nothing created
        await backoff.create_once(
            lambda: _raise(ValueError("refused")), find_created, is_transient=lambda exc: False
        )


async def _raise(error: Exception) -> str:
    raise error


async def test_poll_failures_500_429_and_dropped_connections_do_not_lose_results(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    fake_server.fail_next("GET /v1/batches/{id}", 500, times=3)
    fake_server.fail_next("GET /v1/batches/{id}", 429, times=3)
    fake_server.drop_next("GET /v1/batches/{id}", times=3)
    async with fast_batchify():
        replies = await asyncio.gather(*(ask(client, f"p{i}") for i in range(5)))
    assert [r.choices[0].message.content for r in replies] == [f"echo: p{i}" for i in range(5)]
    assert fake_server.stats.batches_created == 1


async def test_download_failures_are_retried(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    fake_server.fail_next("GET /v1/files/{id}/content", 503, times=4)
    async with fast_batchify():
        reply = await ask(client, "download me")
    assert reply.choices[0].message.content == "echo: download me"


async def test_expired_batch_resubmits_leftovers_once_and_keeps_successes(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    fake_server.set_batch_outcome("expired", completed_fraction=0.5)
    async with fast_batchify():
        results = await asyncio.gather(
            *(ask(client, f"e{i}") for i in range(8)), return_exceptions=True
        )
    # First job: 4 of 8 done. Second job (the 4 leftovers): 2 done. No third job.
    assert fake_server.stats.lines_per_batch == [8, 4]
    assert sum(isinstance(r, ChatCompletion) for r in results) == 6
    assert sum(isinstance(r, batchling.BatchExpiredError) for r in results) == 2


async def test_batch_create_400_raises_bad_request_in_callers(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    fake_server.fail_next("POST /v1/batches", 400)
    async with fast_batchify():
        results = await asyncio.gather(ask(client, "a"), ask(client, "b"), return_exceptions=True)
    assert [type(r) for r in results] == [openai.BadRequestError, openai.BadRequestError]


async def test_deadline_sends_unfinished_requests_in_real_time_and_cancels_the_job() -> None:
    with FakeProviderServer(batch_delay_seconds=60) as slow:

        async def run() -> batchling.RunReport:
            """Three calls in a block whose deadline passes: each is answered in real time."""
            async with (
                openai.AsyncOpenAI(base_url=slow.openai_base_url, api_key="k") as slow_client,
                fast_batchify(deadline=0.5) as ctx,
            ):
                with pytest.warns(batchling.NotBatchedWarning, match="deadline"):
                    replies = await asyncio.gather(*(ask(slow_client, f"d{i}") for i in range(3)))
            assert [r.choices[0].message.content for r in replies] == [
                f"echo: d{i}" for i in range(3)
            ]
            return ctx.report

        report = await run()
        assert report.passed_through == {"deadline": 3}
        assert slow.stats.realtime_calls == 3
        assert slow.batches[0].status in ("cancelling", "cancelled")
        assert report.cancelled_batch_ids == [slow.batches[0].id]
        # A re-run does not fail on the job the deadline cancelled: it asks again.
        again = await run()
        assert again.resumed_batch_ids == [slow.batches[0].id]


async def test_error_in_block_leaves_running_jobs_journaled_for_a_rerun(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with FakeProviderServer(batch_delay_seconds=0.5) as server:
        async with openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="k") as client:
            with pytest.raises(RuntimeError, match="stop"):
                async with fast_batchify():
                    task = asyncio.create_task(ask(client, "long job"))
                    while server.stats.batches_created == 0:
                        await asyncio.sleep(0.01)
                    await asyncio.sleep(0.05)
                    raise RuntimeError("stop")
            with pytest.raises(
                batchling.BatchSubmissionAbandonedError, match="left running and journaled"
            ):
                await task  # answered with an error, not left waiting
            batch_id = server.batches[0].id
            assert batch_id in caplog.text
            assert "journaled" in caplog.text
            async with fast_batchify() as ctx:
                reply = await ask(client, "long job")
        assert reply.choices[0].message.content == "echo: long job"
        assert server.stats.batches_created == 1
        assert ctx.report.resumed_batch_ids == [batch_id]


async def test_cancel_on_exit_cancels_running_jobs() -> None:
    with FakeProviderServer(batch_delay_seconds=30) as server:
        async with openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="k") as client:
            with pytest.raises(RuntimeError):
                async with fast_batchify(cancel_on_exit=True) as ctx:
                    task = asyncio.create_task(ask(client, "cancel me"))
                    while not ctx.report.batch_ids:  # running once batchling has its id
                        await asyncio.sleep(0.01)
                    raise RuntimeError("stop")
            with pytest.raises(batchling.BatchSubmissionAbandonedError, match=ASKED_TO_CANCEL):
                await task  # answered with an error, not left waiting
        assert server.batches[0].status in ("cancelling", "cancelled")


def _slow_to_learn_the_id(
    monkeypatch: pytest.MonkeyPatch,
    delay: float,
    provider_type: type[Any] = openai_provider.OpenAIProvider,
) -> None:
    """The provider's create returns `delay` s after the job exists at the server."""
    real_submit = provider_type.submit

    async def submit(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        batch = await real_submit(self, *args, **kwargs)
        await asyncio.sleep(delay)
        return batch

    monkeypatch.setattr(provider_type, "submit", submit)


async def _ended_once_created(
    server: FakeProviderServer, call: Callable[[], Awaitable[Any]], **options: Any
) -> batchling.BatchSubmissionAbandonedError:
    """Run `call` in a block that ends with an error as soon as the server has created its job;
    the error the call then gets (it is answered, not left waiting)."""
    with pytest.raises(RuntimeError, match="stop"):
        async with fast_batchify(**options):
            task = asyncio.create_task(call())
            while server.stats.batches_created == 0:
                await asyncio.sleep(0.01)
            raise RuntimeError("stop")
    with pytest.raises(batchling.BatchSubmissionAbandonedError) as abandoned:
        await task
    return abandoned.value


async def test_cancel_on_exit_cancels_a_job_whose_creation_is_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _slow_to_learn_the_id(monkeypatch, 0.5)
    with FakeProviderServer(batch_delay_seconds=30) as server:
        async with openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="k") as client:
            with pytest.raises(RuntimeError):
                async with fast_batchify(cancel_on_exit=True) as ctx:
                    task = asyncio.create_task(ask(client, "cancel me while created"))
                    while server.stats.batches_created == 0:
                        await asyncio.sleep(0.01)
                    assert not ctx.report.batch_ids  # batchling does not know its id yet
                    raise RuntimeError("stop")
            with pytest.raises(batchling.BatchSubmissionAbandonedError, match=ASKED_TO_CANCEL):
                await task  # answered with an error, not left waiting
        batch = server.batches[0]
        assert batch.status in ("cancelling", "cancelled")
        submission = journaled_submission(batch.id)
        assert submission is not None  # journaled with its id: `batchling batches` sees it
        assert ctx.report.batch_ids == [batch.id]


async def test_a_creation_in_flight_that_outlasts_the_grace_is_looked_up_and_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _slow_to_learn_the_id(monkeypatch, 60)
    monkeypatch.setattr(scheduler, "CREATION_GRACE_SECONDS", 0.2)
    with FakeProviderServer(batch_delay_seconds=30) as server:
        async with openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="k") as client:
            error = await _ended_once_created(
                server, lambda: ask(client, "found and cancelled"), cancel_on_exit=True
            )
            assert ASKED_TO_CANCEL in str(error)
        batch = server.batches[0]
        assert batch.status in ("cancelling", "cancelled")
        assert journaled_submission(batch.id) is not None


async def test_creations_in_flight_share_one_grace_and_are_all_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _slow_to_learn_the_id(monkeypatch, 60)
    monkeypatch.setattr(scheduler, "CREATION_GRACE_SECONDS", 0.2)
    models = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini"]  # one queue, one job each
    with FakeProviderServer(batch_delay_seconds=30) as server:
        async with openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="k") as client:
            with pytest.raises(RuntimeError):
                async with fast_batchify(cancel_on_exit=True) as ctx:
                    tasks = [
                        asyncio.create_task(
                            client.chat.completions.create(
                                model=model, messages=[{"role": "user", "content": model}]
                            )
                        )
                        for model in models
                    ]
                    while server.stats.batches_created < len(models):
                        await asyncio.sleep(0.01)
                    raise RuntimeError("stop")
            for task in tasks:
                with pytest.raises(batchling.BatchSubmissionAbandonedError):
                    await task
        assert all(batch.status in ("cancelling", "cancelled") for batch in server.batches)
        assert sorted(ctx.report.batch_ids) == sorted(batch.id for batch in server.batches)


async def test_a_failed_look_up_at_exit_leaves_the_blocks_own_error_and_the_journal_entry(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_submit = openai_provider.OpenAIProvider.submit
    real_find = openai_provider.OpenAIProvider.find_submission
    _slow_to_learn_the_id(monkeypatch, 60)
    monkeypatch.setattr(scheduler, "CREATION_GRACE_SECONDS", 0.2)

    async def listing_fails(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("listing failed")

    monkeypatch.setattr(openai_provider.OpenAIProvider, "find_submission", listing_fails)
    with FakeProviderServer(batch_delay_seconds=0.5) as server:
        async with openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="k") as client:
            with pytest.raises(ValueError, match="the block's own error"):
                async with fast_batchify(cancel_on_exit=True):
                    task = asyncio.create_task(ask(client, "not found at exit"))
                    while server.stats.batches_created == 0:
                        await asyncio.sleep(0.01)
                    raise ValueError("the block's own error")
            with pytest.raises(batchling.BatchSubmissionAbandonedError):
                await task
            assert "could not look up batch" in caplog.text
            # The re-run's look-up works.
            monkeypatch.setattr(openai_provider.OpenAIProvider, "submit", real_submit)
            monkeypatch.setattr(openai_provider.OpenAIProvider, "find_submission", real_find)
            async with fast_batchify() as ctx:  # still "submitting" in the journal: found
                reply = await ask(client, "not found at exit")
        assert reply.choices[0].message.content == "echo: not found at exit"
        assert server.stats.batches_created == 1
        assert ctx.report.resumed_batch_ids == [server.batches[0].id]


async def test_without_cancel_on_exit_a_creation_in_flight_is_left_to_the_journal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _slow_to_learn_the_id(monkeypatch, 0.5)
    with FakeProviderServer(batch_delay_seconds=0.5) as server:
        async with openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="k") as client:
            error = await _ended_once_created(server, lambda: ask(client, "left running"))
            assert "left running and journaled" in str(error)
            assert server.batches[0].status not in ("cancelling", "cancelled")
            async with fast_batchify() as ctx:  # a re-run finds the job and pays nothing more
                reply = await ask(client, "left running")
        assert reply.choices[0].message.content == "echo: left running"
        assert server.stats.batches_created == 1
        assert ctx.report.resumed_batch_ids == [server.batches[0].id]


async def test_a_rerun_finds_its_job_past_the_first_page_of_the_listing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_submit = openai_provider.OpenAIProvider.submit
    _slow_to_learn_the_id(monkeypatch, 60)
    with FakeProviderServer(batch_delay_seconds=0.5) as server:
        async with openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="k") as client:
            await _ended_once_created(server, lambda: ask(client, "deep in the listing"))
            ours = server.batches[0].id
            uploaded = await client.files.create(
                file=(
                    "other.jsonl",
                    b'{"custom_id":"x","method":"POST","url":"/v1/chat/'
                    b'completions","body":{"model":"gpt-4o-mini","messages":[]}}\n',
                ),
                purpose="batch",
            )
            for _ in range(120):  # other jobs of the account, newer than ours
                await client.batches.create(
                    input_file_id=uploaded.id,
                    endpoint="/v1/chat/completions",
                    completion_window="24h",
                )
            monkeypatch.setattr(openai_provider.OpenAIProvider, "submit", real_submit)
            async with fast_batchify() as ctx:
                reply = await ask(client, "deep in the listing")
        assert reply.choices[0].message.content == "echo: deep in the listing"
        assert ctx.report.resumed_batch_ids == [ours]
        assert server.stats.batches_created == 121


async def test_a_gemini_rerun_finds_its_job_past_the_first_page_of_the_listing(
    monkeypatch: pytest.MonkeyPatch, gemini_client: genai.Client, fake_server: FakeProviderServer
) -> None:
    real_submit = google_genai.GoogleGenAIProvider.submit
    _slow_to_learn_the_id(monkeypatch, 60, google_genai.GoogleGenAIProvider)

    def ask_gemini() -> Any:
        return gemini_client.aio.models.generate_content(model="gemini-2.5-flash", contents="deep")

    await _ended_once_created(fake_server, ask_gemini)
    ours = fake_server.batches[0].id
    for _ in range(60):  # other jobs of the account, newer than ours
        await gemini_client.aio.batches.create(
            model="gemini-2.5-flash", src=[{"contents": [{"parts": [{"text": "other"}]}]}]
        )
    monkeypatch.setattr(google_genai.GoogleGenAIProvider, "submit", real_submit)
    async with fast_batchify() as ctx:
        reply = await ask_gemini()
    assert reply.text == "echo: deep"
    assert ctx.report.resumed_batch_ids == [ours]
    assert fake_server.stats.batches_created == 61


@pytest.mark.parametrize("id_learned", [True, False], ids=["journaled-id", "found-in-listing"])
async def test_a_rerun_follows_an_embedding_job_and_answers_each_call_from_its_lines(
    monkeypatch: pytest.MonkeyPatch, id_learned: bool
) -> None:
    real_submit = google_genai.GoogleGenAIProvider.submit
    if not id_learned:  # the block ends before the create's answer: no job id, no parts
        _slow_to_learn_the_id(monkeypatch, 60, google_genai.GoogleGenAIProvider)
    with FakeProviderServer(batch_delay_seconds=0.5) as server:
        client = genai.Client(
            api_key="k", http_options=genai.types.HttpOptions(base_url=server.gemini_base_url)
        )

        async def embed_both() -> list[Any]:
            return await asyncio.gather(*(
                client.aio.models.embed_content(model="gemini-embedding-001", contents=contents)
                for contents in (["a", "b", "c"], "d")
            ))  # fmt: skip

        await _ended_once_created(server, embed_both)
        monkeypatch.setattr(google_genai.GoogleGenAIProvider, "submit", real_submit)
        async with fast_batchify() as ctx:  # reattached from the journal: no new job
            first, second = await embed_both()
        live = await client.aio.models.embed_content(model="gemini-embedding-001", contents="c")
        await client.aio.aclose()
    assert len(first.embeddings) == 3
    assert first.embeddings[2].values == live.embeddings[0].values
    assert len(second.embeddings) == 1
    assert server.stats.batches_created == 1
    assert ctx.report.resumed_batch_ids == [server.batches[0].id]


@pytest.mark.parametrize("id_learned", [True, False], ids=["journaled-id", "found-in-listing"])
async def test_an_embed_call_a_cancelled_job_answered_in_part_gets_the_error_not_fewer_vectors(
    monkeypatch: pytest.MonkeyPatch, id_learned: bool
) -> None:
    real_submit = google_genai.GoogleGenAIProvider.submit
    if not id_learned:
        _slow_to_learn_the_id(monkeypatch, 60, google_genai.GoogleGenAIProvider)
    with FakeProviderServer(batch_delay_seconds=0.5) as server:
        server.set_batch_outcome("cancelled", completed_fraction=0.75)  # 3 of 4 lines answered
        client = genai.Client(
            api_key="k", http_options=genai.types.HttpOptions(base_url=server.gemini_base_url)
        )

        async def embed_both(*, settled: bool = False) -> list[Any]:
            return await asyncio.gather(
                *(
                    client.aio.models.embed_content(model="gemini-embedding-001", contents=texts)
                    for texts in (["a", "b"], ["c", "d"])
                ),
                return_exceptions=settled,
            )

        await _ended_once_created(server, embed_both)
        monkeypatch.setattr(google_genai.GoogleGenAIProvider, "submit", real_submit)
        async with fast_batchify():
            whole, cut = await embed_both(settled=True)
        await client.aio.aclose()
    assert len(whole.embeddings) == 2
    assert isinstance(cut, batchling.BatchCancelledError)


async def test_resume_works_for_anthropic_and_gemini_too(
    anthropic_client, gemini_client, fake_server: FakeProviderServer
) -> None:  # type: ignore[no-untyped-def]
    async def both() -> list[str]:
        message = await anthropic_client.messages.create(
            model="claude-sonnet-5-5", max_tokens=10, messages=[{"role": "user", "content": "a"}]
        )
        reply = await gemini_client.aio.models.generate_content(
            model="gemini-2.5-flash", contents="g"
        )
        return [message.content[0].text, reply.text]

    async with fast_batchify():
        first = await both()
    requests = len(fake_server.stats.requests)
    async with fast_batchify() as ctx:
        second = await both()
    assert second == first == ["echo: a", "echo: g"]
    assert len(fake_server.stats.requests) == requests
    assert ctx.report.from_journal == 2


def test_two_processes_running_the_same_program_pay_once() -> None:
    with FakeProviderServer(batch_delay_seconds=1.0) as server:
        first = run_program(server, 20)
        wait_for(lambda: server.stats.batches_created == 1)
        second = run_program(server, 20)
        outputs = [process.communicate(timeout=60) for process in (first, second)]
        for process, (out, err) in zip((first, second), outputs, strict=True):
            assert process.returncode == 0, err
            assert json.loads(out) == [f"echo: item {i}" for i in range(20)]
        assert server.stats.batches_created == 1


def claim(
    store: journal.Journal, submission_id: str, custom_ids: list[str], base_url: str = "http://h"
) -> set[str]:
    """Journal a new submission of `custom_ids`, as a block does before it submits a job."""
    return store.begin_submission(
        journal.Submission(
            submission_id, "openai", "/v1/chat/completions", "m", base_url, "k",
            len(custom_ids), journal.SubmissionState.SUBMITTING, None, None, {}, time.time(),
            time.time(),
        ),
        custom_ids,
    )  # fmt: skip


@pytest.mark.parametrize("reads_json", [True, False], ids=["sqlite-json", "row-by-row"])
def test_journal_claim_is_refused_for_requests_another_live_submission_holds(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch, reads_json: bool
) -> None:
    monkeypatch.setattr(journal, "sqlite_reads_json", lambda db: reads_json)
    store = journal.Journal(cache_dir / journal.FILE_NAME)

    assert claim(store, "a", ["x_0", "y_0"]) == set()
    assert claim(store, "b", ["y_0", "z_0"]) == {"y_0"}
    assert store.custom_ids("b") == ["z_0"]
    store.abandon("a")
    assert claim(store, "c", ["x_0"]) == set()
    # A request with a result from an ended submission is taken over, its result forgotten,
    # in the order the new submission gave.
    store.store_results(
        "c", [batchling.provider.LineResult("x_0", batchling.provider.Outcome.EXPIRED)]
    )
    store.mark_ended("c", "expired")
    assert claim(store, "d", ["w_0", "x_0", "z_0"]) == {"z_0"}
    assert store.custom_ids("d") == ["w_0", "x_0"]
    taken = store.lookup("x_0")
    assert taken is not None
    assert (taken.submission.submission_id, taken.submission.size, taken.result) == ("d", 2, None)
    store.close()


def test_the_journal_keeps_no_credentials_written_into_a_base_url(cache_dir: Path) -> None:
    store = journal.Journal(cache_dir / journal.FILE_NAME)
    claim(
        store,
        "s",
        ["x_0"],
        base_url="https://proxy-user:proxy-secret@gateway.example:8443/v1?key=query-secret",
    )
    (kept,) = store.submissions()
    store.close()
    assert kept.base_url == "https://gateway.example:8443/v1"
    files = [cache_dir / name for name in os.listdir(cache_dir)]
    assert not any(b"secret" in path.read_bytes() for path in files)
    assert journal.storable_url("http://[::1]:8000/v1?k=1") == "http://[::1]:8000/v1"
    assert journal.storable_url("https://api.openai.com/v1") == "https://api.openai.com/v1"


def test_a_journal_written_before_keeps_no_credentials_once_opened(cache_dir: Path) -> None:
    store = journal.Journal(cache_dir / journal.FILE_NAME)
    store.close()
    with sqlite3.connect(cache_dir / journal.FILE_NAME) as db:  # as an older batchling wrote
        db.execute(
            "INSERT INTO submissions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                "s", "openai", "/v1/chat/completions", "m",
                "https://proxy-user:proxy-secret@gateway.example/v1", "k", 1, "running",
                "batch_1", None, "{}", time.time(), time.time(),
            ),
        )  # fmt: skip
        db.execute("PRAGMA user_version = 0")
    store = journal.Journal(cache_dir / journal.FILE_NAME)
    (kept,) = store.submissions()
    store.close()
    assert kept.base_url == "https://gateway.example/v1"
    files = [cache_dir / name for name in os.listdir(cache_dir)]
    assert not any(b"secret" in path.read_bytes() for path in files)


def test_results_an_earlier_batchling_kept_are_still_read(cache_dir: Path) -> None:
    # Every batchling of a user shares one journal: an earlier one keeps results in the rows
    # of `requests`, also after a newer one opened the journal.
    store = journal.Journal(cache_dir / journal.FILE_NAME)
    store.close()
    now = time.time()
    with sqlite3.connect(cache_dir / journal.FILE_NAME) as db:  # as an earlier batchling writes
        db.execute(
            "INSERT INTO submissions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                "s", "openai", "/v1/chat/completions", "m", "http://h", "k", 2, "ended",
                "batch_1", "completed", "{}", now, now,
            ),
        )  # fmt: skip
        db.executemany(
            "INSERT INTO requests VALUES (?,?,?,?,?,?,?,?,?)",
            [
                ("a_0", "s", 0, "succeeded", 200, '{"n":NaN,"x":"déjà"}'.encode(), "r1", None, now),
                ("b_0", "s", 1, "errored", 400, b'{"error":{"code":"bad"}}', None, "bad", now),
            ],
        )  # fmt: skip
    store = journal.Journal(cache_dir / journal.FILE_NAME)
    found = store.lookup_many(["a_0", "b_0"])
    assert store.stats()["results"] == 2
    store.release(["a_0", "b_0"])  # only requests without a result are forgotten
    assert sorted(store.lookup_many(["a_0", "b_0"])) == ["a_0", "b_0"]
    first, second = found["a_0"].result, found["b_0"].result
    assert first is not None
    assert second is not None
    assert first.body["x"] == "déjà"
    assert first.body["n"] != first.body["n"]
    assert (first.outcome, first.status_code, first.request_id) == ("succeeded", 200, "r1")
    assert (second.outcome, second.status_code, second.message) == ("errored", 400, "bad")
    assert second.body == {"error": {"code": "bad"}}
    # Taken over by a new submission, a request's old result is forgotten wherever it was kept.
    claim(store, "t", ["a_0"])
    taken = store.lookup("a_0")
    store.close()
    assert taken is not None
    assert (taken.submission.submission_id, taken.result) == ("t", None)


@pytest.mark.parametrize("reads_json", [True, False], ids=["sqlite-json", "row-by-row"])
def test_journal_answers_many_requests_at_once_beyond_one_query(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch, reads_json: bool
) -> None:
    # Where SQLite has no JSON functions, results are stored row by row: the same answers.
    monkeypatch.setattr(journal, "sqlite_reads_json", lambda db: reads_json)
    store = journal.Journal(cache_dir / journal.FILE_NAME)
    ids = [f"{index:040x}_0" for index in range(6_234)]  # more than one statement's worth
    claim(store, "s", ids)
    body = {"n": 10**30, "text": "déjà vu \ud800", "none": None, "f": 1.5e-300}
    odd = {"score": float("nan"), "top": float("-inf")}  # what SQLite's JSON cannot read
    wait = store.begin_storing_results(
        "s",
        [
            batchling.provider.LineResult(
                i,
                batchling.provider.Outcome.SUCCEEDED,
                200,
                {**body, **odd} if n >= 6_000 else body,
            )
            for n, i in enumerate(ids)
        ],
        "completed",
    )
    wait()
    found = store.lookup_many([*ids, "unknown_0"])
    assert sorted(found) == ids
    assert found[ids[0]].submission.state is journal.SubmissionState.ENDED
    assert store.stats()["results"] == len(ids)
    plain, with_odd = found[ids[0]].result, found[ids[-1]].result
    assert plain is not None
    assert with_odd is not None
    assert plain.body == body
    assert with_odd.body["n"] == 10**30
    assert with_odd.body["text"] == "déjà vu \ud800"
    assert with_odd.body["score"] != with_odd.body["score"]  # NaN survives the round trip
    assert with_odd.body["top"] == float("-inf")
    single = store.lookup(ids[0])
    assert single is not None
    assert single.submission == found[ids[0]].submission
    assert single.result == plain
    store.close()


def test_a_stray_line_of_one_job_never_takes_another_jobs_result(cache_dir: Path) -> None:
    store = journal.Journal(cache_dir / journal.FILE_NAME)
    for submission_id, custom_id in (("a", "x_0"), ("b", "y_0")):
        claim(store, submission_id, [custom_id])
    succeeded = batchling.provider.Outcome.SUCCEEDED
    store.store_results("a", [batchling.provider.LineResult("x_0", succeeded, 200, {"a": 1})])
    # Job b's output names x_0 too (a provider's mistake): a's result stays.
    store.store_results(
        "b",
        [
            batchling.provider.LineResult("y_0", succeeded, 200, {"b": 1}),
            batchling.provider.LineResult("x_0", succeeded, 200, {"b": 2}),
        ],
        ended="completed",
    )
    found = store.lookup_many(["x_0", "y_0"])
    store.close()
    assert [found[key].result.body for key in ("x_0", "y_0")] == [{"a": 1}, {"b": 1}]  # type: ignore[union-attr]


async def test_results_are_journaled_before_any_caller_gets_one(
    fake_server: FakeProviderServer, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The journal stores a job's results in a thread while they are routed; a slow store
    # (here: each document takes a while to build) is still done before a caller resumes.
    documents = journal._results_documents

    def slow_documents(results: Any) -> Any:
        time.sleep(0.3)
        return documents(results)

    monkeypatch.setattr(journal, "_results_documents", slow_documents)

    async def ask_and_count(client: openai.AsyncOpenAI, text: str) -> int:
        await ask(client, text)
        with sqlite3.connect(cache_dir / journal.FILE_NAME) as db:
            return int(db.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    async with (
        openai.AsyncOpenAI(base_url=fake_server.openai_base_url, api_key="k") as client,
        fast_batchify(),
    ):
        counts = await asyncio.gather(*(ask_and_count(client, f"k{i}") for i in range(3)))
    assert counts == [3, 3, 3]


def test_large_results_are_stored_a_bounded_document_at_a_time(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Documents are split until each fits (SQLite refuses strings past a billion bytes); one
    # result larger than the bound goes alone. Without a thread, the wait does the store.
    monkeypatch.setattr(journal, "_DOCUMENT_BYTES", 4_000)
    sizes: list[int] = []
    documents = journal._results_documents

    def recorded(results: Any) -> Any:  # the split calls it again for each half
        outermost = not depth
        depth.append(1)
        for document in documents(results):
            if outermost:
                sizes.append(len(document))
            yield document
        depth.pop()

    depth: list[int] = []

    def no_thread(work: object) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(journal, "_results_documents", recorded)
    monkeypatch.setattr(journal, "_Background", no_thread)
    store = journal.Journal(cache_dir / journal.FILE_NAME)
    ids = [f"{index:040x}_0" for index in range(60)]
    claim(store, "s", ids)
    bodies = [{"text": ("x" * 9_000 if n == 7 else f"answer {n} ") * 20} for n in range(60)]
    succeeded = batchling.provider.Outcome.SUCCEEDED
    wait = store.begin_storing_results(
        "s",
        [
            batchling.provider.LineResult(i, succeeded, 200, b)
            for i, b in zip(ids, bodies, strict=True)
        ],
        "completed",
    )
    assert sizes == []  # nothing stored before the wait
    wait()
    found = store.lookup_many(ids)
    store.close()
    assert [found[i].result.body for i in ids] == bodies  # type: ignore[union-attr]
    assert len(sizes) > 2
    assert max(sizes) > 4_000  # the one large result, alone
    assert sorted(sizes)[-2] <= 4_000


def test_a_failed_store_of_results_is_raised_by_its_wait(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = journal.Journal(cache_dir / journal.FILE_NAME)
    monkeypatch.setattr(journal, "_results_documents", _broken)
    result = batchling.provider.LineResult("x_0", batchling.provider.Outcome.SUCCEEDED, 200, {})
    wait = store.begin_storing_results("s", [result], "completed")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        wait()
    store.close()


def _broken(*args: object, **kwargs: object) -> None:
    raise sqlite3.OperationalError("disk I/O error")


@pytest.mark.parametrize("method", ["lookup_many", "begin_submission"])
async def test_a_journal_that_cannot_be_used_before_submitting_fails_callers_and_submits_nothing(
    fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    monkeypatch.setattr(journal.Journal, method, _broken)
    async with (
        openai.AsyncOpenAI(base_url=fake_server.openai_base_url, api_key="k") as client,
        fast_batchify(),
    ):
        outcomes = await asyncio.gather(
            *(ask(client, f"j{i}") for i in range(3)), return_exceptions=True
        )
    assert all(isinstance(outcome, batchling.JournalError) for outcome in outcomes)
    assert "disk I/O error" in str(outcomes[0])
    assert "cache=False" in str(outcomes[0])
    assert fake_server.stats.batches_created == 0
    assert fake_server.stats.realtime_calls == 0


@pytest.mark.parametrize("method", ["mark_submitted", "mark_status", "_store"])
async def test_a_journal_write_failing_after_submission_still_answers_every_caller(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, method: str
) -> None:
    # The job is paid for: the callers get their answers, and the failure is logged.
    monkeypatch.setattr(journal.Journal, method, _broken)
    with FakeProviderServer(batch_delay_seconds=0.3) as server:  # polled while in progress
        async with (
            openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="k") as client,
            fast_batchify(),
        ):
            replies = await asyncio.gather(*(ask(client, f"w{i}") for i in range(3)))
        assert server.stats.batches_created == 1
    assert [reply.choices[0].message.content for reply in replies] == [
        f"echo: w{i}" for i in range(3)
    ]
    assert "could not record" in caplog.text
    assert "disk I/O error" in caplog.text


async def test_an_unexpected_fault_inside_a_job_fails_its_callers_instead_of_hanging(
    fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug of batchling's own")

    monkeypatch.setattr(journal.Journal, "mark_submitted", crash)
    async with (
        openai.AsyncOpenAI(base_url=fake_server.openai_base_url, api_key="k") as client,
        fast_batchify(),
    ):
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(ask(client, f"u{i}") for i in range(3)), return_exceptions=True),
            timeout=30,
        )
    assert [str(outcome) for outcome in outcomes] == ["a bug of batchling's own"] * 3


async def test_a_journal_that_cannot_be_opened_is_a_clear_error_at_the_block(
    fake_server: FakeProviderServer, tmp_path: Path
) -> None:
    not_a_directory = tmp_path / "a-file"
    not_a_directory.write_text("")
    with pytest.raises(batchling.JournalError, match=r"cannot open its journal.*cache=False"):
        async with fast_batchify(cache=not_a_directory / "cache"):
            pass
    # Nothing was left half-entered: the next block works.
    async with (
        openai.AsyncOpenAI(base_url=fake_server.openai_base_url, api_key="k") as client,
        fast_batchify(),
    ):
        reply = await ask(client, "after")
    assert reply.choices[0].message.content == "echo: after"


async def test_requests_another_process_claimed_fail_clearly_when_the_journal_cannot_be_read(
    fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process claimed some of a submission's requests meanwhile; reading what it
    holds fails: those callers get the journal's error instead of waiting forever."""
    real_begin = journal.Journal.begin_submission

    def another_process_holds_the_first(self, submission, custom_ids):  # type: ignore[no-untyped-def]
        held = real_begin(self, submission, custom_ids[1:])
        monkeypatch.setattr(journal.Journal, "lookup_many", _broken)  # from now on
        return held | {custom_ids[0]}

    monkeypatch.setattr(journal.Journal, "begin_submission", another_process_holds_the_first)
    async with (
        openai.AsyncOpenAI(base_url=fake_server.openai_base_url, api_key="k") as client,
        fast_batchify() as ctx,
    ):
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(ask(client, f"h{i}") for i in range(3)), return_exceptions=True),
            timeout=30,
        )
    errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert len(errors) == 1
    assert isinstance(errors[0], batchling.JournalError)
    assert "could not read its journal" in str(errors[0])
    assert ctx.report.failed == 1
    assert fake_server.stats.batches_created == 1  # the other two were sent
