"""Anthropic Message Batches, driven by the real AsyncAnthropic client."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types import Message
from anthropic.types.messages import MessageBatch

from batchling.testing import AnthropicBatchRecord, FakeProviderServer

from .anthropic_support import MODEL, batch_request, params, results_by_id, wait_ended


async def test_batch_ends_with_a_succeeded_result_per_custom_id(
    anthropic_client: anthropic.AsyncAnthropic, fake_server: FakeProviderServer
) -> None:
    requests = [batch_request(f"req-{i}", f"question {i}") for i in range(4)]
    created = await anthropic_client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    assert created.id.startswith("msgbatch_")
    assert created.processing_status == "in_progress"
    assert created.request_counts.processing == 4
    assert created.results_url is None

    raw = await anthropic_client.messages.batches.with_raw_response.retrieve(created.id)
    batch = MessageBatch.model_validate(raw.http_response.json())
    assert raw.http_response.headers["request-id"].startswith("req_")
    assert batch.processing_status == "ended"
    assert batch.ended_at is not None
    assert batch.created_at <= batch.ended_at < batch.expires_at
    assert (batch.cancel_initiated_at, batch.archived_at) == (None, None)
    counts = batch.request_counts
    assert (counts.processing, counts.succeeded, counts.errored) == (0, 4, 0)
    assert batch.results_url == f"{fake_server.url}/v1/messages/batches/{batch.id}/results"

    decoder = await anthropic_client.messages.batches.results(batch.id)
    results = [item async for item in decoder]
    assert sorted(item.custom_id for item in results) == [f"req-{i}" for i in range(4)]
    assert [item.custom_id for item in results] != [f"req-{i}" for i in range(4)]
    for item in results:
        assert item.result.type == "succeeded"
        message = Message.model_validate(item.result.message.model_dump())
        number = item.custom_id.removeprefix("req-")
        assert message.content[0].text == f"echo: question {number}"  # type: ignore[union-attr]
        assert message.usage.service_tier == "batch"

    stats = fake_server.stats.provider("anthropic")
    assert (stats.batches_created, stats.lines_per_batch, stats.realtime_calls) == (1, [4], 0)
    assert fake_server.stats.batches_created == 1
    (record,) = fake_server.batches
    assert isinstance(record, AnthropicBatchRecord)
    assert (record.provider, record.id, record.endpoint) == ("anthropic", batch.id, "/v1/messages")
    assert record.status == "ended"
    assert record.model == MODEL
    assert record.api_key == "test-key"
    assert record.headers["authorization"] == "Bearer test-key"
    assert record.headers["anthropic-version"]
    assert record.lines == requests
    assert fake_server.received_bodies == [request["params"] for request in requests]


async def test_batch_results_equal_realtime_results_except_ids_and_service_tier(
    anthropic_client: anthropic.AsyncAnthropic,
) -> None:
    body = params("same question", system="short answers")
    live = (await anthropic_client.messages.with_raw_response.create(**body)).http_response.json()
    created = await anthropic_client.messages.batches.create(
        requests=[{"custom_id": "only", "params": body}]  # type: ignore[typeddict-item]
    )
    result = (await results_by_id(anthropic_client, created.id))["only"].result
    assert result.type == "succeeded"
    batched = result.message.model_dump(mode="json", exclude_unset=True)
    for reply in (live, batched):
        reply.pop("id")
        reply["usage"].pop("service_tier")
    assert batched == live


async def test_api_key_sent_as_x_api_key_is_recorded(fake_server: FakeProviderServer) -> None:
    async with httpx2.AsyncClient(base_url=fake_server.anthropic_base_url) as http:
        answer = await http.post(
            "/v1/messages/batches",
            json={"requests": [batch_request("a", "x")]},
            headers={"x-api-key": "header-key"},
        )
    assert answer.status_code == 200
    assert fake_server.batches[0].api_key == "header-key"
    assert fake_server.batches[0].headers["x-api-key"] == "header-key"


async def test_batch_stays_in_progress_until_the_delay_has_passed() -> None:
    with FakeProviderServer(batch_delay_seconds=0.3) as server:
        async with anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key="k") as c:
            created = await c.messages.batches.create(requests=[batch_request("a", "x")])  # type: ignore[list-item]
            early = await c.messages.batches.retrieve(created.id)
            assert early.processing_status == "in_progress"
            assert early.results_url is None
            with pytest.raises(anthropic.AnthropicError, match="results_url"):
                await c.messages.batches.results(created.id)
            await asyncio.sleep(0.35)
            assert (await c.messages.batches.retrieve(created.id)).processing_status == "ended"
            assert list(await results_by_id(c, created.id)) == ["a"]


async def test_cancel_moves_to_canceling_then_ended_with_canceled_results() -> None:
    with FakeProviderServer(batch_delay_seconds=30) as server:
        async with anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key="k") as c:
            requests = [batch_request("a", "x"), batch_request("b", "y")]
            created = await c.messages.batches.create(requests=requests)  # type: ignore[arg-type]
            canceling = await c.messages.batches.cancel(created.id)
            assert canceling.processing_status == "canceling"
            assert canceling.cancel_initiated_at is not None
            ended = await c.messages.batches.retrieve(created.id)
            assert ended.processing_status == "ended"
            assert ended.request_counts.canceled == 2
            results = await results_by_id(c, created.id)
            assert {item.result.type for item in results.values()} == {"canceled"}
            again = await c.messages.batches.cancel(created.id)
            assert again.processing_status == "ended"


async def test_delete_needs_an_ended_batch_and_then_it_is_gone() -> None:
    with FakeProviderServer(batch_delay_seconds=30) as server:
        async with anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key="k") as c:
            created = await c.messages.batches.create(requests=[batch_request("a", "x")])  # type: ignore[list-item]
            with pytest.raises(anthropic.BadRequestError, match="cancel"):
                await c.messages.batches.delete(created.id)
            await c.messages.batches.cancel(created.id)
            await wait_ended(c, created.id)
            deleted = await c.messages.batches.delete(created.id)
            assert (deleted.id, deleted.type) == (created.id, "message_batch_deleted")
            with pytest.raises(anthropic.NotFoundError):
                await c.messages.batches.retrieve(created.id)
            assert [b.id async for b in c.messages.batches.list()] == []
            (record,) = server.batches
            assert isinstance(record, AnthropicBatchRecord)
            assert record.deleted


async def test_batch_list_pages_newest_first_with_after_and_before_ids(
    anthropic_client: anthropic.AsyncAnthropic,
) -> None:
    ids = [
        (await anthropic_client.messages.batches.create(requests=[batch_request("a", "x")])).id  # type: ignore[list-item]
        for _ in range(3)
    ]
    newest_first = list(reversed(ids))
    first_page = await anthropic_client.messages.batches.list(limit=2)
    assert [batch.id for batch in first_page.data] == newest_first[:2]
    assert first_page.has_more
    assert (first_page.first_id, first_page.last_id) == (newest_first[0], newest_first[1])
    assert [b.id async for b in anthropic_client.messages.batches.list(limit=2)] == newest_first
    after = await anthropic_client.messages.batches.list(after_id=newest_first[0])
    assert [batch.id for batch in after.data] == newest_first[1:]
    assert not after.has_more
    before = await anthropic_client.messages.batches.list(before_id=newest_first[2], limit=1)
    assert [batch.id for batch in before.data] == [newest_first[1]]
    assert before.has_more


@pytest.mark.parametrize(
    ("requests", "message"),
    [
        ([], "at least 1"),
        ([batch_request("x" * 65, "a")], "at most 64"),
        ([batch_request("has space", "a")], "pattern"),
        ([batch_request("same", "a"), batch_request("same", "b")], "Duplicate"),
        ([batch_request("a", "b", max_tokens=0)], "max_tokens"),
        ([batch_request("a", "b", stream=True)], "stream"),
        ([{"custom_id": "a"}], "params"),
    ],
)
async def test_create_rejects_invalid_requests_like_the_real_api(
    anthropic_client: anthropic.AsyncAnthropic,
    fake_server: FakeProviderServer,
    requests: list[dict[str, Any]],
    message: str,
) -> None:
    with pytest.raises(anthropic.BadRequestError, match=message) as caught:
        await anthropic_client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    assert caught.value.type == "invalid_request_error"
    assert fake_server.stats.batches_created == 0
    assert fake_server.batches == []


async def test_invalid_params_the_create_accepts_end_as_errored_results(
    anthropic_client: anthropic.AsyncAnthropic,
) -> None:
    broken = {"custom_id": "broken", "params": {"max_tokens": 5, "messages": []}}
    created = await anthropic_client.messages.batches.create(
        requests=[batch_request("fine", "x"), broken]  # type: ignore[list-item]
    )
    results = await results_by_id(anthropic_client, created.id)
    assert results["fine"].result.type == "succeeded"
    errored = results["broken"].result
    assert errored.type == "errored"
    assert errored.error.error.type == "invalid_request_error"
    assert "model" in errored.error.error.message


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (529, "overloaded_error"),
    ],
)
async def test_failure_marker_makes_that_result_errored_with_the_status_error_type(
    anthropic_client: anthropic.AsyncAnthropic, status: int, error_type: str
) -> None:
    created = await anthropic_client.messages.batches.create(
        requests=[batch_request("ok", "fine"), batch_request("bad", f"x [[fail:{status}]]")]  # type: ignore[list-item]
    )
    batch = await wait_ended(anthropic_client, created.id)
    assert (batch.request_counts.succeeded, batch.request_counts.errored) == (1, 1)
    results = await results_by_id(anthropic_client, created.id)
    bad = results["bad"].result
    assert bad.type == "errored"
    assert bad.error.type == "error"
    assert bad.error.request_id is not None
    assert bad.error.request_id.startswith("req_")
    assert (bad.error.error.type, bad.error.error.message) == (
        error_type,
        f"Injected failure {status} for this request.",
    )


async def test_expired_outcome_answers_the_completed_fraction_and_expires_the_rest(
    anthropic_client: anthropic.AsyncAnthropic, fake_server: FakeProviderServer
) -> None:
    fake_server.set_batch_outcome("expired", completed_fraction=0.5)
    created = await anthropic_client.messages.batches.create(
        requests=[batch_request(f"r{i}", f"q {i}") for i in range(4)]  # type: ignore[misc]
    )
    batch = await wait_ended(anthropic_client, created.id)
    assert (batch.request_counts.succeeded, batch.request_counts.expired) == (2, 2)
    results = await results_by_id(anthropic_client, created.id)
    assert {cid: item.result.type for cid, item in results.items()} == {
        "r0": "succeeded",
        "r1": "succeeded",
        "r2": "expired",
        "r3": "expired",
    }


async def test_cancelled_outcome_cancels_the_unanswered_requests(
    anthropic_client: anthropic.AsyncAnthropic, fake_server: FakeProviderServer
) -> None:
    fake_server.set_batch_outcome("cancelled", completed_fraction=0.5)
    created = await anthropic_client.messages.batches.create(
        requests=[batch_request("a", "x"), batch_request("b", "y")]  # type: ignore[list-item]
    )
    batch = await wait_ended(anthropic_client, created.id)
    assert batch.cancel_initiated_at is not None
    assert (batch.request_counts.succeeded, batch.request_counts.canceled) == (1, 1)
    results = await results_by_id(anthropic_client, created.id)
    assert (results["a"].result.type, results["b"].result.type) == ("succeeded", "canceled")


async def test_failed_outcome_ends_the_batch_with_every_result_an_api_error(
    anthropic_client: anthropic.AsyncAnthropic, fake_server: FakeProviderServer
) -> None:
    fake_server.set_batch_outcome("failed")
    created = await anthropic_client.messages.batches.create(
        requests=[batch_request("a", "x"), batch_request("b", "y")]  # type: ignore[list-item]
    )
    batch = await wait_ended(anthropic_client, created.id)
    assert batch.request_counts.errored == 2
    for item in (await results_by_id(anthropic_client, created.id)).values():
        assert item.result.type == "errored"
        assert item.result.error.error.type == "api_error"


async def test_fail_next_on_retrieve_is_retried_by_the_sdk(
    anthropic_client: anthropic.AsyncAnthropic, fake_server: FakeProviderServer
) -> None:
    created = await anthropic_client.messages.batches.create(requests=[batch_request("a", "x")])  # type: ignore[list-item]
    fake_server.fail_next("GET /v1/messages/batches/{id}", 500)
    batch = await anthropic_client.messages.batches.retrieve(created.id)
    assert batch.processing_status == "ended"
    assert fake_server.stats.request_count(f"GET /v1/messages/batches/{created.id}") == 2
    assert fake_server.pending_faults == 0


async def test_fail_next_on_create_beyond_the_retries_raises_and_creates_nothing(
    anthropic_client: anthropic.AsyncAnthropic, fake_server: FakeProviderServer
) -> None:
    fake_server.fail_next("POST /v1/messages/batches", 429, times=3)
    with pytest.raises(anthropic.RateLimitError) as caught:
        await anthropic_client.messages.batches.create(requests=[batch_request("a", "x")])  # type: ignore[list-item]
    assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert fake_server.stats.batches_created == 0


async def test_drop_next_on_results_is_retried_by_the_sdk(
    anthropic_client: anthropic.AsyncAnthropic, fake_server: FakeProviderServer
) -> None:
    created = await anthropic_client.messages.batches.create(requests=[batch_request("a", "x")])  # type: ignore[list-item]
    await wait_ended(anthropic_client, created.id)
    fake_server.drop_next("GET /v1/messages/batches/{id}/results")
    assert list(await results_by_id(anthropic_client, created.id)) == ["a"]
    assert fake_server.pending_faults == 0


async def test_unknown_batch_is_not_found(anthropic_client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        await anthropic_client.messages.batches.retrieve("msgbatch_missing")
    assert caught.value.type == "not_found_error"
