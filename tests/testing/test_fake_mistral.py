"""The fake Mistral (files, batch jobs, real time), driven by the real mistralai SDK."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai
import pydantic
import pytest
from mistralai.client import Mistral, errors, models

from batchling.testing import FakeProviderServer
from batchling.testing.mistral_batches import MistralBatchRecord
from batchling.testing.replies import embedding_vector

MODEL = "mistral-small-latest"


@pytest.fixture
async def mistral(fake_server: FakeProviderServer) -> AsyncIterator[Mistral]:
    async with Mistral(api_key="test-key", server_url=fake_server.mistral_base_url) as client:
        yield client


def jsonl(*items: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def chat_line(custom_id: str, text: str, **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "body": {"messages": [{"role": "user", "content": text}], **body},
    }


def parse_jsonl(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


async def download(client: Mistral, file_id: Any) -> bytes:
    response = await client.files.download_async(file_id=str(file_id))
    try:
        return bytes(await response.aread())
    finally:
        await response.aclose()


async def upload(client: Mistral, data: bytes, name: str = "input.jsonl") -> str:
    uploaded = await client.files.upload_async(
        file={"file_name": name, "content": data}, purpose="batch"
    )
    return str(uploaded.id)


def only_batch(server: FakeProviderServer) -> MistralBatchRecord:
    (record,) = server.batches
    assert isinstance(record, MistralBatchRecord)
    return record


# ---------------------------------------------------------------------------- real time


async def test_chat_completion_echoes_the_last_user_message_with_usage(
    mistral: Mistral, fake_server: FakeProviderServer
) -> None:
    reply = await mistral.chat.complete_async(
        model=MODEL,
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "earlier"},
            {"role": "assistant", "content": "answer"},
            {"role": "user", "content": [{"type": "text", "text": "a red chair"}]},
        ],
    )
    assert type(reply) is models.ChatCompletionResponse
    (choice,) = reply.choices
    assert choice.message is not None
    assert choice.message.content == "echo: a red chair"
    assert choice.finish_reason == "stop"
    assert reply.model == MODEL
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (7, 4)
    assert fake_server.stats.provider("mistral").realtime_paths == ["/mistral/v1/chat/completions"]
    assert fake_server.stats.provider("openai").realtime_calls == 0


class Product(pydantic.BaseModel):
    title: str
    price: float


async def test_json_schema_tools_and_max_tokens_shape_the_reply(mistral: Mistral) -> None:
    parsed = await mistral.chat.parse_async(
        Product, model=MODEL, messages=[{"role": "user", "content": "lamp"}]
    )
    assert parsed.choices[0].message is not None
    assert parsed.choices[0].message.parsed == Product(title="lamp", price=1.0)

    tool = {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {"sku": {"type": "string"}}},
        },
    }
    called = await mistral.chat.complete_async(
        model=MODEL,
        messages=[{"role": "user", "content": "find it"}],
        tools=[tool],
        tool_choice="any",
    )
    message = called.choices[0].message
    assert message is not None
    assert called.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    (call,) = message.tool_calls
    assert call.function.name == "lookup"
    assert json.loads(str(call.function.arguments)) == {"sku": "find it"}

    cut = await mistral.chat.complete_async(
        model=MODEL, messages=[{"role": "user", "content": "one two three four"}], max_tokens=2
    )
    assert cut.choices[0].message is not None
    assert (cut.choices[0].message.content, cut.choices[0].finish_reason) == (
        "echo: one",
        "length",
    )


async def test_streamed_chat_concatenates_to_the_whole_reply(mistral: Mistral) -> None:
    stream = await mistral.chat.stream_async(
        model=MODEL, messages=[{"role": "user", "content": "stream these words"}]
    )
    events = [event async for event in stream]
    text = "".join(
        str(event.data.choices[0].delta.content or "")
        for event in events
        if isinstance(event.data.choices[0].delta.content, str)
    )
    assert text == "echo: stream these words"
    assert events[-1].data.choices[0].finish_reason == "stop"
    assert events[-1].data.usage is not None


async def test_embeddings_and_fim(mistral: Mistral) -> None:
    embedded = await mistral.embeddings.create_async(
        model="mistral-embed", inputs=["a b", "c"], output_dimension=4
    )
    assert [item.embedding for item in embedded.data] == [
        embedding_vector("a b", 4),
        embedding_vector("c", 4),
    ]
    assert [item.index for item in embedded.data] == [0, 1]
    assert embedded.usage.prompt_tokens == 3
    filled = await mistral.fim.complete_async(
        model="codestral-latest", prompt="def add(a, b):", suffix="return c"
    )
    assert filled.choices[0].message is not None
    assert filled.choices[0].message.content == "echo: def add(a, b):"


async def test_failure_markers_and_missing_keys_answer_mistral_errors(
    mistral: Mistral, fake_server: FakeProviderServer
) -> None:
    with pytest.raises(errors.HTTPValidationError) as invalid:
        await mistral.chat.complete_async(
            model=MODEL, messages=[{"role": "user", "content": "x [[fail:422]]"}]
        )
    assert invalid.value.status_code == 422
    with pytest.raises(errors.SDKError) as limited:
        await mistral.chat.complete_async(
            model=MODEL, messages=[{"role": "user", "content": "x [[fail:429]]"}]
        )
    assert limited.value.status_code == 429
    assert json.loads(limited.value.body)["type"] == "rate_limit_error"
    async with Mistral(server_url=fake_server.mistral_base_url) as anonymous:
        with pytest.raises(errors.SDKError) as unauthorized:
            await anonymous.chat.complete_async(
                model=MODEL, messages=[{"role": "user", "content": "x"}]
            )
    assert unauthorized.value.status_code == 401
    assert fake_server.stats.provider("mistral").realtime_calls == 3


async def test_injected_route_faults_and_unknown_routes_answer_in_mistral_shape(
    mistral: Mistral, fake_server: FakeProviderServer
) -> None:
    fake_server.fail_next("POST /mistral/v1/chat/completions", 503)
    with pytest.raises(errors.SDKError) as failed:
        await mistral.chat.complete_async(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert failed.value.status_code == 503
    assert json.loads(failed.value.body)["object"] == "error"
    async with httpx2.AsyncClient() as http:
        unknown = await http.get(fake_server.mistral_base_url + "/v1/nowhere")
    assert unknown.status_code == 404
    assert unknown.json()["object"] == "error"


async def test_openai_paths_are_untouched_by_the_mistral_routes(
    mistral: Mistral, fake_server: FakeProviderServer
) -> None:
    await upload(mistral, jsonl(chat_line("a", "x")))
    async with openai.AsyncOpenAI(base_url=fake_server.openai_base_url, api_key="k") as oa:
        listing = await oa.files.list()
        reply = await oa.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert listing.data == []
    assert reply.choices[0].message.content == "echo: hi"
    assert fake_server.stats.provider("mistral").files_uploaded == 1
    assert fake_server.stats.provider("openai").files_uploaded == 0


# ---------------------------------------------------------------------------- files


async def test_files_upload_list_retrieve_download_delete(
    mistral: Mistral, fake_server: FakeProviderServer
) -> None:
    data = jsonl(chat_line("a", "x"), chat_line("b", "y"))
    uploaded = await mistral.files.upload_async(
        file={"file_name": "in.jsonl", "content": data}, purpose="batch"
    )
    assert (uploaded.filename, uploaded.purpose, uploaded.size_bytes) == (
        "in.jsonl",
        "batch",
        len(data),
    )
    assert (uploaded.sample_type, uploaded.source, uploaded.num_lines) == (
        "batch_request",
        "upload",
        2,
    )
    listing = await mistral.files.list_async()
    assert [item.id for item in listing.data] == [uploaded.id]
    found = await mistral.files.retrieve_async(file_id=str(uploaded.id))
    assert found.filename == "in.jsonl"
    assert await download(mistral, uploaded.id) == data
    assert fake_server.file_content(str(uploaded.id)) == data
    deleted = await mistral.files.delete_async(file_id=str(uploaded.id))
    assert deleted.deleted
    with pytest.raises(errors.SDKError) as missing:
        await mistral.files.retrieve_async(file_id=str(uploaded.id))
    assert missing.value.status_code == 404


# ---------------------------------------------------------------------------- batch jobs


async def test_file_job_runs_every_line_and_writes_output_and_error_files(
    mistral: Mistral, fake_server: FakeProviderServer
) -> None:
    lines = [chat_line(f"c{i}", f"question {i}") for i in range(6)]
    lines.append(chat_line("bad", "x [[fail:400]]"))
    file_id = await upload(mistral, jsonl(*lines))
    job = await mistral.batch.jobs.create_async(
        input_files=[file_id],
        endpoint="/v1/chat/completions",
        model=MODEL,
        metadata={"owner": "tests"},
        timeout_hours=48,
    )
    assert (job.status, job.total_requests, job.metadata) == ("QUEUED", 7, {"owner": "tests"})
    assert job.input_files == [file_id]
    done = await mistral.batch.jobs.get_async(job_id=job.id)
    assert done.status == "SUCCESS"
    assert (done.succeeded_requests, done.failed_requests, done.completed_requests) == (6, 1, 7)
    assert isinstance(done.output_file, str)
    assert isinstance(done.error_file, str)
    outputs = parse_jsonl(await download(mistral, done.output_file))
    assert [line["custom_id"] for line in outputs] != [f"c{i}" for i in range(6)]  # shuffled
    by_id = {line["custom_id"]: line for line in outputs}
    for i in range(6):
        response = by_id[f"c{i}"]["response"]
        assert response["status_code"] == 200
        reply = models.ChatCompletionResponse.model_validate(response["body"])
        assert reply.choices[0].message is not None
        assert reply.choices[0].message.content == f"echo: question {i}"
        assert reply.model == MODEL  # the job's model fills in the body's
    (error,) = parse_jsonl(await download(mistral, done.error_file))
    assert error["custom_id"] == "bad"
    assert error["response"]["status_code"] == 400
    assert error["error"] == "Injected failure 400 for this request."
    record = only_batch(fake_server)
    assert (record.provider, record.source, record.timeout_hours) == ("mistral", "file", 48)
    stats = fake_server.stats.provider("mistral")
    assert (stats.batches_created, stats.lines_per_batch, stats.realtime_calls) == (1, [7], 0)
    assert fake_server.received_bodies == [line["body"] for line in lines]


async def test_inline_job_answers_in_outputs_when_asked(mistral: Mistral) -> None:
    job = await mistral.batch.jobs.create_async(
        requests=[
            {"custom_id": "e1", "body": {"input": ["hello"]}},
            {"custom_id": "e2", "body": {"input": "world", "output_dimension": 3}},
        ],
        endpoint="/v1/embeddings",
        model="mistral-embed",
    )
    plain = await mistral.batch.jobs.get_async(job_id=job.id)
    assert not isinstance(plain.outputs, list)
    inline = await mistral.batch.jobs.get_async(job_id=job.id, inline=True)
    assert isinstance(inline.outputs, list)
    by_id = {line["custom_id"]: line["response"]["body"] for line in inline.outputs}
    assert by_id["e2"]["data"][0]["embedding"] == embedding_vector("world", 3)
    assert models.EmbeddingResponse.model_validate(by_id["e1"]).data[0].index == 0


async def test_jobs_are_listed_newest_first_with_pages_and_filters(mistral: Mistral) -> None:
    ids = []
    for i in range(5):
        job = await mistral.batch.jobs.create_async(
            requests=[chat_line("a", f"q{i}")], endpoint="/v1/chat/completions", model=f"m{i % 2}"
        )
        ids.append(job.id)
    first = await mistral.batch.jobs.list_async(page=0, page_size=2)
    second = await mistral.batch.jobs.list_async(page=1, page_size=2)
    assert first.total == 5
    assert [job.id for job in (first.data or []) + (second.data or [])] == ids[::-1][:4]
    oldest_first = await mistral.batch.jobs.list_async(order_by="created")
    assert [job.id for job in oldest_first.data or []] == ids
    by_model = await mistral.batch.jobs.list_async(model="m1")
    assert [job.id for job in by_model.data or []] == [ids[3], ids[1]]
    succeeded = await mistral.batch.jobs.list_async(status=["SUCCESS"])
    assert succeeded.total == 5


async def test_cancel_answers_the_completed_fraction_and_refuses_ended_jobs() -> None:
    with FakeProviderServer(batch_delay_seconds=30) as server:
        async with Mistral(api_key="k", server_url=server.mistral_base_url) as client:
            server.set_batch_outcome("completed", completed_fraction=0.5)
            job = await client.batch.jobs.create_async(
                requests=[chat_line(f"c{i}", f"q{i}") for i in range(4)],
                endpoint="/v1/chat/completions",
                model=MODEL,
            )
            running = await client.batch.jobs.get_async(job_id=job.id)
            assert running.status == "RUNNING"
            cancelling = await client.batch.jobs.cancel_async(job_id=job.id)
            assert cancelling.status == "CANCELLATION_REQUESTED"
            cancelled = await client.batch.jobs.get_async(job_id=job.id)
            assert (cancelled.status, cancelled.succeeded_requests) == ("CANCELLED", 2)
            assert isinstance(cancelled.output_file, str)
            answered = parse_jsonl(await download(client, cancelled.output_file))
            assert sorted(line["custom_id"] for line in answered) == ["c0", "c1"]
            again = await client.batch.jobs.cancel_async(job_id=job.id)
            assert again.status == "CANCELLED"


async def test_cancelling_an_ended_job_is_refused(mistral: Mistral) -> None:
    job = await mistral.batch.jobs.create_async(
        requests=[chat_line("x", "x")], endpoint="/v1/chat/completions", model=MODEL
    )
    assert (await mistral.batch.jobs.get_async(job_id=job.id)).status == "SUCCESS"
    with pytest.raises(errors.SDKError) as refused:
        await mistral.batch.jobs.cancel_async(job_id=job.id)
    assert refused.value.status_code == 400


@pytest.mark.parametrize(
    ("outcome", "status", "answered"),
    [("failed", "FAILED", 0), ("expired", "TIMEOUT_EXCEEDED", 2), ("cancelled", "CANCELLED", 2)],
)
async def test_batch_outcomes(
    mistral: Mistral, fake_server: FakeProviderServer, outcome: Any, status: str, answered: int
) -> None:
    fake_server.set_batch_outcome(outcome, completed_fraction=0.5)
    job = await mistral.batch.jobs.create_async(
        requests=[chat_line(f"c{i}", f"q{i}") for i in range(4)],
        endpoint="/v1/chat/completions",
        model=MODEL,
    )
    ended = await mistral.batch.jobs.get_async(job_id=job.id)
    assert (ended.status, ended.succeeded_requests) == (status, answered)
    if outcome == "failed":
        assert [error.message for error in ended.errors] == [
            "The batch failed (injected via set_batch_outcome)."
        ]
        assert ended.output_file is None


async def test_invalid_input_fails_the_job_or_the_create(
    mistral: Mistral, fake_server: FakeProviderServer
) -> None:
    broken = await upload(mistral, b'{"custom_id": "a", "body": {}}\nnot json\n')
    job = await mistral.batch.jobs.create_async(
        input_files=[broken], endpoint="/v1/chat/completions", model=MODEL
    )
    failed = await mistral.batch.jobs.get_async(job_id=job.id)
    assert failed.status == "FAILED"
    assert "not valid JSON" in failed.errors[0].message
    with pytest.raises(errors.SDKError) as unknown_file:
        await mistral.batch.jobs.create_async(
            input_files=["nope"], endpoint="/v1/chat/completions", model=MODEL
        )
    assert unknown_file.value.status_code == 404
    with pytest.raises(errors.SDKError) as unserved:
        await mistral.batch.jobs.create_async(
            requests=[chat_line("a", "x")], endpoint="/v1/ocr", model=MODEL
        )
    assert unserved.value.status_code == 422
    assert len(fake_server.batches) == 1


async def test_job_delete_and_unknown_job(mistral: Mistral) -> None:
    job = await mistral.batch.jobs.create_async(
        requests=[chat_line("a", "x")], endpoint="/v1/chat/completions", model=MODEL
    )
    await mistral.batch.jobs.delete_async(job_id=job.id)
    with pytest.raises(errors.SDKError) as gone:
        await mistral.batch.jobs.get_async(job_id=job.id)
    assert gone.value.status_code == 404


async def test_jobs_advance_with_the_delay_and_concurrently() -> None:
    with FakeProviderServer(batch_delay_seconds=0.2) as server:
        async with Mistral(api_key="k", server_url=server.mistral_base_url) as client:
            jobs = await asyncio.gather(
                *(
                    client.batch.jobs.create_async(
                        requests=[chat_line("a", f"x{i}")],
                        endpoint="/v1/chat/completions",
                        model=MODEL,
                    )
                    for i in range(5)
                )
            )
            assert {(await client.batch.jobs.get_async(job_id=j.id)).status for j in jobs} == {
                "RUNNING"
            }
            await asyncio.sleep(0.25)
            ended = [await client.batch.jobs.get_async(job_id=j.id) for j in jobs]
    assert {job.status for job in ended} == {"SUCCESS"}
    assert all(job.started_at is not None and job.completed_at is not None for job in ended)
