"""Fault injection: markers, batch outcomes, one-shot route faults, validation, auth."""

from __future__ import annotations

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletion

from batchling.testing import FakeProviderServer
from batchling.testing.jsonl import batch_line, to_jsonl

from .support import (
    chat_body,
    create_batch,
    file_lines,
    submit_batch,
    upload_jsonl,
    wait_terminal,
)


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(400, "invalid_request_error"), (429, "rate_limit_error"), (500, "server_error")],
)
async def test_failure_marker_sends_that_batch_line_to_the_error_file(
    openai_client: openai.AsyncOpenAI, status: int, error_type: str
) -> None:
    bodies = {"ok": chat_body("fine"), "bad": chat_body(f"please [[fail:{status}]]")}
    batch = await wait_terminal(openai_client, (await submit_batch(openai_client, bodies)).id)
    assert batch.status == "completed"
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (1, 1)
    (good,) = await file_lines(openai_client, batch.output_file_id)
    (bad,) = await file_lines(openai_client, batch.error_file_id)
    assert good["custom_id"] == "ok"
    assert bad["custom_id"] == "bad"
    assert bad["error"] is None
    assert bad["response"]["status_code"] == status
    assert bad["response"]["request_id"].startswith("req_")
    assert bad["response"]["body"]["error"] == {
        "message": f"Injected failure {status} for this request.",
        "type": error_type,
        "param": None,
        "code": "injected_failure",
    }


async def test_failure_marker_in_a_realtime_call_answers_that_status_without_retries(
    openai_client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        await openai_client.chat.completions.create(**chat_body("[[fail:429]]"))
    assert caught.value.code == "injected_failure"
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert fake_server.stats.realtime_calls == 1


async def test_failed_outcome_fails_the_batch_without_output(
    openai_client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    fake_server.set_batch_outcome("failed")
    batch = await wait_terminal(
        openai_client, (await submit_batch(openai_client, {"a": chat_body("x")})).id
    )
    assert batch.status == "failed"
    assert batch.failed_at is not None
    assert batch.output_file_id is None
    assert batch.error_file_id is None
    assert batch.errors is not None
    assert batch.errors.data is not None
    assert [error.code for error in batch.errors.data] == ["injected_failure"]
    assert batch.errors.data[0].line is None


async def test_expired_batch_returns_completed_fraction_and_batch_expired_errors(
    openai_client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    fake_server.set_batch_outcome("expired", completed_fraction=0.5)
    bodies = {f"r{i}": chat_body(f"q {i}") for i in range(4)}
    batch = await wait_terminal(openai_client, (await submit_batch(openai_client, bodies)).id)
    assert batch.status == "expired"
    assert batch.expired_at is not None
    done = await file_lines(openai_client, batch.output_file_id)
    expired = await file_lines(openai_client, batch.error_file_id)
    assert sorted(line["custom_id"] for line in done) == ["r0", "r1"]
    assert sorted(line["custom_id"] for line in expired) == ["r2", "r3"]
    for line in done:
        ChatCompletion.model_validate(line["response"]["body"])
    for line in expired:
        assert line["response"] is None
        assert line["error"]["code"] == "batch_expired"
        assert line["error"]["message"]


async def test_cancelled_outcome_reports_batch_cancelled_for_unprocessed_lines(
    openai_client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    fake_server.set_batch_outcome("cancelled")
    batch = await wait_terminal(
        openai_client, (await submit_batch(openai_client, {"a": chat_body("x")})).id
    )
    assert batch.status == "cancelled"
    assert batch.output_file_id is None
    (line,) = await file_lines(openai_client, batch.error_file_id)
    assert line["error"]["code"] == "batch_cancelled"


async def test_outcome_applies_only_to_batches_created_afterwards(
    openai_client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    before = await submit_batch(openai_client, {"a": chat_body("x")})
    fake_server.set_batch_outcome("failed")
    after = await submit_batch(openai_client, {"a": chat_body("x")})
    assert (await wait_terminal(openai_client, before.id)).status == "completed"
    assert (await wait_terminal(openai_client, after.id)).status == "failed"


async def test_fail_next_answers_the_status_then_the_sdk_retry_succeeds(
    openai_client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    created = await submit_batch(openai_client, {"a": chat_body("x")})
    fake_server.fail_next("GET /v1/batches/{id}", 500)
    batch = await openai_client.batches.retrieve(created.id)
    assert batch.status == "completed"
    assert fake_server.stats.request_count(f"GET /v1/batches/{created.id}") == 2
    assert fake_server.pending_faults == 0


async def test_fail_next_more_times_than_retries_raises_the_sdk_error(
    openai_client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    fake_server.fail_next("POST /v1/batches", 429, times=3)
    file_id = await upload_jsonl(
        openai_client, to_jsonl([batch_line("a", "/v1/chat/completions", chat_body("x"))])
    )
    with pytest.raises(openai.RateLimitError) as caught:
        await create_batch(openai_client, file_id, "/v1/chat/completions")
    assert caught.value.code == "injected_failure"
    assert fake_server.stats.batches_created == 0


async def test_drop_next_closes_the_connection_and_the_sdk_retries(
    openai_client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    fake_server.drop_next("POST /v1/chat/completions")
    completion = await openai_client.chat.completions.create(**chat_body("again"))
    assert completion.choices[0].message.content == "echo: again"
    assert fake_server.stats.realtime_calls == 2
    assert fake_server.pending_faults == 0


async def test_request_without_api_key_is_unauthorized(fake_server: FakeProviderServer) -> None:
    async with httpx2.AsyncClient(base_url=fake_server.openai_base_url) as http:
        missing = await http.get("/batches")
        empty = await http.get("/batches", headers={"Authorization": "Bearer"})
        wrong_scheme = await http.get("/batches", headers={"Authorization": "Basic abc"})
    for answer in (missing, empty, wrong_scheme):
        assert answer.status_code == 401
        error = answer.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["type"] == "authentication_error"


async def test_unknown_input_file_is_not_found(openai_client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        await create_batch(openai_client, "file-missing", "/v1/chat/completions")


async def test_duplicate_custom_id_fails_validation_naming_the_line(
    openai_client: openai.AsyncOpenAI,
) -> None:
    data = to_jsonl(
        [
            batch_line("same", "/v1/chat/completions", chat_body("a")),
            batch_line("same", "/v1/chat/completions", chat_body("b")),
        ]
    )
    batch = await create_batch(
        openai_client, await upload_jsonl(openai_client, data), "/v1/chat/completions"
    )
    batch = await wait_terminal(openai_client, batch.id)
    assert batch.status == "failed"
    assert batch.errors is not None
    assert batch.errors.data is not None
    assert [(e.code, e.line, e.param) for e in batch.errors.data] == [
        ("duplicate_custom_id", 2, "custom_id")
    ]


async def test_invalid_lines_fail_validation_with_their_line_numbers(
    openai_client: openai.AsyncOpenAI,
) -> None:
    good = batch_line("ok", "/v1/chat/completions", chat_body("a"))
    data = b"".join(
        [
            to_jsonl([good]),
            b"{not json\n",
            to_jsonl([batch_line("url", "/v1/embeddings", chat_body("a"))]),
            to_jsonl(
                [{**batch_line("get", "/v1/chat/completions", chat_body("a")), "method": "GET"}]
            ),
            to_jsonl([batch_line("stream", "/v1/chat/completions", chat_body("a", stream=True))]),
        ]
    )
    batch = await create_batch(
        openai_client, await upload_jsonl(openai_client, data), "/v1/chat/completions"
    )
    batch = await wait_terminal(openai_client, batch.id)
    assert batch.status == "failed"
    assert batch.errors is not None
    assert batch.errors.data is not None
    assert [(e.code, e.line) for e in batch.errors.data] == [
        ("invalid_json_line", 2),
        ("mismatched_endpoint", 3),
        ("invalid_method", 4),
        ("invalid_request", 5),
    ]


async def test_batch_create_rejects_unknown_endpoint_and_window(
    openai_client: openai.AsyncOpenAI,
) -> None:
    file_id = await upload_jsonl(openai_client, b"{}\n")
    with pytest.raises(openai.BadRequestError):
        await create_batch(openai_client, file_id, "/v1/unknown")
    with pytest.raises(openai.BadRequestError):
        await openai_client.batches.create(
            input_file_id=file_id,
            endpoint="/v1/chat/completions",
            completion_window="1h",  # type: ignore[arg-type]
        )


async def test_delayed_failing_batch_stays_validating_until_the_delay() -> None:
    with FakeProviderServer(batch_delay_seconds=30) as server:
        server.set_batch_outcome("failed")
        async with openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="k") as client:
            created = await submit_batch(client, {"a": chat_body("x")})
            assert (await client.batches.retrieve(created.id)).status == "validating"
