"""Ctrl-C, and event loops that end while batch jobs run: the jobs are reported (or cancelled,
with `cancel_on_exit`), never dropped silently, and a re-run still pays nothing twice."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

import batchling
from batchling import journal, scheduler
from batchling.providers import openai as openai_provider
from batchling.testing import FakeProviderServer
from tests.cli.support import FAST as CLI_FAST
from tests.cli.support import SRC, script
from tests.conftest import fast_batchify, journaled_submission

LEFT_RUNNING = "left running and journaled"
SCRIPT = "module_client.py"
LOOP_SHUT_DOWN = "event loop following these batch jobs shut down"


def ask(client: openai.AsyncOpenAI, text: str):  # type: ignore[no-untyped-def]
    return client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
    )


async def _until_running(report_batch_ids: list[str]) -> None:
    while not report_batch_ids:  # batchling knows the job's id
        await asyncio.sleep(0.01)


def _script_loop_leaving_a_job_running(
    base_url: str, batch_ids: list[str], *, close_client: bool = False
) -> None:
    """What a script run by `batchling run` does when its `asyncio.run` ends (Ctrl-C, or a
    return that leaves a task unawaited) while its call's batch job runs."""

    async def main() -> None:
        client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-script")
        left_behind = asyncio.create_task(ask(client, "left behind"))
        await _until_running(batch_ids)
        if close_client:  # as `async with AsyncOpenAI() as client:` does before the loop ends
            await client.close()
        clients.append(client)
        del left_behind  # never awaited: cancelled as the loop ends

    async def cancel_what_is_left() -> None:
        # What `asyncio.run` does as its coroutine ends, here before the client is closed.
        left = asyncio.all_tasks() - {asyncio.current_task()}
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)

    clients: list[openai.AsyncOpenAI] = []
    with asyncio.Runner() as runner:
        runner.run(main())
        runner.run(cancel_what_is_left())
        runner.run(clients[0].close())


def test_a_loop_ending_inside_a_sync_block_reports_its_running_job_and_a_rerun_collects_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with FakeProviderServer(batch_delay_seconds=0.5) as server:
        with fast_batchify() as ctx:
            _script_loop_leaving_a_job_running(server.openai_base_url, ctx.report.batch_ids)
        (batch_id,) = ctx.report.batch_ids
        assert LOOP_SHUT_DOWN in caplog.text
        assert LEFT_RUNNING in caplog.text
        assert batch_id in caplog.text
        assert ctx.report.left_running_batch_ids == [batch_id]
        assert not ctx.report.cancelled_batch_ids
        submission = journaled_submission(batch_id)
        assert submission is not None
        assert submission.state == journal.SubmissionState.RUNNING

        async def rerun() -> str | None:
            async with (
                openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="sk-script") as client,
                fast_batchify() as again,
            ):
                reply = await ask(client, "left behind")
            assert again.report.resumed_batch_ids == [batch_id]
            return reply.choices[0].message.content

        assert asyncio.run(rerun()) == "echo: left behind"
        assert server.stats.batches_created == 1


def test_a_loop_ending_inside_a_sync_block_cancels_its_job_with_cancel_on_exit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with FakeProviderServer(batch_delay_seconds=30) as server:
        with fast_batchify(cancel_on_exit=True) as ctx:
            _script_loop_leaving_a_job_running(server.openai_base_url, ctx.report.batch_ids)
        (batch_id,) = ctx.report.batch_ids
        assert server.batches[0].id == batch_id
        assert server.batches[0].status in ("cancelling", "cancelled")
        assert "asked the provider to cancel" in caplog.text
        assert ctx.report.cancelled_batch_ids == [batch_id]
        assert not ctx.report.left_running_batch_ids


def test_a_job_whose_client_the_script_closed_is_reported_with_the_command_to_cancel_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with FakeProviderServer(batch_delay_seconds=30) as server:
        with fast_batchify(cancel_on_exit=True) as ctx:
            _script_loop_leaving_a_job_running(
                server.openai_base_url, ctx.report.batch_ids, close_client=True
            )
        (batch_id,) = ctx.report.batch_ids
        assert server.batches[0].status == "in_progress"  # the client could not reach it
        assert f"batchling batches cancel {batch_id}" in caplog.text
        assert LEFT_RUNNING in caplog.text  # not "asked the provider to cancel"
        assert "provider to cancel:" not in caplog.text
        assert ctx.report.left_running_batch_ids == [batch_id]
        assert not ctx.report.cancelled_batch_ids


@pytest.mark.parametrize("cancel_on_exit", [False, True])
@pytest.mark.parametrize("caller_gives_up", [False, True])
async def test_cancelled_while_the_block_waits_for_its_jobs_names_them_once(
    cancel_on_exit: bool, caller_gives_up: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Ctrl-C in `asyncio.run` cancels the main task; here it arrives after the block's body,
    while its exit waits for a call nobody awaited, or for a job whose only caller gave up (the
    job is not cancelled along with that wait). The block's exit abandons the job, once."""
    with FakeProviderServer(batch_delay_seconds=30) as server:
        async with openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="k") as client:
            context = fast_batchify(cancel_on_exit=cancel_on_exit)
            exiting = asyncio.Event()

            async def block() -> None:
                async with context:
                    call = asyncio.create_task(ask(client, "waited for at exit"))
                    await _until_running(context.report.batch_ids)
                    if caller_gives_up:
                        call.cancel()
                    exiting.set()  # the body ends normally: the exit waits

            running = asyncio.create_task(block())
            await exiting.wait()
            await asyncio.sleep(0.1)
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running
        (batch_id,) = context.report.batch_ids
        named = [record.message for record in caplog.records if f":{batch_id}" in record.message]
        assert len(named) == 1
        assert named[0].startswith("batchify() block ended with CancelledError (Ctrl-C")
        if cancel_on_exit:
            assert server.batches[0].status in ("cancelling", "cancelled")
            assert context.report.cancelled_batch_ids == [batch_id]
        else:
            assert LEFT_RUNNING in named[0]
            assert server.batches[0].status == "in_progress"
            assert context.report.left_running_batch_ids == [batch_id]


@pytest.mark.parametrize("cancel_on_exit", [False, True])
def test_ctrl_c_while_a_sync_block_waits_for_a_sync_clients_call(cancel_on_exit: bool) -> None:
    program = Path(__file__).parent / "programs" / "sync_interrupt_program.py"
    with FakeProviderServer(batch_delay_seconds=60) as server:
        done = subprocess.run(
            [sys.executable, str(program), server.openai_base_url]
            + (["cancel-on-exit"] if cancel_on_exit else []),
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(SRC)},
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            check=False,
        )
        assert done.returncode == 0, done.stderr
        outcome = json.loads(done.stdout)
        (batch,) = server.batches
        assert outcome["interrupted"]
        assert outcome["caller"] == ["BatchSubmissionAbandonedError"]  # not left waiting
        if cancel_on_exit:
            assert outcome["cancelled"] == [batch.id]
            assert batch.status in ("cancelling", "cancelled")
        else:
            assert outcome["left_running"] == [batch.id]
            assert batch.status == "in_progress"


def _journaled_running(cache_dir: Path) -> list[journal.Submission]:
    path = cache_dir / journal.FILE_NAME
    if not path.exists():
        return []
    opened = journal.Journal(path)
    try:
        return opened.submissions(states=[journal.SubmissionState.RUNNING])
    finally:
        opened.close()


@pytest.mark.parametrize("cancel_on_exit", [False, True])
def test_ctrl_c_during_batchling_run_reports_or_cancels_the_running_job(
    cancel_on_exit: bool, cache_dir: Path
) -> None:
    with FakeProviderServer(batch_delay_seconds=60) as server:
        options = ["--cancel-on-exit"] if cancel_on_exit else []
        child = subprocess.Popen(
            [sys.executable, "-m", "batchling", "run", *CLI_FAST, *options, script(SCRIPT)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={
                **os.environ,
                "PYTHONPATH": str(SRC),
                "COLUMNS": "200",
                "FAKE_OPENAI_BASE_URL": server.openai_base_url,
                "ASK_COUNT": "3",
            },
            # As in a terminal: Ctrl-C raises KeyboardInterrupt (a shell running the tests in
            # the background may have the child inherit SIGINT ignored).
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            give_up = time.monotonic() + 60
            while not _journaled_running(cache_dir):
                assert child.poll() is None, child.communicate()
                assert time.monotonic() < give_up, "the job was never journaled as running"
                time.sleep(0.05)
            child.send_signal(signal.SIGINT)
            _, stderr = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
        assert child.returncode == 130, stderr
        (batch,) = server.batches
        assert batch.id in stderr
        summary = stderr[stderr.index("batchling summary") :]
        if cancel_on_exit:
            assert batch.status in ("cancelling", "cancelled")
            assert "asked the provider to cancel" in stderr
            assert f"asked to cancel (block ended, or deadline): {batch.id}" in summary
        else:
            assert batch.status == "in_progress"
            assert LEFT_RUNNING in stderr
            assert (
                f"still running at the provider, not waited for (see the warning above): {batch.id}"
                in summary
            )


async def test_a_submit_that_ignores_being_stopped_does_not_hold_the_blocks_exit(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A plugin's submit that swallows its first cancellation: the block still ends, and the
    creation is left to the journal."""
    real_submit = openai_provider.OpenAIProvider.submit

    async def stubborn(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        batch = await real_submit(self, *args, **kwargs)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(60)  # ignores the first cancel; a second one ends it
        return batch

    monkeypatch.setattr(openai_provider.OpenAIProvider, "submit", stubborn)
    monkeypatch.setattr(scheduler, "CREATION_UNWIND_SECONDS", 0.2)
    with FakeProviderServer(batch_delay_seconds=30) as server:
        async with openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="k") as client:
            calls: list[asyncio.Task[object]] = []

            async def block() -> None:
                async with fast_batchify():
                    calls.append(asyncio.create_task(ask(client, "stubborn")))
                    while server.stats.batches_created == 0:
                        await asyncio.sleep(0.01)
                    raise RuntimeError("stop")

            with pytest.raises(RuntimeError, match="stop"):
                await asyncio.wait_for(block(), timeout=30)  # hung before: no bound
            with pytest.raises(batchling.BatchSubmissionAbandonedError):
                await calls[0]
    assert "were left as they are" in caplog.text


async def test_a_job_created_while_an_interrupted_exit_waited_is_still_named_and_counted(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With `cancel_on_exit`, the exit waits for creations in flight; one finishes during the
    wait, and a second Ctrl-C cuts the wait short: that job is journaled, counted and named as
    left running, and the other creation as left to the journal."""
    real_submit = openai_provider.OpenAIProvider.submit
    fast_created = asyncio.Event()
    submitting: list[str] = []

    async def submit(self, lines, **kwargs):  # type: ignore[no-untyped-def]
        submitting.append(lines[0].request.model)
        if lines[0].request.model == "slow":
            await asyncio.sleep(60)
        await asyncio.sleep(0.2)  # "fast" is created while the exit waits
        batch = await real_submit(self, lines, **kwargs)
        fast_created.set()
        return batch

    monkeypatch.setattr(openai_provider.OpenAIProvider, "submit", submit)
    monkeypatch.setattr(scheduler, "CREATION_GRACE_SECONDS", 30)
    with FakeProviderServer(batch_delay_seconds=30) as server:
        async with openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="k") as client:
            context = fast_batchify(cancel_on_exit=True)
            calls: list[asyncio.Task[object]] = []

            async def block() -> None:
                async with context:
                    for model in ("fast", "slow"):
                        calls.append(
                            asyncio.create_task(
                                client.chat.completions.create(
                                    model=model, messages=[{"role": "user", "content": model}]
                                )
                            )
                        )
                    while len(submitting) < 2:  # both creations in flight
                        await asyncio.sleep(0.01)
                    raise RuntimeError("stop")

            running = asyncio.create_task(block())
            await fast_created.wait()
            for _ in range(5):
                await asyncio.sleep(0)  # the exit is in its grace wait for "slow"
            running.cancel()  # the second Ctrl-C
            with pytest.raises(asyncio.CancelledError):
                await running
            for call in calls:
                with pytest.raises(batchling.BatchSubmissionAbandonedError):
                    await call
        (batch,) = server.batches
        assert context.report.batch_ids == [batch.id]
        assert context.report.left_running_batch_ids == [batch.id]
        assert journaled_submission(batch.id) is not None
        assert "batch jobs being created were left as they are" in caplog.text


async def test_tasks_not_yet_started_when_the_block_raises_are_refused_not_sent() -> None:
    with FakeProviderServer() as server:
        async with openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="k") as client:
            with pytest.raises(ValueError, match="boom"):
                async with fast_batchify():
                    tasks = [asyncio.create_task(ask(client, f"x{i}")) for i in range(3)]
                    raise ValueError("boom")  # before any task ran
            results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, batchling.BatchSubmissionAbandonedError) for r in results), results
    assert "costs nothing" in str(results[0])
    assert server.stats.realtime_calls == 0
    assert server.stats.batches_created == 0


async def test_a_rerun_sends_again_what_cancel_on_exit_left_unanswered() -> None:
    # Jobs take 2 s: long enough to cancel the first, short for the one sent again.
    with FakeProviderServer(batch_delay_seconds=2) as server:
        server.set_batch_outcome("completed", completed_fraction=0.5)  # a cancel answers half
        async with openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="k") as client:
            with pytest.raises(RuntimeError, match="stop"):
                async with fast_batchify(cancel_on_exit=True) as first:
                    tasks = [asyncio.create_task(ask(client, f"c{i}")) for i in range(4)]
                    await _until_running(first.report.batch_ids)
                    raise RuntimeError("stop")
            await asyncio.gather(*tasks, return_exceptions=True)
            assert first.report.cancelled_batch_ids == [server.batches[0].id]
            submission = journaled_submission(server.batches[0].id)
            assert submission is not None
            assert submission.provider_status == "cancel requested"  # `batches list` says so
            async with fast_batchify() as again:
                replies = await asyncio.gather(*(ask(client, f"c{i}") for i in range(4)))
    assert [reply.choices[0].message.content for reply in replies] == [
        f"echo: c{i}" for i in range(4)
    ]
    assert again.report.resumed_batch_ids == [server.batches[0].id]
    assert server.stats.lines_per_batch == [4, 2]  # only what the cancel left is paid again
