"""Gemini batch jobs and files, driven by the real google-genai client."""

from __future__ import annotations

import asyncio
import io
import warnings

import httpx2
import pytest
from google.genai import errors, types
from google.genai.client import AsyncClient

from batchling.testing import FakeProviderServer, GeminiBatchRecord
from batchling.testing.replies import embedding_vector

from .gemini_support import (
    MODEL,
    fast_retries,
    file_line,
    gemini_client_for,
    inline_request,
    jsonl,
    parse_jsonl,
    raw_operation,
    wait_done,
)


async def upload_jsonl(client: AsyncClient, data: bytes) -> types.File:
    return await client.files.upload(
        file=io.BytesIO(data), config=types.UploadFileConfig(mime_type="application/jsonl")
    )


async def test_inline_batch_succeeds_with_responses_in_input_order(
    gemini_client: AsyncClient, fake_server: FakeProviderServer
) -> None:
    sources = [
        types.InlinedRequest(
            contents=f"question {i}",
            metadata={"key": f"k{i}"},
            config=types.GenerateContentConfig(temperature=0.1, system_instruction="short"),
        )
        for i in range(3)
    ]
    created = await gemini_client.batches.create(
        model=MODEL, src=sources, config=types.CreateBatchJobConfig(display_name="nightly")
    )
    assert created.name is not None
    assert created.name.startswith("batches/")
    assert created.state == types.JobState.JOB_STATE_PENDING
    assert created.display_name == "nightly"
    assert created.model == f"models/{MODEL}"
    assert created.dest is None

    job = await gemini_client.batches.get(name=created.name)
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    assert job.done
    assert job.create_time is not None
    assert job.end_time is not None
    assert job.create_time <= job.end_time
    assert job.dest is not None
    responses = job.dest.inlined_responses
    assert responses is not None
    assert [item.metadata for item in responses] == [{"key": f"k{i}"} for i in range(3)]
    for i, item in enumerate(responses):
        assert item.error is None
        assert item.response is not None
        assert item.response.text == f"echo: question {i}"

    stats = fake_server.stats.provider("gemini")
    assert (stats.batches_created, stats.lines_per_batch, stats.realtime_calls) == (1, [3], 0)
    (record,) = fake_server.batches
    assert isinstance(record, GeminiBatchRecord)
    assert (record.provider, record.id, record.endpoint) == (
        "gemini",
        created.name,
        "batchGenerateContent",
    )
    assert (record.model, record.source, record.display_name) == (MODEL, "inline", "nightly")
    assert record.status == "BATCH_STATE_SUCCEEDED"
    assert record.api_key == "test-key"
    assert record.headers["x-goog-api-key"] == "test-key"
    assert [line["metadata"] for line in record.lines] == [{"key": f"k{i}"} for i in range(3)]
    assert record.lines[0]["request"]["systemInstruction"]["parts"] == [{"text": "short"}]
    assert fake_server.received_bodies == [line["request"] for line in record.lines]


async def test_operation_json_carries_batch_stats_and_duplicates_the_output(
    gemini_client: AsyncClient, fake_server: FakeProviderServer
) -> None:
    created = await gemini_client.batches.create(
        model=MODEL, src=[inline_request("a"), inline_request("b [[fail:400]]")]
    )
    assert created.name is not None
    await wait_done(gemini_client, created.name)
    operation = await raw_operation(fake_server, created.name)
    metadata = operation["metadata"]
    assert operation["done"] is True
    assert metadata["@type"].endswith(".GenerateContentBatch")
    assert metadata["name"] == created.name
    assert metadata["batchStats"] == {
        "requestCount": "2",
        "successfulRequestCount": "1",
        "failedRequestCount": "1",
        "pendingRequestCount": "0",
    }
    assert operation["response"]["@type"].endswith(".GenerateContentBatchOutput")
    assert operation["response"]["inlinedResponses"] == metadata["output"]["inlinedResponses"]


async def test_inline_result_equals_the_realtime_result_except_the_response_id(
    gemini_client: AsyncClient, fake_server: FakeProviderServer
) -> None:
    config = types.GenerateContentConfig(max_output_tokens=3, system_instruction="s")
    live = await gemini_client.models.generate_content(
        model=MODEL, contents="same question here", config=config
    )
    created = await gemini_client.batches.create(
        model=MODEL,
        src=[types.InlinedRequest(contents="same question here", config=config)],
    )
    assert created.name is not None
    job = await wait_done(gemini_client, created.name)
    assert job.dest is not None
    assert job.dest.inlined_responses is not None
    batched = job.dest.inlined_responses[0].response
    assert batched is not None
    exclude = {"response_id", "sdk_http_response", "automatic_function_calling_history"}
    assert batched.model_dump(exclude=exclude) == live.model_dump(exclude=exclude)


async def test_batch_is_running_until_the_delay_has_passed() -> None:
    with FakeProviderServer(batch_delay_seconds=0.3) as server:
        async with gemini_client_for(server) as client:
            created = await client.batches.create(model=MODEL, src=[inline_request("x")])
            assert created.name is not None
            early = await client.batches.get(name=created.name)
            assert early.state == types.JobState.JOB_STATE_RUNNING
            assert early.dest is None
            assert not early.done
            await asyncio.sleep(0.35)
            final = await client.batches.get(name=created.name)
            assert final.state == types.JobState.JOB_STATE_SUCCEEDED


async def test_file_batch_reads_an_uploaded_jsonl_and_writes_a_responses_file(
    gemini_client: AsyncClient, fake_server: FakeProviderServer
) -> None:
    lines = [file_line(f"key-{i}", f"from file {i}") for i in range(3)]
    lines.append(file_line("bad", "x [[fail:429]]"))
    data = jsonl(lines)
    uploaded = await upload_jsonl(gemini_client, data)
    assert uploaded.name is not None
    assert uploaded.name.startswith("files/")
    assert (uploaded.state, uploaded.mime_type) == (types.FileState.ACTIVE, "application/jsonl")
    assert uploaded.size_bytes == len(data)
    assert fake_server.file_content(uploaded.name) == data
    assert fake_server.stats.provider("gemini").files_uploaded == 1
    assert fake_server.stats.files_uploaded == 1
    assert (await gemini_client.files.get(name=uploaded.name)).size_bytes == len(data)

    created = await gemini_client.batches.create(model=MODEL, src=uploaded.name)
    assert created.name is not None
    job = await wait_done(gemini_client, created.name)
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    assert job.dest is not None
    assert job.dest.file_name is not None
    assert job.dest.inlined_responses is None
    output = parse_jsonl(await gemini_client.files.download(file=job.dest.file_name))
    assert [line["key"] for line in output] != [line["key"] for line in lines]
    by_key = {line["key"]: line for line in output}
    assert set(by_key) == {"key-0", "key-1", "key-2", "bad"}
    good = types.GenerateContentResponse.model_validate(by_key["key-1"]["response"])
    assert good.text == "echo: from file 1"
    assert by_key["bad"]["error"] == {
        "code": 8,
        "message": "Injected failure 429 for this request.",
        "details": [],
    }
    (record,) = fake_server.batches
    assert isinstance(record, GeminiBatchRecord)
    assert (record.source, record.input_file, record.lines) == ("file", uploaded.name, lines)
    assert fake_server.received_bodies == [line["request"] for line in lines]


async def test_file_with_invalid_lines_fails_the_batch(
    gemini_client: AsyncClient, fake_server: FakeProviderServer
) -> None:
    uploaded = await upload_jsonl(gemini_client, jsonl([file_line("a", "x")]) + b"{oops\n")
    assert uploaded.name is not None
    created = await gemini_client.batches.create(model=MODEL, src=uploaded.name)
    assert created.name is not None
    job = await wait_done(gemini_client, created.name)
    assert job.state == types.JobState.JOB_STATE_FAILED
    assert job.dest is None
    operation = await raw_operation(fake_server, created.name)
    assert operation["error"]["code"] == 3
    assert "Line 2" in operation["error"]["message"]


async def test_unknown_input_file_is_refused(gemini_client: AsyncClient) -> None:
    with pytest.raises(errors.ClientError) as caught:
        await gemini_client.batches.create(model=MODEL, src="files/missing")
    assert caught.value.status == "PERMISSION_DENIED"


async def test_inline_create_over_the_size_limit_is_refused_but_a_file_is_accepted() -> None:
    with FakeProviderServer(gemini_inline_limit_bytes=2_000) as server:
        async with gemini_client_for(server) as client:
            texts = [f"question {i} " + "padding " * 20 for i in range(20)]
            with pytest.raises(errors.ClientError) as caught:
                await client.batches.create(model=MODEL, src=[inline_request(t) for t in texts])
            assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
            assert caught.value.message is not None
            assert "exceeds the limit" in caught.value.message
            assert server.stats.batches_created == 0
            uploaded = await upload_jsonl(
                client, jsonl([file_line(str(i), t) for i, t in enumerate(texts)])
            )
            assert uploaded.name is not None
            created = await client.batches.create(model=MODEL, src=uploaded.name)
            assert created.name is not None
            assert (await wait_done(client, created.name)).state == "JOB_STATE_SUCCEEDED"


async def test_large_upload_arrives_in_several_chunks(
    gemini_client: AsyncClient, fake_server: FakeProviderServer
) -> None:
    data = jsonl([file_line(f"k{i}", "word " * 200) for i in range(9_000)])
    assert len(data) > 8 * 1024 * 1024
    uploaded = await upload_jsonl(gemini_client, data)
    assert uploaded.name is not None
    assert fake_server.file_content(uploaded.name) == data
    assert fake_server.stats.request_count("POST /upload/v1/files") == 3


@pytest.mark.parametrize(
    ("status", "grpc_code"),
    [(400, 3), (401, 16), (403, 7), (404, 5), (429, 8), (500, 13), (503, 14), (504, 4)],
)
async def test_failure_marker_gives_that_line_an_error_with_the_grpc_code(
    gemini_client: AsyncClient, status: int, grpc_code: int
) -> None:
    created = await gemini_client.batches.create(
        model=MODEL,
        src=[inline_request("fine", id="a"), inline_request(f"[[fail:{status}]]", id="b")],
    )
    assert created.name is not None
    job = await wait_done(gemini_client, created.name)
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    assert job.dest is not None
    assert job.dest.inlined_responses is not None
    good, bad = job.dest.inlined_responses
    assert (good.metadata, good.error) == ({"id": "a"}, None)
    assert bad.metadata == {"id": "b"}
    assert bad.response is None
    assert bad.error == types.JobError(
        code=grpc_code, message=f"Injected failure {status} for this request.", details=[]
    )


async def test_failed_outcome_fails_the_job_with_an_operation_error_and_no_output(
    gemini_client: AsyncClient, fake_server: FakeProviderServer
) -> None:
    fake_server.set_batch_outcome("failed")
    created = await gemini_client.batches.create(model=MODEL, src=[inline_request("x")])
    assert created.name is not None
    job = await wait_done(gemini_client, created.name)
    assert job.state == types.JobState.JOB_STATE_FAILED
    assert job.dest is None
    operation = await raw_operation(fake_server, created.name)
    assert operation["error"]["code"] == 13
    assert operation["error"]["message"]
    assert "output" not in operation["metadata"]
    assert "response" not in operation


async def test_expired_outcome_expires_the_job_without_output(
    gemini_client: AsyncClient, fake_server: FakeProviderServer
) -> None:
    fake_server.set_batch_outcome("expired", completed_fraction=0.5)
    created = await gemini_client.batches.create(
        model=MODEL, src=[inline_request("x"), inline_request("y")]
    )
    assert created.name is not None
    job = await wait_done(gemini_client, created.name)
    assert job.state == types.JobState.JOB_STATE_EXPIRED
    assert job.dest is None


async def test_cancelled_outcome_returns_only_the_completed_fraction(
    gemini_client: AsyncClient, fake_server: FakeProviderServer
) -> None:
    fake_server.set_batch_outcome("cancelled", completed_fraction=0.5)
    created = await gemini_client.batches.create(
        model=MODEL, src=[inline_request(f"q{i}", i=str(i)) for i in range(4)]
    )
    assert created.name is not None
    job = await wait_done(gemini_client, created.name)
    assert job.state == types.JobState.JOB_STATE_CANCELLED
    assert job.dest is not None
    assert job.dest.inlined_responses is not None
    assert [item.metadata for item in job.dest.inlined_responses] == [{"i": "0"}, {"i": "1"}]


async def test_client_cancel_cancels_a_running_job_and_not_a_finished_one() -> None:
    with FakeProviderServer(batch_delay_seconds=30) as server:
        async with gemini_client_for(server) as client:
            created = await client.batches.create(model=MODEL, src=[inline_request("x")])
            assert created.name is not None
            await client.batches.cancel(name=created.name)
            job = await client.batches.get(name=created.name)
            assert job.state == types.JobState.JOB_STATE_CANCELLED
            assert job.dest is not None
            assert job.dest.inlined_responses == []
            await client.batches.cancel(name=created.name)  # cancelling twice is fine
    with FakeProviderServer() as server:
        async with gemini_client_for(server) as client:
            created = await client.batches.create(model=MODEL, src=[inline_request("x")])
            assert created.name is not None
            await wait_done(client, created.name)
            with pytest.raises(errors.ClientError) as caught:
                await client.batches.cancel(name=created.name)
            assert caught.value.status == "FAILED_PRECONDITION"


async def test_deleted_job_is_not_found(gemini_client: AsyncClient) -> None:
    created = await gemini_client.batches.create(model=MODEL, src=[inline_request("x")])
    assert created.name is not None
    await gemini_client.batches.delete(name=created.name)
    with pytest.raises(errors.ClientError) as caught:
        await gemini_client.batches.get(name=created.name)
    assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")


async def test_batch_list_pages_newest_first(gemini_client: AsyncClient) -> None:
    names = []
    for _ in range(3):
        created = await gemini_client.batches.create(model=MODEL, src=[inline_request("x")])
        names.append(created.name)
    pager = await gemini_client.batches.list(config=types.ListBatchJobsConfig(page_size=2))
    assert [job.name for job in pager.page] == [names[2], names[1]]
    assert [job.name async for job in pager] == list(reversed(names))


async def test_embeddings_batch_returns_the_realtime_vectors(
    gemini_client: AsyncClient, fake_server: FakeProviderServer
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # create_embeddings is marked experimental
        created = await gemini_client.batches.create_embeddings(
            model="text-embedding-004",
            src=types.EmbeddingsBatchJobSource(
                inlined_requests=types.EmbedContentBatch(
                    contents=["alpha", "beta"],
                    config=types.EmbedContentConfig(output_dimensionality=4),
                )
            ),
        )
    assert created.name is not None
    job = await wait_done(gemini_client, created.name)
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    assert job.dest is not None
    responses = job.dest.inlined_embed_content_responses
    assert responses is not None
    vectors = [item.response.embedding.values for item in responses]  # type: ignore[union-attr]
    assert vectors == [embedding_vector("alpha", 4), embedding_vector("beta", 4)]
    (record,) = fake_server.batches
    assert isinstance(record, GeminiBatchRecord)
    assert (record.endpoint, record.model) == ("asyncBatchEmbedContent", "text-embedding-004")


async def test_embeddings_batch_from_a_file_accepts_the_sdks_snake_case_file_name(
    gemini_client: AsyncClient,
) -> None:
    line = {"key": "e", "request": {"content": {"parts": [{"text": "alpha"}]}}}
    uploaded = await upload_jsonl(gemini_client, jsonl([line]))
    assert uploaded.name is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        created = await gemini_client.batches.create_embeddings(
            model="text-embedding-004", src={"file_name": uploaded.name}
        )
    assert created.name is not None
    job = await wait_done(gemini_client, created.name)
    assert job.dest is not None
    assert job.dest.file_name is not None
    (result,) = parse_jsonl(await gemini_client.files.download(file=job.dest.file_name))
    assert result == {
        "key": "e",
        "response": {"embedding": {"values": embedding_vector("alpha", 8)}},
    }


async def test_fail_next_on_get_is_retried_with_retry_options(
    fake_server: FakeProviderServer,
) -> None:
    async with gemini_client_for(fake_server, retry_options=fast_retries()) as client:
        created = await client.batches.create(model=MODEL, src=[inline_request("x")])
        assert created.name is not None
        fake_server.fail_next("GET /v1/batches/{id}", 500)
        job = await client.batches.get(name=created.name)
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    assert fake_server.stats.request_count(f"GET /v1/{created.name}") == 2


async def test_fail_next_on_create_raises_and_creates_nothing(
    gemini_client: AsyncClient, fake_server: FakeProviderServer
) -> None:
    fake_server.fail_next("POST /v1/models/{model}:batchGenerateContent", 429)
    with pytest.raises(errors.ClientError) as caught:
        await gemini_client.batches.create(model=MODEL, src=[inline_request("x")])
    assert caught.value.status == "RESOURCE_EXHAUSTED"
    assert fake_server.stats.batches_created == 0


async def test_drop_next_on_download_raises_a_transport_error(
    gemini_client: AsyncClient, fake_server: FakeProviderServer
) -> None:
    uploaded = await upload_jsonl(gemini_client, b"{}\n")
    assert uploaded.name is not None
    fake_server.drop_next("GET /v1/files/{id}:download")
    with pytest.raises(httpx2.TransportError):
        await gemini_client.files.download(file=uploaded.name)
    assert await gemini_client.files.download(file=uploaded.name) == b"{}\n"


async def test_v1beta_batches_and_files_work_too(fake_server: FakeProviderServer) -> None:
    async with gemini_client_for(fake_server, api_version="v1beta") as client:
        uploaded = await upload_jsonl(client, jsonl([file_line("k", "beta")]))
        assert uploaded.name is not None
        created = await client.batches.create(model=MODEL, src=uploaded.name)
        assert created.name is not None
        job = await wait_done(client, created.name)
        assert job.dest is not None
        assert job.dest.file_name is not None
        (line,) = parse_jsonl(await client.files.download(file=job.dest.file_name))
    assert line["key"] == "k"
    assert "POST /upload/v1beta/files" in fake_server.stats.requests
