"""OpenAI, Anthropic and Gemini side by side on one fake server: routing, records, statistics."""

from __future__ import annotations

import io

import anthropic
import httpx2
import openai
import pytest
from google.genai import types
from google.genai.client import AsyncClient

from batchling.testing import FakeProviderServer

from .anthropic_support import batch_request, params
from .gemini_support import MODEL, inline_request
from .support import chat_body, submit_batch, upload_jsonl


def test_provider_base_urls_point_at_the_server() -> None:
    with FakeProviderServer() as server:
        assert server.anthropic_base_url == server.url
        assert server.gemini_base_url == server.url
        assert server.openai_base_url == server.url + "/v1"


async def test_openai_and_gemini_share_v1_batch_and_file_paths_told_apart_by_headers(
    openai_client: openai.AsyncOpenAI,
    gemini_client: AsyncClient,
    anthropic_client: anthropic.AsyncAnthropic,
    fake_server: FakeProviderServer,
) -> None:
    openai_batch = await submit_batch(openai_client, {"a": chat_body("x")})
    gemini_job = await gemini_client.batches.create(model=MODEL, src=[inline_request("x")])
    anthropic_batch = await anthropic_client.messages.batches.create(
        requests=[batch_request("a", "x")]  # type: ignore[list-item]
    )
    gemini_file = await gemini_client.files.upload(
        file=io.BytesIO(b"{}\n"), config=types.UploadFileConfig(mime_type="application/jsonl")
    )
    assert gemini_job.name is not None
    assert gemini_file.name is not None

    assert [b.id async for b in openai_client.batches.list()] == [openai_batch.id]
    assert [j.name async for j in await gemini_client.batches.list()] == [gemini_job.name]
    openai_files = [f.id async for f in openai_client.files.list()]
    assert openai_batch.input_file_id in openai_files
    assert all(file_id.startswith("file-") for file_id in openai_files)
    assert [f.name async for f in await gemini_client.files.list()] == [gemini_file.name]
    assert (await openai_client.batches.retrieve(openai_batch.id)).status == "completed"
    assert (await gemini_client.batches.get(name=gemini_job.name)).done
    with pytest.raises(openai.NotFoundError):
        await openai_client.batches.retrieve(gemini_job.name.removeprefix("batches/"))

    records = fake_server.batches
    assert [(r.provider, r.id) for r in records] == [
        ("openai", openai_batch.id),
        ("gemini", gemini_job.name),
        ("anthropic", anthropic_batch.id),
    ]
    assert [r.status for r in records] == ["completed", "BATCH_STATE_SUCCEEDED", "ended"]
    assert fake_server.file_content(gemini_file.name) == b"{}\n"


async def test_stats_are_totals_with_a_per_provider_breakdown(
    openai_client: openai.AsyncOpenAI,
    gemini_client: AsyncClient,
    anthropic_client: anthropic.AsyncAnthropic,
    fake_server: FakeProviderServer,
) -> None:
    await openai_client.chat.completions.create(**chat_body("a"))
    await anthropic_client.messages.create(**params("b"))
    await gemini_client.models.generate_content(model=MODEL, contents="c")
    await submit_batch(openai_client, {"x": chat_body("x"), "y": chat_body("y")})
    await anthropic_client.messages.batches.create(
        requests=[batch_request(f"r{i}", "q") for i in range(3)]  # type: ignore[misc]
    )
    await gemini_client.batches.create(model=MODEL, src=[inline_request("q")])
    await upload_jsonl(openai_client, b"{}\n")

    stats = fake_server.stats
    assert stats.realtime_calls == 3
    assert stats.realtime_paths == [
        "/v1/chat/completions",
        "/v1/messages",
        f"/v1/models/{MODEL}:generateContent",
    ]
    assert (stats.batches_created, stats.lines_per_batch) == (3, [2, 3, 1])
    assert stats.files_uploaded == 2
    by_name = {name: stats.provider(name) for name in ("openai", "anthropic", "gemini")}
    assert [s.realtime_calls for s in by_name.values()] == [1, 1, 1]
    assert [s.lines_per_batch for s in by_name.values()] == [[2], [3], [1]]
    assert [s.batches_created for s in by_name.values()] == [1, 1, 1]
    assert [s.files_uploaded for s in by_name.values()] == [2, 0, 0]
    assert len(fake_server.received_bodies) == 3 + 2 + 3 + 1

    fake_server.reset()
    assert by_name["anthropic"].batches_created == 0
    assert (stats.realtime_calls, stats.lines_per_batch) == (0, [])


def test_unknown_provider_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="provider"):
        FakeProviderServer().stats.provider("cohere")  # type: ignore[arg-type]


def test_inline_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="gemini_inline_limit_bytes"):
        FakeProviderServer(gemini_inline_limit_bytes=0)


async def test_unroutable_requests_answer_in_the_shape_of_the_callers_provider(
    fake_server: FakeProviderServer,
) -> None:
    async with httpx2.AsyncClient(base_url=fake_server.url) as http:
        from_anthropic = await http.get("/v1/nothing", headers={"anthropic-version": "x"})
        from_gemini = await http.get("/v1beta/nothing", headers={"x-goog-api-key": "k"})
        from_openai = await http.get("/v1/nothing", headers={"Authorization": "Bearer k"})
    assert from_anthropic.status_code == from_gemini.status_code == from_openai.status_code == 404
    assert from_anthropic.json()["error"]["type"] == "not_found_error"
    assert from_gemini.json()["error"]["status"] == "NOT_FOUND"
    assert set(from_openai.json()["error"]) == {"message", "type", "param", "code"}


async def test_gemini_batch_routes_without_a_key_are_permission_denied(
    fake_server: FakeProviderServer,
) -> None:
    async with httpx2.AsyncClient(base_url=fake_server.url) as http:
        create = await http.post(f"/v1beta/models/{MODEL}:batchGenerateContent", json={})
        listing = await http.get("/v1beta/batches")
        upload = await http.post(
            "/upload/v1beta/files",
            headers={"X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start"},
        )
    for answer in (create, listing, upload):
        assert answer.status_code == 403
        assert answer.json()["error"]["status"] == "PERMISSION_DENIED"
