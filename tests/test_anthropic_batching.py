"""The real `anthropic` SDK inside `batchify()`, against the bundled fake provider server."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import pydantic
import pytest
from anthropic.types import Message

import batchling
from batchling import stainless
from batchling.testing import FakeProviderServer
from tests.conftest import fast_batchify


def ask(client: anthropic.AsyncAnthropic, text: str, model: str = "claude-sonnet-5-5"):  # type: ignore[no-untyped-def]
    return client.messages.create(
        model=model, max_tokens=64, messages=[{"role": "user", "content": text}]
    )


def text_of(message: Message) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


async def test_200_concurrent_messages_make_one_batch_and_no_realtime_call(
    anthropic_client: anthropic.AsyncAnthropic, fake_server: FakeProviderServer
) -> None:
    tasks = [ask(anthropic_client, f"product {i}") for i in range(200)]
    async with fast_batchify():
        replies = await asyncio.gather(*tasks)
    stats = fake_server.stats.provider("anthropic")
    assert stats.batches_created == 1
    assert stats.lines_per_batch == [200]
    assert fake_server.stats.realtime_calls == 0
    for i, reply in enumerate(replies):
        assert type(reply) is Message
        assert text_of(reply) == f"echo: product {i}"
        assert reply.usage.output_tokens > 0


async def test_batched_message_equals_realtime_message_apart_from_id(
    anthropic_client: anthropic.AsyncAnthropic, fake_server: FakeProviderServer
) -> None:
    live = await ask(anthropic_client, "same")
    async with fast_batchify():
        batched = await ask(anthropic_client, "same")
    # Real batch results report the tier they ran in: `usage.service_tier == "batch"`.
    ignored: dict[str, Any] = {"id": True, "usage": {"service_tier"}}
    assert batched.model_dump(exclude=ignored) == live.model_dump(exclude=ignored)
    assert batched.usage.service_tier == "batch"


async def test_every_parameter_reaches_the_batch_params_unchanged(
    anthropic_client: anthropic.AsyncAnthropic, fake_server: FakeProviderServer
) -> None:
    kwargs: dict[str, Any] = {
        "model": "claude-sonnet-5-5",
        "max_tokens": 321,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "a red chair"}]}],
        "system": [{"type": "text", "text": "You write product copy."}],
        "tools": [
            {
                "name": "lookup",
                "description": "Look a product up",
                "input_schema": {"type": "object", "properties": {"sku": {"type": "string"}}},
            }
        ],
        "tool_choice": {"type": "auto"},
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-1"},
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "service_tier": "standard_only",
        "container": "container_abc",
        "cache_control": {"type": "ephemeral"},
        "inference_geo": "us",
        "output_config": {"effort": "high"},
    }
    sampling = {"temperature": 0.2, "top_p": 0.9, "top_k": 40}
    async with fast_batchify():
        await anthropic_client.messages.create(
            **kwargs,
            extra_body=sampling,
            extra_headers={"anthropic-beta": "some-feature-2026-01-01"},
        )
    batch = fake_server.batches[0]
    assert batch.lines[0]["params"] == {**kwargs, **sampling}
    assert batch.headers["anthropic-beta"] == "some-feature-2026-01-01"
    # The same call in real time sends the very same body.
    await anthropic_client.messages.create(**kwargs, extra_body=sampling)
    assert fake_server.received_bodies[-1] == batch.lines[0]["params"]


class ProductCopy(pydantic.BaseModel):
    title: str
    word_count: int


async def test_messages_parse_with_pydantic_output_format_is_batched_and_parsed(
    anthropic_client: anthropic.AsyncAnthropic, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify():
        reply = await anthropic_client.messages.parse(
            model="claude-sonnet-5-5",
            max_tokens=100,
            messages=[{"role": "user", "content": "blue lamp"}],
            output_format=ProductCopy,
        )
    assert isinstance(reply.parsed_output, ProductCopy)
    assert reply.parsed_output.title == "blue lamp"
    assert fake_server.stats.provider("anthropic").batches_created == 1
    assert fake_server.stats.realtime_calls == 0


async def test_failed_line_raises_sdk_error_class_in_that_caller_only(
    anthropic_client: anthropic.AsyncAnthropic, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify():
        ok, bad, limited = await asyncio.gather(
            ask(anthropic_client, "fine"),
            ask(anthropic_client, "broken [[fail:400]]"),
            ask(anthropic_client, "busy [[fail:429]]"),
            return_exceptions=True,
        )
    assert isinstance(ok, Message)
    assert type(bad) is anthropic.BadRequestError
    assert bad.status_code == 400
    assert bad.request_id is not None
    assert type(limited) is anthropic.RateLimitError
    assert fake_server.stats.realtime_calls == 0


async def test_expired_and_canceled_lines_raise_batchling_errors(
    anthropic_client: anthropic.AsyncAnthropic, fake_server: FakeProviderServer
) -> None:
    fake_server.set_batch_outcome("expired", completed_fraction=0.5)
    async with fast_batchify(resubmit_expired=0):
        results = await asyncio.gather(
            *(ask(anthropic_client, f"q{i}") for i in range(4)), return_exceptions=True
        )
    assert sum(isinstance(r, Message) for r in results) == 2
    assert sum(isinstance(r, batchling.BatchExpiredError) for r in results) == 2


async def test_large_max_tokens_is_allowed_inside_batchify(
    anthropic_client: anthropic.AsyncAnthropic, fake_server: FakeProviderServer
) -> None:
    request = {
        "model": "claude-sonnet-5-5",
        "max_tokens": 64_000,
        "messages": [{"role": "user", "content": "long essay"}],
    }
    with pytest.raises(ValueError, match="Streaming is required"):
        await anthropic_client.messages.create(**request)  # type: ignore[arg-type]
    async with fast_batchify():
        reply = await anthropic_client.messages.create(**request)  # type: ignore[arg-type]
    assert text_of(reply) == "echo: long essay"
    assert fake_server.batches[0].lines[0]["params"]["max_tokens"] == 64_000


async def test_beta_messages_come_back_as_beta_messages(
    anthropic_client: anthropic.AsyncAnthropic, fake_server: FakeProviderServer
) -> None:
    from anthropic.types.beta import BetaMessage

    async with fast_batchify():
        reply = await anthropic_client.beta.messages.create(
            model="claude-sonnet-5-5",
            max_tokens=50,
            messages=[{"role": "user", "content": "beta"}],
            betas=["files-api-2025-04-14"],
        )
    assert type(reply) is BetaMessage
    assert fake_server.batches[0].headers["anthropic-beta"] == "files-api-2025-04-14"


async def test_a_call_with_other_betas_is_not_answered_from_the_journal(
    anthropic_client: anthropic.AsyncAnthropic, fake_server: FakeProviderServer
) -> None:
    def beta_ask(beta: str) -> Any:
        return anthropic_client.beta.messages.create(
            model="claude-sonnet-5-5",
            max_tokens=50,
            messages=[{"role": "user", "content": "same body"}],
            betas=[beta],
        )

    async with fast_batchify():
        await beta_ask("files-api-2025-04-14")
    async with fast_batchify() as again:
        await beta_ask("files-api-2025-04-14")
    async with fast_batchify() as other:  # a beta can change the answer: asked anew
        await beta_ask("context-1m-2025-08-07")
    assert again.report.from_journal == 1
    assert other.report.from_journal == 0
    assert other.report.batched == 1
    assert [batch.headers["anthropic-beta"] for batch in fake_server.batches] == [
        "files-api-2025-04-14",
        "context-1m-2025-08-07",
    ]


async def test_a_call_without_headers_of_its_own_keeps_the_digest_journals_know_it_by(
    anthropic_client: anthropic.AsyncAnthropic,
    fake_server: FakeProviderServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The SDK passes `Omit` markers for headers it leaves out: they send nothing, so they must
    # not change the digest (journals written before headers counted would no longer match).
    calls: list[tuple[Any, ...]] = []
    real = stainless.request_digest

    def recording(*args: Any) -> str:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(stainless, "request_digest", recording)
    async with fast_batchify():
        await ask(anthropic_client, "plain")
    [(provider, endpoint, model, base_url, raw_body, headers)] = calls
    assert headers  # the SDK's markers are there...
    digest = real(provider, endpoint, model, base_url, raw_body, headers)
    assert digest == real(provider, endpoint, model, base_url, raw_body)  # ...and change nothing


async def test_streaming_passes_through_and_count_tokens_passes_silently(
    anthropic_client: anthropic.AsyncAnthropic, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify() as ctx:
        with pytest.warns(batchling.NotBatchedWarning, match="stream"):
            async with anthropic_client.messages.stream(
                model="claude-sonnet-5-5",
                max_tokens=20,
                messages=[{"role": "user", "content": "stream"}],
            ) as stream:
                final = await stream.get_final_message()
    assert text_of(final) == "echo: stream"
    assert ctx.report.passed_through == {"streaming": 1}
    assert fake_server.stats.provider("anthropic").batches_created == 0


async def test_raw_response_is_batched(
    anthropic_client: anthropic.AsyncAnthropic, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify():
        raw = await anthropic_client.messages.with_raw_response.create(
            model="claude-sonnet-5-5", max_tokens=10, messages=[{"role": "user", "content": "r"}]
        )
    assert text_of(await raw.parse()) == "echo: r"
    assert fake_server.stats.realtime_calls == 0
