"""Together AI through the `openai` SDK: its own upload flow and Batch API, end to end."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion

import batchling
from batchling import stainless
from batchling.plugins import get_providers
from batchling.provider import ClientForJob
from batchling.providers import openai_compatible, together
from batchling.testing import FakeProviderServer, TogetherBatchRecord
from tests.conftest import fast_batchify

KEY = "tgp_v1_test-key"
MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"


@contextlib.contextmanager
def together_profile(server: FakeProviderServer) -> Iterator[None]:
    """The built-in Together profile, pointed at the fake server's Together host."""
    host = dataclasses.replace(openai_compatible.TOGETHER, base_urls=(server.together_base_url,))
    openai_compatible.register_openai_compatible_host(host)
    try:
        yield
    finally:
        openai_compatible.unregister_openai_compatible_host(host)


@pytest.fixture
async def client(fake_server: FakeProviderServer) -> AsyncIterator[openai.AsyncOpenAI]:
    with together_profile(fake_server):
        async with openai.AsyncOpenAI(
            base_url=fake_server.together_base_url, api_key=KEY
        ) as sdk_client:
            yield sdk_client


def ask(client: openai.AsyncOpenAI, text: str, **extra: Any) -> Any:
    return client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": text}], **extra
    )


def together_batches(server: FakeProviderServer) -> list[TogetherBatchRecord]:
    return [record for record in server.batches if isinstance(record, TogetherBatchRecord)]


def no_backoff_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(together.backoff, "delays", lambda *a, **k: iter(lambda: 0.0, 1))


def test_together_is_recognised_by_both_of_its_api_host_names() -> None:
    for base_url in ("https://api.together.xyz/v1", "https://api.together.ai/v1"):
        host = openai_compatible.host_for(base_url)
        assert host is openai_compatible.TOGETHER
        assert host.batch_api is not None
    assert openai_compatible.host_for("https://api.openai.com/v1").batch_api is None


async def test_chat_completions_come_back_as_exact_chat_completions_from_one_job(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    live = await ask(client, "compare me", max_tokens=50)
    fake_server.reset()
    async with fast_batchify() as ctx:
        replies = await asyncio.gather(*(ask(client, f"t{i}") for i in range(30)))
        batched = await ask(client, "compare me", max_tokens=50)
    assert all(type(reply) is ChatCompletion for reply in [*replies, batched])
    assert [r.choices[0].message.content for r in replies] == [f"echo: t{i}" for i in range(30)]
    ignored = {"id", "created"}
    assert batched.model_dump(exclude=ignored) == live.model_dump(exclude=ignored)
    stats = fake_server.stats.provider("together")
    assert (stats.batches_created, stats.files_uploaded) == (2, 2)
    assert fake_server.stats.realtime_calls == 0
    assert ctx.report.batched == 31
    first = together_batches(fake_server)[0]
    assert first.endpoint == "/v1/chat/completions"
    assert first.completion_window == "24h"
    # Together's line format: a custom id and the body, nothing else.
    assert {tuple(sorted(line)) for line in first.lines} == {("body", "custom_id")}
    assert first.api_key == KEY


async def test_a_failing_line_raises_the_sdk_status_error_in_that_caller_only(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify() as ctx:
        results = await asyncio.gather(
            ask(client, "fine"),
            ask(client, "[[fail:400]] bad"),
            ask(client, "[[fail:429]] slow down"),
            return_exceptions=True,
        )
    ok, bad, limited = results
    assert isinstance(ok, ChatCompletion)
    assert isinstance(bad, openai.BadRequestError)
    assert bad.status_code == 400
    assert "Injected failure 400" in bad.message
    assert isinstance(limited, openai.RateLimitError)
    assert limited.status_code == 429
    assert ctx.report.failed == 2
    assert fake_server.stats.provider("together").batches_created == 1


async def test_an_error_line_without_a_status_raises_api_error_with_togethers_message(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify():
        results = await asyncio.gather(
            ask(client, "fine"),
            # The fake cannot answer an empty conversation: Together's documented error line
            # ({"custom_id", "error": {"message", "code"}}) carries no HTTP status.
            client.chat.completions.create(model=MODEL, messages=[]),
            return_exceptions=True,
        )
    ok, failed = results
    assert isinstance(ok, ChatCompletion)
    assert type(failed) is openai.APIError
    assert "invalid_request" in failed.message
    assert "'messages' must be a non-empty array" in failed.message


async def test_the_upload_put_goes_through_the_clients_http_client_without_the_api_key(
    fake_server: FakeProviderServer,
) -> None:
    seen: list[tuple[str, str, dict[str, str]]] = []

    async def record(request: Any) -> None:
        seen.append((request.method, request.url.path, dict(request.headers)))

    with together_profile(fake_server):
        async with (
            openai.AsyncOpenAI(
                base_url=fake_server.together_base_url,
                api_key=KEY,
                default_headers={"X-Team": "research"},
                http_client=openai.DefaultAsyncHttpxClient(event_hooks={"request": [record]}),
            ) as client,
            fast_batchify(),
        ):
            reply = await ask(client, "upload me")
    assert reply.choices[0].message.content == "echo: upload me"
    (put,) = [headers for method, _, headers in seen if method == "PUT"]
    assert not {"authorization", "api-key", "x-api-key", "x-team"} & set(put)
    api_calls = [headers for method, path, headers in seen if path.startswith("/together/v1")]
    assert api_calls
    assert all(h["authorization"] == f"Bearer {KEY}" for h in api_calls)
    # The storage refuses keyed requests, so the upload succeeding proves the key stayed home.
    assert fake_server.stats.provider("together").files_uploaded == 1


async def test_the_signed_upload_url_stays_out_of_the_http_librarys_log(
    client: openai.AsyncOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        async with fast_batchify():
            await ask(client, "quietly")
    put_lines = [r.getMessage() for r in caplog.records if "PUT" in r.getMessage()]
    assert put_lines, "the HTTP library logs each request at INFO"
    assert all("X-Signature" not in line for line in put_lines)
    assert all("signature hidden" in line for line in put_lines)


async def test_openai_and_together_clients_in_one_block_make_separate_jobs(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with (
        openai.AsyncOpenAI(base_url=fake_server.openai_base_url, api_key="sk-openai") as gpt,
        fast_batchify() as ctx,
    ):
        mixed = await asyncio.gather(
            *(ask(client, f"together {i}") for i in range(5)),
            *(
                gpt.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": f"openai {i}"}]
                )
                for i in range(5)
            ),
        )
    assert [r.choices[0].message.content for r in mixed] == [
        *(f"echo: together {i}" for i in range(5)),
        *(f"echo: openai {i}" for i in range(5)),
    ]
    assert fake_server.stats.provider("together").lines_per_batch == [5]
    assert fake_server.stats.provider("openai").lines_per_batch == [5]
    assert len(ctx.report.batch_ids) == 2
    assert fake_server.stats.realtime_calls == 0


async def test_a_create_whose_answer_was_lost_is_adopted_instead_of_created_twice(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_create = together._create
    lost: list[str] = []

    async def create_then_drop_the_connection(*args: Any) -> Any:
        job = await real_create(*args)
        if not lost:
            lost.append(str(job["id"]))
            raise openai.APIConnectionError(request=_request(client))
        return job

    monkeypatch.setattr(together, "_create", create_then_drop_the_connection)
    no_backoff_waits(monkeypatch)
    async with fast_batchify() as ctx:
        reply = await ask(client, "exactly once")
    assert reply.choices[0].message.content == "echo: exactly once"
    assert fake_server.stats.provider("together").batches_created == 1
    assert ctx.report.batch_ids == lost
    assert fake_server.stats.request_count("GET /together/v1/batches") == 1


async def test_a_create_refused_for_sure_is_not_retried(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    fake_server.fail_next("POST /together/v1/batches", 400)
    async with fast_batchify():
        results = await asyncio.gather(ask(client, "a"), ask(client, "b"), return_exceptions=True)
    assert [type(r) for r in results] == [openai.BadRequestError, openai.BadRequestError]
    assert fake_server.stats.request_count("POST /together/v1/batches") == 1
    assert fake_server.stats.provider("together").batches_created == 0


async def test_an_interrupted_submission_is_found_by_its_input_file_on_rerun(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_submit = together.TogetherBatchAPI.submit

    async def created_but_never_recorded(self: Any, *args: Any, **kwargs: Any) -> Any:
        await real_submit(self, *args, **kwargs)
        raise openai.APIConnectionError(request=_request(client))

    texts = [f"question {i}" for i in range(4)]
    with monkeypatch.context() as patch:
        patch.setattr(together.TogetherBatchAPI, "submit", created_but_never_recorded)
        async with fast_batchify() as first:
            failures = await asyncio.gather(
                *(ask(client, t) for t in texts), return_exceptions=True
            )
    assert all(isinstance(error, openai.APIConnectionError) for error in failures)
    assert first.report.failed == 4
    (job,) = together_batches(fake_server)

    async with fast_batchify() as rerun:
        replies = await asyncio.gather(*(ask(client, t) for t in texts))
    assert [r.choices[0].message.content for r in replies] == [f"echo: {t}" for t in texts]
    assert rerun.report.resumed_batch_ids == [job.id]
    assert fake_server.stats.provider("together").batches_created == 1
    assert fake_server.stats.realtime_calls == 0


async def test_find_submission_is_none_when_the_submission_uploaded_nothing(
    client: openai.AsyncOpenAI,
) -> None:
    provider = get_providers()["openai"]
    found = await provider.find_submission(
        "batchling_never_uploaded", client=client, template=None, size=1, since=0.0
    )
    assert found is None


async def test_a_job_left_running_by_an_interrupted_block_is_followed_by_the_rerun() -> None:
    with FakeProviderServer(batch_delay_seconds=0.5) as server, together_profile(server):
        async with openai.AsyncOpenAI(base_url=server.together_base_url, api_key=KEY) as client:
            with pytest.raises(RuntimeError, match="interrupted"):
                async with fast_batchify():
                    task = asyncio.create_task(ask(client, "long job"))
                    while server.stats.batches_created == 0:
                        await asyncio.sleep(0.01)
                    await asyncio.sleep(0.05)
                    raise RuntimeError("interrupted")
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            (job,) = together_batches(server)
            async with fast_batchify() as rerun:
                reply = await ask(client, "long job")
        assert reply.choices[0].message.content == "echo: long job"
        assert rerun.report.resumed_batch_ids == [job.id]
        assert server.stats.provider("together").batches_created == 1
        assert server.stats.realtime_calls == 0


async def test_what_togethers_batch_api_does_not_serve_is_passed_through_and_reported(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify() as ctx:
        with pytest.warns(batchling.NotBatchedWarning, match="together Batch API does not serve"):
            embedded = await client.embeddings.create(model="BAAI/bge-base-en-v1.5", input="x")
            completed = await client.completions.create(model=MODEL, prompt="once upon")
    assert type(embedded) is CreateEmbeddingResponse
    assert completed.choices[0].text
    assert ctx.report.passed_through == {"endpoint /embeddings": 1, "endpoint /completions": 1}
    assert fake_server.stats.provider("together").realtime_paths == [
        "/together/v1/embeddings",
        "/together/v1/completions",
    ]
    assert fake_server.stats.batches_created == 0


async def test_streaming_on_together_is_passed_through(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify() as ctx:
        with pytest.warns(batchling.NotBatchedWarning, match="stream"):
            stream = await ask(client, "stream me", stream=True)
            chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "echo: stream me"
    )
    assert ctx.report.passed_through == {"streaming": 1}
    assert fake_server.stats.provider("together").realtime_calls == 1


async def test_a_longer_completion_window_is_met_by_togethers_24h_window(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify(completion_window="7d"):
        reply = await ask(client, "no rush")
    assert reply.choices[0].message.content == "echo: no rush"
    assert together_batches(fake_server)[0].completion_window == "24h"


async def test_a_shorter_completion_window_is_refused_before_anything_is_uploaded(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify(completion_window="1h"):
        with pytest.raises(ValueError, match="fixed 24h"):
            await ask(client, "in a hurry")
    assert fake_server.stats.requests == []


async def test_a_failed_job_raises_batch_failed_error_with_togethers_message(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    fake_server.set_batch_outcome("failed")
    async with fast_batchify():
        with pytest.raises(batchling.BatchFailedError, match="injected"):
            await ask(client, "doomed")


async def test_an_expired_job_resubmits_its_leftovers_once_and_keeps_successes(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    fake_server.set_batch_outcome("expired", completed_fraction=0.5)
    async with fast_batchify():
        results = await asyncio.gather(
            *(ask(client, f"e{i}") for i in range(8)), return_exceptions=True
        )
    assert fake_server.stats.provider("together").lines_per_batch == [8, 4]
    assert [record.status for record in together_batches(fake_server)] == ["EXPIRED", "EXPIRED"]
    assert sum(isinstance(r, ChatCompletion) for r in results) == 6
    assert sum(isinstance(r, batchling.BatchExpiredError) for r in results) == 2


async def test_cancel_on_exit_cancels_the_running_together_job() -> None:
    with FakeProviderServer(batch_delay_seconds=30) as server, together_profile(server):
        async with openai.AsyncOpenAI(base_url=server.together_base_url, api_key=KEY) as client:
            with pytest.raises(RuntimeError, match="stop"):
                async with fast_batchify(cancel_on_exit=True) as ctx:
                    task = asyncio.create_task(ask(client, "never mind"))
                    # Running once batchling has the job's id (not merely once the server made
                    # it: a job whose creation is still in flight at exit is left to a re-run).
                    while not ctx.report.batch_ids:
                        await asyncio.sleep(0.01)
                    raise RuntimeError("stop")
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        (job,) = together_batches(server)
        assert job.status == "CANCELLED"
        assert server.stats.request_count(f"POST /together/v1/batches/{job.id}/cancel") == 1


async def test_transient_upload_poll_and_download_faults_do_not_lose_results(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_backoff_waits(monkeypatch)
    fake_server.fail_next("POST /together/v1/files", 503)
    fake_server.fail_next("PUT /together-storage/{token}", 503, times=2)
    fake_server.drop_next("PUT /together-storage/{token}")
    fake_server.fail_next("POST /together/v1/files/{id}/preprocess", 502)
    fake_server.fail_next("GET /together/v1/batches/{id}", 500, times=2)
    fake_server.drop_next("GET /together/v1/batches/{id}")
    fake_server.fail_next("GET /together/v1/files/{id}/content", 503, times=2)
    async with fast_batchify():
        replies = await asyncio.gather(*(ask(client, f"p{i}") for i in range(5)))
    assert [r.choices[0].message.content for r in replies] == [f"echo: p{i}" for i in range(5)]
    assert fake_server.stats.provider("together").batches_created == 1
    assert fake_server.stats.provider("together").files_uploaded == 1
    assert fake_server.pending_faults == 0


async def test_a_truncated_result_download_is_fetched_again(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_backoff_waits(monkeypatch)
    real_decode = together.together_lines.decode
    calls = {"n": 0}

    def truncated_once(raw: bytes, state: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            return real_decode(raw[: len(raw) // 2], state)
        return real_decode(raw, state)

    monkeypatch.setattr(together.together_lines, "decode", truncated_once)
    async with fast_batchify():
        reply = await ask(client, "whole")
    assert reply.choices[0].message.content == "echo: whole"
    output = together_batches(fake_server)[0].output_file_id
    assert fake_server.stats.request_count(f"GET /together/v1/files/{output}/content") == 2


def test_sync_together_clients_from_threads_share_one_job(
    fake_server: FakeProviderServer,
) -> None:
    answers: dict[int, str] = {}
    with (
        together_profile(fake_server),
        openai.OpenAI(base_url=fake_server.together_base_url, api_key=KEY) as client,
        fast_batchify(),
    ):

        def work(i: int) -> None:
            reply = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"s{i}"}]
            )
            answers[i] = reply.choices[0].message.content or ""

        threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert answers == {i: f"echo: s{i}" for i in range(6)}
    assert fake_server.stats.provider("together").batches_created == 1
    assert fake_server.stats.realtime_calls == 0


def _request(client: openai.AsyncOpenAI) -> Any:
    """An HTTP request of whichever library the installed openai SDK uses (httpx2 or httpx)."""
    return stainless.http_module_of_client(client).Request("POST", str(client.base_url))


async def test_the_cli_cancel_path_cancels_a_together_job_with_the_key_in_together_api_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `batchling batches cancel` builds the client with `provider.client_for_job(base_url, info)`,
    # which reads the key of the job's host: TOGETHER_API_KEY for a Together job.
    with FakeProviderServer(batch_delay_seconds=30) as server, together_profile(server):
        async with openai.AsyncOpenAI(base_url=server.together_base_url, api_key=KEY) as client:
            with pytest.raises(RuntimeError, match="leave it running"):
                async with fast_batchify():
                    task = asyncio.create_task(ask(client, "cancel me later"))
                    while server.stats.batches_created == 0:
                        await asyncio.sleep(0.01)
                    raise RuntimeError("leave it running")
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        (job,) = together_batches(server)
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        monkeypatch.setenv("TOGETHER_API_KEY", KEY)
        provider = get_providers()["openai"]
        assert isinstance(provider, ClientForJob)
        cli_client = provider.client_for_job(server.together_base_url, {})
        try:
            batch = provider.reattach(
                job.id, {}, client=cli_client, template=None, custom_ids=["x"]
            )
            await provider.cancel(batch)
        finally:
            await cli_client.close()
        assert job.status == "CANCELLED"
