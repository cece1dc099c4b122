"""Groq, xAI and Azure OpenAI: the OpenAI protocol on other hosts, driven by the openai SDK."""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion

from batchling.testing import BatchRecord, FakeProviderServer
from batchling.testing.jsonl import batch_line, to_jsonl
from batchling.testing.openai_hosts import groq_window_seconds

from .conftest import AZURE_VERSION
from .support import (
    chat_body,
    create_batch,
    file_lines,
    submit_batch,
    upload_jsonl,
    wait_terminal,
)

DEPLOYMENT = "my-gpt4o-deployment"


def azure_body(text: str, **extra: Any) -> dict[str, Any]:
    """An Azure batch line body: ``model`` is the deployment name."""
    return {**chat_body(text, **extra), "model": DEPLOYMENT}


def only_record(server: FakeProviderServer) -> BatchRecord:
    (record,) = server.batches
    assert isinstance(record, BatchRecord)
    return record


def test_base_urls_of_the_openai_compatible_hosts() -> None:
    with FakeProviderServer() as server:
        assert server.groq_base_url == server.url + "/openai/v1"
        assert server.xai_base_url == server.url + "/xai/v1"
        assert server.azure_endpoint == server.url


# ---------------------------------------------------------------------------- Groq


async def test_groq_batch_flow_under_openai_v1(
    groq_client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    bodies = {f"r{i}": chat_body(f"q {i}", model="llama-3.1-8b-instant") for i in range(3)}
    created = await submit_batch(groq_client, bodies, completion_window="48h")
    assert created.input_file_id.startswith("file_")  # Groq's ids use an underscore
    assert created.completion_window == "48h"
    assert created.expires_at == created.created_at + 48 * 3600
    batch = await wait_terminal(groq_client, created.id)
    assert batch.status == "completed"
    assert batch.model == "llama-3.1-8b-instant"
    lines = await file_lines(groq_client, batch.output_file_id)
    assert sorted(line["custom_id"] for line in lines) == ["r0", "r1", "r2"]
    assert (batch.output_file_id or "").startswith("file_")

    record = only_record(fake_server)
    assert (record.provider, record.status, record.api_key) == ("groq", "completed", "gsk-key")
    assert record.headers["authorization"] == "Bearer gsk-key"
    requests = fake_server.stats.requests
    assert requests[:3] == [
        "POST /openai/v1/files",
        "POST /openai/v1/batches",
        f"GET /openai/v1/batches/{created.id}",
    ]
    assert requests[-1] == f"GET /openai/v1/files/{batch.output_file_id}/content"
    groq = fake_server.stats.provider("groq")
    assert (groq.batches_created, groq.files_uploaded, groq.lines_per_batch) == (1, 1, [3])
    assert fake_server.stats.provider("openai").batches_created == 0
    assert fake_server.received_bodies == list(bodies.values())


@pytest.mark.parametrize("window", ["24h", "48h", "72h", "168h", "1d", "3d", "7d"])
async def test_groq_accepts_completion_windows_from_24h_to_7d(
    groq_client: openai.AsyncOpenAI, window: str
) -> None:
    batch = await submit_batch(groq_client, {"a": chat_body("x")}, completion_window=window)
    assert batch.completion_window == window
    assert batch.expires_at == batch.created_at + (groq_window_seconds(window) or 0)


@pytest.mark.parametrize("window", ["12h", "23h", "169h", "8d", "1w", "24", "", "0d"])
async def test_groq_rejects_completion_windows_outside_24h_to_7d(
    groq_client: openai.AsyncOpenAI, window: str
) -> None:
    file_id = await upload_jsonl(
        groq_client, to_jsonl([batch_line("a", "/v1/chat/completions", chat_body("x"))])
    )
    with pytest.raises(openai.BadRequestError) as caught:
        await create_batch(groq_client, file_id, "/v1/chat/completions", completion_window=window)
    assert caught.value.param == "completion_window"


async def test_openai_itself_still_accepts_only_24h(openai_client: openai.AsyncOpenAI) -> None:
    file_id = await upload_jsonl(openai_client, b"{}\n")
    with pytest.raises(openai.BadRequestError):
        await create_batch(openai_client, file_id, "/v1/chat/completions", completion_window="48h")


async def test_groq_batches_only_chat_completions(groq_client: openai.AsyncOpenAI) -> None:
    file_id = await upload_jsonl(groq_client, b"{}\n")
    with pytest.raises(openai.BadRequestError) as caught:
        await create_batch(groq_client, file_id, "/v1/embeddings")
    assert caught.value.param == "endpoint"


async def test_groq_realtime_chat_and_stream(
    groq_client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    completion = await groq_client.chat.completions.create(**chat_body("hello groq"))
    assert completion.choices[0].message.content == "echo: hello groq"
    stream = await groq_client.chat.completions.create(**chat_body("streamed"), stream=True)
    pieces = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
    assert "".join(pieces) == "echo: streamed"
    groq = fake_server.stats.provider("groq")
    assert groq.realtime_paths == ["/openai/v1/chat/completions"] * 2
    assert fake_server.stats.provider("openai").realtime_calls == 0


async def test_hosts_do_not_see_each_others_files_and_batches(
    groq_client: openai.AsyncOpenAI,
    openai_client: openai.AsyncOpenAI,
    xai_client: openai.AsyncOpenAI,
    fake_server: FakeProviderServer,
) -> None:
    groq_batch = await submit_batch(groq_client, {"a": chat_body("x")})
    openai_batch = await submit_batch(openai_client, {"a": chat_body("x")})
    with pytest.raises(openai.NotFoundError):
        await openai_client.files.retrieve(groq_batch.input_file_id)
    with pytest.raises(openai.NotFoundError):
        await openai_client.batches.retrieve(groq_batch.id)
    with pytest.raises(openai.NotFoundError):
        await groq_client.files.content(openai_batch.input_file_id)
    with pytest.raises(openai.NotFoundError):
        await create_batch(xai_client, groq_batch.input_file_id, "/v1/chat/completions")
    with pytest.raises(openai.NotFoundError):
        await groq_client.files.delete(openai_batch.input_file_id)
    assert [f.id async for f in groq_client.files.list()] == [groq_batch.input_file_id]
    assert [b.id async for b in groq_client.batches.list()] == [groq_batch.id]
    assert [b.id async for b in xai_client.batches.list()] == []
    assert fake_server.file_content(groq_batch.input_file_id).startswith(b'{"custom_id"')


async def test_groq_fault_injection_uses_prefixed_routes(
    groq_client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    fake_server.fail_next("POST /openai/v1/batches", 500)
    fake_server.drop_next("GET /openai/v1/batches/{id}")
    fake_server.fail_next("POST /v1/batches", 500)  # OpenAI's route: must not fire on Groq
    created = await submit_batch(
        groq_client, {"ok": chat_body("fine"), "bad": chat_body("[[fail:429]]")}
    )
    batch = await groq_client.batches.retrieve(created.id)
    assert batch.status == "completed"
    assert fake_server.pending_faults == 1
    assert fake_server.stats.request_count("POST /openai/v1/batches") == 2
    assert fake_server.stats.request_count(f"GET /openai/v1/batches/{created.id}") == 2
    (bad,) = await file_lines(groq_client, batch.error_file_id)
    assert (bad["custom_id"], bad["response"]["status_code"]) == ("bad", 429)
    with pytest.raises(openai.RateLimitError):
        await groq_client.chat.completions.create(**chat_body("[[fail:429]]"))


async def test_groq_batch_outcome_expired(
    groq_client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    fake_server.set_batch_outcome("expired", completed_fraction=0.5)
    bodies = {f"r{i}": chat_body(f"q {i}") for i in range(4)}
    batch = await wait_terminal(groq_client, (await submit_batch(groq_client, bodies)).id)
    assert batch.status == "expired"
    expired = await file_lines(groq_client, batch.error_file_id)
    assert sorted(line["custom_id"] for line in expired) == ["r2", "r3"]
    assert {line["error"]["code"] for line in expired} == {"batch_expired"}


# ---------------------------------------------------------------------------- xAI


async def test_xai_batch_and_realtime_under_their_own_prefix(
    xai_client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    body = chat_body("hi grok", model="grok-4")
    live = await xai_client.chat.completions.create(**body)
    assert live.model == "grok-4"
    batch = await wait_terminal(xai_client, (await submit_batch(xai_client, {"a": body})).id)
    assert batch.status == "completed"
    (line,) = await file_lines(xai_client, batch.output_file_id)
    assert ChatCompletion.model_validate(line["response"]["body"]).model == "grok-4"
    assert only_record(fake_server).provider == "xai"
    xai = fake_server.stats.provider("xai")
    assert xai.realtime_paths == ["/xai/v1/chat/completions"]
    assert (xai.batches_created, xai.files_uploaded) == (1, 1)
    assert "POST /xai/v1/batches" in fake_server.stats.requests
    with pytest.raises(openai.BadRequestError):
        await create_batch(
            xai_client, batch.input_file_id, "/v1/chat/completions", completion_window="48h"
        )


async def test_xai_requires_a_bearer_key(fake_server: FakeProviderServer) -> None:
    async with httpx2.AsyncClient(base_url=fake_server.xai_base_url) as http:
        answer = await http.get("/batches")
    assert answer.status_code == 401
    assert answer.json()["error"]["type"] == "authentication_error"


# ---------------------------------------------------------------------------- Azure OpenAI


async def test_azure_batch_flow_without_v1_and_with_deployment_models(
    azure_client: openai.AsyncAzureOpenAI, fake_server: FakeProviderServer
) -> None:
    bodies = {"a": azure_body("first"), "b": azure_body("second", max_tokens=5)}
    created = await submit_batch(azure_client, bodies, endpoint="/chat/completions")
    assert created.endpoint == "/chat/completions"
    assert created.model == DEPLOYMENT
    batch = await wait_terminal(azure_client, created.id)
    assert batch.status == "completed"
    lines = await file_lines(azure_client, batch.output_file_id)
    replies = {
        line["custom_id"]: ChatCompletion.model_validate(line["response"]["body"]) for line in lines
    }
    assert replies["a"].choices[0].message.content == "echo: first"
    assert replies["a"].model == DEPLOYMENT

    record = only_record(fake_server)
    assert (record.provider, record.endpoint, record.api_key) == (
        "azure",
        "/chat/completions",
        "azure-key",
    )
    assert record.headers["api-key"] == "azure-key"
    assert fake_server.stats.requests[:3] == [
        "POST /openai/files",
        "POST /openai/batches",
        f"GET /openai/batches/{created.id}",
    ]
    assert fake_server.stats.requests[-1] == f"GET /openai/files/{batch.output_file_id}/content"
    azure = fake_server.stats.provider("azure")
    assert (azure.batches_created, azure.files_uploaded, azure.lines_per_batch) == (1, 1, [2])
    assert [f.id async for f in azure_client.files.list()][-1] == created.input_file_id
    assert [b.id async for b in azure_client.batches.list()] == [created.id]


async def test_azure_embeddings_batch(azure_client: openai.AsyncAzureOpenAI) -> None:
    bodies = {"e": {"model": "embedder", "input": "hello", "encoding_format": "float"}}
    created = await submit_batch(azure_client, bodies, endpoint="/embeddings")
    batch = await wait_terminal(azure_client, created.id)
    (line,) = await file_lines(azure_client, batch.output_file_id)
    assert CreateEmbeddingResponse.model_validate(line["response"]["body"]).model == "embedder"


async def test_azure_lines_must_use_the_batch_endpoint_without_v1(
    azure_client: openai.AsyncAzureOpenAI,
) -> None:
    data = to_jsonl(
        [
            batch_line("ok", "/chat/completions", azure_body("a")),
            batch_line("openai-style", "/v1/chat/completions", azure_body("b")),
        ]
    )
    batch = await create_batch(
        azure_client, await upload_jsonl(azure_client, data), "/chat/completions"
    )
    batch = await wait_terminal(azure_client, batch.id)
    assert batch.status == "failed"
    assert batch.errors is not None
    assert batch.errors.data is not None
    assert [(e.code, e.line) for e in batch.errors.data] == [("mismatched_endpoint", 2)]


async def test_azure_rejects_openai_style_batch_endpoints(
    azure_client: openai.AsyncAzureOpenAI,
) -> None:
    file_id = await upload_jsonl(azure_client, b"{}\n")
    with pytest.raises(openai.BadRequestError) as caught:
        await create_batch(azure_client, file_id, "/v1/chat/completions")
    assert caught.value.param == "endpoint"
    with pytest.raises(openai.BadRequestError):
        await create_batch(azure_client, file_id, "/chat/completions", completion_window="48h")


async def test_azure_realtime_goes_to_the_deployment_named_by_model(
    azure_client: openai.AsyncAzureOpenAI, fake_server: FakeProviderServer
) -> None:
    completion = await azure_client.chat.completions.create(**azure_body("hi azure"))
    assert completion.choices[0].message.content == "echo: hi azure"
    assert completion.model == DEPLOYMENT
    embedding = await azure_client.embeddings.create(model="embedder", input="x")
    assert embedding.data
    response = await azure_client.responses.create(model=DEPLOYMENT, input="respond")
    assert response.output_text == "echo: respond"
    assert fake_server.stats.provider("azure").realtime_paths == [
        f"/openai/deployments/{DEPLOYMENT}/chat/completions",
        "/openai/deployments/embedder/embeddings",
        "/openai/responses",
    ]
    assert fake_server.received_bodies[0]["model"] == DEPLOYMENT


async def test_azure_client_with_a_fixed_deployment(fake_server: FakeProviderServer) -> None:
    async with openai.AsyncAzureOpenAI(
        azure_endpoint=fake_server.azure_endpoint,
        azure_deployment="fixed",
        api_key="k",
        api_version=AZURE_VERSION,
    ) as client:
        completion = await client.chat.completions.create(**azure_body("x"))
        batch = await submit_batch(client, {"a": azure_body("y")}, endpoint="/chat/completions")
        assert (await wait_terminal(client, batch.id)).status == "completed"
    # The client's deployment wins over the body's model; files/batches leave /deployments.
    assert completion.model == DEPLOYMENT
    assert fake_server.stats.realtime_paths == ["/openai/deployments/fixed/chat/completions"]
    assert fake_server.stats.requests[1:3] == ["POST /openai/files", "POST /openai/batches"]


async def test_azure_requires_api_version_then_api_key(fake_server: FakeProviderServer) -> None:
    version = {"api-version": AZURE_VERSION}
    async with httpx2.AsyncClient(base_url=fake_server.azure_endpoint) as http:
        no_version = await http.get("/openai/batches", headers={"api-key": "k"})
        no_key = await http.get("/openai/batches", params=version)
        bearer = await http.get(
            "/openai/batches", params=version, headers={"Authorization": "Bearer k"}
        )
        ok = await http.get("/openai/batches", params=version, headers={"api-key": "k"})
        chat = await http.post(
            f"/openai/deployments/{DEPLOYMENT}/chat/completions",
            headers={"api-key": "k"},
            json={"messages": [{"role": "user", "content": "no model"}]},
        )
    assert no_version.status_code == 400
    assert no_version.json()["error"]["code"] == "MissingApiVersionParameter"
    assert no_key.status_code == bearer.status_code == 401
    assert no_key.json()["error"]["code"] == "401"
    assert ok.status_code == 200
    assert ok.json()["data"] == []
    assert chat.status_code == 400  # the api-version check covers real-time routes too


async def test_azure_body_without_model_is_answered_as_the_deployment(
    fake_server: FakeProviderServer,
) -> None:
    async with httpx2.AsyncClient(base_url=fake_server.azure_endpoint) as http:
        answer = await http.post(
            f"/openai/deployments/{DEPLOYMENT}/chat/completions",
            params={"api-version": AZURE_VERSION},
            headers={"api-key": "k"},
            json={"messages": [{"role": "user", "content": "no model"}]},
        )
    assert answer.status_code == 200
    assert answer.json()["model"] == DEPLOYMENT
    assert fake_server.received_bodies == [{"messages": [{"role": "user", "content": "no model"}]}]


async def test_azure_faults_match_paths_without_the_query(
    azure_client: openai.AsyncAzureOpenAI, fake_server: FakeProviderServer
) -> None:
    created = await submit_batch(azure_client, {"a": azure_body("x")}, endpoint="/chat/completions")
    fake_server.fail_next("GET /openai/batches/{id}", 503)
    fake_server.drop_next(f"POST /openai/deployments/{DEPLOYMENT}/chat/completions")
    assert (await azure_client.batches.retrieve(created.id)).status == "completed"
    await azure_client.chat.completions.create(**azure_body("retried"))
    assert fake_server.pending_faults == 0
    assert fake_server.stats.request_count(f"GET /openai/batches/{created.id}") == 2
    assert fake_server.stats.provider("azure").realtime_calls == 2
    fake_server.set_batch_outcome("failed")
    failed = await submit_batch(azure_client, {"a": azure_body("x")}, endpoint="/chat/completions")
    assert (await wait_terminal(azure_client, failed.id)).status == "failed"


# ---------------------------------------------------------------------------- all together


async def test_every_openai_compatible_host_on_one_server(
    openai_client: openai.AsyncOpenAI,
    groq_client: openai.AsyncOpenAI,
    xai_client: openai.AsyncOpenAI,
    azure_client: openai.AsyncAzureOpenAI,
    fake_server: FakeProviderServer,
) -> None:
    ids = [
        (await submit_batch(openai_client, {"a": chat_body("o")})).id,
        (await submit_batch(groq_client, {"a": chat_body("g"), "b": chat_body("g")})).id,
        (await submit_batch(xai_client, {"a": chat_body("x")})).id,
        (await submit_batch(azure_client, {"a": azure_body("z")}, endpoint="/chat/completions")).id,
    ]
    for client in (openai_client, groq_client, xai_client, azure_client):
        await client.chat.completions.create(**chat_body("live"))
    records = fake_server.batches
    assert [(r.provider, r.id) for r in records] == list(
        zip(["openai", "groq", "xai", "azure"], ids, strict=True)
    )
    assert {r.status for r in records} == {"completed"}
    stats = fake_server.stats
    assert (stats.batches_created, stats.lines_per_batch) == (4, [1, 2, 1, 1])
    assert (stats.files_uploaded, stats.realtime_calls) == (4, 4)
    for name in ("openai", "groq", "xai", "azure"):
        assert stats.provider(name).batches_created == 1
        assert stats.provider(name).realtime_calls == 1
    assert len(fake_server.received_bodies) == 5 + 4


async def test_azure_list_pages_keep_the_api_version(
    azure_client: openai.AsyncAzureOpenAI, fake_server: FakeProviderServer
) -> None:
    ids = [
        (await submit_batch(azure_client, {"a": azure_body("x")}, endpoint="/chat/completions")).id
        for _ in range(3)
    ]
    assert [b.id async for b in azure_client.batches.list(limit=2)] == ids[::-1]
    assert fake_server.stats.request_count("GET /openai/batches") == 2
