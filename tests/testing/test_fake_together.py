"""The fake Together host: its upload flow, Batch API and real-time routes, driven over HTTP.

The `openai` SDK client pointed at the fake (as Together users point it at
https://api.together.xyz/v1) sends the API calls; the signed-URL PUT goes out with a bare
`httpx2` client, as object storage is no API the SDK knows.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletion

from batchling.testing import FakeProviderServer, TogetherBatchRecord
from batchling.testing.jsonl import parse_jsonl, to_jsonl

KEY = "tgp-fake-key"
MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
FORM = {"headers": {"Content-Type": "multipart/form-data"}, "follow_redirects": False}


@pytest.fixture
async def client(fake_server: FakeProviderServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=fake_server.together_base_url, api_key=KEY, max_retries=0
    ) as sdk_client:
        yield sdk_client


def chat_line(custom_id: str, text: str, **extra: Any) -> dict[str, Any]:
    body = {"model": MODEL, "messages": [{"role": "user", "content": text}], **extra}
    return {"custom_id": custom_id, "body": body}


async def register(client: openai.AsyncOpenAI, name: str = "in.jsonl") -> tuple[str, str]:
    """`POST /files`; returns (signed upload URL, file id) from the 302."""
    with pytest.raises(openai.APIStatusError) as redirected:
        await client.post(
            "/files",
            cast_to=object,
            body={"purpose": "batch-api", "file_name": name, "file_type": "jsonl"},
            options=FORM,  # type: ignore[arg-type]
        )
    response = redirected.value.response
    assert response.status_code == 302
    return response.headers["location"], response.headers["x-together-file-id"]


async def upload(client: openai.AsyncOpenAI, data: bytes, name: str = "in.jsonl") -> str:
    url, file_id = await register(client, name)
    async with httpx2.AsyncClient() as storage:
        assert (await storage.put(url, content=data)).status_code == 200
    await client.post(f"/files/{file_id}/preprocess", cast_to=object)
    return file_id


async def create(client: openai.AsyncOpenAI, file_id: str, **extra: Any) -> dict[str, Any]:
    answer = await client.post(
        "/batches",
        cast_to=object,
        body={"endpoint": "/v1/chat/completions", "input_file_id": file_id, **extra},
    )
    assert isinstance(answer, dict)
    return answer


async def get(client: openai.AsyncOpenAI, path: str) -> Any:
    return await client.get(path, cast_to=object)


async def file_lines(client: openai.AsyncOpenAI, file_id: str) -> list[dict[str, Any]]:
    return parse_jsonl(await client.get(f"/files/{file_id}/content", cast_to=bytes))


def test_the_together_base_url_is_under_its_own_prefix(fake_server: FakeProviderServer) -> None:
    assert fake_server.together_base_url == fake_server.url + "/together/v1"


async def test_file_registration_redirects_to_a_signed_url_on_the_fake_object_store(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    url, file_id = await register(client)
    assert url.startswith(fake_server.url + "/together-storage/")
    assert "X-Signature=" in url
    assert file_id.startswith("file-")
    # Nothing is a file yet: no bytes arrived.
    assert (await get(client, "/files"))["data"] == []
    assert fake_server.stats.provider("together").files_uploaded == 0


async def test_registration_needs_a_batch_purpose_a_name_and_a_key(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    for body, problem in [
        ({"purpose": "batch", "file_name": "a.jsonl"}, "purpose"),
        ({"purpose": "batch-api"}, "file_name"),
    ]:
        with pytest.raises(openai.BadRequestError, match=problem):
            await client.post("/files", cast_to=object, body=body, options=FORM)  # type: ignore[arg-type]
    async with httpx2.AsyncClient() as keyless:
        refused = await keyless.get(fake_server.together_base_url + "/batches")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"


async def test_the_object_store_refuses_requests_carrying_an_api_key(
    client: openai.AsyncOpenAI,
) -> None:
    url, _ = await register(client)
    async with httpx2.AsyncClient() as storage:
        for header in ("Authorization", "api-key", "x-api-key"):
            refused = await storage.put(url, content=b"{}", headers={header: KEY})
            assert refused.status_code == 403
            assert b"AccessDenied" in refused.content
            assert header.lower() in refused.text
        forged = await storage.put(url.split("?")[0] + "?X-Signature=nope", content=b"{}")
        assert forged.status_code == 403
        unknown = await storage.put(url.replace("/together-storage/", "/together-storage/x"))
        assert unknown.status_code == 404


async def test_preprocess_completes_an_upload_and_counts_it_once(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    url, file_id = await register(client, "mine.jsonl")
    with pytest.raises(openai.BadRequestError, match="PUT it to its upload URL"):
        await client.post(f"/files/{file_id}/preprocess", cast_to=object)
    data = to_jsonl([chat_line("a", "hi")])
    async with httpx2.AsyncClient() as storage:
        await storage.put(url, content=data)
    for _ in range(2):
        done = await client.post(f"/files/{file_id}/preprocess", cast_to=object)
    assert done == {
        "id": file_id,
        "object": "file",
        "created_at": done["created_at"],
        "filename": "mine.jsonl",
        "bytes": len(data),
        "purpose": "batch-api",
        "Processed": True,
        "FileType": "jsonl",
        "LineCount": 1,
    }
    assert fake_server.stats.provider("together").files_uploaded == 1
    assert fake_server.file_content(file_id) == data
    assert [f["filename"] for f in (await get(client, "/files"))["data"]] == ["mine.jsonl"]
    assert (await get(client, f"/files/{file_id}"))["id"] == file_id


async def test_a_batch_job_runs_and_writes_togethers_output_and_error_files(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    lines = [
        chat_line("ok-1", "one"),
        chat_line("ok-2", "two"),
        chat_line("bad", "[[fail:400]] no"),
        {"custom_id": "empty", "body": {"model": MODEL, "messages": []}},
    ]
    file_id = await upload(client, to_jsonl(lines))
    created = await create(client, file_id, completion_window="24h")
    assert created["warning"] is None
    job = created["job"]
    assert (job["status"], job["input_file_id"], job["progress"]) == ("VALIDATING", file_id, 0.0)
    assert job["created_at"].endswith("Z")

    done = await get(client, f"/batches/{job['id']}")
    assert "job" not in done  # retrieve answers the job itself
    assert (done["status"], done["progress"]) == ("COMPLETED", 100.0)
    output = {line["custom_id"]: line for line in await file_lines(client, done["output_file_id"])}
    assert set(output) == {"ok-1", "ok-2"}
    assert output["ok-1"]["response"]["status_code"] == 200
    assert output["ok-1"]["response"]["body"]["choices"][0]["message"]["content"] == "echo: one"
    errors = {line["custom_id"]: line for line in await file_lines(client, done["error_file_id"])}
    assert errors["bad"]["response"]["status_code"] == 400
    assert errors["bad"]["response"]["body"]["error"]["code"] == "injected_failure"
    assert errors["empty"] == {
        "custom_id": "empty",
        "error": {"message": "'messages' must be a non-empty array.", "code": "invalid_request"},
    }
    stats = fake_server.stats.provider("together")
    assert (stats.batches_created, stats.lines_per_batch) == (1, [4])
    assert fake_server.received_bodies == [line["body"] for line in lines]
    (record,) = fake_server.batches
    assert isinstance(record, TogetherBatchRecord)
    assert (record.provider, record.api_key, record.model) == ("together", KEY, MODEL)


async def test_batch_creation_checks_endpoint_window_and_file(
    client: openai.AsyncOpenAI,
) -> None:
    file_id = await upload(client, to_jsonl([chat_line("a", "x")]))
    with pytest.raises(openai.BadRequestError, match="endpoint"):
        await client.post(
            "/batches",
            cast_to=object,
            body={"endpoint": "/v1/embeddings", "input_file_id": file_id},
        )
    with pytest.raises(openai.BadRequestError, match="completion_window"):
        await create(client, file_id, completion_window="48h")
    with pytest.raises(openai.NotFoundError):
        await create(client, "file-missing")
    _, registered_only = await register(client)
    with pytest.raises(openai.NotFoundError):
        await create(client, registered_only)


async def test_an_invalid_input_file_fails_the_job_with_togethers_error(
    client: openai.AsyncOpenAI,
) -> None:
    lines = [chat_line("same", "a"), chat_line("same", "b")]
    job = (await create(client, await upload(client, to_jsonl(lines))))["job"]
    failed = await get(client, f"/batches/{job['id']}")
    assert failed["status"] == "FAILED"
    assert "duplicate custom_id" in failed["error"]
    assert failed["output_file_id"] is None


async def test_listing_batches_answers_a_bare_array_newest_first(
    client: openai.AsyncOpenAI,
) -> None:
    first = (await create(client, await upload(client, to_jsonl([chat_line("a", "x")]))))["job"]
    second = (await create(client, await upload(client, to_jsonl([chat_line("b", "y")]))))["job"]
    listed = await get(client, "/batches")
    assert [job["id"] for job in listed] == [second["id"], first["id"]]
    assert listed[0]["input_file_id"] == second["input_file_id"]


async def test_cancel_ends_a_running_job_and_may_be_repeated() -> None:
    with FakeProviderServer(batch_delay_seconds=30) as server:
        async with openai.AsyncOpenAI(
            base_url=server.together_base_url, api_key=KEY, max_retries=0
        ) as client:
            file_id = await upload(client, to_jsonl([chat_line("a", "x"), chat_line("b", "y")]))
            job = (await create(client, file_id))["job"]
            assert (await get(client, f"/batches/{job['id']}"))["status"] == "IN_PROGRESS"
            cancelled = await client.post(f"/batches/{job['id']}/cancel", cast_to=object)
            assert cancelled["status"] == "CANCELLED"
            assert cancelled["output_file_id"] is None
            again = await client.post(f"/batches/{job['id']}/cancel", cast_to=object)
            assert again["status"] == "CANCELLED"


async def test_cancelling_a_completed_job_is_refused(client: openai.AsyncOpenAI) -> None:
    job = (await create(client, await upload(client, to_jsonl([chat_line("a", "x")]))))["job"]
    assert (await get(client, f"/batches/{job['id']}"))["status"] == "COMPLETED"
    with pytest.raises(openai.BadRequestError, match="already ended with status COMPLETED"):
        await client.post(f"/batches/{job['id']}/cancel", cast_to=object)


@pytest.mark.parametrize(("outcome", "status"), [("expired", "EXPIRED"), ("failed", "FAILED")])
async def test_batch_outcomes_apply_to_together_jobs(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer, outcome: Any, status: str
) -> None:
    fake_server.set_batch_outcome(outcome, completed_fraction=0.5)
    lines = [chat_line(f"r{i}", f"x{i}") for i in range(4)]
    job = (await create(client, await upload(client, to_jsonl(lines))))["job"]
    ended = await get(client, f"/batches/{job['id']}")
    assert ended["status"] == status
    if status == "EXPIRED":
        answered = await file_lines(client, ended["output_file_id"])
        assert sorted(line["custom_id"] for line in answered) == ["r0", "r1"]
        assert ended["error_file_id"] is None
        assert ended["progress"] == 50.0
    else:
        assert "injected" in ended["error"]


async def test_injected_route_faults_answer_together_shaped_errors(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    fake_server.fail_next("GET /together/v1/batches", 503)
    with pytest.raises(openai.InternalServerError) as raised:
        await get(client, "/batches")
    assert raised.value.status_code == 503
    assert json.loads(raised.value.response.content)["error"]["code"] == "injected_failure"
    fake_server.fail_next("PUT /together-storage/{token}", 500)
    url, _ = await register(client)
    async with httpx2.AsyncClient() as storage:
        assert (await storage.put(url, content=b"x")).status_code == 500
        assert (await storage.put(url, content=b"x")).status_code == 200
    with pytest.raises(openai.NotFoundError):
        await get(client, "/nowhere")


async def test_real_time_chat_completions_on_the_together_host(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    reply = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "live"}]
    )
    assert type(reply) is ChatCompletion
    assert reply.choices[0].message.content == "echo: live"
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "[[fail:400]]"}]
        )
    together = fake_server.stats.provider("together")
    assert together.realtime_paths == ["/together/v1/chat/completions"] * 2
    assert fake_server.stats.provider("openai").realtime_calls == 0
