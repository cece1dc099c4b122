"""The OpenAI Files + Batches emulation, driven by the real AsyncOpenAI client."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest
from openai.types import Batch, CreateEmbeddingResponse, FileObject
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from batchling.testing import FakeProviderServer
from batchling.testing.jsonl import batch_line, to_jsonl

from .support import (
    chat_body,
    file_lines,
    submit_batch,
    upload_jsonl,
    wait_terminal,
)


async def test_uploaded_file_is_a_processed_batch_file_object(
    openai_client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    data = to_jsonl([batch_line("a", "/v1/chat/completions", chat_body("hi"))])
    raw = await openai_client.files.with_raw_response.create(
        file=("input.jsonl", data, "application/jsonl"),
        purpose="batch",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    uploaded = FileObject.model_validate(raw.http_response.json())
    assert raw.http_response.headers["x-request-id"].startswith("req_")
    assert uploaded.id.startswith("file-")
    assert (uploaded.object, uploaded.purpose, uploaded.status) == ("file", "batch", "processed")
    assert uploaded.bytes == len(data)
    assert uploaded.filename == "input.jsonl"
    assert uploaded.expires_at == uploaded.created_at + 3600
    assert (await openai_client.files.retrieve(uploaded.id)).id == uploaded.id
    assert (await openai_client.files.content(uploaded.id)).content == data
    assert fake_server.file_content(uploaded.id) == data
    assert fake_server.stats.files_uploaded == 1


async def test_deleted_file_is_gone(openai_client: openai.AsyncOpenAI) -> None:
    file_id = await upload_jsonl(openai_client, b"{}\n")
    deleted = await openai_client.files.delete(file_id)
    assert deleted.deleted
    with pytest.raises(openai.NotFoundError):
        await openai_client.files.retrieve(file_id)


async def test_chat_batch_completes_with_a_result_per_custom_id(
    openai_client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    bodies = {f"req-{i}": chat_body(f"question {i}", temperature=0.5) for i in range(5)}
    created = await submit_batch(openai_client, bodies, metadata={"job": "nightly"})
    assert created.status == "validating"
    assert created.id.startswith("batch_")

    raw = await openai_client.batches.with_raw_response.retrieve(created.id)
    batch = Batch.model_validate(raw.http_response.json())
    assert batch.status == "completed"
    assert batch.metadata == {"job": "nightly"}
    assert batch.model == "gpt-4o-mini"
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed) == (5, 5)
    assert batch.request_counts.failed == 0
    assert batch.error_file_id is None
    assert batch.in_progress_at is not None
    assert batch.finalizing_at is not None
    assert batch.completed_at is not None
    assert batch.created_at <= batch.in_progress_at <= batch.finalizing_at <= batch.completed_at
    assert batch.usage is not None
    assert batch.usage.total_tokens > 0

    lines = await file_lines(openai_client, batch.output_file_id)
    assert sorted(line["custom_id"] for line in lines) == sorted(bodies)
    for line in lines:
        assert line["id"].startswith("batch_req_")
        assert line["error"] is None
        assert line["response"]["status_code"] == 200
        assert line["response"]["request_id"].startswith("req_")
        completion = ChatCompletion.model_validate(line["response"]["body"])
        number = line["custom_id"].removeprefix("req-")
        assert completion.choices[0].message.content == f"echo: question {number}"

    assert fake_server.stats.batches_created == 1
    assert fake_server.stats.lines_per_batch == [5]
    assert fake_server.stats.realtime_calls == 0
    record = fake_server.batches[0]
    assert (record.id, record.endpoint, record.status) == (batch.id, batch.endpoint, "completed")
    assert record.api_key == "test-key"
    assert record.headers["authorization"] == "Bearer test-key"
    assert record.metadata == {"job": "nightly"}
    assert [line["custom_id"] for line in record.lines] == list(bodies)
    assert fake_server.received_bodies == list(bodies.values())


async def test_output_order_differs_from_input_order(openai_client: openai.AsyncOpenAI) -> None:
    bodies = {f"id-{i}": chat_body(f"n {i}") for i in range(2)}
    batch = await wait_terminal(openai_client, (await submit_batch(openai_client, bodies)).id)
    lines = await file_lines(openai_client, batch.output_file_id)
    assert [line["custom_id"] for line in lines] == ["id-1", "id-0"]


async def test_batch_results_equal_realtime_results_except_ids_and_timestamps(
    openai_client: openai.AsyncOpenAI,
) -> None:
    body = chat_body("same question", n=2, max_tokens=50)
    live = await openai_client.chat.completions.with_raw_response.create(**body)
    live_body = live.http_response.json()
    batch = await wait_terminal(
        openai_client, (await submit_batch(openai_client, {"only": body})).id
    )
    (line,) = await file_lines(openai_client, batch.output_file_id)
    batch_body = line["response"]["body"]
    for volatile in ("id", "created"):
        live_body.pop(volatile)
        batch_body.pop(volatile)
    assert batch_body == live_body


async def test_embeddings_batch_returns_embedding_responses(
    openai_client: openai.AsyncOpenAI,
) -> None:
    bodies: dict[str, dict[str, Any]] = {
        "one": {"model": "text-embedding-3-small", "input": "hello", "encoding_format": "float"},
        "two": {"model": "text-embedding-3-small", "input": ["a", "b"], "dimensions": 4},
    }
    batch = await submit_batch(openai_client, bodies, endpoint="/v1/embeddings")
    batch = await wait_terminal(openai_client, batch.id)
    results = {
        line["custom_id"]: CreateEmbeddingResponse.model_validate(line["response"]["body"])
        for line in await file_lines(openai_client, batch.output_file_id)
    }
    assert len(results["one"].data[0].embedding) == 8
    assert [len(item.embedding) for item in results["two"].data] == [4, 4]


async def test_responses_batch_returns_response_objects(openai_client: openai.AsyncOpenAI) -> None:
    bodies = {"r": {"model": "gpt-4o", "input": "summarize this", "instructions": "be brief"}}
    batch = await wait_terminal(
        openai_client, (await submit_batch(openai_client, bodies, endpoint="/v1/responses")).id
    )
    (line,) = await file_lines(openai_client, batch.output_file_id)
    result = Response.model_validate(line["response"]["body"])
    assert result.output_text == "echo: summarize this"
    assert result.instructions == "be brief"


async def test_batch_reports_in_progress_until_the_delay_has_passed() -> None:
    with FakeProviderServer(batch_delay_seconds=0.3) as server:
        async with openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="k") as client:
            created = await submit_batch(client, {"a": chat_body("x")})
            first = await client.batches.retrieve(created.id)
            assert first.status == "in_progress"
            assert first.output_file_id is None
            assert first.request_counts is not None
            assert first.request_counts.total == 1
            await asyncio.sleep(0.35)
            final = await client.batches.retrieve(created.id)
            assert final.status == "completed"
            assert final.output_file_id is not None


async def test_cancel_moves_to_cancelling_then_cancelled_with_unprocessed_lines_as_errors() -> None:
    with FakeProviderServer(batch_delay_seconds=30) as server:
        async with openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="k") as client:
            created = await submit_batch(client, {"a": chat_body("x"), "b": chat_body("y")})
            cancelling = await client.batches.cancel(created.id)
            assert cancelling.status == "cancelling"
            assert cancelling.cancelling_at is not None
            cancelled = await client.batches.retrieve(created.id)
            assert cancelled.status == "cancelled"
            assert cancelled.cancelled_at is not None
            assert cancelled.output_file_id is None
            errors = await file_lines(client, cancelled.error_file_id)
            assert sorted(line["custom_id"] for line in errors) == ["a", "b"]
            assert all(line["response"] is None for line in errors)
            assert {line["error"]["code"] for line in errors} == {"batch_cancelled"}
            with pytest.raises(openai.BadRequestError):
                await client.batches.cancel(created.id)


async def test_batch_list_pages_newest_first(openai_client: openai.AsyncOpenAI) -> None:
    ids = [(await submit_batch(openai_client, {"a": chat_body("x")})).id for _ in range(3)]
    first_page = await openai_client.batches.list(limit=2)
    assert [batch.id for batch in first_page.data] == [ids[2], ids[1]]
    assert first_page.has_more
    listed = [batch.id async for batch in openai_client.batches.list(limit=2)]
    assert listed == list(reversed(ids))
    after = await openai_client.batches.list(after=ids[1])
    assert [batch.id for batch in after.data] == [ids[0]]
    assert not after.has_more


async def test_hundred_thousand_line_batch_completes_quickly(
    openai_client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    count = 100_000
    data = b"".join(
        b'{"custom_id":"r%d","method":"POST","url":"/v1/embeddings",'
        b'"body":{"model":"e","input":"text %d","encoding_format":"float","dimensions":2}}\n'
        % (i, i)
        for i in range(count)
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    batch = await submit_batch_from_file(openai_client, data)
    batch = await wait_terminal(openai_client, batch.id, limit_seconds=60)
    content = await openai_client.files.content(batch.output_file_id or "")
    assert content.content.count(b"\n") == count
    assert fake_server.stats.lines_per_batch == [count]
    assert loop.time() - started < 30


async def submit_batch_from_file(client: openai.AsyncOpenAI, data: bytes) -> Batch:
    return await client.batches.create(
        input_file_id=await upload_jsonl(client, data),
        endpoint="/v1/embeddings",
        completion_window="24h",
    )
