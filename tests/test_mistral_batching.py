"""The real `mistralai` SDK inside `batchify()`, against the bundled fake provider server."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pydantic
import pytest
from mistralai.client import Mistral, errors, models

import batchling
from batchling import batchify
from batchling.plugins import get_providers
from batchling.provider import Outcome
from batchling.providers import mistral as mistral_provider
from batchling.testing import FakeProviderServer
from batchling.testing.mistral_batches import MistralBatchRecord
from tests.conftest import FAST, fast_batchify

MODEL = "mistral-small-latest"
KEY = "mistral-test-key"


@pytest.fixture
async def client(fake_server: FakeProviderServer) -> AsyncIterator[Mistral]:
    async with Mistral(api_key=KEY, server_url=fake_server.mistral_base_url) as sdk_client:
        yield sdk_client


@pytest.fixture
def sync_client(fake_server: FakeProviderServer) -> Iterator[Mistral]:
    with Mistral(api_key=KEY, server_url=fake_server.mistral_base_url) as sdk_client:
        yield sdk_client


def ask(client: Mistral, text: str, **params: Any) -> Any:
    return client.chat.complete_async(
        model=MODEL, messages=[{"role": "user", "content": text}], **params
    )


def content(reply: models.ChatCompletionResponse) -> Any:
    message = reply.choices[0].message
    assert message is not None
    return message.content


def mistral_batches(server: FakeProviderServer) -> list[MistralBatchRecord]:
    return [record for record in server.batches if isinstance(record, MistralBatchRecord)]


def test_the_provider_is_a_builtin_plugin() -> None:
    provider = get_providers()["mistral"]
    assert isinstance(provider, mistral_provider.MistralProvider)
    assert [str(target.qualname) for target in provider.targets] == [
        "BaseSDK.do_request_async",
        "BaseSDK.do_request",
    ]


async def test_100_concurrent_calls_make_one_batch_and_no_realtime_call(
    client: Mistral, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify() as ctx:
        replies = await asyncio.gather(*(ask(client, f"product {i}") for i in range(100)))
    stats = fake_server.stats.provider("mistral")
    assert (stats.batches_created, stats.lines_per_batch, stats.files_uploaded) == (1, [100], 1)
    assert fake_server.stats.realtime_calls == 0
    assert ctx.report.batched == 100
    for i, reply in enumerate(replies):
        assert type(reply) is models.ChatCompletionResponse
        assert content(reply) == f"echo: product {i}"
        assert reply.usage.total_tokens
    (record,) = mistral_batches(fake_server)
    assert record.source == "file"
    assert record.status == "SUCCESS"
    assert record.endpoint == "/v1/chat/completions"
    assert record.model == MODEL
    assert record.timeout_hours == 24
    assert record.metadata is not None
    assert record.metadata["batchling_submission"].startswith("batchling_")
    assert ctx.report.batch_ids == [record.id]


async def test_batched_response_equals_realtime_response_apart_from_ids(
    client: Mistral, fake_server: FakeProviderServer
) -> None:
    live = await ask(client, "same words")
    async with fast_batchify():
        batched = await ask(client, "same words")
    assert batched.model_dump(exclude={"id", "created"}) == live.model_dump(
        exclude={"id", "created"}
    )


class ProductCopy(pydantic.BaseModel):
    title: str
    word_count: int


def every_parameter() -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You write product copy."},
            {"role": "user", "content": [{"type": "text", "text": "a red chair"}]},
        ],
        "temperature": 0.3,
        "top_p": 0.9,
        "max_tokens": 99,
        "stop": ["END"],
        "random_seed": 7,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "n": 1,
        "safe_prompt": True,
        "parallel_tool_calls": False,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "lookup",
                    "description": "Look a product up",
                    "parameters": {"type": "object", "properties": {"sku": {"type": "string"}}},
                },
            }
        ],
        "tool_choice": "none",
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "product_copy",
                "schema": ProductCopy.model_json_schema(),
                "strict": True,
            },
        },
        "prediction": {"type": "content", "content": "A red chair"},
        "metadata": {"team": "catalog"},
        "prompt_mode": "reasoning",
        "prompt_cache_key": "catalog-v1",
    }


async def test_every_parameter_reaches_the_batch_line_as_in_real_time(
    client: Mistral, fake_server: FakeProviderServer
) -> None:
    params = every_parameter()
    live = await client.chat.complete_async(**params)
    live_body = fake_server.received_bodies[-1]
    async with fast_batchify():
        batched = await client.chat.complete_async(**params)
    (record,) = mistral_batches(fake_server)
    line = record.lines[0]
    assert line["body"] == live_body
    for name in ("temperature", "max_tokens", "random_seed", "tools", "response_format"):
        assert line["body"][name] == params[name]
    assert line["body"]["messages"][0] == {"role": "system", "content": "You write product copy."}
    assert ProductCopy.model_validate_json(content(batched)) == ProductCopy.model_validate_json(
        content(live)
    )
    # The input file carries the bytes the SDK serialized, spliced in unchanged.
    (input_file,) = record.input_files
    (raw_line,) = fake_server.file_content(input_file).splitlines()
    assert json.loads(raw_line) == {"custom_id": line["custom_id"], "body": live_body}


async def test_failed_lines_raise_the_sdks_own_errors_in_their_callers_only(
    client: Mistral, fake_server: FakeProviderServer
) -> None:
    texts = ["fine", "bad [[fail:400]]", "invalid [[fail:422]]", "down [[fail:503]]"]
    live = await asyncio.gather(*(ask(client, text) for text in texts), return_exceptions=True)
    async with fast_batchify() as ctx:
        batched = await asyncio.gather(
            *(ask(client, text) for text in texts), return_exceptions=True
        )
    assert fake_server.stats.provider("mistral").lines_per_batch == [4]
    assert content(batched[0]) == "echo: fine"
    assert [type(result) for result in batched[1:]] == [
        errors.SDKError,
        errors.HTTPValidationError,
        errors.SDKError,
    ]
    for got, expected in zip(batched[1:], live[1:], strict=True):
        assert isinstance(got, errors.MistralError)
        assert isinstance(expected, errors.MistralError)
        assert type(got) is type(expected)
        assert got.status_code == expected.status_code
        assert json.loads(got.body) == json.loads(expected.body)
        assert str(got) == str(expected)
    assert ctx.report.failed == 3


async def test_parse_async_is_batched_and_parsed(
    client: Mistral, fake_server: FakeProviderServer
) -> None:
    messages = [{"role": "user", "content": "a lamp"}]
    live = await client.chat.parse_async(ProductCopy, model=MODEL, messages=messages)
    async with fast_batchify():
        parsed = await client.chat.parse_async(ProductCopy, model=MODEL, messages=messages)
    message, live_message = parsed.choices[0].message, live.choices[0].message
    assert message is not None
    assert live_message is not None
    assert isinstance(message.parsed, ProductCopy)
    assert message.parsed == live_message.parsed
    assert message.parsed.title == "a lamp"
    assert fake_server.stats.provider("mistral").realtime_calls == 1  # the live call
    body = mistral_batches(fake_server)[0].lines[0]["body"]
    assert body["response_format"]["type"] == "json_schema"


async def test_embeddings_and_fim_are_batched_in_jobs_of_their_own(
    client: Mistral, fake_server: FakeProviderServer
) -> None:
    live = await client.embeddings.create_async(model="mistral-embed", inputs=["a b", "c"])
    async with fast_batchify():
        embedded, filled, chatted = await asyncio.gather(
            client.embeddings.create_async(model="mistral-embed", inputs=["a b", "c"]),
            client.fim.complete_async(model="codestral-latest", prompt="def f(", suffix="pass"),
            ask(client, "hello"),
        )
    assert type(embedded) is models.EmbeddingResponse
    assert embedded.model_dump(exclude={"id"}) == live.model_dump(exclude={"id"})
    assert type(filled) is models.FIMCompletionResponse
    assert filled.choices[0].message is not None
    assert filled.choices[0].message.content == "echo: def f("
    assert content(chatted) == "echo: hello"
    assert sorted(record.endpoint for record in mistral_batches(fake_server)) == [
        "/v1/chat/completions",
        "/v1/embeddings",
        "/v1/fim/completions",
    ]
    assert fake_server.stats.realtime_calls == 1  # the live call above


async def test_streaming_passes_through_with_a_warning(
    client: Mistral, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify() as ctx:
        with pytest.warns(batchling.NotBatchedWarning, match="stream"):
            stream = await client.chat.stream_async(
                model=MODEL, messages=[{"role": "user", "content": "stream me"}]
            )
            events = [event async for event in stream]
    pieces = [event.data.choices[0].delta.content for event in events]
    assert "".join(piece for piece in pieces if isinstance(piece, str)) == "echo: stream me"
    assert ctx.report.passed_through == {"streaming": 1}
    assert fake_server.stats.provider("mistral").realtime_paths == ["/mistral/v1/chat/completions"]
    assert fake_server.stats.batches_created == 0


async def test_endpoints_batchling_does_not_batch_are_refused_in_strict_mode(
    client: Mistral, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify(strict=True):
        with pytest.raises(batchling.NotBatchableError, match="/v1/moderations"):
            await client.classifiers.moderate_async(model="mistral-moderation-latest", inputs="x")
        # Calls that are no model request pass silently, even in strict mode.
        listing = await client.files.list_async()
    assert listing.data == []
    assert fake_server.stats.requests == ["GET /mistral/v1/files"]


def test_sync_client_from_threads_under_a_plain_with_block(
    sync_client: Mistral, fake_server: FakeProviderServer
) -> None:
    def work(i: int) -> Any:
        text = f"t{i}" + (" [[fail:400]]" if i == 13 else "")
        reply = sync_client.chat.complete(model=MODEL, messages=[{"role": "user", "content": text}])
        return content(reply)

    with batchify(**FAST, progress=False) as ctx, concurrent.futures.ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(work, i) for i in range(200)]
        outcomes: list[Any] = []
        for future in futures:
            try:
                outcomes.append(future.result())
            except Exception as exc:
                outcomes.append(exc)
    assert type(outcomes[13]) is errors.SDKError
    assert outcomes[13].status_code == 400
    assert [o for i, o in enumerate(outcomes) if i != 13] == [
        f"echo: t{i}" for i in range(200) if i != 13
    ]
    assert fake_server.stats.realtime_calls == 0
    assert sum(fake_server.stats.provider("mistral").lines_per_batch) == 200
    assert ctx.report.batched == 200


async def test_a_rerun_is_served_from_the_journal(
    client: Mistral, fake_server: FakeProviderServer
) -> None:
    texts = ["one", "two", "bad [[fail:400]]"]
    async with fast_batchify():
        first = await asyncio.gather(*(ask(client, t) for t in texts), return_exceptions=True)
    requests = len(fake_server.stats.requests)
    async with fast_batchify() as rerun:
        second = await asyncio.gather(*(ask(client, t) for t in texts), return_exceptions=True)
    assert len(fake_server.stats.requests) == requests
    assert rerun.report.from_journal == 3
    assert [content(r) for r in second[:2]] == [content(r) for r in first[:2]]
    assert type(second[2]) is errors.SDKError
    assert str(second[2]) == str(first[2])


async def test_per_call_headers_make_a_queue_of_their_own_and_go_with_its_job(
    client: Mistral, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify():
        plain, tagged = await asyncio.gather(
            ask(client, "plain"), ask(client, "tagged", http_headers={"X-Tenant": "acme"})
        )
    assert (content(plain), content(tagged)) == ("echo: plain", "echo: tagged")
    records = mistral_batches(fake_server)
    assert len(records) == 2
    assert sorted(record.headers.get("x-tenant", "-") for record in records) == ["-", "acme"]
    tenant_job = next(record for record in records if "x-tenant" in record.headers)
    assert tenant_job.lines[0]["body"]["messages"][0]["content"] == "tagged"
    assert all(record.api_key == KEY for record in records)


async def test_completion_window_becomes_the_jobs_timeout_hours(
    client: Mistral, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify(completion_window="7d"):
        await ask(client, "week")
    async with fast_batchify(completion_window="36h"):
        await ask(client, "day and a half")
    assert [record.timeout_hours for record in mistral_batches(fake_server)] == [168, 36]


async def test_failed_job_raises_batch_failed_error(
    client: Mistral, fake_server: FakeProviderServer
) -> None:
    fake_server.set_batch_outcome("failed")
    async with fast_batchify():
        with pytest.raises(batchling.BatchFailedError, match="injected"):
            await ask(client, "doomed")


async def test_timed_out_job_resubmits_leftovers_once_and_keeps_successes(
    client: Mistral, fake_server: FakeProviderServer
) -> None:
    fake_server.set_batch_outcome("expired", completed_fraction=0.5)
    async with fast_batchify():
        results = await asyncio.gather(
            *(ask(client, f"e{i}") for i in range(8)), return_exceptions=True
        )
    assert fake_server.stats.provider("mistral").lines_per_batch == [8, 4]
    assert [record.status for record in mistral_batches(fake_server)] == [
        "TIMEOUT_EXCEEDED",
        "TIMEOUT_EXCEEDED",
    ]
    assert sum(isinstance(r, models.ChatCompletionResponse) for r in results) == 6
    assert sum(isinstance(r, batchling.BatchExpiredError) for r in results) == 2


async def test_poll_and_download_faults_do_not_lose_results(
    client: Mistral, fake_server: FakeProviderServer
) -> None:
    fake_server.fail_next("POST /mistral/v1/files", 503)
    fake_server.fail_next("GET /mistral/v1/batch/jobs/{id}", 500, times=2)
    fake_server.fail_next("GET /mistral/v1/batch/jobs/{id}", 429)
    fake_server.drop_next("GET /mistral/v1/batch/jobs/{id}", times=2)
    fake_server.fail_next("GET /mistral/v1/files/{id}/content", 503, times=2)
    async with fast_batchify():
        replies = await asyncio.gather(*(ask(client, f"p{i}") for i in range(5)))
    assert [content(r) for r in replies] == [f"echo: p{i}" for i in range(5)]
    assert fake_server.stats.provider("mistral").batches_created == 1
    assert fake_server.pending_faults == 0


async def test_a_create_whose_answer_was_lost_is_found_instead_of_created_twice(
    client: Mistral, fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_create = mistral_provider._Api.create
    lost: list[str] = []

    async def create_then_lose_the_answer(self: Any, **kwargs: Any) -> Any:
        job = await real_create(self, **kwargs)
        if not lost:
            lost.append(str(job.id))
            raise httpx2.ReadTimeout("the answer was lost")
        return job

    monkeypatch.setattr(mistral_provider._Api, "create", create_then_lose_the_answer)
    monkeypatch.setattr(mistral_provider.backoff, "delays", lambda *a, **k: iter(lambda: 0.0, 1))
    async with fast_batchify() as ctx:
        reply = await ask(client, "exactly once")
    assert content(reply) == "echo: exactly once"
    assert fake_server.stats.provider("mistral").batches_created == 1
    assert ctx.report.batch_ids == lost


async def test_an_ambiguous_submit_failure_is_reconciled_by_the_rerun(
    client: Mistral, fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_create_job = mistral_provider.MistralProvider._create_job

    async def created_but_unknown(self: Any, *args: Any, **kwargs: Any) -> Any:
        await real_create_job(self, *args, **kwargs)
        raise httpx2.ConnectError("connection reset after the job was created")

    texts = [f"question {i}" for i in range(4)]
    with monkeypatch.context() as patch:
        patch.setattr(mistral_provider.MistralProvider, "_create_job", created_but_unknown)
        async with fast_batchify() as ctx:
            failures = await asyncio.gather(
                *(ask(client, t) for t in texts), return_exceptions=True
            )
    assert all(isinstance(error, httpx2.ConnectError) for error in failures)
    assert ctx.report.failed == 4
    (job,) = mistral_batches(fake_server)

    async with fast_batchify() as rerun:
        replies = await asyncio.gather(*(ask(client, t) for t in texts))
    assert [content(r) for r in replies] == [f"echo: {t}" for t in texts]
    assert rerun.report.resumed_batch_ids == [job.id]
    assert fake_server.stats.provider("mistral").batches_created == 1
    assert fake_server.stats.realtime_calls == 0


async def test_find_submission_pages_through_the_job_listing(
    client: Mistral, fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mistral_provider, "LIST_PAGE_SIZE", 2)
    for i in range(5):
        await client.batch.jobs.create_async(
            endpoint="/v1/chat/completions",
            model=MODEL,
            requests=[{"custom_id": "a", "body": {"messages": [{"role": "user", "content": "x"}]}}],
            metadata={"batchling_submission": f"batchling_{i}"},
        )
    provider = mistral_provider.MistralProvider()
    oldest = await provider.find_submission(
        "batchling_0", client=client, template=None, size=1, since=0.0
    )
    assert oldest == mistral_batches(fake_server)[0].id
    assert (
        await provider.find_submission(
            "batchling_none", client=client, template=None, size=1, since=0.0
        )
        is None
    )


async def test_a_job_left_running_by_an_interrupted_block_is_reattached_by_the_rerun() -> None:
    with FakeProviderServer(batch_delay_seconds=0.5) as server:
        async with Mistral(api_key=KEY, server_url=server.mistral_base_url) as client:
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
            (job,) = mistral_batches(server)
            async with fast_batchify() as rerun:
                reply = await ask(client, "long job")
        assert content(reply) == "echo: long job"
        assert rerun.report.resumed_batch_ids == [job.id]
        assert server.stats.batches_created == 1


async def test_cancel_on_exit_cancels_the_running_job() -> None:
    with FakeProviderServer(batch_delay_seconds=30) as server:
        async with Mistral(api_key=KEY, server_url=server.mistral_base_url) as client:
            with pytest.raises(RuntimeError):
                async with fast_batchify(cancel_on_exit=True) as ctx:
                    task = asyncio.create_task(ask(client, "cancel me"))
                    while not ctx.report.batch_ids:  # running once batchling has its id
                        await asyncio.sleep(0.01)
                    raise RuntimeError("stop")
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        assert mistral_batches(server)[0].status in ("CANCELLATION_REQUESTED", "CANCELLED")


def test_result_lines_without_a_status_fail_as_server_errors() -> None:
    decode = mistral_provider._decode_line
    bare = decode(b'{"custom_id": "c1", "response": null, "error": "model overloaded"}')
    assert (bare.outcome, bare.status_code, bare.message) == (
        Outcome.ERRORED,
        None,
        "model overloaded",
    )
    shaped = decode(b'{"custom_id": "c2", "error": {"message": "bad", "code": "x"}}')
    assert (shaped.outcome, shaped.message) == (Outcome.ERRORED, "bad")
    ok = decode(b'{"custom_id": "c3", "response": {"status_code": 200, "body": {"id": "r"}}}')
    assert (ok.outcome, ok.status_code, ok.body) == (Outcome.SUCCEEDED, 200, {"id": "r"})
    with pytest.raises(mistral_provider._CorruptDownloadError):
        decode(b'{"response": {"status_code": 200')


async def test_a_line_without_a_status_raises_sdk_error_500(
    client: Mistral, fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_decode = mistral_provider._decode_line

    def strip_status(raw: bytes) -> Any:
        line = json.loads(raw)
        return real_decode(
            json.dumps({"custom_id": line["custom_id"], "error": "worker lost"}).encode()
        )

    monkeypatch.setattr(mistral_provider, "_decode_line", strip_status)
    async with fast_batchify():
        with pytest.raises(errors.SDKError) as raised:
            await ask(client, "unlucky")
    assert raised.value.status_code == 500
    assert "worker lost" in str(raised.value)


def test_is_transient_and_describe() -> None:
    provider = mistral_provider.MistralProvider()
    request = httpx2.Request("GET", "http://x")
    for status, transient in ((400, False), (404, False), (429, True), (500, True)):
        error = errors.SDKError("e", httpx2.Response(status, request=request))
        assert provider.is_transient(error) is transient
    assert provider.is_transient(httpx2.ConnectError("down"))
    assert provider.is_transient(errors.NoResponseError())
    assert not provider.is_transient(ValueError("no"))
    with pytest.raises(ValueError, match="timeout in hours"):
        mistral_provider._timeout_hours("soon")


def test_default_client_reads_mistral_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = mistral_provider.MistralProvider()
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    with pytest.raises(RuntimeError, match="MISTRAL_API_KEY"):
        provider.default_client("http://127.0.0.1:1/mistral")
    monkeypatch.setenv("MISTRAL_API_KEY", "from-env")
    client = provider.default_client("http://127.0.0.1:1/mistral")
    assert isinstance(client, Mistral)
    assert client.sdk_configuration.get_server_details()[0] == "http://127.0.0.1:1/mistral"


def test_the_example_runs_offline() -> None:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    env.pop("BATCHLING_EXAMPLE_LIVE", None)
    result = subprocess.run(
        [sys.executable, "-W", "error", str(root / "examples" / "mistral_product_copy.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "110 results; batch jobs created: 1 ([110] requests); real-time calls: 0" in (
        result.stdout
    )
