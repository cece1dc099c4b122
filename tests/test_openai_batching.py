"""The real `openai` SDK inside `batchify()`, against the bundled fake provider server."""

from __future__ import annotations

import asyncio
import json
import warnings
from pathlib import Path
from typing import Any

import openai
import pydantic
import pytest
from openai.types import (
    Completion,
    CreateEmbeddingResponse,
    ImagesResponse,
    ModerationCreateResponse,
)
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

import batchling
from batchling.testing import FakeProviderServer
from tests.conftest import fast_batchify


def ask(client: openai.AsyncOpenAI, text: str, model: str = "gpt-4o-mini"):  # type: ignore[no-untyped-def]
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])


async def test_seed_example_200_concurrent_calls_make_one_batch_and_no_realtime_call(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    descriptions = [f"product {i}" for i in range(200)]
    tasks = [ask(client, text) for text in descriptions]  # created before the block, as in the seed
    async with fast_batchify() as ctx:
        replies = await asyncio.gather(*tasks)

    assert fake_server.stats.batches_created == 1
    assert fake_server.stats.lines_per_batch == [200]
    assert fake_server.stats.realtime_calls == 0
    for text, reply in zip(descriptions, replies, strict=True):
        assert type(reply) is ChatCompletion
        assert reply.choices[0].message.content == f"echo: {text}"
        assert reply.usage is not None
        assert reply.usage.total_tokens > 0
    assert ctx.report.batched == 200
    assert ctx.report.batch_ids == [fake_server.batches[0].id]


async def test_batched_result_equals_realtime_result_apart_from_ids(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    live = await ask(client, "same question")
    async with fast_batchify():
        batched = await ask(client, "same question")
    assert type(batched) is type(live)
    ignored = {"id", "created"}
    assert batched.model_dump(exclude=ignored) == live.model_dump(exclude=ignored)
    assert batched._request_id is not None


async def test_calls_outside_the_block_go_realtime(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify():
        await ask(client, "inside")
    reply = await ask(client, "outside")
    assert reply.choices[0].message.content == "echo: outside"
    assert fake_server.stats.realtime_calls == 1
    assert fake_server.stats.batches_created == 1


async def test_every_parameter_reaches_the_batch_line_unchanged(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Look a product up",
                "parameters": {"type": "object", "properties": {"sku": {"type": "string"}}},
            },
        }
    ]
    kwargs: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You write product copy."},
            {"role": "user", "content": "a red chair"},
        ],
        "tools": tools,
        "tool_choice": "auto",
        "temperature": 0.3,
        "top_p": 0.9,
        "max_completion_tokens": 77,
        "seed": 42,
        "stop": ["END"],
        "metadata": {"team": "catalog"},
        "response_format": {"type": "json_object"},
        "user": "user-1",
        "extra_body": {"vendor_flag": {"nested": [1, 2]}},
    }
    async with fast_batchify():
        await client.chat.completions.create(**kwargs)
    line = fake_server.batches[0].lines[0]
    assert line["method"] == "POST"
    assert line["url"] == "/v1/chat/completions"
    expected = {key: value for key, value in kwargs.items() if key != "extra_body"}
    expected["vendor_flag"] = {"nested": [1, 2]}
    assert line["body"] == expected


async def test_mixed_models_make_one_batch_per_model(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify():
        replies = await asyncio.gather(
            *(ask(client, f"q{i}", model=("model-a" if i % 2 else "model-b")) for i in range(10))
        )
    assert fake_server.stats.batches_created == 2
    assert sorted(fake_server.stats.lines_per_batch) == [5, 5]
    assert {batch.lines[0]["body"]["model"] for batch in fake_server.batches} == {
        "model-a",
        "model-b",
    }
    assert [reply.model for reply in replies] == [
        "model-a" if i % 2 else "model-b" for i in range(10)
    ]


async def test_two_clients_with_different_keys_never_share_a_batch(
    client: openai.AsyncOpenAI,
    other_client: openai.AsyncOpenAI,
    fake_server: FakeProviderServer,
) -> None:
    async with fast_batchify():
        await asyncio.gather(ask(client, "from a"), ask(other_client, "from b"))
    assert fake_server.stats.batches_created == 2
    assert sorted(batch.api_key for batch in fake_server.batches) == [
        "sk-test-key-a",
        "sk-test-key-b",
    ]
    for batch in fake_server.batches:
        expected = "from a" if batch.api_key == "sk-test-key-a" else "from b"
        assert batch.lines[0]["body"]["messages"][0]["content"] == expected


async def test_two_clients_with_the_same_identity_share_a_batch(
    fake_server: FakeProviderServer,
) -> None:
    async with (
        openai.AsyncOpenAI(base_url=fake_server.openai_base_url, api_key="k") as first,
        openai.AsyncOpenAI(base_url=fake_server.openai_base_url, api_key="k") as second,
        fast_batchify(),
    ):
        await asyncio.gather(ask(first, "1"), ask(second, "2"))
    assert fake_server.stats.lines_per_batch == [2]


async def test_organization_and_per_call_headers_separate_batches_and_reach_the_job(
    fake_server: FakeProviderServer,
) -> None:
    async with (
        openai.AsyncOpenAI(
            base_url=fake_server.openai_base_url, api_key="k", organization="org-1"
        ) as org1,
        openai.AsyncOpenAI(
            base_url=fake_server.openai_base_url, api_key="k", organization="org-2"
        ) as org2,
        fast_batchify(),
    ):
        await asyncio.gather(
            ask(org1, "a"),
            ask(org2, "b"),
            org1.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "c"}],
                extra_headers={"OpenAI-Project": "proj-9"},
            ),
        )
    assert fake_server.stats.batches_created == 3
    seen = {
        (batch.headers.get("openai-organization"), batch.headers.get("openai-project"))
        for batch in fake_server.batches
    }
    assert seen == {("org-1", None), ("org-2", None), ("org-1", "proj-9")}


async def test_responses_create_comes_back_as_response(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify():
        reply = await client.responses.create(
            model="gpt-4.1-mini", input="hello there", instructions="be brief"
        )
    assert type(reply) is Response
    assert reply.output_text == "echo: hello there"
    assert fake_server.batches[0].endpoint == "/v1/responses"
    assert fake_server.batches[0].lines[0]["body"]["instructions"] == "be brief"
    assert fake_server.stats.realtime_calls == 0


async def test_embeddings_come_back_as_floats_like_realtime(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    live = await client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    async with fast_batchify():
        batched = await client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert type(batched) is CreateEmbeddingResponse
    assert all(isinstance(value, float) for value in batched.data[0].embedding)
    assert [item.embedding for item in batched.data] == [item.embedding for item in live.data]
    assert fake_server.batches[0].endpoint == "/v1/embeddings"


async def test_legacy_completions_and_moderations_are_batched(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify():
        completion, moderation = await asyncio.gather(
            client.completions.create(model="gpt-3.5-turbo-instruct", prompt="say hi"),
            client.moderations.create(model="omni-moderation-latest", input="hello"),
        )
    assert type(completion) is Completion
    assert completion.choices[0].text == "echo: say hi"
    assert type(moderation) is ModerationCreateResponse
    assert moderation.results[0].flagged is False
    assert sorted(batch.endpoint for batch in fake_server.batches) == [
        "/v1/completions",
        "/v1/moderations",
    ]
    assert fake_server.stats.realtime_calls == 0


async def test_image_generations_are_batched_and_equal_realtime_ones(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    live = await client.images.generate(model="gpt-image-1", prompt="an oak chair", n=2)
    async with fast_batchify() as ctx:
        batched, dall_e = await asyncio.gather(
            client.images.generate(model="gpt-image-1", prompt="an oak chair", n=2),
            client.images.generate(model="dall-e-3", prompt="a lamp", size="1024x1792"),
        )
    assert type(batched) is ImagesResponse
    assert batched.model_dump(exclude={"created"}) == live.model_dump(exclude={"created"})
    assert batched.data is not None
    assert len(batched.data) == 2
    assert batched.usage is not None
    assert batched.usage.output_tokens > 0
    assert dall_e.data is not None
    assert dall_e.data[0].url is not None
    assert dall_e.data[0].revised_prompt == "A photograph of a lamp"
    assert [batch.endpoint for batch in fake_server.batches] == ["/v1/images/generations"] * 2
    # Two jobs created at once: which the server saw first is not fixed.
    by_model = {batch.lines[0]["body"]["model"]: batch for batch in fake_server.batches}
    assert by_model["dall-e-3"].lines[0]["body"]["size"] == "1024x1792"
    assert fake_server.stats.realtime_calls == 1  # the live call before the block
    assert ctx.report.batched == 2


async def test_image_generation_jobs_are_split_by_the_images_they_return(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("batchling.providers.openai.IMAGES_PER_JOB", 4)
    async with fast_batchify():
        replies = await asyncio.gather(*(
            client.images.generate(model="gpt-image-1", prompt=f"chair {i}", n=2)
            for i in range(5)
        ))  # fmt: skip
    assert all(reply.data is not None and len(reply.data) == 2 for reply in replies)
    assert sorted(fake_server.stats.lines_per_batch) == [1, 2, 2]


EMBEDDING_INPUT_COUNTS = [3, 1, 2, 4, 1]  # against 5 inputs a job: jobs of 3+1, 2, 4+1


async def test_embedding_jobs_are_split_by_their_inputs_not_only_their_requests(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("batchling.providers.openai.EMBEDDING_INPUTS_PER_JOB", 5)
    async with fast_batchify():
        replies = await asyncio.gather(*(
            client.embeddings.create(
                model="text-embedding-3-small", input=[f"text {i}.{k}" for k in range(count)]
            )
            for i, count in enumerate(EMBEDDING_INPUT_COUNTS)
        ))  # fmt: skip
    assert [len(reply.data) for reply in replies] == EMBEDDING_INPUT_COUNTS
    inputs_per_job = [
        sum(len(line["body"]["input"]) for line in batch.lines) for batch in fake_server.batches
    ]
    assert sorted(inputs_per_job) == [2, 4, 5]
    assert fake_server.stats.realtime_calls == 0


async def test_image_edits_upload_files_and_pass_through_reported(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    # The fake server serves no real-time image edits: its 404 shows where the call went.
    async with fast_batchify() as ctx:
        with (
            pytest.warns(batchling.NotBatchedWarning, match="multipart"),
            pytest.raises(openai.NotFoundError),
        ):
            await client.images.edit(
                model="gpt-image-1", image=("chair.png", b"png", "image/png"), prompt="red"
            )
    assert ctx.report.passed_through == {"non-JSON body": 1}
    assert fake_server.stats.batches_created == 0


class ProductCopy(pydantic.BaseModel):
    title: str
    word_count: int


async def test_chat_parse_with_pydantic_response_format_is_batched_and_parsed(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify():
        reply = await client.chat.completions.parse(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "blue lamp"}],
            response_format=ProductCopy,
        )
    parsed = reply.choices[0].message.parsed
    assert isinstance(parsed, ProductCopy)
    assert parsed.title == "blue lamp"
    body = fake_server.batches[0].lines[0]["body"]
    assert body["response_format"]["type"] == "json_schema"
    assert fake_server.stats.realtime_calls == 0


async def test_responses_parse_with_text_format_is_batched_and_parsed(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify():
        reply = await client.responses.parse(
            model="gpt-4.1-mini", input="green sofa", text_format=ProductCopy
        )
    assert isinstance(reply.output_parsed, ProductCopy)
    assert reply.output_parsed.title == "green sofa"
    assert fake_server.stats.batches_created == 1
    assert fake_server.stats.realtime_calls == 0


async def test_with_raw_response_is_batched_and_returns_the_raw_response_object(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    live = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "raw"}]
    )
    async with fast_batchify():
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "raw"}]
        )
    assert type(raw) is type(live)
    assert raw.status_code == 200
    parsed = raw.parse()
    assert type(parsed) is ChatCompletion
    assert parsed.choices[0].message.content == "echo: raw"
    assert fake_server.stats.realtime_calls == 1  # only the live call
    assert fake_server.stats.batches_created == 1


async def test_direct_client_post_is_batched_like_litellm_calls_it(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "via post"}]}
    async with fast_batchify():
        reply = await client.post("/chat/completions", body=body, cast_to=ChatCompletion)
    assert type(reply) is ChatCompletion
    assert reply.choices[0].message.content == "echo: via post"
    assert fake_server.stats.batches_created == 1
    assert fake_server.stats.realtime_calls == 0


async def test_failed_line_raises_sdk_bad_request_in_that_caller_only(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify() as ctx:
        results = await asyncio.gather(
            ask(client, "fine 1"),
            ask(client, "broken [[fail:400]]"),
            ask(client, "fine 2"),
            return_exceptions=True,
        )
    ok1, failed, ok2 = results
    assert isinstance(ok1, ChatCompletion)
    assert isinstance(ok2, ChatCompletion)
    assert type(failed) is openai.BadRequestError
    assert failed.status_code == 400
    assert failed.code == "injected_failure"
    assert failed.request_id is not None
    assert fake_server.stats.batches_created == 1
    assert fake_server.stats.realtime_calls == 0  # never retried by the SDK
    assert ctx.report.failed == 1


@pytest.mark.parametrize(
    ("status", "error_class"),
    [(429, openai.RateLimitError), (500, openai.InternalServerError)],
)
async def test_failed_line_keeps_the_real_status_code(
    client: openai.AsyncOpenAI,
    fake_server: FakeProviderServer,
    status: int,
    error_class: type[openai.APIStatusError],
) -> None:
    async with fast_batchify():
        with pytest.raises(error_class) as raised:
            await ask(client, f"[[fail:{status}]]")
    assert raised.value.status_code == status
    assert fake_server.stats.realtime_calls == 0


async def test_expired_batch_raises_batchling_error_in_unfinished_callers_and_keeps_finished(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    fake_server.set_batch_outcome("expired", completed_fraction=0.5)
    async with fast_batchify(resubmit_expired=0):
        results = await asyncio.gather(
            *(ask(client, f"q{i}") for i in range(10)), return_exceptions=True
        )
    done = [r for r in results if isinstance(r, ChatCompletion)]
    expired = [r for r in results if isinstance(r, batchling.BatchExpiredError)]
    assert len(done) == 5
    assert len(expired) == 5
    batch_id = fake_server.batches[0].id
    assert all(error.batch_id == batch_id and batch_id in str(error) for error in expired)
    assert all(isinstance(error, batchling.BatchlingError) for error in expired)


async def test_failed_batch_raises_batch_failed_error_naming_the_batch(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    fake_server.set_batch_outcome("failed")
    async with fast_batchify():
        with pytest.raises(batchling.BatchFailedError) as raised:
            await ask(client, "doomed")
    assert raised.value.batch_id == fake_server.batches[0].id
    assert "injected_failure" in str(raised.value)


async def test_cancelled_batch_raises_batch_cancelled_error(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    fake_server.set_batch_outcome("cancelled")
    async with fast_batchify():
        with pytest.raises(batchling.BatchCancelledError):
            await ask(client, "cancelled")


async def test_batch_create_rejected_with_400_raises_sdk_error_in_callers(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    fake_server.fail_next("POST /v1/batches", 400)
    async with fast_batchify():
        results = await asyncio.gather(ask(client, "a"), ask(client, "b"), return_exceptions=True)
    assert all(type(result) is openai.BadRequestError for result in results)
    assert fake_server.stats.batches_created == 0


async def test_transient_batch_create_failure_is_retried_without_a_second_batch(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    fake_server.fail_next("POST /v1/batches", 500, times=2)
    async with fast_batchify():
        reply = await ask(client, "eventually")
    assert reply.choices[0].message.content == "echo: eventually"
    assert fake_server.stats.batches_created == 1


async def test_poll_errors_do_not_fail_the_batch(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    fake_server.fail_next("GET /v1/batches/{id}", 503, times=4)
    async with fast_batchify():
        reply = await ask(client, "patience")
    assert reply.choices[0].message.content == "echo: patience"


async def test_a_call_started_as_a_task_is_reported_at_the_sdk_method_it_called(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify():
        with pytest.warns(batchling.NotBatchedWarning, match="stream") as caught:
            stream = await asyncio.ensure_future(
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "s"}], stream=True
                )
            )
            assert [chunk async for chunk in stream]
    # No line of the program is on a task's stack: the SDK method it called is named instead
    # (not asyncio's event loop, where the stack ends).
    assert "openai" in Path(caught[0].filename).parts
    assert "asyncio" not in Path(caught[0].filename).parts


async def test_stream_true_passes_through_with_one_warning_per_kind(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify() as ctx:
        with pytest.warns(batchling.NotBatchedWarning, match="stream") as caught:
            for _ in range(2):
                stream = await client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": "stream me"}],
                    stream=True,
                )
                chunks = [chunk async for chunk in stream]
                assert chunks
    assert len(caught) == 1
    assert caught[0].filename == __file__, "the warning points at the program's own call"
    assert ctx.report.passed_through == {"streaming": 2}
    assert fake_server.stats.realtime_calls == 2
    assert fake_server.stats.batches_created == 0


async def test_stream_true_raises_under_strict(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify(strict=True):
        with pytest.raises(batchling.NotBatchableError, match="strict=True"):
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True
            )
    assert fake_server.stats.realtime_calls == 0


async def test_a_block_inside_a_strict_block_is_strict_too(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify(strict=True), fast_batchify():  # e.g. `batchling --strict`
        with pytest.raises(batchling.NotBatchableError, match="strict=True"):
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True
            )
    assert fake_server.stats.realtime_calls == 0


async def test_with_streaming_response_passes_through(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify():
        with pytest.warns(batchling.NotBatchedWarning, match="with_streaming_response"):
            async with client.chat.completions.with_streaming_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "s"}]
            ) as response:
                data = json.loads(await response.read())
    assert data["choices"][0]["message"]["content"] == "echo: s"
    assert fake_server.stats.realtime_calls == 1


async def test_management_calls_pass_through_silently_even_under_strict(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify(strict=True) as ctx:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            page = await client.batches.list()
    assert page.data == []
    assert ctx.report.passed_through_total == 0


async def test_tasks_created_inside_the_block_are_batched(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify():
        async with asyncio.TaskGroup() as group:
            grouped = [group.create_task(ask(client, f"g{i}")) for i in range(3)]
        loose = asyncio.create_task(ask(client, "loose"))
        await loose
    assert [task.result().choices[0].message.content for task in grouped] == [
        "echo: g0",
        "echo: g1",
        "echo: g2",
    ]
    assert fake_server.stats.realtime_calls == 0
    assert sum(fake_server.stats.lines_per_batch) == 4


async def test_leaving_the_block_waits_for_calls_nobody_awaited_yet(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify(batch_window_seconds=30):
        task = asyncio.create_task(ask(client, "fire and forget"))
        await asyncio.sleep(0)
    # The exit flushed the queue at once (no 30 s window) and waited for the result.
    assert task.done()
    assert task.result().choices[0].message.content == "echo: fire and forget"


async def test_cancelled_caller_does_not_disturb_the_others_and_is_not_submitted(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify(batch_window_seconds=0.2):
        doomed = asyncio.create_task(ask(client, "cancel me"))
        kept = asyncio.create_task(ask(client, "keep me"))
        await asyncio.sleep(0.05)
        doomed.cancel()
        reply = await kept
    assert doomed.cancelled()
    assert reply.choices[0].message.content == "echo: keep me"
    assert fake_server.stats.lines_per_batch == [1]


async def test_batch_size_splits_a_queue_into_several_batches(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify(batch_size=4):
        replies = await asyncio.gather(*(ask(client, f"n{i}") for i in range(10)))
    assert sorted(fake_server.stats.lines_per_batch) == [2, 4, 4]
    assert [r.choices[0].message.content for r in replies] == [f"echo: n{i}" for i in range(10)]


async def test_identical_requests_each_get_their_own_line_and_result(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify():
        replies = await asyncio.gather(*(ask(client, "same") for _ in range(3)))
    custom_ids = [line["custom_id"] for line in fake_server.batches[0].lines]
    assert len(set(custom_ids)) == 3
    assert all(
        len(cid) <= 64 and cid.replace("_", "").replace("-", "").isalnum() for cid in custom_ids
    )
    assert len({id(reply) for reply in replies}) == 3


async def test_nested_batchify_blocks_each_batch_their_own_calls(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify() as outer:
        async with fast_batchify() as inner:
            inner_reply = await ask(client, "inner")
        outer_reply = await ask(client, "outer")
    assert inner_reply.choices[0].message.content == "echo: inner"
    assert outer_reply.choices[0].message.content == "echo: outer"
    assert inner.report.batched == 1
    assert outer.report.batched == 1
    assert fake_server.stats.realtime_calls == 0


async def test_two_concurrent_contexts_keep_their_calls_apart(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async def job(prefix: str, count: int) -> list[str]:
        async with fast_batchify() as ctx:
            replies = await asyncio.gather(*(ask(client, f"{prefix}{i}") for i in range(count)))
        assert ctx.report.batched == count
        return [reply.choices[0].message.content or "" for reply in replies]

    first, second = await asyncio.gather(job("a", 3), job("b", 5))
    assert first == [f"echo: a{i}" for i in range(3)]
    assert second == [f"echo: b{i}" for i in range(5)]
    assert sorted(fake_server.stats.lines_per_batch) == [3, 5]


async def test_error_inside_the_block_fails_unsubmitted_calls_without_sending_them(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    task = None
    with pytest.raises(RuntimeError, match="boom"):
        async with fast_batchify(batch_window_seconds=30):
            task = asyncio.create_task(ask(client, "never sent"))
            await asyncio.sleep(0.01)
            raise RuntimeError("boom")
    assert task is not None
    with pytest.raises(batchling.BatchSubmissionAbandonedError):
        await task
    assert fake_server.stats.batches_created == 0
    assert fake_server.stats.files_uploaded == 0


async def test_leaving_the_block_waits_for_follow_up_calls_of_unawaited_tasks(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async def two_steps() -> str:
        first = await ask(client, "step one")
        second = await ask(client, f"after {first.choices[0].message.content}")
        return second.choices[0].message.content or ""

    async with fast_batchify(batch_window_seconds=30):
        task = asyncio.create_task(two_steps())
    assert task.done()
    assert task.result() == "echo: after echo: step one"
    assert fake_server.stats.lines_per_batch == [1, 1]
    assert fake_server.stats.realtime_calls == 0
