"""The real `google-genai` SDK inside `batchify()`, against the bundled fake provider server."""

from __future__ import annotations

import asyncio
import decimal

import pydantic
import pytest
from google import genai
from google.genai import errors, types
from google.genai import models as google_models

import batchling
from batchling import stainless
from batchling.providers import google_genai, google_genai_parts
from batchling.testing import FakeProviderServer
from tests.conftest import fast_batchify

MODEL = "gemini-2.5-flash"
EMBED_MODEL = "gemini-embedding-001"


def ask(client: genai.Client, text: str, model: str = MODEL):  # type: ignore[no-untyped-def]
    return client.aio.models.generate_content(model=model, contents=text)


async def test_200_concurrent_calls_make_one_batch_and_no_realtime_call(
    gemini_client: genai.Client, fake_server: FakeProviderServer
) -> None:
    tasks = [ask(gemini_client, f"product {i}") for i in range(200)]
    async with fast_batchify():
        replies = await asyncio.gather(*tasks)
    stats = fake_server.stats.provider("gemini")
    assert stats.batches_created == 1
    assert stats.lines_per_batch == [200]
    assert fake_server.stats.realtime_calls == 0
    for i, reply in enumerate(replies):
        assert type(reply) is types.GenerateContentResponse
        assert reply.text == f"echo: product {i}"
        assert reply.usage_metadata is not None
        assert reply.usage_metadata.total_token_count


async def test_batched_response_equals_realtime_response_apart_from_ids(
    gemini_client: genai.Client, fake_server: FakeProviderServer
) -> None:
    live = await ask(gemini_client, "same")
    async with fast_batchify():
        batched = await ask(gemini_client, "same")
    ignored = {"response_id", "sdk_http_response", "create_time"}
    assert batched.model_dump(exclude=ignored) == live.model_dump(exclude=ignored)


class ProductCopy(pydantic.BaseModel):
    title: str
    word_count: int


async def test_every_parameter_reaches_the_batch_request_as_in_real_time(
    gemini_client: genai.Client, fake_server: FakeProviderServer
) -> None:
    config = types.GenerateContentConfig(
        system_instruction="You write product copy.",
        temperature=0.3,
        top_p=0.9,
        top_k=20,
        max_output_tokens=99,
        stop_sequences=["END"],
        seed=7,
        safety_settings=[
            types.SafetySetting(
                category=types.HarmCategory.HARM_CATEGORY_HARASSMENT,
                threshold=types.HarmBlockThreshold.BLOCK_ONLY_HIGH,
            )
        ],
        tools=[
            types.Tool(
                function_declarations=[
                    types.FunctionDeclaration(name="lookup", description="Look a product up")
                ]
            )
        ],
        tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(
                mode=types.FunctionCallingConfigMode.NONE
            )
        ),
        response_mime_type="application/json",
        response_schema=ProductCopy,
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    live = await gemini_client.aio.models.generate_content(
        model=MODEL, contents="a red chair", config=config
    )
    live_body = fake_server.received_bodies[-1]
    async with fast_batchify():
        reply = await gemini_client.aio.models.generate_content(
            model=MODEL, contents="a red chair", config=config
        )
    line = fake_server.batches[0].lines[0]
    assert line["request"] == live_body
    assert "systemInstruction" in line["request"]
    assert line["request"]["generationConfig"]["temperature"] == 0.3
    assert isinstance(reply.parsed, ProductCopy)
    assert reply.parsed == live.parsed


async def test_failed_line_raises_client_error_with_the_real_code_in_that_caller_only(
    gemini_client: genai.Client, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify():
        ok, bad, broken = await asyncio.gather(
            ask(gemini_client, "fine"),
            ask(gemini_client, "bad [[fail:400]]"),
            ask(gemini_client, "down [[fail:503]]"),
            return_exceptions=True,
        )
    assert isinstance(ok, types.GenerateContentResponse)
    assert type(bad) is errors.ClientError
    assert bad.code == 400
    assert type(broken) is errors.ServerError
    assert broken.code == 503
    assert fake_server.stats.realtime_calls == 0


def embed(client: genai.Client, contents: str | list[str], **config: object):  # type: ignore[no-untyped-def]
    return client.aio.models.embed_content(
        model=EMBED_MODEL, contents=contents, config=types.EmbedContentConfig(**config)
    )


async def test_embed_content_is_batched_one_line_per_content_and_equals_real_time(
    gemini_client: genai.Client, fake_server: FakeProviderServer
) -> None:
    live = await embed(gemini_client, ["oak chair", "red lamp"], output_dimensionality=4)
    async with fast_batchify() as ctx:
        batched, single = await asyncio.gather(
            embed(gemini_client, ["oak chair", "red lamp"], output_dimensionality=4),
            embed(gemini_client, "desk", task_type="RETRIEVAL_DOCUMENT"),
        )
    assert type(batched) is types.EmbedContentResponse
    ignored = {"sdk_http_response"}
    assert batched.model_dump(exclude=ignored) == live.model_dump(exclude=ignored)
    assert single.embeddings is not None
    assert len(single.embeddings) == 1
    [job] = fake_server.batches
    assert job.endpoint == "asyncBatchEmbedContent"
    assert [line["request"]["content"]["parts"][0]["text"] for line in job.lines] == [
        "oak chair", "red lamp", "desk",
    ]  # fmt: skip
    assert job.lines[2]["request"]["taskType"] == "RETRIEVAL_DOCUMENT"
    assert fake_server.stats.realtime_calls == 1  # the live call before the block
    assert ctx.report.batched == 2


async def test_a_failed_content_fails_its_own_embed_call_only(
    gemini_client: genai.Client, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify():
        ok, bad = await asyncio.gather(
            embed(gemini_client, ["fine", "also fine"]),
            embed(gemini_client, ["fine too", "bad [[fail:429]]"]),
            return_exceptions=True,
        )
    assert isinstance(ok, types.EmbedContentResponse)
    assert ok.embeddings is not None
    assert len(ok.embeddings) == 2
    assert type(bad) is errors.ClientError
    assert bad.code == 429


async def test_an_embed_call_without_contents_gets_the_real_time_error(
    gemini_client: genai.Client, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify():
        empty, one = await asyncio.gather(
            embed(gemini_client, []), embed(gemini_client, ["x"]), return_exceptions=True
        )
    assert type(empty) is errors.ClientError  # as in real time, where nothing is billed
    assert empty.code == 400
    assert isinstance(one, types.EmbedContentResponse)


async def test_embedding_jobs_are_split_by_their_contents(
    gemini_client: genai.Client, fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(google_genai, "EMBED_INPUTS_PER_JOB", 3)
    async with fast_batchify():
        replies = await asyncio.gather(
            embed(gemini_client, ["a", "b"]),
            embed(gemini_client, ["c", "d"]),
            embed(gemini_client, "e"),
        )
    assert [len(reply.embeddings or []) for reply in replies] == [2, 2, 1]
    assert sorted(fake_server.stats.provider("gemini").lines_per_batch) == [2, 3]


async def test_an_embed_call_whose_contents_a_cancelled_job_left_unanswered_gets_the_error(
    gemini_client: genai.Client, fake_server: FakeProviderServer
) -> None:
    fake_server.set_batch_outcome("cancelled", completed_fraction=0.5)
    async with fast_batchify():
        done, cut = await asyncio.gather(
            embed(gemini_client, ["first", "second"]),
            embed(gemini_client, ["third", "fourth"]),  # lines 3 and 4 of 4: not answered
            return_exceptions=True,
        )
    assert isinstance(done, types.EmbedContentResponse)
    assert isinstance(cut, batchling.BatchCancelledError)


async def test_job_too_large_for_inline_goes_through_an_uploaded_file(
    gemini_client: genai.Client, fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batchling.providers import google_genai

    monkeypatch.setattr(google_genai, "INLINE_LIMIT_BYTES", 2_000)
    monkeypatch.setattr(google_genai, "INLINE_MARGIN_BYTES", 0)
    async with fast_batchify():
        replies = await asyncio.gather(*(ask(gemini_client, f"item {i} " * 5) for i in range(30)))
    batch = fake_server.batches[0]
    assert batch.source == "file"
    assert fake_server.stats.provider("gemini").files_uploaded == 1
    for i, reply in enumerate(replies):
        assert reply.text is not None
        assert reply.text.startswith(f"echo: item {i} item {i}")
    assert fake_server.stats.realtime_calls == 0


async def test_failed_batch_raises_batch_failed_error(
    gemini_client: genai.Client, fake_server: FakeProviderServer
) -> None:
    fake_server.set_batch_outcome("failed")
    async with fast_batchify():
        with pytest.raises(batchling.BatchFailedError):
            await ask(gemini_client, "doomed")


async def test_streaming_passes_through_with_a_warning(
    gemini_client: genai.Client, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify() as ctx:
        with pytest.warns(batchling.NotBatchedWarning, match="stream"):
            chunks = [
                chunk
                async for chunk in await gemini_client.aio.models.generate_content_stream(
                    model=MODEL, contents="stream"
                )
            ]
    assert "".join(chunk.text or "" for chunk in chunks) == "echo: stream"
    assert ctx.report.passed_through == {"streaming": 1}


async def test_chat_send_message_is_batched(
    gemini_client: genai.Client, fake_server: FakeProviderServer
) -> None:
    chat = gemini_client.aio.chats.create(model=MODEL)
    async with fast_batchify():
        reply = await chat.send_message("hello chat")
    assert reply.text == "echo: hello chat"
    assert fake_server.stats.provider("gemini").batches_created == 1


async def test_expired_job_without_output_is_submitted_once_more(
    gemini_client: genai.Client, fake_server: FakeProviderServer
) -> None:
    fake_server.set_batch_outcome("expired")
    async with fast_batchify():
        results = await asyncio.gather(
            *(ask(gemini_client, f"late {i}") for i in range(3)), return_exceptions=True
        )
    # Gemini returns nothing for an expired job: every line goes again once, then gives up.
    assert fake_server.stats.provider("gemini").lines_per_batch == [3, 3]
    assert all(isinstance(result, batchling.BatchExpiredError) for result in results)


async def test_mixed_parts_reach_the_batch_as_the_sdk_writes_them_in_real_time(
    gemini_client: genai.Client, fake_server: FakeProviderServer
) -> None:
    # Text-only parts are written by batchling's shortcut, the others by the SDK's converter.
    contents = [
        types.Content(role="user", parts=[types.Part(text="plain"), types.Part(text="two")]),
        types.Content(role="model", parts=[types.Part(text="a thought", thought=True)]),
        types.Content(
            role="user",
            parts=[
                types.Part.from_bytes(data=b"\x89PNG", mime_type="image/png"),
                types.Part(text="after an image"),
            ],
        ),
        {"role": "user", "parts": [{"text": "from a dict"}]},
    ]
    await gemini_client.aio.models.generate_content(model=MODEL, contents=contents)
    live_body = fake_server.received_bodies[-1]
    async with fast_batchify():
        await gemini_client.aio.models.generate_content(model=MODEL, contents=contents)
    line = fake_server.batches[0].lines[0]
    assert line["request"] == live_body
    assert line["request"]["contents"][1]["parts"] == [{"text": "a thought", "thought": True}]
    assert "inlineData" in line["request"]["contents"][2]["parts"][0]


def test_text_parts_skip_the_sdk_converter_and_other_parts_do_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stainless, "VERIFY_FAST_PATHS", False)
    seen: list[object] = []

    def sdk_converter(part: types.Part) -> dict[str, object]:
        seen.append(part)
        return google_models._Part_to_mldev(part)

    parts = google_genai_parts.TextParts()
    assert parts.to_mldev(sdk_converter, (types.Part(text="hi"),), {}) == {"text": "hi"}
    assert len(seen) == 1  # the one-time probe, not the part itself
    assert seen[0] != types.Part(text="hi")

    class MyPart(types.Part):
        pass

    untouched = [
        types.Part(text="hi", thought=True),
        types.Part(text=None),
        types.Part.from_function_call(name="f", args={}),
        MyPart(text="subclass"),
    ]
    for part in untouched:
        assert parts.to_mldev(sdk_converter, (part,), {}) == google_models._Part_to_mldev(part)
    assert seen[1:] == untouched
    changed = types.Part(text="hi")
    changed.thought = True  # set after construction
    assert parts.to_mldev(sdk_converter, (changed,), {}) == {"text": "hi", "thought": True}


def test_a_converter_that_writes_more_for_a_text_part_turns_the_shortcut_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stainless, "VERIFY_FAST_PATHS", False)

    def newer_sdk_converter(part: types.Part) -> dict[str, object]:
        return {**google_models._Part_to_mldev(part), "partMetadata": {}}

    parts = google_genai_parts.TextParts()
    for _ in range(2):
        answer = parts.to_mldev(newer_sdk_converter, (types.Part(text="hi"),), {})
        assert answer == {"text": "hi", "partMetadata": {}}


async def test_the_text_part_shortcut_is_checked_against_the_sdk_in_the_tests() -> None:
    # conftest sets BATCHLING_VERIFY_FAST_PATHS=1: a shortcut that disagrees fails loudly.
    assert stainless.VERIFY_FAST_PATHS
    parts = google_genai_parts.TextParts()
    with pytest.raises(AssertionError, match="differs from the SDK's"):
        parts.to_mldev(
            lambda part: {"text": part.text} if part.text == "batchling" else {"text": "x"},
            (types.Part(text="hi"),),
            {},
        )


async def test_a_value_real_time_cannot_send_is_refused_in_a_batch_too(
    gemini_client: genai.Client, fake_server: FakeProviderServer
) -> None:
    contents = [
        types.Content(role="user", parts=[types.Part(text="price?")]),
        types.Content(role="model", parts=[types.Part.from_function_call(name="price", args={})]),
        types.Content(
            role="user",
            parts=[
                types.Part.from_function_response(
                    name="price", response={"eur": decimal.Decimal("1.10")}
                )
            ],
        ),
    ]
    with pytest.raises(TypeError) as live:
        await gemini_client.aio.models.generate_content(model=MODEL, contents=contents)
    async with fast_batchify():
        with pytest.raises(TypeError) as batched:
            await gemini_client.aio.models.generate_content(model=MODEL, contents=contents)
    assert str(batched.value) == str(live.value)
    assert fake_server.stats.provider("gemini").batches_created == 0
